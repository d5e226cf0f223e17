//! The dispatcher event queue: the durable mailbox between RouteManager (the only producer) and
//! Dispatcher (the only consumer).
//!
//! It belongs to the engine, not to either actor, so an event survives a restart of its producer
//! or of its consumer; it is mirrored to the `Store<JournalState>` port so it also survives a daemon
//! restart. Ids come from the journal's counter, never below the journal's id floor (a boot-time
//! clock): unique and increasing within a boot even when the journal was lost, corrupt or
//! behind at a crash. The producer waits for the journal write a bounded time (`persisted`):
//! routing never waits on the disk, and the board's `journal` says when the disk is behind.
//! Bounded: past `limit` pending events, a new `connectivity-change` replaces every pending
//! `connectivity-change`, adjacent or not (coalescing, logged; the one whose scripts are running
//! stays); `up`, `down` and `device-connectivity-change` are never dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, Notify};

use crate::board::Board;
use crate::model::{Event, EventKind};
use crate::observe::EngineEvent;
use crate::persist::Persister;
use crate::ports::{JournalState, ScriptOutcome, ScriptResult, Store};
use crate::status::{EventRecord, JournalStatus, HISTORY_LEN};

/// See the module doc.
#[derive(Clone)]
pub struct EventLog {
    state: Arc<Mutex<LogState>>,
    changed: Arc<Notify>,
    persister: Persister<(u64, JournalState)>,
    journal: Arc<dyn Store<JournalState>>,
    disk: Arc<Mutex<DiskMarks>>,
    produced: broadcast::Sender<Arc<Event>>,
    board: Board,
    limit: usize,
}

#[derive(Default)]
struct LogState {
    next_id: u64,
    pending: VecDeque<Event>,
    /// The event whose scripts are running (never coalesced away).
    in_flight: Option<u64>,
    /// Events pushed since start (snapshots carry it, so a finished write says how far it got).
    pushed: u64,
}

/// What the last journal writes achieved.
#[derive(Default)]
struct DiskMarks {
    /// `pushed` of the newest snapshot written successfully.
    saved_pushed: u64,
    last_error: Option<String>,
}

