//! Supervision: restart policies as data, restart bookkeeping (intensity window, exponential
//! back-off), containment of panics, kills for resilience tests, and escalation.
//!
//! `actix::Supervisor` does not restart an actor that panicked (docs/kernel-facts.md §2), so every child
//! runs as its own task (`spawn_actor`): a panic ends only that task, the task's `JoinHandle`
//! reports how it ended, and the parent restarts a fresh actor from its factory. The tree:
//!
//! | child            | policy    | intensity      | back-off        | rebuilds its state from           |
//! |------------------|-----------|----------------|-----------------|-----------------------------------|
//! | route-manager    | permanent | 5 in 30 s      | 50 ms → 5 s     | StateStore, link dump, route list |
//! | dispatcher       | permanent | 5 in 30 s      | 50 ms → 5 s     | the EventLog (journal)            |
//! | probe-scheduler  | permanent | 5 in 30 s      | 50 ms → 5 s     | RouteManager's uplinks            |
//! | link-watcher     | permanent | 5 in 30 s      | 50 ms → 5 s     | a new subscription + dump         |
//! | flow-resetter    | permanent | 5 in 30 s      | 50 ms → 5 s     | (stateless; config only)          |
//! | traffic-watcher  | permanent | 5 in 30 s      | 50 ms → 5 s     | the next samples (trackers empty) |
//! | prober:IFACE     | permanent | 5 in 60 s      | 100 ms → 5 s    | (stateless; checks at once)       |
//!
//! Probers are children of probe-scheduler (see `probe_scheduler.rs`); exceeding their
//! intensity makes the scheduler fail. Exceeding a top-level child's intensity escalates: the
//! whole tree stops and `run()` returns `EngineError::Escalated` (the daemon exits non-zero and
//! systemd restarts it). Kills (`netfailover kill`) restart at once and do not count.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::dispatcher::Dispatcher;
use crate::engine::EngineError;
use crate::event_log::EventLog;
use crate::flow_resetter::{FlowResetter, ReconfigureFlows};
use crate::link_watcher::LinkWatcher;
use crate::model::{Config, IfaceName};
use crate::peers::Peers;
use crate::ports::{Ports, ProbeReport};
use crate::probe_scheduler::{
    CheckIface, KillProber, ProbeDeps, ProbeScheduler, ReconfigureChecks,
};
use crate::route_manager::{Reconfigure, RouteDeps, RouteManager, Shutdown};
use crate::status::{ActorStatus, Board};
use crate::traffic_watcher::{ReconfigurePassive, TrafficDeps, TrafficWatcher};

/// How a child's task ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Exit {
    /// The actor stopped itself (e.g. its event stream ended).
    Stopped,
    /// A handler panicked; the panic was contained in the child's task.
    Panicked,
    /// Aborted by `kill` (or by its parent).
    Killed,
}

/// Restart intensity and back-off of one child.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RestartPolicy {
    /// More than `intensity` failures within `period` escalate.
    pub intensity: u32,
    pub period: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// Policy of the top-level children (the table in the module doc).
pub const CHILD_POLICY: RestartPolicy = RestartPolicy {
    intensity: 5,
    period: Duration::from_secs(30),
    backoff_min: Duration::from_millis(50),
    backoff_max: Duration::from_secs(5),
};

/// What to do after a child exited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    Restart(Duration),
    Escalate,
}

/// Restart bookkeeping of one child.
#[derive(Clone, Debug, Default)]
pub struct RestartTracker {
    recent: VecDeque<Instant>,
    pub restarts: u32,
    pub kills: u32,
    pub last_failure: Option<String>,
}

impl RestartTracker {
    /// The actor's row in `status` (the supervisor and ProbeScheduler publish their children's).
    pub fn status(&self, name: String, running: bool) -> ActorStatus {
        ActorStatus {
            name,
            running,
            restarts: self.restarts,
            kills: self.kills,
            last_failure: self.last_failure.clone(),
        }
    }

