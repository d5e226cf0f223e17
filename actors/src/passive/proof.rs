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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::*;
    use crate::passive::{Context, RuleParams};
    use crate::ports::{FlowProto, FlowSample, TcpPhase};

    const CTX: Context = Context {
        eligible: true,
        in_use: true,
    };

    fn sample(acked: u64, received: u64, flow: Option<(u64, u64)>) -> IfaceTraffic {
        let sock = TcpSocketSample {
            cookie: 1,
            local: SocketAddr::from(([192, 0, 2, 10], 40000)),
            remote: SocketAddr::from(([203, 0, 113, 7], 443)),
            phase: TcpPhase::Open,
            unacked: 0,
            retransmits: 0,
            total_retrans: 0,
            last_ack_recv: Duration::from_millis(50),
            rtt: Duration::from_millis(30),
            bytes_acked: acked,
            bytes_received: received,
        };
        let flows = flow.map(|(orig, reply)| {
            vec![FlowSample {
                id: 9,
                proto: FlowProto::Udp,
                peer: [203, 0, 113, 8].into(),
                orig_packets: orig,
                reply_packets: reply,
            }]
        });
        IfaceTraffic {
            ifindex: 2,
            name: "wwan0".into(),
            rx_packets: received,
            tx_packets: acked,
            rx_multicast: 0,
            rx_bytes: received,
            tx_bytes: acked,
            tcp: if flow.is_some() { vec![] } else { vec![sock] },
            subnets: vec![],
            flows,
        }
    }

    /// Feeds the samples a second apart; the seconds whose sample showed two-way progress.
    fn two_way_at(samples: &[IfaceTraffic]) -> Vec<u64> {
        let p = RuleParams::default();
        let t0 = Instant::now();
        let mut t = Tracker::default();
        let mut out = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            let now = t0 + Duration::from_secs(i as u64);
            t.observe(now, "wwan0", Some(s), CTX, &p);
            if t.last_two_way() == Some(now) {
                out.push(i as u64);
            }
        }
        out
    }

    #[test]
    fn two_way_progress_needs_both_directions_of_one_socket_or_flow() {
        let sock = |a, r| sample(a, r, None);
        // First sight has nothing to compare with; then both grew, then only one each.
        assert_eq!(
            two_way_at(&[
                sock(100, 100),
                sock(200, 200),
                sock(300, 200),
                sock(300, 300)
            ]),
            [1]
        );
        let flow = |o, r| sample(0, 0, Some((o, r)));
        assert_eq!(
            two_way_at(&[flow(1, 1), flow(3, 2), flow(5, 2), flow(5, 3), flow(6, 4)]),
            [1, 4]
        );
    }
}
