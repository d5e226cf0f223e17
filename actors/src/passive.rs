//! Passive health's rule: from one interface's own traffic (the `TrafficSource` port's samples)
//! to **suspicion**, and from suspicion to at most one confirmation request per piece of
//! evidence. Pure and clock-free (times are passed in): TrafficWatcher feeds it a sample per
//! period and asks ProbeScheduler for the confirmation it returns. It never decides a state:
//! the checks stay the only authority, so a wrong guess costs a check, never a failover.
//!
//! # Evidence (docs/semantics.md §9.6)
//! - **Stalled peer** (`Evidence::Peer`): a TCP socket to that remote address has data
//!   outstanding and no ACK for `window` (seen outstanding in an earlier sample at least
//!   `window` ago with no progress since, or the retransmission timer already fired), or a SYN
//!   unanswered for `window`; or a tracked flow to it (forwarded, NATed, UDP: `flows.rs`) kept
//!   sending while its reply direction stayed still for `window`. All sockets and flows to one
//!   peer are one piece of evidence.
//! - Sockets and flows to a peer on one of the interface's connected subnets (the LAN) are
//!   ignored everywhere: they neither stall, nor progress, nor switch the counter rule off.
//! - **One-way counters** (`Evidence::OneWay`, only on the interface carrying the route in
//!   use): over `window`, tx grew by at least `tx_min` packets while rx (multicast excluded)
//!   grew by at most `rx_noise`, in two evaluations a window apart (a link coming up sends a
//!   one-off burst of IPv6 DAD, router solicitations and MLD reports that nobody answers) — the ARP replies and stray broadcasts a dead upstream's LAN
//!   still delivers. Not while a (non-LAN) socket or flow has something in flight, nor when one
//!   made progress since the last sample: they speak for that traffic themselves.
//!
//! Only an interface that is FULL can be suspect: any other state already re-checks quickly.
//!
//! # Cost bound for a false suspicion
//! A trigger charges every piece of evidence present: that evidence then triggers again only
//! after its back-off (`backoff_min`, 60 s, doubling on each repeat, capped at `backoff_max`,
//! the check interval). Evidence not seen before triggers at once, but never sooner than
//! `min_gap` (10 s) after the previous trigger of the interface. Evidence is forgotten when it
//! clears: a stalled peer's sockets make progress again; one-way traffic turns two-way for
//! `settle` (10 s). So one dead peer or a one-way UDP stream costs one confirmation, then one
//! per back-off step; a new stall costs at most one confirmation per `min_gap`. On top, at most
//! `max_per_hour` confirmations per interface in any hour (the oldest leaves the count an hour
//! after it ran) for evidence that never worked (peers that never answered, one-way
//! counters); a stalled peer that had answered before (a working flow that stopped, which is
//! what a blackhole looks like) is never held back by it, so the blackhole bound holds after
//! any churn. A charge whose evidence is gone is forgotten once its back-off has passed,
//! so a churn of dead peers keeps the memory flat.
//!
//! Counters that go backwards are treated as a 32-bit wrap when `counters::counter_step` says
//! so (drivers that keep 32-bit counters), else as a reset (the window restarts). An interface
//! that disappears from the samples or comes back under another name starts over.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::counters::counter_step;
use crate::model::Config;
use crate::ports::{IfaceTraffic, TcpPhase};

mod flows;
mod proof;

pub use flows::on_lan;
use flows::{FlowMemo, Peers};
use proof::{socket_answered, socket_two_way};

/// Upper bound of remembered charges per interface (a last guard; pruning keeps it far lower).
const MAX_CHARGES: usize = 1024;

/// The span of the confirmation ceiling.
const HOUR: Duration = Duration::from_secs(3600);

/// How long one-way traffic must turn two-way before its evidence is forgotten.
const SETTLE: Duration = Duration::from_secs(10);

/// The rule's settings (`[passive]`, see `model::PassiveConfig`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RuleParams {
    pub window: Duration,
    pub tx_min: u64,
    pub rx_noise: u64,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub min_gap: Duration,
    pub settle: Duration,
    /// Most confirmations per interface in any hour.
    pub max_per_hour: u32,
}

