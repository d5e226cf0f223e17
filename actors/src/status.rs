//! What `netfailover status`, the metrics endpoint and tests read: the status records, as data.
//! The shared board that holds them and announces their changes is `board.rs`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::model::{Connectivity, Event, Family, IfaceName, UplinkType};
use crate::ports::{FlowFailure, ScriptOutcome, Verdict};

/// Recent events kept for `netfailover events`.
pub const HISTORY_LEN: usize = 256;

/// Upper bounds (seconds) of the check-latency histogram buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 20.0];

/// One finished check, as shown by `status`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct CheckSummary {
    pub at_unix_ms: u64,
    pub verdict: Verdict,
    pub reason: String,
    pub latency_ms: f64,
}

/// Per-interface counters for the metrics endpoint.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct CheckCounters {
    /// Checks by verdict (`FULL`, `PORTAL`, `LIMITED`, `NONE`).
    pub by_verdict: BTreeMap<String, u64>,
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound, plus one for +Inf.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_seconds: f64,
    pub latency_count: u64,
}

impl CheckCounters {
    pub fn record(&mut self, verdict: Verdict, latency_seconds: f64) {
        let key = serde_json::to_value(verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *self.by_verdict.entry(key).or_default() += 1;
        if self.latency_buckets.len() != LATENCY_BUCKETS.len() + 1 {
            self.latency_buckets = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if latency_seconds <= *bound {
                self.latency_buckets[i] += 1;
            }
        }
        // The +Inf bucket counts everything.
        if let Some(last) = self.latency_buckets.last_mut() {
            *last += 1;
        }
        self.latency_sum_seconds += latency_seconds;
        self.latency_count += 1;
    }
}

/// Passive health of one interface in `status` (TrafficWatcher and ProbeScheduler publish it).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct PassiveStatus {
    /// `off` (disabled or not sampled), `quiet`, or `suspect`.
    pub state: String,
    /// Since when the interface has shown evidence of a stall (Unix ms), while suspect.
    pub suspect_since_unix_ms: Option<u64>,
    /// What last asked for a confirmation, and when (Unix ms).
    pub last_trigger: Option<String>,
    pub last_trigger_unix_ms: Option<u64>,
    /// Suspicions that asked for confirmation (after the cost bound's back-off).
    pub suspicions: u64,
    /// Confirmation checks run, and of those the ones that failed.
    pub confirmations: u64,
    pub confirmations_failed: u64,
    /// What the sampling sees: `sockets+conntrack` (the device's own TCP sockets, and every
    /// tracked flow: forwarded, NATed, UDP) or `sockets only (no connection tracking)`; empty
    /// before the first sample.
    #[serde(default)]
    pub sees: String,
    /// Confirmations the hourly ceiling (`passive.max_confirmations_per_hour`) held back.
    #[serde(default)]
    pub held_by_ceiling: u64,
}

/// One managed interface in `status`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct IfaceStatus {
    pub name: IfaceName,
    pub ifindex: Option<u32>,
    /// `up`, `down` (no carrier or admin down) or `absent` (profile for a missing interface).
    pub link: String,
    pub connectivity: Connectivity,
    /// Configured IPv4 metric.
    pub metric: u32,
    /// Metric of the IPv4 route installed now (with penalty and uniqueness bump); `None` when
    /// no IPv4 default route is installed.
    pub effective_metric: Option<u32>,
    pub metric6: u32,
    pub effective_metric6: Option<u32>,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    /// Set when router-advertised IPv6 routes on this interface cannot be demoted: the kernel
    /// has no `net.ipv6.conf.IFACE.ra_defrtr_metric` (added in Linux 5.12), so they keep the
    /// kernel's metric through penalties; says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_penalty_unavailable: Option<String>,
    pub uplink_type: UplinkType,
    /// `profile <id> (<file>)` or `adopted`.
    pub source: String,
    pub dns: Vec<SocketAddr>,
    pub last_check: Option<CheckSummary>,
    pub probe_bytes: u64,
    pub probe_dns_bytes: u64,
    pub checks: CheckCounters,
    #[serde(default)]
    pub passive: PassiveStatus,
}

