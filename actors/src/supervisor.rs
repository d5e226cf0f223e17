//! The supervision tree: the only place that names the concrete top-level actors. It builds
//! each child from the ports and the configuration, points the typed slots of `peers.rs` at the
//! child's new incarnation (and empties them when it exits: one `wire_*` function per actor
//! does both, so the slots of an actor are listed once), sends a reload to every child that
//! reads the configuration (one `Reconfigure` channel), restarts a child with the machinery of
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
//! | recovery-manager | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | RouteManager's uplinks, the reboot times |
//! | accountant       | permanent | more than 5 failures in 30 s   | 50 ms → 5 s         | the saved accounts, RouteManager's uplinks |
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

use crate::accountant::{Accountant, AccountantDeps, FLUSH_TIMEOUT};
use crate::actor_name::ActorName;
pub use crate::actor_name::Child;
use crate::board::Board;
use crate::dispatcher::Dispatcher;
use crate::error::EngineError;
use crate::event_log::EventLog;
use crate::flow_resetter::FlowResetter;
use crate::link_watcher::{LinkFacts, LinkWatcher};
use crate::messages::{
    CheckIface, CheckNowFor, FlushAccounts, Kill, KillHow, KillProber, Reconfigure, Reload,
    Shutdown, StopTree,
};
use crate::model::{Config, IfaceName};
use crate::peers::{Peers, Slot};
use crate::ports::{Ports, ProbeReport};
use crate::probe_scheduler::{ProbeDeps, ProbeScheduler};
use crate::recovery_manager::{RecoveryDeps, RecoveryManager};
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

/// Every slot the tree's messages travel through: the actors' own ([`Peers`]) and the
/// supervisor's (configuration, shutdown and the control requests of `EngineHandle`).
///
/// Each actor's slots are pointed and emptied in one place, its `wire_*` function below
/// (`Some(addr)` on start, `None` on exit): a new message is a slot here (or in `Peers`) and a
/// line there.
#[derive(Default)]
struct Wiring {
    peers: Peers,
    /// The one configuration channel: every running actor that reads the configuration, by
    /// child ([`Reconfigure`]).
    reconfigure: BTreeMap<Child, Recipient<Reconfigure>>,
    shutdown: Slot<Shutdown>,
    kill_prober: Slot<KillProber>,
    check_iface: Slot<CheckIface>,
    flush_accounts: Slot<FlushAccounts>,
}

/// Points `slot` at `to` (`Some`) or empties it (`None`).
fn point<M, A>(slot: &Slot<M>, to: Option<&Addr<A>>)
where
    M: Message + Send + 'static,
    M::Result: Send,
    A: Actor<Context = Context<A>> + Handler<M>,
{
    slot.set(to.map(|a| a.clone().recipient()));
}

impl Wiring {
    /// Adds `child` to the configuration channel (`Some`) or takes it off (`None`).
    fn configured<A>(&mut self, child: Child, to: Option<&Addr<A>>)
    where
        A: Actor<Context = Context<A>> + Handler<Reconfigure>,
    {
        match to {
            Some(a) => self.reconfigure.insert(child, a.clone().recipient()),
            None => self.reconfigure.remove(&child),
        };
    }

    /// Sends the new configuration to every running actor that reads it.
    fn reconfigure(&self, cfg: &Arc<Config>) {
        for to in self.reconfigure.values().filter(|to| to.connected()) {
            to.do_send(Reconfigure(cfg.clone()));
        }
    }

    fn wire_route_manager(&mut self, to: Option<&Addr<RouteManager>>) {
        let p = &self.peers;
        point(&p.link_changed, to);
        point(&p.link_removed, to);
        point(&p.link_snapshot, to);
        point(&p.routes_changed, to);
        point(&p.connectivity_changed, to);
        point(&p.get_uplinks, to);
        point(&self.shutdown, to);
        self.configured(Child::RouteManager, to);
    }

    fn wire_probe_scheduler(&mut self, to: Option<&Addr<ProbeScheduler>>) {
        let p = &self.peers;
        point(&p.uplinks_changed, to);
        point(&p.reset_checks, to);
        point(&p.confirm, to);
        point(&p.two_way_traffic, to);
        point(&p.budget_exhausted, to);
        point(&self.kill_prober, to);
        point(&self.check_iface, to);
        self.configured(Child::ProbeScheduler, to);
    }

    fn wire_flow_resetter(&mut self, to: Option<&Addr<FlowResetter>>) {
        point(&self.peers.route_in_use_moved, to);
        self.configured(Child::FlowResetter, to);
    }