impl RuleParams {
    /// The rule's settings from the configuration (`[passive]`, the check interval caps the
    /// back-off).
    pub fn from_config(cfg: &Config) -> Self {
        let p = &cfg.passive;
        Self {
            window: p.window,
            tx_min: p.tx_min,
            rx_noise: p.rx_noise,
            backoff_min: p.backoff_min,
            backoff_max: cfg.check.interval.max(p.backoff_min),
            min_gap: p.min_gap,
            settle: SETTLE,
            max_per_hour: p.max_confirmations_per_hour,
        }
    }
}

impl Default for RuleParams {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(1),
            tx_min: 3,
            rx_noise: 2,
            backoff_min: Duration::from_secs(60),
            backoff_max: Duration::from_secs(3600),
            min_gap: Duration::from_secs(10),
            settle: SETTLE,
            max_per_hour: 4,
        }
    }
}

/// One piece of evidence (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Evidence {
    Peer(IpAddr),
    OneWay,
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::Peer(ip) => write!(f, "traffic to {ip} stalled"),
            Evidence::OneWay => f.write_str("tx without rx"),
        }
    }
}

/// What the caller knows about the interface besides its traffic.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Context {
    /// The interface is FULL (only then can it be suspect).
    pub eligible: bool,
    /// It carries the route in use (the one-way counter rule applies only there).
    pub in_use: bool,
}

/// A request for a confirmation check.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Trigger {
    /// The evidence charged, first the one not seen before.
    pub evidence: Vec<Evidence>,
    /// The smoothed RTT of the interface's sockets while they made progress, if measured.
    pub rtt: Option<Duration>,
    /// The counters over the last window: (tx, rx without multicast, multicast).
    pub counters: Option<(u64, u64, u64)>,
}

impl Trigger {
    /// One line for logs and `status`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.evidence.iter().map(ToString::to_string).collect();
        if let (Some((tx, rx, mc)), true) =
            (self.counters, self.evidence.contains(&Evidence::OneWay))
        {
            parts.push(format!("last window tx +{tx}, rx +{rx} (+{mc} multicast)"));
        }
        parts.join(", ")
    }
}

#[derive(Clone, Copy, Debug)]
struct Counters {
    at: Instant,
    rx: u64,
    rx_multicast: u64,
    tx: u64,
}

#[derive(Clone, Copy, Debug)]
struct SocketMemo {
    first_seen: Instant,
    bytes_acked: u64,
    bytes_received: u64,
    /// Since when data has been outstanding without progress.
    outstanding_since: Option<Instant>,
}

#[derive(Clone, Copy, Debug)]
struct Charge {
    next_allowed: Instant,
    backoff: Duration,
}

/// One interface's passive state. See the module doc.
#[derive(Debug, Default)]
pub struct Tracker {
    name: Option<String>,
    history: VecDeque<Counters>,
    sockets: HashMap<u64, SocketMemo>,
    flows: HashMap<u64, FlowMemo>,
    /// Whether the last sample had connection tracking (`None`: no sample yet).
    conntrack: Option<bool>,
    /// When the confirmations of the last hour were asked for (the ceiling).
    recent: VecDeque<Instant>,
    /// Evidence was due in the last sample but the hourly ceiling held it back.
    capped: bool,
    /// Stalled peers of the last sample that had answered before (exempt from the ceiling).
    answered: BTreeSet<IpAddr>,
    charges: BTreeMap<Evidence, Charge>,
    last_trigger: Option<Instant>,
    two_way_since: Option<Instant>,
    one_way_since: Option<Instant>,
    rtt: Option<Duration>,
    last_counters: Option<(u64, u64, u64)>,
    suspect_since: Option<Instant>,
    current: Vec<Evidence>,
    /// The last sample in which a (non-LAN) socket or flow was answered.
    last_answered: Option<Instant>,
    /// The last sample had nothing outstanding (see [`Tracker::settled`]).
    settled: bool,
    /// The last sample in which a (non-LAN) socket or flow made progress both ways.
    last_two_way: Option<Instant>,
}

