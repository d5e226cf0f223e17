//! What the samples prove works, beside the suspicion rule: whether the interface's traffic
//! was answered since a moment (a confirmation that ran out of its short deadline asks), and
//! the last sample in which it made progress both ways (a metered uplink's periodic check is
//! skipped on it: docs/semantics.md §9.11).

use tokio::time::Instant;

use super::{flows, on_lan, SocketMemo, Tracker};
use crate::ports::{IfaceTraffic, TcpSocketSample};

/// Whether a socket got answers (bytes acked or received) since its memo.
pub(super) fn socket_answered(m: &SocketMemo, sock: &TcpSocketSample) -> bool {
    sock.bytes_acked > m.bytes_acked || sock.bytes_received > m.bytes_received
}

/// Whether a socket made progress both ways since its memo: bytes acknowledged (what it sent
/// arrived) and bytes received.
pub(super) fn socket_two_way(m: &SocketMemo, sock: &TcpSocketSample) -> bool {
    sock.bytes_acked > m.bytes_acked && sock.bytes_received > m.bytes_received
}

impl Tracker {
    /// Whether the interface's traffic was answered in a sample at or after `since`, or in
    /// `fresh` (a sample taken now, compared with the last one fed and not fed itself).
    pub fn answered_since(&self, since: Instant, fresh: &IfaceTraffic) -> bool {
        if self.last_answered.is_some_and(|t| t >= since) {
            return true;
        }
        let mut wan = fresh
            .tcp
            .iter()
            .filter(|t| !on_lan(t.remote.ip(), &fresh.subnets));
        let sockets = wan.any(|sock| {
            let memo = self.sockets.get(&sock.cookie);
            memo.is_some_and(|m| socket_answered(m, sock))
        });
        let flows = fresh.flows.as_deref().unwrap_or_default();
        sockets || flows::answered(&self.flows, flows, &fresh.subnets)
    }

    /// The last sample in which a (non-LAN) socket's bytes acknowledged and received both grew,
    /// or a flow's packets both ways: the interface's own traffic proves it works.
    pub fn last_two_way(&self) -> Option<Instant> {
        self.last_two_way
    }
}
