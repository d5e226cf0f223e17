//! TCP sockets through sock_diag (`NETLINK_SOCK_DIAG`, what `ss` uses): a dump of both
//! families with optional extensions (reusable, e.g. for sampling TCP progress), and
//! `SOCK_DESTROY` of one socket, as `ss -K` does.
//!
//! `SOCK_DESTROY` needs CAP_NET_ADMIN and a kernel built with `CONFIG_INET_DIAG_DESTROY`
//! (balenaOS and Debian kernels have it); without it the kernel answers EOPNOTSUPP, which
//! [`destroy`] reports as [`WireError::Errno`] for the caller to explain.

use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, TCP_LISTEN};
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use netfailover_actors::flows::SocketFlow;
use netfailover_actors::model::Family;

use super::wire::{Conn, WireError};

/// A sock_diag connection in the calling thread's network namespace.
pub struct SockDiag(Conn);

/// One TCP socket of a dump, as the kernel reported it (header and requested extensions).
pub type TcpSocket = InetResponse;

fn af(family: Family) -> u8 {
    match family {
        Family::V4 => AF_INET,
        Family::V6 => AF_INET6,
    }
}

impl SockDiag {
    pub fn open() -> std::io::Result<Self> {
        Conn::open(NETLINK_SOCK_DIAG).map(Self)
    }

    /// Every TCP socket of `family` in one of `states`, with `extensions` (e.g.
    /// `ExtensionFlags::INFO` for `tcp_info`). IPv4 sockets of a dual-stack listener appear in
    /// the `V6` dump with IPv4-mapped addresses.
    pub fn dump_tcp(
        &mut self,
        family: Family,
        states: StateFlags,
        extensions: ExtensionFlags,
    ) -> Result<Vec<TcpSocket>, WireError> {
        let socket_id = match family {
            Family::V4 => SocketId::new_v4(),
            Family::V6 => SocketId::new_v6(),
        };
        let request = SockDiagMessage::InetRequest(InetRequest {
            family: af(family),
            protocol: IPPROTO_TCP,
            extensions,
            states,
            socket_id,
        });
        let mut out = Vec::new();
        self.0.dump(request, |m| {
            if let SockDiagMessage::InetResponse(r) = m {
                out.push(*r);
            }
        })?;
        Ok(out)
    }

    /// Aborts one socket (the application's next call fails with ECONNABORTED). A socket gone
    /// in the meantime is `Errno(ENOENT)`.
    pub fn destroy(&mut self, socket: &TcpSocket) -> Result<(), WireError> {
        let request = SockDiagMessage::InetRequest(InetRequest {
            family: socket.header.family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: socket.header.socket_id.clone(),
        });
        self.0.request(SockDiagDestroy::new(request))
    }
}

/// The states a pinned connection can be in: everything but LISTEN, TIME_WAIT (already
/// closed), SYN_RECV (a request socket of a listener) and CLOSE.
pub fn connected_states() -> StateFlags {
    StateFlags::ESTABLISHED
        | StateFlags::SYN_SENT
        | StateFlags::FIN_WAIT1
        | StateFlags::FIN_WAIT2
        | StateFlags::CLOSE_WAIT
        | StateFlags::LAST_ACK
        | StateFlags::CLOSING
}

/// What `flows.rs` needs to know about a socket.
pub fn flow_of(s: &TcpSocket) -> SocketFlow {
    let id = &s.header.socket_id;
    SocketFlow {
        local: id.source_address,
        remote: id.destination_address,
        listening: s.header.state == TCP_LISTEN,
        bound_ifindex: id.interface_id,
    }
}
