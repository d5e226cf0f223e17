//! IPv6 neighbour discovery messages on a raw ICMPv6 socket: the engine's Router Solicitation
//! (RFC 4861 §4.1), which makes the router answer with an advertisement so the kernel
//! re-installs its default route at the current `ra_defrtr_metric`.
//!
//! The socket is opened in the calling thread's network namespace (like the netlink sockets),
//! bound to the interface, and its multicast leaves with hop limit 255: receivers drop neighbour
//! discovery messages with any other hop limit. The kernel fills in the ICMPv6 checksum of raw
//! ICMPv6 sockets. The lab's router (`netfailover_lab::router`, tests/lab/src/router.rs) uses the same socket to
//! advertise.

use std::ffi::OsString;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
    SockType, SockaddrIn6,
};
use nix::sys::time::{TimeVal, TimeValLike};

/// `ff02::2`, every router on the link.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// `ff02::1`, every node on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;

/// A neighbour discovery socket operation failed.
#[derive(Debug, thiserror::Error)]
#[error("ICMPv6 {what} on {iface}: {error}")]
pub struct NdiscError {
    what: &'static str,
    iface: String,
    error: nix::Error,
}

/// A raw ICMPv6 socket bound to `iface`, multicast hop limit 255, with `timeout` on receives.
pub fn icmpv6_socket(iface: &str, timeout: Duration) -> Result<OwnedFd, NdiscError> {
    let err = |what| {
        let iface = iface.to_string();
        move |error| NdiscError { what, iface, error }
    };
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )
    .map_err(err("socket"))?;
    setsockopt(&fd, sockopt::BindToDevice, &OsString::from(iface)).map_err(err("bind"))?;
    setsockopt(&fd, sockopt::Ipv6MulticastHops, &255).map_err(err("hop limit"))?;
    let timeout = TimeVal::milliseconds(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout).map_err(err("timeout"))?;
    Ok(fd)
}

/// Sends one ICMPv6 `message` to the link-local multicast `group` on `iface`.
pub fn send_link_multicast(
    fd: &OwnedFd,
    iface: &str,
    ifindex: u32,
    group: Ipv6Addr,
    message: &[u8],
) -> Result<(), NdiscError> {
    let to = SockaddrIn6::from(SocketAddrV6::new(group, 0, 0, ifindex));
    sendto(fd.as_raw_fd(), message, &to, MsgFlags::empty())
        .map(drop)
        .map_err(|error| NdiscError {
            what: "send",
            iface: iface.to_string(),
            error,
        })
}

/// The ICMPv6 type of the next message received, `None` after the receive timeout.
pub fn receive_type(fd: &OwnedFd) -> Option<u8> {
    let mut buf = [0u8; 1500];
    match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
        Ok(n) if n > 0 => Some(buf[0]),
        _ => None,
    }
}

/// Sends one Router Solicitation on `iface` to all routers.
pub fn solicit_router(iface: &str, ifindex: u32) -> Result<(), NdiscError> {
    let fd = icmpv6_socket(iface, Duration::from_millis(100))?;
    // Type, code, checksum (the kernel's), 4 reserved bytes; no options (RFC 4861 §4.1).
    let message = [ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    send_link_multicast(&fd, iface, ifindex, ALL_ROUTERS, &message)
}
