//! The per-flow half of the rule: connection-tracking entries (forwarded and NATed flows,
//! UDP) and which peers are on the LAN. A flow stalls when its original direction keeps
//! sending while its reply direction stays still for `window`: the first sample that shows it
//! sending without an answer starts the clock at the sample before (the packets left after
//! it), and once the clock has run `window` with at least [`SENT_AGAIN`] packets sent and no
//! answer, the peer is named. So a busy TCP flow is seen at the first sample after its
//! answers stop, a UDP client that backs off (1 s, 2 s, 4 s …) at its first resend, and a slow
//! request/response application (one request a period, a late answer) never. Flows to a peer on one of the interface's connected subnets are ignored:
//! only flows routed through the uplink's gateway speak for it.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use tokio::time::Instant;

use super::RuleParams;
use crate::ports::FlowSample;

/// Packets sent without an answer that make a stall (a send and at least one more).
pub const SENT_AGAIN: u64 = 2;

/// What the rule remembers of one flow between samples.
#[derive(Clone, Copy, Debug)]
pub(super) struct FlowMemo {
    at: Instant,
    orig: u64,
    reply: u64,
    /// The sample before the one that first showed the flow sending without an answer, and
    /// its original packet count.
    unanswered: Option<(Instant, u64)>,
}

/// Peers by what their flows (or sockets) showed in one sample.
#[derive(Default, Debug)]
pub(super) struct Peers {
    /// A stall: data or requests outstanding, unanswered for the window.
    pub stalled: BTreeSet<IpAddr>,
    /// Answers came back since the last sample.
    pub progressed: BTreeSet<IpAddr>,
    /// Something is outstanding, not (yet) for the window.
    pub pending: BTreeSet<IpAddr>,
    /// Stalled peers that had answered before (a working flow that stopped: what a blackhole
    /// looks like, unlike a peer that never answered).
    pub answered: BTreeSet<IpAddr>,
    /// A socket or flow made progress both ways since the last sample (bytes acknowledged and
    /// received; packets sent and answered): proof the path works (metered uplinks skip a
    /// check on it).
    pub two_way: bool,
}

impl Peers {
    pub fn merge(&mut self, other: Peers) {
        self.stalled.extend(other.stalled);
        self.progressed.extend(other.progressed);
        self.pending.extend(other.pending);
        self.answered.extend(other.answered);
        self.two_way |= other.two_way;
    }
}

/// Whether `ip` is inside one of `subnets` (address, prefix length); an IPv4-mapped IPv6
/// address counts as its IPv4 address.
pub fn on_lan(ip: IpAddr, subnets: &[(IpAddr, u8)]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    subnets.iter().any(|(net, len)| match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from((*len).min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & mask == u32::from(*n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from((*len).min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & mask == u128::from(*n) & mask
        }
        _ => false,
    })
}

/// Updates `memos` from this sample's flows (entries no longer present are forgotten, so the
/// memory follows the table) and classifies their peers.
pub(super) fn flows(
    memos: &mut HashMap<u64, FlowMemo>,
    now: Instant,
    flows: &[FlowSample],
    subnets: &[(IpAddr, u8)],
    p: &RuleParams,
) -> Peers {
    let mut peers = Peers::default();
    let mut next = HashMap::with_capacity(flows.len().min(memos.len() + 64));
    for f in flows.iter().filter(|f| !on_lan(f.peer, subnets)) {
        let unanswered = match memos.get(&f.id) {
            // First sight, or the counters restarted: nothing to compare with yet.
            None => None,
            Some(m) if restarted(m, f) => None,
            Some(m) if f.reply_packets > m.reply => {
                peers.progressed.insert(f.peer);
                peers.two_way |= f.orig_packets > m.orig;
                None
            }
            Some(m) if f.orig_packets > m.orig => Some(m.unanswered.unwrap_or((m.at, m.orig))),
            Some(m) => m.unanswered,
        };
        if let Some((since, orig_then)) = unanswered {
            if now.duration_since(since) >= p.window
                && f.orig_packets.saturating_sub(orig_then) >= SENT_AGAIN
            {
                peers.stalled.insert(f.peer);
                if f.reply_packets > 0 {
                    peers.answered.insert(f.peer);
                }
            } else {
                peers.pending.insert(f.peer);
            }
        }
        next.insert(
            f.id,
            FlowMemo {
                at: now,
                orig: f.orig_packets,
                reply: f.reply_packets,
                unanswered,
            },
        );
    }
    *memos = next;
    peers
}

/// Whether a flow's counters went backwards since its memo (a new entry under the same id).
fn restarted(m: &FlowMemo, f: &FlowSample) -> bool {
    f.orig_packets < m.orig || f.reply_packets < m.reply
}

/// Whether any (non-LAN) flow of `flows` got answers since its memo in `memos`.
pub(super) fn answered(
    memos: &HashMap<u64, FlowMemo>,
    flows: &[FlowSample],
    subnets: &[(IpAddr, u8)],
) -> bool {
    flows.iter().filter(|f| !on_lan(f.peer, subnets)).any(|f| {
        memos
            .get(&f.id)
            .is_some_and(|m| !restarted(m, f) && f.reply_packets > m.reply)
    })
}
