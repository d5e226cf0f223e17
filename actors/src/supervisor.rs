//! The supervision tree: the only place that names the concrete top-level actors. It builds
//! each child from the ports and the configuration, points the typed slots of `peers.rs` at the
//! child's new incarnation (and empties them when it exits), restarts it with the machinery of
//! `supervision.rs` (each child is its own task; a panic ends only that task), and escalates.
//! What each actor receives and sends: the actor map in the crate doc (`lib.rs`).
//!
//! # Restart policies
//!
//! This table is the one copy (`docs/architecture.md` links here); the numbers are
//! [`CHILD_POLICY`] and [`PROBER_POLICY`](crate::probe_scheduler::PROBER_POLICY).
//!
//! | child            | policy    | escalates after                | back-off (doubling) | rebuilds its state from           |
//! |------------------|-----------|--------------------------------|---------------------|-----------------------------------|
//! | route-manager    | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | its saved record, link dump, route list |
//! | dispatcher       | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | the EventLog (journal): re-runs the interrupted event |
//! | probe-scheduler  | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | RouteManager's uplinks            |
//! | link-watcher     | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | a new subscription + dump         |
//! | flow-resetter    | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | (stateless; config only)          |
//! | traffic-watcher  | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | the next samples (trackers empty) |
//! | prober:IFACE     | permanent | more than 5 failures in 60 s   | 100 ms → 5 s        | (stateless; checks at once)       |
//!
//! Probers are children of probe-scheduler (see `probe_scheduler.rs`); exceeding their
//! intensity makes the scheduler stop, which counts as one of its own failures. Exceeding a
//! top-level child's intensity escalates: the whole tree stops and `run()` returns
//! `EngineError::Escalated` (the daemon exits non-zero and systemd restarts it). The first
//! restart waits the minimum back-off, each further failure in the window doubles it, up to the
//! maximum. Kills (`netfailover kill`) restart at once and do not count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::board::Board;
use crate::dispatcher::Dispatcher;
use crate::error::EngineError;
use crate::event_log::EventLog;
use crate::flow_resetter::FlowResetter;
use crate::link_watcher::{LinkFacts, LinkWatcher};
use crate::messages::{
    CheckIface, CheckNowFor, Kill, KillHow, KillProber, Reconfigure, ReconfigureChecks,
    ReconfigureFlows, ReconfigurePassive, Reload, Shutdown, StopTree,
};
use crate::model::{Config, IfaceName};
use crate::peers::{Peers, Slot};
use crate::ports::{Ports, ProbeReport};
use crate::probe_scheduler::{ProbeDeps, ProbeScheduler};
use crate::route_manager::{RouteDeps, RouteManager};
use crate::supervision::{ChildSlot, Decision, Exit, RestartPolicy};
use crate::traffic_watcher::{TrafficDeps, TrafficWatcher};

/// Policy of the top-level children (the table in the module doc).
pub const CHILD_POLICY: RestartPolicy = RestartPolicy {
    intensity: 5,
    period: Duration::from_secs(30),
    backoff_min: Duration::from_millis(50),
    backoff_max: Duration::from_secs(5),
};

/// Grace for RouteManager to put routes at their configured metrics on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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

/// The supervisor's own slots: what it sends to its children (configuration, shutdown, the
/// control requests of `EngineHandle`).
#[derive(Default)]
struct Control {
    reconfigure: Slot<Reconfigure>,
    shutdown: Slot<Shutdown>,
    reconfigure_checks: Slot<ReconfigureChecks>,
    kill_prober: Slot<KillProber>,
    check_iface: Slot<CheckIface>,
    reconfigure_flows: Slot<ReconfigureFlows>,
    reconfigure_passive: Slot<ReconfigurePassive>,
}

