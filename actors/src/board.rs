//! The status board: the status records of `status.rs`, shared by every actor.
//!
//! Actors publish their part here when it changes (RouteManager: links, metrics, connectivity;
//! ProbeScheduler: last checks and counters; the supervisor: actors; Dispatcher: event history).
//! It is observability only: no actor ever reads another actor's state from it, so a restart
//! rebuilds actor state from the ports, never from the board. Changes are announced to
//! observers from under the board's lock (`observe.rs`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::model::Connectivity;
use crate::observe::{diff_interfaces, EngineEvent, Snapshot, OBSERVER_BUFFER};
use crate::status::{
    ActorStatus, EngineStatus, EventRecord, FlowResetRecord, HistoryEntry, IfaceStatus, HISTORY_LEN,
};

/// Shared, cheaply clonable board.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<BoardData>>,
}

/// The board's contents.
pub struct BoardData {
    pub status: EngineStatus,
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

    /// Sets the interface list and the global connectivity, announcing what changed.
    pub fn set_interfaces(&mut self, interfaces: Vec<IfaceStatus>, global: Connectivity) {
        let changes = diff_interfaces(
            &self.status.interfaces,
            self.status.connectivity,
            &interfaces,
            global,
        );
        self.status.interfaces = interfaces;
        self.status.connectivity = global;
        for change in changes {
            self.emit(change);
        }
    }
}

impl Board {
    /// Locks the board. A poisoned lock (a panic while holding it) still yields the data: the
    /// board is plain observability state, always consistent field by field.
    pub fn lock(&self) -> MutexGuard<'_, BoardData> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> EngineStatus {
        self.lock().status.clone()
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
        let mut status = board.status.clone();
        status.actors.sort_by(|a, b| a.name.cmp(&b.name));
        let snapshot = Snapshot {
            status,
            events: board.history.iter().cloned().collect(),
        };
        (snapshot, receiver)
    }
}
