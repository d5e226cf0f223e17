//! The netlink adapters of the engine's ports: [`NetlinkLinks`] (`ports::LinkSource`: link,
//! address and route notifications from a multicast socket, link dumps) and [`NetlinkRoutes`]
//! (`ports::RouteTable`: the main table's default routes and interface addresses), both on
//! `rtnetlink` 0.24 — no shelling out to `ip`.
//!
//! Namespaces: a netlink socket belongs to the network namespace of the thread that created
//! it. `NetlinkLinks` opens its sockets in `subscribe()`/`dump()` on the calling thread;
//! `NetlinkRoutes` opens its one socket in `new()`. Run the engine (or construct the adapters) on
//! a thread that is in the namespace to manage.
//!
//! Runtime: each socket is driven by a `netlink_proto::Connection` task spawned with
//! `tokio::spawn`, so the adapters must be used inside a tokio runtime (an actix System is one);
//! outside one they return an error instead of panicking.
//!
//! This module owns what both adapters share: the error type, opening a request connection, and
//! turning kernel errors (errno) into `PortError`s, and reading an address message (also used by
//! the traffic sampler, `os/traffic.rs`).

pub mod decode;
pub mod links;
pub mod routes;

pub use links::{NetlinkLinks, DEFAULT_RCVBUF};
pub use routes::NetlinkRoutes;

use std::net::IpAddr;
use std::sync::Arc;

use netfailover_actors::ports::{PortError, PortErrorKind};
use rtnetlink::packet_core::ErrorMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use tokio::task::JoinHandle;

/// Setting up a netlink socket failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The adapter needs a tokio runtime to drive its connection task.
    #[error("{what}: no tokio runtime on this thread (the netlink connection task needs one)")]
    NoRuntime { what: &'static str },
    /// Creating or configuring the socket failed.
    #[error("{what}: {error}")]
    Socket {
        what: &'static str,
        error: std::io::Error,
    },
}

impl From<NetlinkError> for PortError {
    fn from(e: NetlinkError) -> Self {
        let what = match &e {
            NetlinkError::NoRuntime { what } | NetlinkError::Socket { what, .. } => *what,
        };
        PortError::failed(what, e)
    }
}

/// Aborts a spawned connection task when dropped, so a socket never outlives its user.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fails with [`NetlinkError::NoRuntime`] unless the caller is inside a tokio runtime, because
/// `tokio::spawn` would panic there.
pub(crate) fn require_runtime(what: &'static str) -> Result<(), NetlinkError> {
    tokio::runtime::Handle::try_current()
        .map(drop)
        .map_err(|_| NetlinkError::NoRuntime { what })
}

/// Opens a plain request socket (no multicast groups) in the calling thread's namespace and
/// spawns its connection task.
pub(crate) fn open_request_connection(
    what: &'static str,
) -> Result<(rtnetlink::Handle, AbortOnDrop), NetlinkError> {
    require_runtime(what)?;
    let (connection, handle, _unsolicited) =
        rtnetlink::new_connection().map_err(|error| NetlinkError::Socket { what, error })?;
    Ok((handle, AbortOnDrop(tokio::spawn(connection))))
}

/// Maps an rtnetlink error to the port's vocabulary: EEXIST → `Exists`, ESRCH/ENOENT →
/// `NotFound` (the kernel's two spellings of "no such route"), ENETUNREACH → `Unreachable` (a
/// route whose gateway is on no subnet of its interface yet), anything else → `Failed`.
pub(crate) fn port_error(what: String, error: rtnetlink::Error) -> PortError {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            let kind = match errno(&message) {
                Some(libc::EEXIST) => PortErrorKind::Exists,
                Some(libc::ESRCH | libc::ENOENT) => PortErrorKind::NotFound,
                Some(libc::ENETUNREACH) => PortErrorKind::Unreachable,
                _ => PortErrorKind::Failed,
            };
            // The kernel's errno stays in the source (`PortError::errno`).
            PortError::new(kind, what, Some(Arc::new(message.to_io())))
        }
        other => PortError::failed(what, other),
    }
}

/// The positive errno of a NACK (the kernel sends it negated), `None` for an ACK.
fn errno(message: &ErrorMessage) -> Option<i32> {
    message.code.map(|code| code.get().saturating_abs())
}

/// The local addresses of one address message.
pub(crate) fn address_of(msg: &AddressMessage) -> Option<(IpAddr, u32)> {
    // IPv4 point-to-point links put the local address in IFA_LOCAL and the peer in
    // IFA_ADDRESS; everywhere else both are the local address.
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    local.or(address).map(|ip| (ip, msg.header.index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroI32;

    fn nack(errno: i32) -> rtnetlink::Error {
        let mut message = ErrorMessage::default();
        message.code = NonZeroI32::new(-errno);
        rtnetlink::Error::NetlinkError(message)
    }

    #[test]
    fn kernel_errors_map_to_port_errors() {
        let what = || "route".to_string();
        for (errno, kind) in [
            (libc::EEXIST, PortErrorKind::Exists),
            (libc::ESRCH, PortErrorKind::NotFound),
            (libc::ENOENT, PortErrorKind::NotFound),
            (libc::ENETUNREACH, PortErrorKind::Unreachable),
            (libc::EPERM, PortErrorKind::Failed),
        ] {
            let e = port_error(what(), nack(errno));
            assert_eq!((e.kind, e.errno()), (kind, Some(errno)), "{e}");
            assert_eq!(e.what, "route");
        }
        let e = port_error(what(), rtnetlink::Error::RequestFailed);
        assert_eq!((e.kind, e.errno()), (PortErrorKind::Failed, None), "{e}");
    }

    #[test]
    fn no_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            open_request_connection("test"),
            Err(NetlinkError::NoRuntime { .. })
        ));
    }
}
