//! The status board: what `netfailover status`, the metrics endpoint and tests read.
//!
//! Actors publish their own part here when it changes, and nobody else writes it (RouteManager:
//! links, metrics, connectivity; ProbeScheduler: last checks, counters, confirmations and its
//! probers; TrafficWatcher: passive health; the supervisor: actors; the event log: event history
//! and journal; FlowResetter: flow resets). [`BoardData::status`] joins the parts.
//! It is observability only: no actor ever reads another actor's state from it, so a restart
//! rebuilds actor state from the ports, never from the board. Changes are announced to
//! observers from under the board's lock (`observe.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::iface_parts::{CheckPart, IfaceParts, IfaceRoute, PassivePart};
use crate::model::{Connectivity, Event, Family, IfaceName, UplinkType};
use crate::observe::{diff_interfaces, EngineEvent, Snapshot, OBSERVER_BUFFER};
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

/// Shared, cheaply clonable board.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<BoardData>>,
}

/// The board's contents. Each field has one writer: the engine-wide fields of `status` their
/// producers (event log, FlowResetter, the supervisor and ProbeScheduler for their actors), the
/// per-interface parts in `ifaces` theirs; [`BoardData::status`] joins them.
pub struct BoardData {
    /// The engine-wide fields; `interfaces` stays empty here: the per-interface parts are in
    /// `ifaces`, joined by [`BoardData::status`].
    pub status: EngineStatus,
    ifaces: IfaceParts,
    pub history: VecDeque<EventRecord>,
    /// Recent flow resets, oldest first (at most [`HISTORY_LEN`]).
    pub flow_resets: VecDeque<FlowResetRecord>,
    /// Observation channel (`observe.rs`). It lives behind the board's lock so every event is
    /// sent together with the board change it describes: a snapshot never races an event.
    observers: broadcast::Sender<EngineEvent>,
}

impl Default for BoardData {
    fn default() -> Self {
        Self {
            status: EngineStatus::default(),
            ifaces: IfaceParts::default(),
            history: VecDeque::new(),
            flow_resets: VecDeque::new(),
            observers: broadcast::channel(OBSERVER_BUFFER).0,
        }
    }
}

impl BoardData {
    /// Tells the subscribers about a change made under this lock (none listening is fine).
    pub fn emit(&self, event: EngineEvent) {
        let _ = self.observers.send(event);
    }

    /// Ends every observation (receivers see `Closed` once drained): the engine has stopped.
    /// Later observers subscribe to a fresh channel that nothing feeds.
    pub fn close_observers(&mut self) {
        self.observers = broadcast::channel(OBSERVER_BUFFER).0;
    }

    /// Replaces (or adds) one actor's row; a higher restart count is announced as a restart.
    pub fn upsert_actor(&mut self, status: ActorStatus) {
        let old = self
            .status
            .actors
            .iter_mut()
            .find(|a| a.name == status.name);
        let restarted = match &old {
            Some(a) if status.restarts > a.restarts => {
                let reason = if status.kills > a.kills {
                    "killed".to_string()
                } else {
                    status
                        .last_failure
                        .clone()
                        .unwrap_or_else(|| "stopped".into())
                };
                Some(EngineEvent::ActorRestarted {
                    actor: status.name.clone(),
                    reason,
                    restarts: status.restarts,
                })
            }
            _ => None,
        };
        match old {
            Some(a) => *a = status,
            None => {
                self.emit(EngineEvent::ActorAdded {
                    status: status.clone(),
                });
                self.status.actors.push(status);
            }
        }
        if let Some(event) = restarted {
            self.emit(event);
        }
    }

    /// Removes one actor's row (a prober whose interface is gone), announcing it.
    pub fn remove_actor(&mut self, name: &str) {
        let before = self.status.actors.len();
        self.status.actors.retain(|a| a.name != name);
        if self.status.actors.len() != before {
            self.emit(EngineEvent::ActorRemoved {
                actor: name.to_string(),
            });
        }
    }