    pub fn on_exit(&mut self, policy: &RestartPolicy, exit: Exit, now: Instant) -> Decision {
        if exit == Exit::Killed {
            self.restarts += 1;
            self.kills += 1;
            return Decision::Restart(Duration::ZERO);
        }
        self.last_failure = Some(match exit {
            Exit::Panicked => "panicked".into(),
            _ => "stopped".into(),
        });
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.period)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() > policy.intensity as usize {
            return Decision::Escalate;
        }
        self.restarts += 1;
        let exponent = (self.recent.len() as u32).saturating_sub(1).min(16);
        let delay = policy
            .backoff_min
            .saturating_mul(1 << exponent)
            .min(policy.backoff_max);
        Decision::Restart(delay)
    }
}

/// Runs `actor` as its own task; `on_exit` learns how it ended. Returns its address and a
/// handle to abort it (which drops the actor and everything it spawned, e.g. a running script).
pub fn spawn_actor<A>(actor: A, on_exit: impl FnOnce(Exit) + 'static) -> (Addr<A>, AbortHandle)
where
    A: Actor<Context = Context<A>>,
{
    let ctx = Context::new();
    let addr = ctx.address();
    let task = actix_rt::spawn(ctx.into_future(actor));
    let abort = task.abort_handle();
    actix_rt::spawn(async move {
        let exit = match task.await {
            Ok(()) => Exit::Stopped,
            Err(e) if e.is_panic() => Exit::Panicked,
            Err(_) => Exit::Killed,
        };
        on_exit(exit);
    });
    (addr, abort)
}

/// The top-level children.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Child {
    FlowResetter,
    RouteManager,
    Dispatcher,
    ProbeScheduler,
    LinkWatcher,
    TrafficWatcher,
}

impl Child {
    /// Start order: the consumer of route moves, then the writer of routes, the source of facts
    /// last.
    pub const ALL: [Child; 6] = [
        Child::FlowResetter,
        Child::RouteManager,
        Child::Dispatcher,
        Child::ProbeScheduler,
        Child::LinkWatcher,
        Child::TrafficWatcher,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Child::FlowResetter => "flow-resetter",
            Child::RouteManager => "route-manager",
            Child::Dispatcher => "dispatcher",
            Child::ProbeScheduler => "probe-scheduler",
            Child::LinkWatcher => "link-watcher",
            Child::TrafficWatcher => "traffic-watcher",
        }
    }
}

struct ChildState {
    tracker: RestartTracker,
    abort: Option<AbortHandle>,
    generation: u64,
}

/// The root of the tree. See the module doc.
pub struct Supervisor {
    cfg: Arc<Config>,
    ports: Ports,
    peers: Peers,
    board: Board,
    log: EventLog,
    children: BTreeMap<Child, ChildState>,
    stopping: bool,
    done: watch::Sender<Option<Result<(), EngineError>>>,
}

impl Supervisor {
    pub fn new(
        cfg: Config,
        ports: Ports,
        board: Board,
        log: EventLog,
        done: watch::Sender<Option<Result<(), EngineError>>>,
    ) -> Self {
        Self {
            cfg: Arc::new(cfg),
            ports,
            peers: Peers::default(),
            board,
            log,
            children: BTreeMap::new(),
            stopping: false,
            done,
        }
    }