impl Tracker {
    /// Since when the interface has shown evidence (suspect), if it does now.
    pub fn suspect_since(&self) -> Option<Instant> {
        self.suspect_since
    }

    /// The evidence seen in the last sample.
    pub fn evidence(&self) -> &[Evidence] {
        &self.current
    }

    /// When the last confirmation was asked for.
    pub fn last_trigger(&self) -> Option<Instant> {
        self.last_trigger
    }

    /// Whether the last sample had connection tracking (forwarded, NATed and UDP flows seen).
    pub fn conntrack(&self) -> Option<bool> {
        self.conntrack
    }

    /// Whether the hourly ceiling held a confirmation back in the last sample.
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// Peers remembered with a back-off (bounded: see the module doc).
    pub fn charged(&self) -> usize {
        self.charges.len()
    }

    /// Whether the last sample showed nothing time alone could turn into evidence (no data or
    /// SYN outstanding, no evidence, no one-way clock); until it sends, a sample would repeat it.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Not sampled while not FULL (TrafficWatcher): no suspicion is shown meanwhile.
    pub fn calm(&mut self) {
        self.suspect_since = None;
    }

    /// Feeds one sample (`None`: the interface was not in the answer) for the managed interface
    /// `name`; returns the confirmation to ask for, if any.
    pub fn observe(
        &mut self,
        now: Instant,
        name: &str,
        sample: Option<&IfaceTraffic>,
        ctx: Context,
        p: &RuleParams,
    ) -> Option<Trigger> {
        let Some(sample) = sample.filter(|s| s.name == name) else {
            // Gone or renamed: nothing we knew applies any more. The trigger time stays, so a
            // quick return does not buy an early confirmation.
            let last_trigger = self.last_trigger;
            let recent = std::mem::take(&mut self.recent);
            *self = Tracker {
                last_trigger,
                recent,
                ..Tracker::default()
            };
            return None;
        };
        self.name = Some(name.to_string());
        self.conntrack = Some(sample.flows.is_some());
        self.capped = false;
        let (evidence, pending) = self.gather(now, sample, ctx, p);
        let in_flight = (sample.tcp.iter()).any(|t| t.unacked > 0 || t.phase == TcpPhase::SynSent);
        self.settled =
            evidence.is_empty() && pending.is_empty() && !in_flight && self.one_way_since.is_none();
        self.current = evidence.iter().copied().collect();
        self.prune(now, &evidence);
        if evidence.is_empty() || !ctx.eligible {
            self.suspect_since = None;
            return None;
        }
        self.suspect_since.get_or_insert(now);

        self.trigger(now, &evidence, pending, p)
    }

    /// The evidence in this sample, and the peers with data or a SYN outstanding that is not
    /// (yet) a stall; forgets the evidence that cleared.
    fn gather(
        &mut self,
        now: Instant,
        sample: &IfaceTraffic,
        ctx: Context,
        p: &RuleParams,
    ) -> (BTreeSet<Evidence>, BTreeSet<IpAddr>) {
        let one_way = self.counters(now, sample, p);
        let mut peers = self.sockets(now, sample, p);
        match &sample.flows {
            Some(f) => peers.merge(flows::flows(&mut self.flows, now, f, &sample.subnets, p)),
            None => self.flows.clear(),
        }
        let Peers {
            stalled,
            progressed,
            pending,
            answered,
            two_way,
        } = peers;
        self.answered = answered;
        if !progressed.is_empty() {
            self.last_answered = Some(now);
        }
        if two_way {
            self.last_two_way = Some(now);
        }

        // The counters add nothing while TCP has data in flight: its sockets name the stall
        // themselves within the window (the counters would only make the same fault look like
        // new evidence a moment later).
        // And TCP progress in this sample proves answers are coming back (a request/response
        // application at a low rate sends twice what it receives, which alone looks one-way).
        let counters_count = stalled.is_empty() && pending.is_empty() && progressed.is_empty();
        let one_way_held = match one_way {
            Some(true) => {
                let since = *self.one_way_since.get_or_insert(now);
                now.duration_since(since) >= p.window
            }
            _ => {
                self.one_way_since = None;
                false
            }
        };
        let mut evidence: BTreeSet<Evidence> = stalled.into_iter().map(Evidence::Peer).collect();
        if one_way_held && ctx.in_use && counters_count {
            evidence.insert(Evidence::OneWay);
        }
        // Evidence that cleared is forgotten: its next occurrence is new.
        for ip in &progressed {
            if !evidence.contains(&Evidence::Peer(*ip)) {
                self.charges.remove(&Evidence::Peer(*ip));
            }
        }
        if one_way == Some(false) {
            let since = *self.two_way_since.get_or_insert(now);
            if now.duration_since(since) >= p.settle {
                self.charges.remove(&Evidence::OneWay);
            }
        } else {
            self.two_way_since = None;
        }
        (evidence, pending)
    }