impl EventLog {
    pub fn new(
        journal: Arc<dyn Store<JournalState>>,
        produced: broadcast::Sender<Arc<Event>>,
        board: Board,
        limit: usize,
    ) -> Self {
        let state = Arc::new(Mutex::new(LogState {
            next_id: 1,
            ..LogState::default()
        }));
        let disk: Arc<Mutex<DiskMarks>> = Arc::default();
        let persister = {
            let (journal, state, disk, board) =
                (journal.clone(), state.clone(), disk.clone(), board.clone());
            Persister::new("event journal", move |(pushed, snapshot)| {
                let write = journal.save(snapshot);
                let (state, disk, board) = (state.clone(), disk.clone(), board.clone());
                Box::pin(async move {
                    let result = write.await;
                    {
                        let mut d = disk.lock().unwrap_or_else(|p| p.into_inner());
                        match &result {
                            Ok(()) => {
                                d.saved_pushed = d.saved_pushed.max(pushed);
                                d.last_error = None;
                            }
                            Err(e) => d.last_error = Some(e.to_string()),
                        }
                    }
                    publish_disk(&state, &disk, &board);
                    result
                }) as futures::future::BoxFuture<'static, _>
            })
        };
        Self {
            state,
            changed: Arc::new(Notify::new()),
            persister,
            journal,
            disk,
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
        let floor = self.journal.id_floor();
        let mut s = self.lock();
        s.next_id = loaded
            .next_id
            .max(1)
            .max(floor)
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

    fn snapshot(s: &LogState) -> (u64, JournalState) {
        let state = JournalState {
            next_id: s.next_id,
            pending: s.pending.iter().cloned().collect(),
        };
        (s.pushed, state)
    }

    /// Appends an event (its `id` is assigned here) and returns the id.
    pub fn push(&self, mut event: Event) -> u64 {
        // Read before the lock: the port call must not run under it.
        let floor = self.journal.id_floor();
        let mut s = self.lock();
        event.id = s.next_id.max(floor);
        s.next_id = event.id + 1;
        s.pushed += 1;
        let id = event.id;
        if s.pending.len() >= self.limit && event.kind == EventKind::ConnectivityChange {
            // Every pending global change is superseded by this one, wherever it sits between
            // interface events; the one whose scripts are running stays.
            let in_flight = s.in_flight;
            let before = s.pending.len();
            let mut oldest_previous = None;
            s.pending.retain(|e| {
                let drop = e.kind == EventKind::ConnectivityChange && Some(e.id) != in_flight;
                if drop && oldest_previous.is_none() {
                    oldest_previous = Some(e.previous);
                }
                !drop
            });
            let replaced = before - s.pending.len();
            if let Some(previous) = oldest_previous {
                // Scripts see one change from the state before the first dropped one.
                event.previous = previous;
            }
            if replaced > 0 {
                tracing::warn!(
                    event_id = id,
                    replaced,
                    limit = self.limit,
                    "event journal full: coalesced pending connectivity-change events into the latest"
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
        tracing::info!(event_id = id, event = %event.kind, iface = event.iface.as_ref().map(tracing::field::display), state = %event.state, reason = %event.reason, "event");
        self.persister.submit(snapshot);
        publish_disk(&self.state, &self.disk, &self.board);
        let _ = self.produced.send(Arc::new(event));
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

/// Publishes the journal's lag on the board.
fn publish_disk(state: &Mutex<LogState>, disk: &Mutex<DiskMarks>, board: &Board) {
    let pushed = state.lock().unwrap_or_else(|p| p.into_inner()).pushed;
    let d = disk.lock().unwrap_or_else(|p| p.into_inner());
    let unsaved_events = pushed.saturating_sub(d.saved_pushed);
    board.lock().status.journal = JournalStatus {
        behind: unsaved_events > 0 || d.last_error.is_some(),
        unsaved_events,
        last_error: d.last_error.clone(),
    };
}

fn push_history(history: &mut VecDeque<EventRecord>, record: EventRecord) {
    if history.len() >= HISTORY_LEN {
        history.pop_front();
    }
    history.push_back(record);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::MemJournal;
    use crate::model::{Connectivity, IfaceName};
    use crate::ports::JournalState;

    fn log(limit: usize) -> EventLog {
        let (tx, _) = broadcast::channel(16);
        EventLog::new(Arc::new(MemJournal::default()), tx, Board::default(), limit)
    }

    fn event(
        kind: EventKind,
        iface: Option<&str>,
        previous: Connectivity,
        state: Connectivity,
    ) -> Event {
        Event {
            id: 0,
            kind,
            iface: iface.map(|n| IfaceName::new(n).expect("a valid test name")),
            state,
            previous,
            reason: String::new(),
            connection_id: None,
            connection_uuid: None,
            ip4_gateway: None,
            ip4_nameservers: vec![],
            at_unix_ms: 0,
            recovery: None,
            budget: None,
        }
    }

    fn kinds(log: &EventLog) -> Vec<EventKind> {
        log.lock().pending.iter().map(|e| e.kind).collect()
    }

    use Connectivity::{Full, Limited, None as Down};
    use EventKind::{
        ConnectivityChange as Cc, DeviceConnectivityChange as Dcc, Down as D, Up as U,
    };

    #[test]
    fn below_the_limit_nothing_coalesces() {
        let l = log(10);
        for _ in 0..3 {
            l.push(event(Cc, None, Full, Limited));
            l.push(event(Dcc, Some("eth0"), Full, Limited));
        }
        assert_eq!(l.pending_ids(), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn past_the_limit_every_pending_connectivity_change_coalesces_into_the_latest() {
        let l = log(4);
        l.push(event(Cc, None, Down, Full)); // 1
        l.push(event(D, Some("eth0"), Full, Down)); // 2
        l.push(event(Cc, None, Full, Limited)); // 3
        l.push(event(Dcc, Some("eth0"), Full, Down)); // 4
        l.push(event(U, Some("eth0"), Down, Down)); // 5: not coalescible, kept
                                                    // At the limit, with interface events between the global ones: all pending global
                                                    // changes go, the new one stays, and it starts from the first dropped one's previous.
        let id = l.push(event(Cc, None, Limited, Down)); // 6
        assert_eq!(kinds(&l), vec![D, Dcc, U, Cc]);
        assert_eq!(l.pending_ids(), vec![2, 4, 5, id]);
        let latest = l.lock().pending.back().cloned().expect("just pushed");
        assert_eq!((latest.previous, latest.state), (Down, Down));
    }

    #[test]
    fn up_down_and_device_events_are_never_dropped() {
        let l = log(2);
        for i in 0..50 {
            let k = [U, D, Dcc, Cc][i % 4];
            l.push(event(k, Some("eth0"), Full, Limited));
        }
        let k = kinds(&l);
        assert_eq!(k.iter().filter(|k| **k == Cc).count(), 1);
        assert_eq!(k.len(), 1 + 3 * 12 + 2 /* i = 48, 49 */);
        assert_eq!(
            k.last(),
            Some(&D),
            "an interface event pushed last stays last"
        );
    }

    #[test]
    fn ids_never_go_below_the_journals_floor() {
        let journal = MemJournal::default();
        journal.set_id_floor(5_000);
        let (tx, _) = broadcast::channel(16);
        let l = EventLog::new(Arc::new(journal.clone()), tx, Board::default(), 10);
        // A journal that came back with a low counter (or none: a corrupt one is not installed).
        l.install(JournalState {
            next_id: 3,
            pending: vec![],
        });
        let a = l.push(event(Cc, None, Down, Full));
        assert_eq!(a, 5_000);
        let b = l.push(event(Cc, None, Full, Limited));
        assert_eq!(b, 5_001, "increasing by one while the clock is behind");
        journal.set_id_floor(9_000);
        assert_eq!(l.push(event(Cc, None, Limited, Full)), 9_000);
    }

    #[tokio::test]
    async fn the_event_in_flight_is_never_coalesced() {
        let l = log(1);
        l.push(event(Cc, None, Down, Full)); // 1
        let first = l.next().await;
        assert_eq!(first.id, 1);
        l.push(event(Cc, None, Full, Limited)); // 2
        l.push(event(Cc, None, Limited, Down)); // 3
        assert_eq!(l.pending_ids(), vec![1, 3]);
    }
}
