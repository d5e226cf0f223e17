//! sock_diag (`NETLINK_SOCK_DIAG`, inet_diag) access shared by every adapter that looks at
//! local TCP sockets: passive health's sampling (`os/traffic.rs`) and anything else that needs
//! the kernel's socket list (a flow reset picks its victims from the same dump).
//!
//! Reuse: open one [`SockDiag`] (the socket lands in the calling thread's network namespace,
//! and its connection task needs a tokio runtime), then call [`SockDiag::dump_tcp`] per family
//! with the states wanted. Each [`DiagSocket`] carries the kernel's `SocketId` (addresses,
//! ports, interface, cookie: exactly what a `SOCK_DESTROY` request names) and, because the dump
//! always asks for `INET_DIAG_INFO`, the `struct tcp_info` fields read by [`TcpInfoFields`].
//!
//! `tcp_info` is read from its fixed, append-only kernel ABI offsets rather than through the
//! crate's `rich_nlas` parser, which refuses any buffer shorter than its own (newest) struct and
//! so fails on older kernels; keep that feature off.

use std::net::SocketAddr;
use std::time::Duration;

use futures::stream::StreamExt;
use netlink_packet_sock_diag::constants::IPPROTO_TCP;
pub use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::proto::ConnectionHandle;
use rtnetlink::sys::protocols::NETLINK_SOCK_DIAG;

use super::netlink::{require_runtime, AbortOnDrop, NetlinkError};

/// A sock_diag request failed.
#[derive(Debug, thiserror::Error)]
pub enum SockDiagError {
    #[error("sock_diag dump (family {family}): {message}")]
    Dump { family: u8, message: String },
}

/// The `struct tcp_info` fields the engine uses (units converted: times as `Duration`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TcpInfoFields {
    pub retransmits: u8,
    pub unacked: u32,
    pub last_ack_recv: Duration,
    pub rtt: Duration,
    pub total_retrans: u32,
    pub bytes_acked: u64,
    pub bytes_received: u64,
}

/// Byte offsets in the kernel's `struct tcp_info` (include/uapi/linux/tcp.h). The struct only
/// ever grows at its end, so these hold on every kernel that has the field.
mod offset {
    pub const RETRANSMITS: usize = 2;
    pub const UNACKED: usize = 24;
    pub const LAST_ACK_RECV: usize = 56;
    pub const RTT: usize = 68;
    pub const TOTAL_RETRANS: usize = 100;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
}

impl TcpInfoFields {
    /// Reads the fields from a raw `INET_DIAG_INFO` payload; `None` if it is too short for even
    /// the oldest layout we use (a garbage attribute). Newer fields missing on an old kernel
    /// read as zero.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let u32_at = |at: usize| {
            raw.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
        };
        let u64_at = |at: usize| {
            raw.get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_ne_bytes)
        };
        Some(Self {
            retransmits: *raw.get(offset::RETRANSMITS)?,
            unacked: u32_at(offset::UNACKED)?,
            last_ack_recv: Duration::from_millis(u64::from(u32_at(offset::LAST_ACK_RECV)?)),
            rtt: Duration::from_micros(u64::from(u32_at(offset::RTT).unwrap_or(0))),
            total_retrans: u32_at(offset::TOTAL_RETRANS).unwrap_or(0),
            bytes_acked: u64_at(offset::BYTES_ACKED).unwrap_or(0),
            bytes_received: u64_at(offset::BYTES_RECEIVED).unwrap_or(0),
        })
    }
}

/// One socket of a dump.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DiagSocket {
    pub family: u8,
    /// `TCP_*` state (`netlink_packet_sock_diag::constants`).
    pub state: u8,
    /// Addresses, ports, bound interface (0 = none) and cookie, as the kernel reported them.
    pub id: SocketId,
    /// `INET_DIAG_INFO`, when the kernel sent it (it does for full sockets).
    pub info: Option<TcpInfoFields>,
}

impl DiagSocket {
    pub fn local(&self) -> SocketAddr {
        SocketAddr::new(self.id.source_address, self.id.source_port)
    }

    pub fn remote(&self) -> SocketAddr {
        SocketAddr::new(self.id.destination_address, self.id.destination_port)
    }