/// The root of the tree. See the module doc.
pub struct Supervisor {
    cfg: Arc<Config>,
    ports: Ports,
    peers: Peers,
    control: Control,
    board: Board,
    log: EventLog,
    children: BTreeMap<Child, ChildSlot>,
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
            control: Control::default(),
            board,
            log,
            children: BTreeMap::new(),
            stopping: false,
            done,
        }
    }

    /// Starts `child` and points the slots of the messages it handles at the new incarnation.
    fn start_child(&mut self, child: Child, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let on_exit = move |generation, exit| {
            me.do_send(ChildExited {
                child,
                generation,
                exit,
            })
        };
        // Out of the map while it starts, so the builders below can read the rest of `self`.
        let mut slot = self.children.remove(&child).unwrap_or_default();
        match child {
            Child::FlowResetter => self.start_flow_resetter(&mut slot, on_exit),
            Child::RouteManager => self.start_route_manager(&mut slot, on_exit),
            Child::Dispatcher => {
                let actor = Dispatcher::new(self.ports.scripts.clone(), self.log.clone());
                slot.start(actor, on_exit);
            }
            Child::ProbeScheduler => self.start_probe_scheduler(&mut slot, on_exit),
            Child::LinkWatcher => {
                let p = &self.peers;
                let to = LinkFacts {
                    changed: p.link_changed.clone(),
                    removed: p.link_removed.clone(),
                    snapshot: p.link_snapshot.clone(),
                    routes: p.routes_changed.clone(),
                };
                slot.start(LinkWatcher::new(self.ports.links.clone(), to), on_exit);
            }
            Child::TrafficWatcher => {
                let deps = TrafficDeps {
                    traffic: self.ports.traffic.clone(),
                    get_uplinks: self.peers.get_uplinks.clone(),
                    confirm: self.peers.confirm.clone(),
                    board: self.board.clone(),
                };
                let addr = slot.start(TrafficWatcher::new(self.cfg.clone(), deps), on_exit);
                self.peers
                    .answered_since
                    .set(Some(addr.clone().recipient()));
                self.control.reconfigure_passive.set(Some(addr.recipient()));
            }
        }
        self.children.insert(child, slot);
        self.publish();
    }

    fn start_flow_resetter(&self, slot: &mut ChildSlot, on_exit: impl FnOnce(u64, Exit) + 'static) {
        let flows = self.ports.flows.clone();
        let actor = FlowResetter::new(self.cfg.clone(), flows, self.board.clone());
        let addr = slot.start(actor, on_exit);
        self.peers
            .route_in_use_moved
            .set(Some(addr.clone().recipient()));
        self.control.reconfigure_flows.set(Some(addr.recipient()));
    }

    fn start_route_manager(&self, slot: &mut ChildSlot, on_exit: impl FnOnce(u64, Exit) + 'static) {
        let (p, c) = (&self.peers, &self.control);
        let deps = RouteDeps {
            links: self.ports.links.clone(),
            routes: self.ports.routes.clone(),
            sysctl: self.ports.sysctl.clone(),
            store: self.ports.state.clone(),
            log: self.log.clone(),
            uplinks: p.uplinks_changed.clone(),
            reset_checks: p.reset_checks.clone(),
            moved: p.route_in_use_moved.clone(),
            board: self.board.clone(),
        };
        // The first incarnation is the daemon's first start: it announces `up`.
        let first_start = !slot.started_before();
        let actor = RouteManager::new(self.cfg.clone(), deps, first_start);
        let addr = slot.start(actor, on_exit);
        p.link_changed.set(Some(addr.clone().recipient()));
        p.link_removed.set(Some(addr.clone().recipient()));
        p.link_snapshot.set(Some(addr.clone().recipient()));
        p.routes_changed.set(Some(addr.clone().recipient()));
        p.connectivity_changed.set(Some(addr.clone().recipient()));
        p.get_uplinks.set(Some(addr.clone().recipient()));
        c.reconfigure.set(Some(addr.clone().recipient()));
        c.shutdown.set(Some(addr.recipient()));
    }

    fn start_probe_scheduler(
        &self,
        slot: &mut ChildSlot,
        on_exit: impl FnOnce(u64, Exit) + 'static,
    ) {
        let (p, c) = (&self.peers, &self.control);
        let deps = ProbeDeps {
            probe: self.ports.probe.clone(),
            connectivity: p.connectivity_changed.clone(),
            get_uplinks: p.get_uplinks.clone(),
            answered_since: p.answered_since.clone(),
            board: self.board.clone(),
        };
        let addr = slot.start(ProbeScheduler::new(self.cfg.clone(), deps), on_exit);
        p.uplinks_changed.set(Some(addr.clone().recipient()));
        p.reset_checks.set(Some(addr.clone().recipient()));
        p.confirm.set(Some(addr.clone().recipient()));
        c.reconfigure_checks.set(Some(addr.clone().recipient()));
        c.kill_prober.set(Some(addr.clone().recipient()));
        c.check_iface.set(Some(addr.recipient()));
    }

    /// Empties the slots of the messages `child` handles: senders drop them until its restart.
    fn clear_slots(&self, child: Child) {
        let (p, c) = (&self.peers, &self.control);
        match child {
            Child::FlowResetter => {
                p.route_in_use_moved.set(None);
                c.reconfigure_flows.set(None);
            }
            Child::RouteManager => {
                p.link_changed.set(None);
                p.link_removed.set(None);
                p.link_snapshot.set(None);
                p.routes_changed.set(None);
                p.connectivity_changed.set(None);
                p.get_uplinks.set(None);
                c.reconfigure.set(None);
                c.shutdown.set(None);
            }
            Child::Dispatcher | Child::LinkWatcher => {}
            Child::ProbeScheduler => {
                p.uplinks_changed.set(None);
                p.reset_checks.set(None);
                p.confirm.set(None);
                c.reconfigure_checks.set(None);
                c.kill_prober.set(None);
                c.check_iface.set(None);
            }
            Child::TrafficWatcher => {
                p.answered_since.set(None);
                c.reconfigure_passive.set(None);
            }
        }
    }

    fn abort_all(&mut self) {
        for s in self.children.values_mut() {
            s.stop();
        }
        for child in Child::ALL {
            self.clear_slots(child);
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
        for (child, s) in &self.children {
            board.upsert_actor(s.status(child.name().into()));
        }
    }

    /// Ends a prober (`prober:IFACE`) through its parent, ProbeScheduler.
    fn kill_prober(&self, name: String, how: KillHow) -> ResponseFuture<Result<(), EngineError>> {
        let iface = name
            .strip_prefix("prober:")
            .and_then(|i| IfaceName::new(i).ok());
        let scheduler = self.control.kill_prober.get();
        Box::pin(async move {
            let iface = iface.ok_or(EngineError::UnknownActor { name })?;
            let unavailable = || EngineError::Unavailable {
                actor: Child::ProbeScheduler.name().into(),
            };
            let scheduler = scheduler.ok_or_else(unavailable)?;
            scheduler
                .send(KillProber { iface, how })
                .await
                .map_err(|_| unavailable())?
        })
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

/// A child's task ended (from its exit watcher).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
struct ChildExited {
    child: Child,
    generation: u64,
    exit: Exit,
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: ChildExited, ctx: &mut Self::Context) {
        if self.stopping {
            return;
        }
        let Some(s) = self.children.get_mut(&msg.child) else {
            return;
        };
        let now = Instant::now();
        let Some(decision) = s.on_exit(msg.generation, msg.exit, &CHILD_POLICY, now) else {
            return; // an older incarnation, already replaced
        };
        self.clear_slots(msg.child);
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
        if msg.name.starts_with("prober:") {
            return self.kill_prober(msg.name, msg.how);
        }
        let result = match Child::ALL.into_iter().find(|c| c.name() == msg.name) {
            None => Err(EngineError::UnknownActor { name: msg.name }),
            Some(child) => {
                let killed = self.children.get(&child).is_some_and(|s| s.kill(msg.how));
                if killed {
                    tracing::warn!(actor = child.name(), how = ?msg.how, "killed on request");
                    Ok(())
                } else {
                    Err(EngineError::Unavailable {
                        actor: child.name().into(),
                    })
                }
            }
        };
        Box::pin(async move { result })
    }
}

impl Handler<CheckNowFor> for Supervisor {
    type Result = ResponseFuture<Result<ProbeReport, EngineError>>;
    fn handle(&mut self, msg: CheckNowFor, _: &mut Self::Context) -> Self::Result {
        let scheduler = self.control.check_iface.get();
        Box::pin(async move {
            let unavailable = || EngineError::Unavailable {
                actor: Child::ProbeScheduler.name().into(),
            };
            let scheduler = scheduler.ok_or_else(unavailable)?;
            scheduler
                .send(CheckIface(msg.0))
                .await
                .map_err(|_| unavailable())?
        })
    }
}

impl Handler<Reload> for Supervisor {
    type Result = ();
    fn handle(&mut self, msg: Reload, _: &mut Self::Context) {
        self.cfg = Arc::new(msg.0);
        let c = &self.control;
        c.reconfigure.do_send(Reconfigure(self.cfg.clone()));
        c.reconfigure_checks
            .do_send(ReconfigureChecks(self.cfg.clone()));
        c.reconfigure_flows
            .do_send(ReconfigureFlows(self.cfg.clone()));
        c.reconfigure_passive
            .do_send(ReconfigurePassive(self.cfg.clone()));
        tracing::info!(profiles = self.cfg.profiles.len(), "configuration reloaded");
    }
}

impl Handler<StopTree> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: StopTree, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let rm = self.control.shutdown.get();
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