    fn start_child(&mut self, child: Child, ctx: &mut Context<Self>) {
        let state = self.children.entry(child).or_insert(ChildState {
            tracker: RestartTracker::default(),
            abort: None,
            generation: 0,
        });
        state.generation += 1;
        let generation = state.generation;
        let first_start = generation == 1;
        let me = ctx.address();
        let on_exit = move |exit| {
            me.do_send(ChildExited {
                child,
                generation,
                exit,
            })
        };
        let abort = match child {
            Child::FlowResetter => {
                let actor = FlowResetter::new(
                    self.cfg.clone(),
                    self.ports.flows.clone(),
                    self.board.clone(),
                );
                let (addr, abort) = spawn_actor(actor, on_exit);
                self.peers.flow_resetter.set(Some(addr));
                abort
            }
            Child::RouteManager => {
                let deps = RouteDeps {
                    links: self.ports.links.clone(),
                    routes: self.ports.routes.clone(),
                    sysctl: self.ports.sysctl.clone(),
                    store: self.ports.state.clone(),
                    log: self.log.clone(),
                    peers: self.peers.clone(),
                    board: self.board.clone(),
                };
                let (addr, abort) = spawn_actor(
                    RouteManager::new(self.cfg.clone(), deps, first_start),
                    on_exit,
                );
                self.peers.route_manager.set(Some(addr));
                abort
            }
            Child::Dispatcher => {
                let actor = Dispatcher::new(self.ports.scripts.clone(), self.log.clone());
                let (addr, abort) = spawn_actor(actor, on_exit);
                self.peers.dispatcher.set(Some(addr));
                abort
            }
            Child::ProbeScheduler => {
                let deps = ProbeDeps {
                    probe: self.ports.probe.clone(),
                    peers: self.peers.clone(),
                    board: self.board.clone(),
                };
                let (addr, abort) =
                    spawn_actor(ProbeScheduler::new(self.cfg.clone(), deps), on_exit);
                self.peers.probe_scheduler.set(Some(addr));
                abort
            }
            Child::LinkWatcher => {
                let actor = LinkWatcher::new(self.ports.links.clone(), self.peers.clone());
                let (addr, abort) = spawn_actor(actor, on_exit);
                self.peers.link_watcher.set(Some(addr));
                abort
            }
            Child::TrafficWatcher => {
                let deps = TrafficDeps {
                    traffic: self.ports.traffic.clone(),
                    peers: self.peers.clone(),
                    board: self.board.clone(),
                };
                let (addr, abort) =
                    spawn_actor(TrafficWatcher::new(self.cfg.clone(), deps), on_exit);
                self.peers.traffic_watcher.set(Some(addr));
                abort
            }
        };
        if let Some(s) = self.children.get_mut(&child) {
            s.abort = Some(abort);
        }
        self.publish();
    }

    fn clear_slot(&self, child: Child) {
        match child {
            Child::FlowResetter => self.peers.flow_resetter.set(None),
            Child::RouteManager => self.peers.route_manager.set(None),
            Child::Dispatcher => self.peers.dispatcher.set(None),
            Child::ProbeScheduler => self.peers.probe_scheduler.set(None),
            Child::LinkWatcher => self.peers.link_watcher.set(None),
            Child::TrafficWatcher => self.peers.traffic_watcher.set(None),
        }
    }

    fn abort_all(&mut self) {
        for s in self.children.values_mut() {
            if let Some(a) = s.abort.take() {
                a.abort();
            }
        }
        for child in Child::ALL {
            self.clear_slot(child);
        }
    }

    fn finish(&mut self, result: Result<(), EngineError>, ctx: &mut Context<Self>) {
        self.stopping = true;
        self.abort_all();
        self.publish();
        self.board.lock().close_observers();
        let _ = self.done.send(Some(result));
        ctx.stop();
    }