/// One actor in `status`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ActorStatus {
    pub name: String,
    pub running: bool,
    /// Restarts after a failure or a kill.
    pub restarts: u32,
    /// Of which caused by `kill` (they do not count toward the restart intensity).
    pub kills: u32,
    pub last_failure: Option<String>,
}

/// A produced event and, once delivered, its scripts' outcomes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EventRecord {
    pub event: Event,
    pub delivered: bool,
    pub scripts: Vec<ScriptOutcome>,
}

/// One `flows-reset`: the flows pinned to a demoted interface were reset after the route in use
/// moved. Part of the `events` history, but not a dispatcher event (no id, no scripts).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct FlowResetRecord {
    pub at_unix_ms: u64,
    pub family: Family,
    /// The interface the route in use moved off (whose flows were reset).
    pub iface: IfaceName,
    /// The interface it moved to.
    pub to: IfaceName,
    /// The move was a fail-back onto a more preferred uplink.
    pub failback: bool,
    pub sockets_destroyed: u64,
    pub conntrack_deleted: u64,
    pub failures: Vec<FlowFailure>,
    /// From the route change (RouteManager's apply) to the end of the reset.
    pub elapsed_ms: f64,
}

/// Totals of every flow reset since the start, for `status` and the metrics endpoint.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct FlowCounters {
    pub resets: u64,
    pub sockets_destroyed: u64,
    pub conntrack_deleted: u64,
    pub failures: u64,
}

impl FlowCounters {
    /// Counts one finished reset.
    pub fn add(&mut self, r: &FlowResetRecord) {
        self.resets += 1;
        self.sockets_destroyed += r.sockets_destroyed;
        self.conntrack_deleted += r.conntrack_deleted;
        self.failures += r.failures.len() as u64;
    }
}

/// One line of the `events` history: a dispatcher event, or a flow reset.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HistoryEntry {
    Event(EventRecord),
    FlowsReset { flows_reset: FlowResetRecord },
}

impl HistoryEntry {
    pub fn at_unix_ms(&self) -> u64 {
        match self {
            HistoryEntry::Event(r) => r.event.at_unix_ms,
            HistoryEntry::FlowsReset { flows_reset } => flows_reset.at_unix_ms,
        }
    }
}

/// The whole status, as `status --json` prints it.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct EngineStatus {
    pub connectivity: Connectivity,
    pub interfaces: Vec<IfaceStatus>,
    pub actors: Vec<ActorStatus>,
    /// Dispatcher events produced / scripts that failed (non-zero, signal, timeout).
    pub events_total: u64,
    pub script_failures: u64,
    pub pending_events: usize,
    #[serde(default)]
    pub flows: FlowCounters,
    /// Whether the event journal on disk is behind the events produced.
    #[serde(default)]
    pub journal: JournalStatus,
    /// The recovery ladder (RecoveryManager's part).
    #[serde(default)]
    pub recovery: RecoveryStatus,
}

/// Where the recovery ladder stands (`docs/recovery.md`), written by RecoveryManager only.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct RecoveryStatus {
    /// Interfaces in an episode (link, not FULL), with their next rung.
    pub interfaces: BTreeMap<IfaceName, IfaceRecovery>,
    /// The reboot rung: `off`, `uplink FULL`, `in 5m`, `rate-limited for 3h`, `requested`.
    pub reboot: String,
    /// Actions taken since the start, by `action` and `result` (`done`, `skipped`, `failed`).
    pub actions: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One interface's episode in `status`.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct IfaceRecovery {
    /// Not FULL (with link) since, Unix ms.
    pub since_unix_ms: u64,
    /// The next rung (`relink`, `reconnect`, `modem-reset`), if one is left in this pass.
    pub next: Option<String>,
    /// When it is due, Unix ms.
    pub next_at_unix_ms: Option<u64>,
    /// Rungs already taken in this pass, with their results (`relink: done`).
    pub taken: Vec<String>,
}

/// The event journal's lag: routing never waits on the disk, so events can be acknowledged
/// (and their scripts run) before they are on disk; this says so.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Events not yet on disk or the last write failed.
    pub behind: bool,
    /// Events produced since the last successful journal write took its data.
    pub unsaved_events: u64,
    /// The last journal write's error, until a write succeeds.
    pub last_error: Option<String>,
}