    /// The whole status, as `status --json` prints it: every interface's parts joined.
    pub fn status(&self) -> EngineStatus {
        EngineStatus {
            interfaces: self.ifaces.interfaces(),
            ..self.status.clone()
        }
    }

    /// RouteManager's part: the managed interfaces and the global connectivity, announcing what
    /// changed. The other parts of interfaces no longer listed are dropped.
    pub fn set_routes(&mut self, routes: Vec<IfaceRoute>, global: Connectivity) {
        let old = self.ifaces.interfaces();
        self.ifaces.routes = routes;
        let parts = &mut self.ifaces;
        let listed: BTreeSet<IfaceName> = parts.routes.iter().map(|r| r.name.clone()).collect();
        parts.checks.retain(|n, _| listed.contains(n));
        parts.passive.retain(|n, _| listed.contains(n));
        let new = self.ifaces.interfaces();
        let changes = diff_interfaces(&old, self.status.connectivity, &new, global);
        self.status.connectivity = global;
        for change in changes {
            self.emit(change);
        }
    }

    /// ProbeScheduler's part of a listed interface (`None` when RouteManager does not list it).
    pub fn checks_mut(&mut self, name: &IfaceName) -> Option<&mut CheckPart> {
        if !self.ifaces.listed(name) {
            return None;
        }
        Some(self.ifaces.checks.entry(name.clone()).or_default())
    }

    /// TrafficWatcher's part of every listed interface.
    pub fn passive_mut(&mut self) -> impl Iterator<Item = (&IfaceName, &mut PassivePart)> {
        let parts = &mut self.ifaces;
        for r in &parts.routes {
            parts.passive.entry(r.name.clone()).or_default();
        }
        parts.passive.iter_mut()
    }
}

impl Board {
    /// Locks the board. A poisoned lock (a panic while holding it) still yields the data: the
    /// board is plain observability state, always consistent field by field.
    pub fn lock(&self) -> MutexGuard<'_, BoardData> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The whole status (see [`BoardData::status`]).
    pub fn snapshot(&self) -> EngineStatus {
        self.lock().status()
    }

    pub fn history(&self) -> Vec<EventRecord> {
        self.lock().history.iter().cloned().collect()
    }

    pub fn flow_resets(&self) -> Vec<FlowResetRecord> {
        self.lock().flow_resets.iter().cloned().collect()
    }

    /// Dispatcher events and flow resets together, oldest first (`netfailover events`).
    pub fn timeline(&self) -> Vec<HistoryEntry> {
        let board = self.lock();
        let mut out: Vec<HistoryEntry> = board
            .history
            .iter()
            .cloned()
            .map(HistoryEntry::Event)
            .chain(
                board
                    .flow_resets
                    .iter()
                    .cloned()
                    .map(|flows_reset| HistoryEntry::FlowsReset { flows_reset }),
            )
            .collect();
        // Stable: events keep their id order within a millisecond.
        out.sort_by_key(HistoryEntry::at_unix_ms);
        out
    }

    /// Records a finished flow reset (history and counters).
    pub fn record_flow_reset(&self, record: FlowResetRecord) {
        let mut board = self.lock();
        board.status.flows.add(&record);
        if board.flow_resets.len() >= HISTORY_LEN {
            board.flow_resets.pop_front();
        }
        board.emit(EngineEvent::FlowsReset(record.clone()));
        board.flow_resets.push_back(record);
    }

    /// A snapshot and the receiver of every change after it, taken atomically.
    pub fn observe(&self) -> (Snapshot, broadcast::Receiver<EngineEvent>) {
        let board = self.lock();
        let receiver = board.observers.subscribe();
        let mut status = board.status();
        status.actors.sort_by(|a, b| a.name.cmp(&b.name));
        let snapshot = Snapshot {
            status,
            events: board.history.iter().cloned().collect(),
        };
        (snapshot, receiver)
    }
}
