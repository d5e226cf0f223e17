//! The status board: the status records of `status.rs`, shared by every actor.
//!
//! Actors publish their own part here when it changes, and nobody else writes it (RouteManager:
//! links, metrics, connectivity; ProbeScheduler: last checks, counters, confirmations and its
//! probers; TrafficWatcher: passive health; the supervisor: actors; the event log: event history
//! and journal; FlowResetter: flow resets). [`BoardData::status`] joins the parts (the
//! per-interface ones are in `iface_parts.rs`).
//! It is observability only: no actor ever reads another actor's state from it, so a restart
//! rebuilds actor state from the ports, never from the board. Changes are announced to
//! observers from under the board's lock (`observe.rs`).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::iface_parts::{CheckPart, IfaceParts, IfaceRoute, PassivePart};
use crate::model::{Connectivity, IfaceName};
use crate::observe::{diff_interfaces, EngineEvent, Snapshot, OBSERVER_BUFFER};
use crate::status::{
    ActorStatus, EngineStatus, EventRecord, Exit, FlowResetRecord, HistoryEntry, HISTORY_LEN,
};

/// Shared, cheaply clonable board.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<BoardData>>,
}

/// The board's contents. Each field has one writer: the engine-wide fields of `status` their
/// producers (event log, FlowResetter, the supervisor and ProbeScheduler for their actors), the
/// per-interface parts in `ifaces` theirs; [`BoardData::status`] joins them.
#[derive(Default)]
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
    /// Created by the first observer and dropped once none is left: its buffer holds
    /// `OBSERVER_BUFFER` events (about 200 KiB), which a daemon nobody observes need not keep
    /// (an event sent with no receiver is dropped either way).
    observers: Option<broadcast::Sender<EngineEvent>>,
}

impl BoardData {
    /// Tells the subscribers about a change made under this lock (none listening is fine).
    pub fn emit(&mut self, event: EngineEvent) {
        if let Some(observers) = &self.observers {
            if observers.send(event).is_err() {
                // Every observer has gone: the next one starts a fresh channel.
                self.observers = None;
            }
        }
    }

    /// Ends every observation (receivers see `Closed` once drained): the engine has stopped.
    /// Later observers subscribe to a fresh channel.
    pub fn close_observers(&mut self) {
        self.observers = None;
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
                    Exit::Killed
                } else {
                    status.last_failure.unwrap_or(Exit::Stopped)
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
        let mut board = self.lock();
        let receiver = board
            .observers
            .get_or_insert_with(|| broadcast::channel(OBSERVER_BUFFER).0)
            .subscribe();
        let mut status = board.status();
        status.actors.sort_by(|a, b| a.name.cmp(&b.name));
        let snapshot = Snapshot {
            status,
            events: board.history.iter().cloned().collect(),
        };
        (snapshot, receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UplinkType;
    use crate::status::{IfaceSource, LinkState, PassiveState, PassiveStatus};

    fn route(name: &str, connectivity: Connectivity) -> IfaceRoute {
        IfaceRoute {
            name: IfaceName::new(name).expect("valid test name"),
            ifindex: Some(2),
            link: LinkState::Up,
            connectivity,
            metric: 100,
            effective_metric: Some(100),
            metric6: 100,
            effective_metric6: None,
            gateway4: Some([192, 0, 2, 1].into()),
            gateway6: None,
            ipv6_penalty_unavailable: None,
            uplink_type: UplinkType::Ethernet,
            source: IfaceSource::Adopted,
            dns: vec![],
            metered: false,
            metered_guessed: true,
        }
    }

    #[test]
    fn observers_come_and_go_without_missing_what_follows_them() {
        let shared = Board::default();
        let gone = |n: &str| EngineEvent::InterfaceRemoved {
            iface: IfaceName::new(n).expect("valid test name"),
        };
        // Nobody observes: nothing is kept for anybody.
        shared.lock().emit(gone("eth0"));
        assert!(shared.lock().observers.is_none());
        let (_, mut first) = shared.observe();
        shared.lock().emit(gone("eth1"));
        assert_eq!(
            first.try_recv().expect("sent after observing"),
            gone("eth1")
        );
        drop(first);
        // The last observer left: the next event drops the channel, a later observer starts
        // a fresh one and sees what follows it.
        shared.lock().emit(gone("eth2"));
        assert!(shared.lock().observers.is_none());
        let (_, mut second) = shared.observe();
        shared.lock().emit(gone("eth3"));
        assert_eq!(
            second.try_recv().expect("sent after observing"),
            gone("eth3")
        );
        assert!(
            second.try_recv().is_err(),
            "nothing from before it observed"
        );
        // Closing ends the observation.
        shared.lock().close_observers();
        assert!(matches!(
            second.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn each_owner_writes_its_part_and_status_joins_them() {
        let shared = Board::default();
        let (_, mut events) = shared.observe();
        let mut board = shared.lock();
        let eth0 = IfaceName::new("eth0").expect("valid test name");
        let wlan0 = IfaceName::new("wlan0").expect("valid test name");
        assert!(board.checks_mut(&eth0).is_none(), "not listed: no part");
        board.set_routes(
            vec![
                route("eth0", Connectivity::Full),
                route("wlan0", Connectivity::Unknown),
            ],
            Connectivity::Full,
        );
        let added = events.try_recv().expect("an InterfaceAdded event");
        assert!(matches!(added, EngineEvent::InterfaceAdded { .. }));
        let checks = board.checks_mut(&eth0).expect("listed");
        checks.probe_bytes = 42;
        checks.confirmations = 3;
        for (name, p) in board.passive_mut() {
            p.state = if name == &eth0 {
                PassiveState::Suspect
            } else {
                PassiveState::Quiet
            };
            p.suspicions = 1;
        }
        let status = board.status();
        assert_eq!(status.connectivity, Connectivity::Full);
        let e = &status.interfaces[0];
        assert_eq!((e.name.as_str(), e.probe_bytes), ("eth0", 42));
        assert_eq!(
            (e.passive.state.as_str(), e.passive.confirmations),
            ("suspect", 3)
        );
        assert_eq!(
            e.effective_metric,
            Some(100),
            "RouteManager's fields come through"
        );
        assert_eq!(status.interfaces[1].passive.state, "quiet");
        assert!(
            board.status.interfaces.is_empty(),
            "the join is never stored"
        );

        // eth0 leaves the list: its parts go with it; it comes back with empty counters.
        board.set_routes(
            vec![route("wlan0", Connectivity::Unknown)],
            Connectivity::Unknown,
        );
        board.set_routes(
            vec![
                route("eth0", Connectivity::Unknown),
                route("wlan0", Connectivity::Unknown),
            ],
            Connectivity::Unknown,
        );
        let status = board.status();
        assert_eq!(status.interfaces[0].probe_bytes, 0);
        assert_eq!(status.interfaces[0].passive, PassiveStatus::default());
        assert_eq!(
            status.interfaces[1].passive.state, "quiet",
            "wlan0 kept its part"
        );
        assert_eq!(status.interfaces[1].name, wlan0);
    }
}