    /// Forgets the charges whose evidence is gone and whose back-off has passed (their next
    /// occurrence is new anyway), and the oldest beyond [`MAX_CHARGES`].
    fn prune(&mut self, now: Instant, evidence: &BTreeSet<Evidence>) {
        self.charges
            .retain(|e, c| evidence.contains(e) || now < c.next_allowed);
        if self.charges.len() > MAX_CHARGES {
            let mut by_age: Vec<(Instant, Evidence)> = self
                .charges
                .iter()
                .map(|(e, c)| (c.next_allowed, *e))
                .collect();
            by_age.sort();
            let excess = self.charges.len() - MAX_CHARGES;
            for (_, e) in by_age.into_iter().take(excess) {
                self.charges.remove(&e);
            }
        }
    }

    /// The confirmation to ask for now, if some evidence is due and the interface's gap has
    /// passed; charges the evidence it names (and the pending peers) with their back-off.
    fn trigger(
        &mut self,
        now: Instant,
        evidence: &BTreeSet<Evidence>,
        pending: BTreeSet<IpAddr>,
        p: &RuleParams,
    ) -> Option<Trigger> {
        let due: Vec<Evidence> = evidence
            .iter()
            .filter(|e| self.charges.get(e).is_none_or(|c| now >= c.next_allowed))
            .copied()
            .collect();
        let gap_ok = self
            .last_trigger
            .is_none_or(|t| now.duration_since(t) >= p.min_gap);
        if due.is_empty() || !gap_ok {
            return None;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            self.recent.pop_front();
        }
        // A working flow that stopped is what a blackhole looks like: it is never held back
        // (its back-off and `min_gap` still bound it). Peers that never answered are what a
        // churn of dead peers looks like: those the ceiling holds.
        let was_working = due
            .iter()
            .any(|e| matches!(e, Evidence::Peer(ip) if self.answered.contains(ip)));
        if !was_working && self.recent.len() >= p.max_per_hour as usize {
            self.capped = true;
            return None;
        }
        self.recent.push_back(now);
        let mut charged = Vec::new();
        for e in due {
            let backoff = match self.charges.get(&e) {
                Some(c) => (c.backoff * 2).min(p.backoff_max.max(p.backoff_min)),
                None => p.backoff_min,
            };
            // New evidence first: it is what made this trigger happen now.
            if self.charges.contains_key(&e) {
                charged.push(e);
            } else {
                charged.insert(0, e);
            }
            self.charges.insert(
                e,
                Charge {
                    next_allowed: now + backoff,
                    backoff,
                },
            );
        }
        // Peers whose data is outstanding but not yet long enough are part of the same moment:
        // the confirmation about to run answers for them too.
        for ip in pending {
            self.charges.entry(Evidence::Peer(ip)).or_insert(Charge {
                next_allowed: now + p.backoff_min,
                backoff: p.backoff_min,
            });
        }
        self.last_trigger = Some(now);
        Some(Trigger {
            evidence: charged,
            rtt: self.rtt,
            counters: self.last_counters,
        })
    }