    fn publish(&self) {
        let mut board = self.board.lock();
        for child in Child::ALL {
            let Some(s) = self.children.get(&child) else {
                continue;
            };
            board.upsert_actor(s.tracker.status(child.name().into(), s.abort.is_some()));
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let journal = self.ports.journal.clone();
        ctx.wait(async move { journal.load().await }.into_actor(self).map(|loaded, act, ctx| {
            match loaded {
                Ok(state) => act.log.install(state),
                Err(e) => tracing::error!(error = %e, "cannot read the event journal; starting with an empty one"),
            }
            for child in Child::ALL {
                act.start_child(child, ctx);
            }
        }));
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A child's task ended.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ChildExited {
    pub child: Child,
    pub generation: u64,
    pub exit: Exit,
}

/// Kill an actor by its `status` name (resilience testing).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Kill(pub String);

/// Check one interface now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ProbeReport, EngineError>")]
pub struct CheckNowFor(pub IfaceName);

/// Apply a new configuration.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reload(pub Config);

/// Clean stop: penalties removed, then every child stopped.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StopTree;

/// Test hook (feature `fake`): make an actor panic, to test that panics are contained.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Crash;

/// Test hook (feature `fake`): crash an actor by its `status` name.
#[cfg(feature = "fake")]
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub struct CrashActor(pub String);

#[cfg(feature = "fake")]
impl Handler<CrashActor> for Supervisor {
    type Result = ResponseFuture<Result<(), EngineError>>;
    fn handle(&mut self, msg: CrashActor, _: &mut Self::Context) -> Self::Result {
        let unknown = EngineError::UnknownActor {
            name: msg.0.clone(),
        };
        let sent = match msg.0.as_str() {
            "route-manager" => self.peers.route_manager.do_send(Crash),
            "dispatcher" => self.peers.dispatcher.do_send(Crash),
            "probe-scheduler" => self.peers.probe_scheduler.do_send(Crash),
            "link-watcher" => self.peers.link_watcher.do_send(Crash),
            "flow-resetter" => self.peers.flow_resetter.do_send(Crash),
            "traffic-watcher" => self.peers.traffic_watcher.do_send(Crash),
            other => match other
                .strip_prefix("prober:")
                .and_then(|i| IfaceName::new(i).ok())
            {
                Some(iface) => self
                    .peers
                    .probe_scheduler
                    .do_send(crate::probe_scheduler::CrashProber(iface)),
                None => return Box::pin(async move { Err(unknown) }),
            },
        };
        Box::pin(async move {
            if sent {
                Ok(())
            } else {
                Err(unknown)
            }
        })
    }
}

/// Grace for RouteManager to put routes at their configured metrics on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Handler<ChildExited> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        let Some(s) = self.children.get_mut(&msg.child) else {
            return;
        };
        if s.generation != msg.generation {
            return;
        }
        s.abort = None;
        let decision = s.tracker.on_exit(&CHILD_POLICY, msg.exit, Instant::now());
        self.clear_slot(msg.child);
        match decision {
            Decision::Restart(delay) => {
                tracing::warn!(actor = msg.child.name(), exit = ?msg.exit, delay_ms = delay.as_millis() as u64, "actor exited; restarting");
                let child = msg.child;
                ctx.run_later(delay, move |act, ctx| {
                    if !act.stopping {
                        act.start_child(child, ctx);
                    }
                });
                self.publish();
            }
            Decision::Escalate => {
                let err = EngineError::Escalated {
                    actor: msg.child.name().into(),
                    intensity: CHILD_POLICY.intensity,
                    period_secs: CHILD_POLICY.period.as_secs(),
                };
                tracing::error!(error = %err, "escalating: stopping the engine");
                self.finish(Err(err), ctx);
            }
        }
    }
}

