//! `SOCK_DESTROY` of one TCP socket through sock_diag, as `ss -K` does: the application's next
//! call on it fails (ECONNABORTED) and it reconnects. The sockets come from the shared dump in
//! `os/sockdiag.rs`; this file only adds the destroy request, on the blocking connection of
//! `wire.rs` (the dump's typed connection carries `SockDiagMessage`s only).
//!
//! Needs CAP_NET_ADMIN and a kernel built with `CONFIG_INET_DIAG_DESTROY` (balenaOS and Debian
//! kernels have it); without it the kernel answers EOPNOTSUPP, which the caller explains.

use netlink_packet_sock_diag::constants::{IPPROTO_TCP, TCP_LISTEN};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, StateFlags};
use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use netfailover_actors::flows::SocketFlow;

use super::wire::{Conn, WireError};
use crate::os::sockdiag::DiagSocket;

/// A blocking sock_diag connection for destroy requests, in the calling thread's namespace.
pub struct Destroyer(Conn);

impl Destroyer {
    pub fn open() -> std::io::Result<Self> {
        Conn::open(NETLINK_SOCK_DIAG).map(Self)
    }

    /// Aborts one socket. A socket closed in the meantime is `Errno(ENOENT)`.
    pub fn destroy(&mut self, socket: &DiagSocket) -> Result<(), WireError> {
        let request = SockDiagMessage::InetRequest(InetRequest {
            family: socket.family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id: socket.id.clone(),
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
pub fn flow_of(s: &DiagSocket) -> SocketFlow {
    SocketFlow {
        local: s.id.source_address,
        remote: s.id.destination_address,
        listening: s.state == TCP_LISTEN,
        bound_ifindex: s.id.interface_id,
    }
}