    /// The cookie as one number (stable for the socket's life).
    pub fn cookie(&self) -> u64 {
        u64::from_ne_bytes(self.id.cookie)
    }
}

/// A sock_diag netlink socket. See the module doc.
pub struct SockDiag {
    handle: ConnectionHandle<SockDiagMessage>,
    _connection: AbortOnDrop,
}

impl SockDiag {
    /// Opens the socket in the calling thread's namespace; needs a tokio runtime.
    pub fn open() -> Result<Self, NetlinkError> {
        const WHAT: &str = "sock_diag socket";
        require_runtime(WHAT)?;
        let (connection, handle, _unsolicited) =
            rtnetlink::proto::new_connection::<SockDiagMessage>(NETLINK_SOCK_DIAG)
                .map_err(|error| NetlinkError::Socket { what: WHAT, error })?;
        Ok(Self {
            handle,
            _connection: AbortOnDrop(tokio::spawn(connection)),
        })
    }

    /// Every TCP socket of `family` (`AF_INET` or `AF_INET6`) in one of `states`, with
    /// `INET_DIAG_INFO`. The future owns a clone of the handle, so it may outlive `self`'s
    /// borrow (not the socket: dropping the `SockDiag` ends pending dumps with an error).
    pub fn dump_tcp(
        &self,
        family: u8,
        states: StateFlags,
    ) -> impl std::future::Future<Output = Result<Vec<DiagSocket>, SockDiagError>> + Send + 'static
    {
        let handle = self.handle.clone();
        async move {
            let fail = |message: String| SockDiagError::Dump { family, message };
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            let socket_id = if family == AF_INET6 {
                SocketId::new_v6()
            } else {
                SocketId::new_v4()
            };
            let mut request = NetlinkMessage::new(
                header,
                SockDiagMessage::InetRequest(InetRequest {
                    family,
                    protocol: IPPROTO_TCP,
                    extensions: ExtensionFlags::INFO,
                    states,
                    socket_id,
                })
                .into(),
            );
            request.finalize();
            let mut replies = handle
                .request(request, rtnetlink::sys::SocketAddr::new(0, 0))
                .map_err(|e| fail(e.to_string()))?;
            let mut out = Vec::new();
            while let Some(message) = replies.next().await {
                match message.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let info = r.nlas.iter().find_map(|nla| match nla {
                            Nla::TcpInfo(raw) => TcpInfoFields::parse(raw),
                            _ => None,
                        });
                        out.push(DiagSocket {
                            family: r.header.family,
                            state: r.header.state,
                            id: r.header.socket_id.clone(),
                            info,
                        });
                    }
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(fail(e.to_io().to_string()));
                    }
                    NetlinkPayload::Done(_) => break,
                    _ => {}
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_offsets_and_short_buffers() {
        let mut raw = vec![0u8; 232];
        raw[2] = 3;
        raw[24..28].copy_from_slice(&7u32.to_ne_bytes());
        raw[56..60].copy_from_slice(&1500u32.to_ne_bytes());
        raw[68..72].copy_from_slice(&20_000u32.to_ne_bytes());
        raw[100..104].copy_from_slice(&9u32.to_ne_bytes());
        raw[120..128].copy_from_slice(&12345u64.to_ne_bytes());
        raw[128..136].copy_from_slice(&999u64.to_ne_bytes());
        let f = TcpInfoFields::parse(&raw).expect("full buffer parses");
        assert_eq!(f.retransmits, 3);
        assert_eq!(f.unacked, 7);
        assert_eq!(f.last_ack_recv, Duration::from_millis(1500));
        assert_eq!(f.rtt, Duration::from_millis(20));
        assert_eq!(f.total_retrans, 9);
        assert_eq!(f.bytes_acked, 12345);
        assert_eq!(f.bytes_received, 999);
        // An old kernel's shorter struct: the newer fields read as zero.
        let old = TcpInfoFields::parse(&raw[..104]).expect("old layout parses");
        assert_eq!((old.unacked, old.bytes_acked), (7, 0));
        // Garbage: too short for the fields we need.
        assert_eq!(TcpInfoFields::parse(&raw[..30]), None);
    }
}