impl Handler<Kill> for Supervisor {
    type Result = ResponseFuture<Result<(), EngineError>>;
    fn handle(&mut self, msg: Kill, _: &mut Self::Context) -> Self::Result {
        if let Some(iface) = msg.0.strip_prefix("prober:") {
            let iface = IfaceName::new(iface).map_err(|_| EngineError::UnknownActor {
                name: msg.0.clone(),
            });
            let scheduler = self.peers.probe_scheduler.get();
            let name = msg.0.clone();
            return Box::pin(async move {
                let iface = iface?;
                let scheduler = scheduler.ok_or(EngineError::Unavailable {
                    actor: "probe-scheduler".into(),
                })?;
                scheduler
                    .send(KillProber(iface))
                    .await
                    .map_err(|_| EngineError::Unavailable {
                        actor: "probe-scheduler".into(),
                    })?
                    .map_err(|_| EngineError::UnknownActor { name })
            });
        }
        let result = match Child::ALL.into_iter().find(|c| c.name() == msg.0) {
            None => Err(EngineError::UnknownActor { name: msg.0 }),
            Some(child) => match self.children.get(&child).and_then(|s| s.abort.as_ref()) {
                Some(abort) => {
                    tracing::warn!(actor = child.name(), "killed on request");
                    abort.abort();
                    Ok(())
                }
                None => Err(EngineError::Unavailable {
                    actor: child.name().into(),
                }),
            },
        };
        Box::pin(async move { result })
    }
}

impl Handler<CheckNowFor> for Supervisor {
    type Result = ResponseFuture<Result<ProbeReport, EngineError>>;
    fn handle(&mut self, msg: CheckNowFor, _: &mut Self::Context) -> Self::Result {
        let scheduler = self.peers.probe_scheduler.get();
        Box::pin(async move {
            let scheduler = scheduler.ok_or(EngineError::Unavailable {
                actor: "probe-scheduler".into(),
            })?;
            scheduler
                .send(CheckIface(msg.0.clone()))
                .await
                .map_err(|_| EngineError::Unavailable {
                    actor: "probe-scheduler".into(),
                })?
                .map_err(|reason| EngineError::CannotCheck {
                    iface: msg.0.to_string(),
                    reason,
                })
        })
    }
}

impl Handler<Reload> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Reload, _: &mut Self::Context) {
        self.cfg = Arc::new(msg.0);
        self.peers
            .route_manager
            .do_send(Reconfigure(self.cfg.clone()));
        self.peers
            .probe_scheduler
            .do_send(ReconfigureChecks(self.cfg.clone()));
        self.peers
            .flow_resetter
            .do_send(ReconfigureFlows(self.cfg.clone()));
        self.peers
            .traffic_watcher
            .do_send(ReconfigurePassive(self.cfg.clone()));
        tracing::info!(profiles = self.cfg.profiles.len(), "configuration reloaded");
    }
}

impl Handler<StopTree> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: StopTree, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let rm = self.peers.route_manager.get();
        let restore = async move {
            if let Some(rm) = rm {
                if tokio::time::timeout(SHUTDOWN_GRACE, rm.send(Shutdown))
                    .await
                    .is_err()
                {
                    tracing::error!("route-manager did not restore configured metrics in time");
                }
            }
        };
        Box::pin(
            restore
                .into_actor(self)
                .map(|_, act, ctx| act.finish(Ok(()), ctx)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_and_backoff() {
        let p = RestartPolicy {
            intensity: 3,
            period: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        };
        let mut t = RestartTracker::default();
        let now = Instant::now();
        assert_eq!(
            t.on_exit(&p, Exit::Panicked, now),
            Decision::Restart(Duration::from_millis(100))
        );
        assert_eq!(
            t.on_exit(&p, Exit::Stopped, now),
            Decision::Restart(Duration::from_millis(200))
        );
        assert_eq!(
            t.on_exit(&p, Exit::Killed, now),
            Decision::Restart(Duration::ZERO),
            "kills don't count"
        );
        assert_eq!(
            t.on_exit(&p, Exit::Panicked, now),
            Decision::Restart(Duration::from_millis(300)),
            "capped"
        );
        assert_eq!(t.on_exit(&p, Exit::Panicked, now), Decision::Escalate);
        assert_eq!((t.restarts, t.kills), (4, 1));
        // Failures older than the period are forgotten.
        let mut t = RestartTracker::default();
        for i in 0..10 {
            let at = now + Duration::from_secs(11 * i);
            assert!(matches!(
                t.on_exit(&p, Exit::Panicked, at),
                Decision::Restart(_)
            ));
        }
    }
}
