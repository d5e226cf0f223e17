//! The engine's public face: `start()` builds the actor tree inside the running actix System and
//! returns an [`EngineHandle`]; `run()` is start + wait for a shutdown future (mini-redis style:
//! the daemon passes its signal handling in, tests pass a oneshot).

use std::future::Future;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{broadcast, watch};

use crate::actor_name::ToActorName;
use crate::board::Board;
pub use crate::error::EngineError;
use crate::event_log::EventLog;
use crate::messages::{CheckNowFor, Kill, KillHow, Reload, StopTree};
use crate::model::{Config, Event, IfaceName};
use crate::observe::{EngineEvent, Snapshot};
use crate::ports::{Ports, ProbeReport};
use crate::status::{EngineStatus, EventRecord};
use crate::supervisor::Supervisor;

/// Buffer of the event subscription channel; a slow subscriber misses old events (it is told
/// by `broadcast`'s `Lagged`), delivery to scripts is unaffected. The channel allocates every
/// slot up front, so it carries `Arc<Event>`: 4096 slots of a pointer (about 160 KiB) rather
/// than of a whole event (about 800 KiB, resident for the daemon's life).
const SUBSCRIBER_BUFFER: usize = 4096;

/// Control of a running engine. Cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    supervisor: Addr<Supervisor>,
    board: Board,
    events: broadcast::Sender<Arc<Event>>,
    done: watch::Receiver<Option<Result<(), EngineError>>>,
}

/// Starts the engine. Must be called inside a running actix System.
pub fn start(config: Config, ports: Ports) -> EngineHandle {
    let board = Board::default();
    let (events, _) = broadcast::channel(SUBSCRIBER_BUFFER);
    let (done_tx, done) = watch::channel(None);
    let log = EventLog::new(
        ports.journal.clone(),
        events.clone(),
        board.clone(),
        config.dispatcher.journal_limit,
    );
    let supervisor = Supervisor::new(config, ports, board.clone(), log, done_tx).start();
    EngineHandle {
        supervisor,
        board,
        events,
        done,
    }
}

/// Runs the engine until `shutdown` resolves (clean stop) or the tree escalates.
pub async fn run(
    config: Config,
    ports: Ports,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EngineError> {
    let handle = start(config, ports);
    tokio::select! {
        _ = shutdown => handle.shutdown().await,
        r = handle.wait() => r,
    }
}

impl EngineHandle {
    /// Interfaces, global connectivity, actors (as `status --json` prints it): every actor's
    /// part of the board joined (`board.rs`, `iface_parts.rs`).
    pub fn status(&self) -> EngineStatus {
        let mut s = self.board.snapshot();
        s.actors.sort_by(|a, b| a.name.cmp(&b.name));
        s
    }

    /// Recent events with their scripts' outcomes, oldest first.
    pub fn history(&self) -> Vec<EventRecord> {
        self.board.history()
    }

    /// Recent flow resets, oldest first.
    pub fn flow_resets(&self) -> Vec<crate::status::FlowResetRecord> {
        self.board.flow_resets()
    }

    /// Dispatcher events and flow resets together, oldest first (`netfailover events`).
    pub fn timeline(&self) -> Vec<crate::status::HistoryEntry> {
        self.board.timeline()
    }

    /// Every event as it is produced (before its scripts run).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// The whole view now and every change after it (`observe.rs`), taken atomically: the
    /// snapshot plus the received events are the engine's exact history from this instant.
    /// A receiver that falls more than `OBSERVER_BUFFER` events behind gets `Lagged` and
    /// should observe again.
    pub fn observe(&self) -> (Snapshot, broadcast::Receiver<EngineEvent>) {
        self.board.observe()
    }

    /// Kills an actor (an [`ActorName`](crate::actor_name::ActorName), or its `status` name, parsed here); it is restarted at
    /// once and the kill does not count toward the restart intensity.
    pub async fn kill(&self, actor: impl ToActorName) -> Result<(), EngineError> {
        self.supervisor
            .send(Kill {
                actor: actor.to_actor_name()?,
                how: KillHow::Abort,
            })
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Checks one interface now and returns the result (it also counts as a regular check).
    pub async fn check_now(&self, iface: &IfaceName) -> Result<ProbeReport, EngineError> {
        self.supervisor
            .send(CheckNowFor(iface.clone()))
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Test hook (feature `fake`): makes an actor's task panic, as a bug in one of its handlers
    /// would; it is restarted like after any failure (and the panic counts toward intensity).
    #[cfg(feature = "fake")]
    pub async fn crash(&self, actor: impl ToActorName) -> Result<(), EngineError> {
        let msg = Kill {
            actor: actor.to_actor_name()?,
            how: KillHow::Panic,
        };
        self.supervisor
            .send(msg)
            .await
            .map_err(|_| EngineError::Stopped)?
    }

    /// Applies a new configuration without restarting anything.
    pub fn reload(&self, config: Config) {
        self.supervisor.do_send(Reload(config));
    }

    /// Clean stop: every owned route back at its configured metric, then the tree stops.
    /// Pending events stay in the journal and are delivered after the next start.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        if self.supervisor.send(StopTree).await.is_err() {
            // Already stopped: report how.
            return self.wait().await;
        }
        self.wait().await
    }

    /// Asks for the clean stop of [`EngineHandle::shutdown`] without waiting for it (from a
    /// `Drop`, or from a thread without a runtime); [`EngineHandle::wait`] tells when it is done.
    pub fn request_shutdown(&self) {
        self.supervisor.do_send(StopTree);
    }

    /// Resolves when the tree has stopped: `Ok` after `shutdown`, `Err` on escalation.
    pub async fn wait(&self) -> Result<(), EngineError> {
        let mut done = self.done.clone();
        loop {
            if let Some(result) = done.borrow().clone() {
                return result;
            }
            if done.changed().await.is_err() {
                return done.borrow().clone().unwrap_or(Err(EngineError::Stopped));
            }
        }
    }
}