    fn wire_traffic_watcher(&mut self, to: Option<&Addr<TrafficWatcher>>) {
        point(&self.peers.answered_since, to);
        self.configured(Child::TrafficWatcher, to);
    }

    fn wire_recovery_manager(&mut self, to: Option<&Addr<RecoveryManager>>) {
        point(&self.peers.uplink_states, to);
        self.configured(Child::RecoveryManager, to);
    }

    fn wire_accountant(&mut self, to: Option<&Addr<Accountant>>) {
        point(&self.peers.probe_spent, to);
        point(&self.flush_accounts, to);
        self.configured(Child::Accountant, to);
    }

    /// Empties the slots of the messages `child` handles: senders drop them until its restart.
    fn unwire(&mut self, child: Child) {
        match child {
            Child::FlowResetter => self.wire_flow_resetter(None),
            Child::RouteManager => self.wire_route_manager(None),
            Child::ProbeScheduler => self.wire_probe_scheduler(None),
            Child::TrafficWatcher => self.wire_traffic_watcher(None),
            Child::RecoveryManager => self.wire_recovery_manager(None),
            Child::Accountant => self.wire_accountant(None),
            // They handle no message of another actor.
            Child::Dispatcher | Child::LinkWatcher => {}
        }
    }
}

/// The root of the tree. See the module doc.
pub struct Supervisor {
    cfg: Arc<Config>,
    ports: Ports,
    wiring: Wiring,
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
            wiring: Wiring::default(),
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
            Child::FlowResetter => {
                let flows = self.ports.flows.clone();
                let actor = FlowResetter::new(self.cfg.clone(), flows, self.board.clone());
                let addr = slot.start(actor, on_exit);
                self.wiring.wire_flow_resetter(Some(&addr));
            }
            Child::RouteManager => {
                let addr = slot.start(self.route_manager(&slot), on_exit);
                self.wiring.wire_route_manager(Some(&addr));
            }
            Child::Dispatcher => {
                let actor = Dispatcher::new(self.ports.scripts.clone(), self.log.clone());
                slot.start(actor, on_exit);
            }
            Child::ProbeScheduler => {
                let addr = slot.start(self.probe_scheduler(), on_exit);
                self.wiring.wire_probe_scheduler(Some(&addr));
            }
            Child::LinkWatcher => {
                let p = &self.wiring.peers;
                let to = LinkFacts {
                    changed: p.link_changed.clone(),
                    removed: p.link_removed.clone(),
                    snapshot: p.link_snapshot.clone(),
                    routes: p.routes_changed.clone(),
                };
                slot.start(LinkWatcher::new(self.ports.links.clone(), to), on_exit);
            }
            Child::TrafficWatcher => {
                let addr = slot.start(self.traffic_watcher(), on_exit);
                self.wiring.wire_traffic_watcher(Some(&addr));
            }
            Child::RecoveryManager => {
                let addr = slot.start(self.recovery_manager(), on_exit);
                self.wiring.wire_recovery_manager(Some(&addr));
            }
            Child::Accountant => {
                let addr = slot.start(self.accountant(), on_exit);
                self.wiring.wire_accountant(Some(&addr));
            }
        }
        self.children.insert(child, slot);
        self.publish();
    }

    fn route_manager(&self, slot: &ChildSlot) -> RouteManager {
        let p = &self.wiring.peers;
        let deps = RouteDeps {
            links: self.ports.links.clone(),
            routes: self.ports.routes.clone(),
            sysctl: self.ports.sysctl.clone(),
            store: self.ports.state.clone(),
            log: self.log.clone(),
            uplinks: p.uplinks_changed.clone(),
            reset_checks: p.reset_checks.clone(),
            moved: p.route_in_use_moved.clone(),
            recovery: p.uplink_states.clone(),
            board: self.board.clone(),
        };
        // The first incarnation is the daemon's first start: it announces `up`.
        let first_start = !slot.started_before();
        RouteManager::new(self.cfg.clone(), deps, first_start)
    }

    fn probe_scheduler(&self) -> ProbeScheduler {
        let p = &self.wiring.peers;
        let deps = ProbeDeps {
            probe: self.ports.probe.clone(),
            connectivity: p.connectivity_changed.clone(),
            get_uplinks: p.get_uplinks.clone(),
            answered_since: p.answered_since.clone(),
            spent: p.probe_spent.clone(),
            board: self.board.clone(),
        };
        ProbeScheduler::new(self.cfg.clone(), deps)
    }

    fn traffic_watcher(&self) -> TrafficWatcher {
        let p = &self.wiring.peers;
        let deps = TrafficDeps {
            traffic: self.ports.traffic.clone(),
            get_uplinks: p.get_uplinks.clone(),
            confirm: p.confirm.clone(),
            two_way: p.two_way_traffic.clone(),
            board: self.board.clone(),
        };
        TrafficWatcher::new(self.cfg.clone(), deps)
    }

    fn recovery_manager(&self) -> RecoveryManager {
        let deps = RecoveryDeps {
            recovery: self.ports.recovery.clone(),
            get_uplinks: self.wiring.peers.get_uplinks.clone(),
            log: self.log.clone(),
            board: self.board.clone(),
        };
        RecoveryManager::new(self.cfg.clone(), deps)
    }

    fn accountant(&self) -> Accountant {
        let deps = AccountantDeps {
            store: self.ports.accounts.clone(),
            calendar: self.ports.calendar.clone(),
            traffic: self.ports.traffic.clone(),
            get_uplinks: self.wiring.peers.get_uplinks.clone(),
            exhausted: self.wiring.peers.budget_exhausted.clone(),
            log: self.log.clone(),
            board: self.board.clone(),
        };
        Accountant::new(self.cfg.clone(), deps)
    }

    fn abort_all(&mut self) {
        for s in self.children.values_mut() {
            s.stop();
        }
        for child in Child::ALL {
            self.wiring.unwire(child);
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
    fn kill_prober(
        &self,
        iface: IfaceName,
        how: KillHow,
    ) -> ResponseFuture<Result<(), EngineError>> {
        let scheduler = self.wiring.kill_prober.get();
        Box::pin(async move {
            let unavailable = || EngineError::Unavailable {
                actor: Child::ProbeScheduler.into(),
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
        self.wiring.unwire(msg.child);
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
                    actor: msg.child,
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
        let child = match msg.actor {
            ActorName::Prober(iface) => return self.kill_prober(iface, msg.how),
            ActorName::Child(child) => child,
        };
        let killed = self.children.get(&child).is_some_and(|s| s.kill(msg.how));
        let result = if killed {
            tracing::warn!(actor = child.name(), how = ?msg.how, "killed on request");
            Ok(())
        } else {
            Err(EngineError::Unavailable {
                actor: child.into(),
            })
        };
        Box::pin(async move { result })
    }
}

impl Handler<CheckNowFor> for Supervisor {
    type Result = ResponseFuture<Result<ProbeReport, EngineError>>;
    fn handle(&mut self, msg: CheckNowFor, _: &mut Self::Context) -> Self::Result {
        let scheduler = self.wiring.check_iface.get();
        Box::pin(async move {
            let unavailable = || EngineError::Unavailable {
                actor: Child::ProbeScheduler.into(),
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
        self.wiring.reconfigure(&self.cfg);
        tracing::info!(profiles = self.cfg.profiles.len(), "configuration reloaded");
    }
}

impl Handler<StopTree> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: StopTree, _: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let rm = self.wiring.shutdown.get();
        let accountant = self.wiring.flush_accounts.get();
        let restore = async move {
            let flush = async {
                if let Some(a) = accountant {
                    if tokio::time::timeout(FLUSH_TIMEOUT, a.send(FlushAccounts))
                        .await
                        .is_err()
                    {
                        tracing::warn!("accountant did not save the accounts in time");
                    }
                }
            };
            let restore = async {
                if let Some(rm) = rm {
                    if tokio::time::timeout(SHUTDOWN_GRACE, rm.send(Shutdown))
                        .await
                        .is_err()
                    {
                        tracing::error!("route-manager did not restore configured metrics in time");
                    }
                }
            };
            futures::join!(flush, restore);
        };
        Box::pin(
            restore
                .into_actor(self)
                .map(|_, act, ctx| act.finish(Ok(()), ctx)),
        )
    }
}

#[cfg(all(test, feature = "fake"))]
mod tests {
    use super::*;
    use crate::fake::FakeFlows;

    /// One `wire_*` function points every slot of an actor and, with `None`, empties each of
    /// them again, the configuration channel included.
    #[actix::test]
    async fn one_wire_function_points_and_empties_an_actors_slots() {
        let mut w = Wiring::default();
        let flows = Arc::new(FakeFlows::default());
        let actor = FlowResetter::new(Arc::new(Config::default()), flows, Board::default());
        let addr = actor.start();
        w.wire_flow_resetter(Some(&addr));
        assert!(w.peers.route_in_use_moved.get().is_some());
        assert!(w.reconfigure.contains_key(&Child::FlowResetter));
        w.unwire(Child::FlowResetter);
        assert!(w.peers.route_in_use_moved.get().is_none());
        assert!(w.reconfigure.is_empty());
    }
}
