//! The dispatcher event queue: the durable mailbox between RouteManager (the only producer) and
//! Dispatcher (the only consumer).
//!
//! It belongs to the engine, not to either actor, so an event survives a restart of its producer
//! or of its consumer; it is mirrored to the `Journal` port so it also survives a daemon
//! restart. Ids come from the journal's counter: unique and increasing, never reused; the
//! producer waits for the journal write before going on (`persisted`).
//! Bounded: past `limit` pending events, a new `connectivity-change` replaces a pending
//! `connectivity-change` at the tail (coalescing, logged); `up`, `down` and
//! `device-connectivity-change` are never dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, Notify};

use crate::model::{Event, EventKind};
use crate::observe::EngineEvent;
use crate::persist::Persister;
use crate::ports::{Journal, JournalState, ScriptOutcome, ScriptResult};
use crate::status::{Board, EventRecord, HISTORY_LEN};

/// See the module doc.
#[derive(Clone)]
pub struct EventLog {
    state: Arc<Mutex<LogState>>,
    changed: Arc<Notify>,
    persister: Persister<JournalState>,
    produced: broadcast::Sender<Event>,
    board: Board,
    limit: usize,
}

#[derive(Default)]
struct LogState {
    next_id: u64,
    pending: VecDeque<Event>,
    /// The event whose scripts are running (never coalesced away).
    in_flight: Option<u64>,
}

impl EventLog {
    pub fn new(
        journal: Arc<dyn Journal>,
        produced: broadcast::Sender<Event>,
        board: Board,
        limit: usize,
    ) -> Self {
        let persister = Persister::new("event journal", move |s| journal.save(s));
        Self {
            state: Arc::new(Mutex::new(LogState {
                next_id: 1,
                ..LogState::default()
            })),
            changed: Arc::new(Notify::new()),
            persister,
            produced,
            board,
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding this lock cannot leave it half-updated: every critical section
        // below is a few non-panicking collection operations.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes over what the journal held at start.
    pub fn install(&self, loaded: JournalState) {
        let mut s = self.lock();
        s.next_id = loaded
            .next_id
            .max(1)
            .max(loaded.pending.iter().map(|e| e.id + 1).max().unwrap_or(1));
        s.pending = loaded.pending.into();
        let mut board = self.board.lock();
        for e in &s.pending {
            push_history(
                &mut board.history,
                EventRecord {
                    event: e.clone(),
                    delivered: false,
                    scripts: vec![],
                },
            );
        }
        board.status.pending_events = s.pending.len();
        drop(board);
        if !s.pending.is_empty() {
            tracing::info!(
                pending = s.pending.len(),
                "event journal: resuming pending events"
            );
            self.changed.notify_one();
        }
    }

    fn snapshot(s: &LogState) -> JournalState {
        JournalState {
            next_id: s.next_id,
            pending: s.pending.iter().cloned().collect(),
        }
    }

    /// Appends an event (its `id` is assigned here) and returns the id.
    pub fn push(&self, mut event: Event) -> u64 {
        let mut s = self.lock();
        event.id = s.next_id;
        s.next_id += 1;
        let id = event.id;
        let coalesce = s.pending.len() >= self.limit
            && event.kind == EventKind::ConnectivityChange
            && s.pending.back().is_some_and(|last| {
                last.kind == EventKind::ConnectivityChange && Some(last.id) != s.in_flight
            });
        if coalesce {
            if let Some(old) = s.pending.pop_back() {
                tracing::warn!(
                    event_id = id,
                    replaced = old.id,
                    limit = self.limit,
                    "event journal full: coalesced connectivity-change into the latest"
                );
            }
        }
        s.pending.push_back(event.clone());
        let snapshot = Self::snapshot(&s);
        let pending = s.pending.len();
        drop(s);
        {
            let mut board = self.board.lock();
            board.status.events_total += 1;
            board.status.pending_events = pending;
            push_history(
                &mut board.history,
                EventRecord {
                    event: event.clone(),
                    delivered: false,
                    scripts: vec![],
                },
            );
            board.emit(EngineEvent::Event(event.clone()));
        }
        tracing::info!(event_id = id, event = %event.kind, iface = ?event.iface, state = %event.state, reason = %event.reason, "event");
        self.persister.submit(snapshot);
        let _ = self.produced.send(event);
        self.changed.notify_one();
        id
    }

    /// Waits for the oldest pending event, marks it in flight, and makes sure the journal has it
    /// before returning (so a daemon crash while its scripts run replays it).
    pub async fn next(&self) -> Event {
        loop {
            let front = {
                let mut s = self.lock();
                let front = s.pending.front().cloned();
                s.in_flight = front.as_ref().map(|e| e.id);
                front.map(|e| (e, Self::snapshot(&s)))
            };
            if let Some((event, snapshot)) = front {
                self.persister.submit(snapshot);
                self.persister.flush().await;
                return event;
            }
            self.changed.notified().await;
        }
    }

    /// The event's scripts are done: drop it from the queue and the journal.
    pub fn complete(&self, id: u64, scripts: Vec<ScriptOutcome>) {
        let mut s = self.lock();
        s.pending.retain(|e| e.id != id);
        if s.in_flight == Some(id) {
            s.in_flight = None;
        }
        let snapshot = Self::snapshot(&s);
        let pending = s.pending.len();
        drop(s);
        let failures = scripts
            .iter()
            .filter(|o| {
                !matches!(
                    o.result,
                    ScriptResult::Exited { code: 0 } | ScriptResult::Skipped { .. }
                )
            })
            .count() as u64;
        {
            let mut board = self.board.lock();
            board.status.pending_events = pending;
            board.status.script_failures += failures;
            for o in &scripts {
                board.emit(EngineEvent::Script {
                    event_id: id,
                    script: o.script.clone(),
                    result: o.result.clone(),
                    duration_ms: o.elapsed.as_millis() as u64,
                });
            }
            board.emit(EngineEvent::Delivered { event_id: id });
            if let Some(r) = board.history.iter_mut().rev().find(|r| r.event.id == id) {
                r.delivered = true;
                r.scripts = scripts;
            }
        }
        self.persister.submit(snapshot);
    }

    /// Resolves once every event pushed so far is in the journal. The producer waits for this
    /// before handling anything else, so an acknowledged event survives a daemon crash.
    pub fn persisted(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.persister.flush()
    }

    /// Ids of the pending events, oldest first (tests, status).
    pub fn pending_ids(&self) -> Vec<u64> {
        self.lock().pending.iter().map(|e| e.id).collect()
    }
}

fn push_history(history: &mut VecDeque<EventRecord>, record: EventRecord) {
    if history.len() >= HISTORY_LEN {
        history.pop_front();
    }
    history.push_back(record);
}