    /// Updates the counter history; `Some(true)` one-way, `Some(false)` two-way, `None` unknown
    /// (not a full window yet, or quiet).
    fn counters(&mut self, now: Instant, s: &IfaceTraffic, p: &RuleParams) -> Option<bool> {
        let current = Counters {
            at: now,
            rx: s.rx_packets,
            rx_multicast: s.rx_multicast,
            tx: s.tx_packets,
        };
        // The newest reading at least `window` old is the base; older ones are not needed.
        while self.history.len() >= 2 && now.duration_since(self.history[1].at) >= p.window {
            self.history.pop_front();
        }
        let base = self
            .history
            .front()
            .copied()
            .filter(|b| now.duration_since(b.at) >= p.window);
        self.history.push_back(current);
        let base = base?;
        let (Some(rx), Some(mc), Some(tx)) = (
            counter_step(base.rx, current.rx),
            counter_step(base.rx_multicast, current.rx_multicast),
            counter_step(base.tx, current.tx),
        ) else {
            // A reset: start the window again from this reading.
            self.history.clear();
            self.history.push_back(current);
            return None;
        };
        let rx = rx.saturating_sub(mc);
        self.last_counters = Some((tx, rx, mc));
        if tx >= p.tx_min && rx <= p.rx_noise {
            Some(true)
        } else if rx > p.rx_noise {
            Some(false)
        } else {
            None
        }
    }

    /// Updates the socket memory; returns the peers with a stalled socket, those with
    /// progress, and those with data or a SYN outstanding that is not (yet) a stall. Sockets
    /// to LAN peers are skipped.
    fn sockets(&mut self, now: Instant, s: &IfaceTraffic, p: &RuleParams) -> Peers {
        let mut stalled = BTreeSet::new();
        let mut progressed = BTreeSet::new();
        let mut pending = BTreeSet::new();
        let mut answered = BTreeSet::new();
        let mut two_way = false;
        let mut memos = HashMap::with_capacity(s.tcp.len());
        let long_ago = |t: Instant| now.duration_since(t) >= p.window;
        let wan = s.tcp.iter().filter(|t| !on_lan(t.remote.ip(), &s.subnets));
        for sock in wan {
            let memo = self.sockets.get(&sock.cookie).copied();
            let progress = memo.is_some_and(|m| socket_answered(&m, sock));
            let peer = sock.remote.ip();
            if progress {
                progressed.insert(peer);
                if !sock.rtt.is_zero() {
                    self.rtt = Some(sock.rtt);
                }
                two_way |= memo.is_some_and(|m| socket_two_way(&m, sock));
            }
            let outstanding_since = match (sock.unacked > 0, progress) {
                (false, _) => None,
                (true, true) => Some(now),
                (true, false) => Some(memo.and_then(|m| m.outstanding_since).unwrap_or(now)),
            };
            let first_seen = memo.map_or(now, |m| m.first_seen);
            let is_stalled = match sock.phase {
                TcpPhase::SynSent => sock.retransmits > 0 || long_ago(first_seen),
                TcpPhase::Open => {
                    sock.unacked > 0
                        && sock.last_ack_recv >= p.window
                        && !progress
                        && (sock.retransmits > 0
                            || memo.and_then(|m| m.outstanding_since).is_some_and(long_ago))
                }
                TcpPhase::Other => false,
            };
            if is_stalled {
                stalled.insert(peer);
                if sock.bytes_acked > 0 || sock.bytes_received > 0 {
                    answered.insert(peer);
                }
            } else if sock.unacked > 0 || sock.phase == TcpPhase::SynSent {
                pending.insert(peer);
            }
            memos.insert(
                sock.cookie,
                SocketMemo {
                    first_seen,
                    bytes_acked: sock.bytes_acked,
                    bytes_received: sock.bytes_received,
                    outstanding_since,
                },
            );
        }
        self.sockets = memos;
        Peers {
            stalled,
            progressed,
            pending,
            answered,
            two_way,
        }
    }
}

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod tests;
