//! RouteManager: the only writer of routes and the only producer of dispatcher events.
//!
//! Owns: the desired default route of every managed interface and family (configured metric,
//! plus the penalty while checks are on and the interface is not FULL past the fail-back hold,
//! made unique per family), the adoption of foreign default routes on managed interfaces, the
//! per-interface record (connectivity, `up` announced, learned gateways) persisted through the
//! `Store<EngineState>` port, and the sysctls it tunes (strict `rp_filter` → loose, `ra_defrtr_metric`).
//!
//! Talks to: LinkWatcher sends it link facts; ProbeScheduler sends it connectivity facts and asks
//! for the uplinks; it sends ProbeScheduler (and RecoveryManager) the uplinks when they change, FlowResetter the moves
//! of the route in use, and pushes events into the engine's `EventLog`, which Dispatcher drains.
//! The supervisor sends it `Reconfigure` on a reload (a reconcile with the new profiles and
//! metrics follows) and `Shutdown` on a clean stop.
//!
//! This actor only sequences pure parts, level-triggered: every fact updates its model
//! (`route_model.rs`) and requests a reconcile, which lists the kernel's default routes, plans
//! (`plan.rs`), applies the plan (`apply.rs`: additions and replacements before deletions, never
//! a moment without a default route), and only then computes the new interface states and their
//! events (`transition.rs`), so the order is fixed: `down` → `device-connectivity-change` →
//! `connectivity-change`, and `up` before any connectivity event of that interface
//! (docs/semantics.md §5). Reconciles run one at a time (`ctx.wait`), also periodically and
//! after failures.
//!
//! Link-loss fast path: a managed link that stops being usable (carrier lost, admin down) has
//! its installed default routes deleted in the handler of that link fact, before the full
//! reconcile pass that follows it (and still sweeps, plans and emits the events in order). The
//! delete only does sooner what that pass's plan does anyway (a lost link's routes are swept),
//! and removing a route through a dead link never removes a working one.
//!
//! On failure: the supervisor restarts it; the new incarnation loads the record, dumps links,
//! lists routes and converges to the same table, without repeating `up` events (unless this is
//! the daemon's first start, when `up` is announced for every live uplink).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use crate::apply::{apply, Applied, Done};
use crate::board::Board;
use crate::event_log::EventLog;
use crate::messages::{
    ConnectivityChanged, GetUplinks, LinkChanged, LinkRemoved, LinkSnapshot, Reconfigure,
    ResetChecks, RouteInUseMoved, RoutesChanged, Shutdown, Uplink, UplinkStates, UplinksChanged,
};
use crate::model::{
    Config, Connectivity, Event, IfaceAddr, IfaceMatch, IfaceName, KernelRoute, LinkInfo,
};
use crate::peers::Slot;
use crate::persist::Persister;
use crate::plan::{Plan, PlanInput};
use crate::ports::{EngineState, LinkSource, PortError, RouteTable, Store, Sysctl};
use crate::route_model::RouteModel;
use crate::transition::{self, Change, Facts};

/// Longest RouteManager waits for the event journal before handling the next fact.
const JOURNAL_WAIT: Duration = Duration::from_secs(2);

/// First retry delay after a failed route write; doubles up to the reconcile interval.
const RETRY_MIN: Duration = Duration::from_millis(250);

/// One reconcile's outcome: the plan, what applying it did, and the address listing after it
/// (`None` if listing failed).
type Reconciled = (Plan, Applied, Option<Vec<(u32, IfaceAddr)>>);

/// Everything RouteManager needs from outside, shared by its incarnations.
#[derive(Clone)]
pub struct RouteDeps {
    pub links: Arc<dyn LinkSource>,
    pub routes: Arc<dyn RouteTable>,
    pub sysctl: Arc<dyn Sysctl>,
    pub store: Arc<dyn Store<EngineState>>,
    pub log: EventLog,
    /// Uplinks and check resets go to ProbeScheduler, route moves to FlowResetter, in the tree.
    pub uplinks: Slot<UplinksChanged>,
    pub reset_checks: Slot<ResetChecks>,
    pub moved: Slot<RouteInUseMoved>,
    /// The same uplinks to RecoveryManager.
    pub recovery: Slot<UplinkStates>,
    pub board: Board,
}

/// See the module doc.
pub struct RouteManager {
    cfg: Arc<Config>,
    deps: RouteDeps,
    persister: Persister<EngineState>,
    /// True for the daemon's first incarnation: announce `up` for every live uplink.
    first_start: bool,
    state: State,
}

/// Everything rebuilt on restart.
#[derive(Default)]
struct State {
    model: RouteModel,
    /// Kernel settings already applied (`apply.rs`).
    done: Done,
    /// Interfaces whose link bounced inside one kernel message (merged flap).
    bounced: BTreeSet<IfaceName>,
    /// Events of check verdicts, waiting for the next reconcile's routes to be applied (they
    /// go out before that reconcile's own events).
    pending: Vec<Event>,
    reconcile_requested: bool,
    shutting_down: bool,
    retry_delay: Duration,
    retry: Option<SpawnHandle>,
    /// The reconcile that sends the next owed router solicitation.
    solicit_timer: Option<SpawnHandle>,
    last_uplinks: Vec<Uplink>,
}

impl RouteManager {
    pub fn new(cfg: Arc<Config>, deps: RouteDeps, first_start: bool) -> Self {
        let store = deps.store.clone();
        let persister = Persister::new("interface state", move |s| store.save(s));
        Self {
            cfg,
            deps,
            persister,
            first_start,
            state: State::default(),
        }
    }

    /// The dispatcher event of a transition's change, stamped now.
    fn event(&self, c: Change) -> Event {
        let now_ms = crate::ports::unix_ms_now();
        self.state.model.event(&self.cfg, c, now_ms)
    }

    fn request_reconcile(&mut self, ctx: &mut Context<Self>) {
        if !self.state.reconcile_requested {
            self.state.reconcile_requested = true;
            ctx.notify(Reconcile);
        }
    }

    /// What planning needs, copied so the plan is computed against the listing it makes.
    fn plan_input(&self) -> PlanInput {
        let (model, done) = (&self.state.model, &self.state.done);
        PlanInput {
            cfg: self.cfg.clone(),
            links: model.links.clone(),
            record: model.states.record.clone(),
            full_since: model.states.full_since.clone(),
            shutting_down: self.state.shutting_down,
            rp_filter_done: done.rp_filter.clone(),
            ra_metric: done.ra_metric.clone(),
            ra_owed: done.ra_owed.clone(),
            control_nets: self
                .cfg
                .profiles
                .iter()
                .filter_map(|p| match &p.matches {
                    IfaceMatch::ControlDevice(dev) => {
                        Some((dev.clone(), self.deps.links.control_device_net(dev)?))
                    }
                    _ => None,
                })
                .collect(),
            addresses_done: done.addresses.clone(),
        }
    }

    /// Lists, plans, applies, then updates interface states and emits events.
    fn reconcile_fut(&mut self) -> impl ActorFuture<Self, Output = ()> {
        self.state.reconcile_requested = false;
        let input = self.plan_input();
        let routes = self.deps.routes.clone();
        let sysctl = self.deps.sysctl.clone();
        async move {
            let kernel = routes.list_defaults().await?;
            let plan = input.plan(&kernel, Instant::now());
            let applied = apply(&*routes, &*sysctl, &plan).await;
            // After the apply (it may add manual addresses). A failed listing only leaves the
            // remembered addresses as they were.
            let addresses = routes
                .list_addresses()
                .await
                .map_err(|e| tracing::warn!(error = %e, "listing addresses failed; keeping the last ones"))
                .ok();
            Ok((plan, applied, addresses))
        }
        .into_actor(self)
        .map(|result, act, ctx| act.after_apply(result, ctx))
    }

    /// Sequences what follows an apply: fold it in, transition, publish, persist, retry.
    fn after_apply(&mut self, result: Result<Reconciled, PortError>, ctx: &mut Context<Self>) {
        let failed = match result {
            Err(e) => {
                tracing::error!(error = %e, "listing routes failed; will retry");
                true
            }
            Ok((plan, applied, addresses)) => {
                for f in &applied.failures {
                    tracing::warn!(error = %f, "route change failed; will retry");
                }
                self.state.done.absorb(&plan, &applied, Instant::now());
                self.state.model.absorb(plan, &applied);
                if let Some(listing) = addresses {
                    self.state.model.remember_addresses(&listing);
                }
                self.schedule_solicitation(ctx);
                // `installed` holds only the routes whose write succeeded.
                self.report_moves();
                !applied.failures.is_empty()
            }
        };
        let (events, reset) = self.transition();
        // The board first, so observers read the state changes (link, route, connectivity)
        // before the dispatcher events they cause.
        self.publish_board();
        if self.flush_events(events) {
            // Events are acknowledged only once they are in the journal (docs/semantics.md §5):
            // hold the mailbox until then. The routes are already applied, so failover is not
            // delayed. Bounded: a stuck disk must never wedge routing; past the bound the events
            // stay queued in memory and reach the journal with its next write.
            let persisted = self.deps.log.persisted();
            let bounded = async move {
                if tokio::time::timeout(JOURNAL_WAIT, persisted).await.is_err() {
                    tracing::error!("event journal write is taking too long; going on without it");
                }
            };
            ctx.wait(bounded.into_actor(self));
        }
        let hold = self.cfg.check.failback_hold;
        transition::record_holds(&mut self.state.model.states, hold, Instant::now());
        // Only a changed record is written (an idle reconcile every 10 s would rewrite it).
        self.persister
            .submit_changed(&self.state.model.states.record);
        ctx.spawn(self.persister.flush().into_actor(self));
        self.publish_uplinks();
        if !reset.is_empty() {
            // After the uplinks that carry their new UNKNOWN, so ProbeScheduler sees both in order.
            self.deps.reset_checks.do_send(ResetChecks(reset));
        }
        if failed {
            self.schedule_retry(ctx);
        } else {
            self.state.retry_delay = RETRY_MIN;
        }
        if !self.state.bounced.is_empty() {
            self.request_reconcile(ctx);
        }
    }

    /// Tells FlowResetter, per family, when the route in use moved to another interface. Runs
    /// after the routes are applied (resetting first would recreate the flows on the dying path)
    /// and before events are handed over; it only posts a message, so it delays nothing.
    fn report_moves(&mut self) {
        for m in self.state.model.moves(&self.cfg, Instant::now()) {
            tracing::info!(family = ?m.family, from = %m.from, to = %m.to, failback = m.failback, "route in use moved");
            self.deps.moved.do_send(m);
        }
    }

    /// Runs the transition over the applied state: the events to hand over (pending verdicts'
    /// first, then this pass's, in order) and the interfaces whose checks must start over.
    fn transition(&mut self) -> (Vec<Event>, Vec<IfaceName>) {
        let model = &mut self.state.model;
        let facts = Facts {
            managed: &model.managed,
            links: &model.links,
            installed: &model.installed,
            routed: &model.routed,
            waiting: &model.waiting,
            bounced: &self.state.bounced,
            checks_enabled: self.cfg.check.enabled(),
            device_events: self.cfg.dispatcher.device_events,
            now: Instant::now(),
        };
        let out = transition::reconcile(std::mem::take(&mut model.states), &facts);
        model.states = out.states;
        // The pass handled the bounce of every managed interface.
        let managed = &model.managed;
        self.state
            .bounced
            .retain(|n| !managed.iter().any(|a| &a.name == n));
        let mut events = std::mem::take(&mut self.state.pending);
        events.extend(out.changes.into_iter().map(|c| self.event(c)));
        (events, out.reset_checks)
    }

    /// A reconcile when the next owed router solicitation is due (`ra_solicit.rs`).
    fn schedule_solicitation(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.state.solicit_timer.take() {
            ctx.cancel_future(h);
        }
        let now = Instant::now();
        if let Some(next) = self.state.done.next_solicitation(now) {
            self.state.solicit_timer = Some(ctx.run_later(next - now, |act, ctx| {
                act.state.solicit_timer = None;
                act.request_reconcile(ctx);
            }));
        }
    }

    fn schedule_retry(&mut self, ctx: &mut Context<Self>) {
        let delay = self.state.retry_delay.max(RETRY_MIN);
        self.state.retry_delay = (delay * 2).min(self.cfg.route.reconcile_interval.max(RETRY_MIN));
        if let Some(h) = self.state.retry.take() {
            ctx.cancel_future(h);
        }
        self.state.retry = Some(ctx.run_later(delay, |act, ctx| {
            act.state.retry = None;
            act.request_reconcile(ctx);
        }));
    }

    /// Hands the events to the log; true if there were any.
    fn flush_events(&mut self, events: Vec<Event>) -> bool {
        let any = !events.is_empty();
        for ev in events {
            self.deps.log.push(ev);
        }
        any
    }

    fn publish_uplinks(&mut self) {
        let uplinks = self.state.model.uplinks(&self.cfg);
        if uplinks != self.state.last_uplinks {
            self.deps.uplinks.do_send(UplinksChanged(uplinks.clone()));
            self.deps.recovery.do_send(UplinkStates(uplinks.clone()));
            self.state.last_uplinks = uplinks;
        }
    }

    fn publish_board(&self) {
        let interfaces = self.state.model.interfaces(&self.cfg);
        let global = self.state.model.states.record.global.unwrap_or_default();
        let mut board = self.deps.board.lock();
        board.status.checks_disabled = !self.cfg.check.enabled();
        board.set_routes(interfaces, global);
    }

    fn on_link(&mut self, info: LinkInfo) {
        if let Some(old) = self.state.model.links.get(&info.ifindex) {
            // Two or more carrier changes with the link usable before and after: the kernel
            // merged a down/up flap into this message (docs/kernel-facts.md §3). Report it as one.
            if old.usable()
                && info.usable()
                && info.carrier_changes >= old.carrier_changes.saturating_add(2)
            {
                tracing::info!(iface = %info.name, ifindex = info.ifindex, changes = info.carrier_changes - old.carrier_changes, "link flapped between two kernel messages");
                self.state.bounced.insert(info.name.clone());
            }
        }
        if !info.usable() {
            // Admin down flushes IPv6 addresses (and a link may come back without the IPv4
            // ones): apply manual addresses again when it is usable.
            self.state.done.forget_addresses(info.ifindex);
        }
        self.state.model.links.insert(info.ifindex, info);
    }

    /// The installed default routes through `info`'s link when this fact is its loss (it was
    /// usable and is not), to delete at once (the module doc's fast path).
    fn lost_routes(&self, info: &LinkInfo) -> Vec<KernelRoute> {
        let model = &self.state.model;
        let was_usable = model.links.get(&info.ifindex).is_some_and(|l| l.usable());
        if info.usable() || !was_usable || self.state.shutting_down {
            return Vec::new();
        }
        model
            .installed
            .values()
            .filter(|r| r.ifindex == info.ifindex)
            .cloned()
            .collect()
    }

    /// Deletes `lost` before anything else runs in this actor (reconciles also run under
    /// `ctx.wait`, so the two never interleave). A failure is only logged: the reconcile that
    /// follows lists the kernel and sweeps what is left.
    fn delete_at_once(&mut self, lost: Vec<KernelRoute>, ctx: &mut Context<Self>) {
        let routes = self.deps.routes.clone();
        for r in &lost {
            self.state
                .model
                .installed
                .retain(|_, installed| installed != r);
        }
        let deletes = async move {
            for r in lost {
                if let Err(e) = routes.delete(r.clone()).await {
                    tracing::debug!(error = %e, ifindex = r.ifindex, "fast delete of a lost link's route failed; the reconcile sweeps it");
                }
            }
        };
        ctx.wait(deletes.into_actor(self));
    }

    /// Resumes from the saved record (`transition::resume`) and the link dump, then reconciles.
    fn resume(
        &mut self,
        record: Result<EngineState, PortError>,
        dump: Result<Vec<LinkInfo>, PortError>,
        ctx: &mut Context<Self>,
    ) {
        let record = record.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot load interface state; starting empty");
            EngineState::default()
        });
        let hold = self.cfg.check.failback_hold;
        let (states, holds) = transition::resume(record, self.first_start, hold, Instant::now());
        self.state.model.states = states;
        for left in holds {
            ctx.run_later(left, |act, ctx| act.request_reconcile(ctx));
        }
        match dump {
            Ok(links) => {
                self.state.model.links = links.into_iter().map(|l| (l.ifindex, l)).collect()
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot dump links; will retry");
                self.schedule_retry(ctx);
            }
        }
        ctx.wait(self.reconcile_fut());
    }
}

impl Actor for RouteManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("route_manager").entered();
        let store = self.deps.store.clone();
        let links = self.deps.links.clone();
        let load = async move { (store.load().await, links.dump().await) };
        ctx.wait(
            load.into_actor(self)
                .map(|(record, dump), act, ctx| act.resume(record, dump, ctx)),
        );
        let period = self
            .cfg
            .route
            .reconcile_interval
            .max(Duration::from_millis(100));
        ctx.run_interval(period, |act, ctx| act.request_reconcile(ctx));
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// Internal: run a reconcile now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
struct Reconcile;

impl Handler<LinkChanged> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: LinkChanged, ctx: &mut Self::Context) {
        let _span =
            tracing::info_span!("route_manager", iface = %msg.0.name, ifindex = msg.0.ifindex)
                .entered();
        let lost = self.lost_routes(&msg.0);
        self.on_link(msg.0);
        if !lost.is_empty() {
            self.delete_at_once(lost, ctx);
        }
        self.request_reconcile(ctx);
    }
}

impl Handler<LinkRemoved> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: LinkRemoved, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("route_manager", ifindex = msg.ifindex).entered();
        self.state.model.links.remove(&msg.ifindex);
        self.state.done.forget_link(msg.ifindex);
        self.request_reconcile(ctx);
    }
}

impl Handler<LinkSnapshot> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: LinkSnapshot, ctx: &mut Self::Context) {
        let present: BTreeSet<u32> = msg.0.iter().map(|l| l.ifindex).collect();
        self.state.model.links.retain(|i, _| present.contains(i));
        for l in msg.0 {
            self.on_link(l);
        }
        self.request_reconcile(ctx);
    }
}

impl Handler<RoutesChanged> for RouteManager {
    type Result = ();
    fn handle(&mut self, _: RoutesChanged, ctx: &mut Self::Context) {
        self.request_reconcile(ctx);
    }
}

impl Handler<ConnectivityChanged> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: ConnectivityChanged, ctx: &mut Self::Context) {
        let _span =
            tracing::info_span!("route_manager", iface = %msg.iface, state = ?msg.state).entered();
        if !self.state.model.usable_managed(&msg.iface) {
            // A late result for a link that is gone: the link fact already set NONE.
            return;
        }
        let states = std::mem::take(&mut self.state.model.states);
        let device_events = self.cfg.dispatcher.device_events;
        let (states, changes) = transition::checked(
            states,
            &msg.iface,
            msg.state,
            &msg.reason,
            device_events,
            Instant::now(),
        );
        self.state.model.states = states;
        for c in changes {
            let ev = self.event(c);
            self.state.pending.push(ev);
        }
        if msg.state == Connectivity::Full && !self.cfg.check.failback_hold.is_zero() {
            ctx.run_later(self.cfg.check.failback_hold, |act, ctx| {
                act.request_reconcile(ctx)
            });
        }
        self.request_reconcile(ctx);
    }
}

impl Handler<GetUplinks> for RouteManager {
    type Result = MessageResult<GetUplinks>;
    fn handle(&mut self, _: GetUplinks, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.model.uplinks(&self.cfg))
    }
}

impl Handler<Reconfigure> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.cfg = msg.0;
        // A new metric or profile may change every route; the address cache stays valid.
        self.state.done.ra_metric.clear();
        self.request_reconcile(ctx);
    }
}

impl Handler<Shutdown> for RouteManager {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        self.state.shutting_down = true;
        AtomicResponse::new(Box::pin(self.reconcile_fut()))
    }
}

impl Handler<Reconcile> for RouteManager {
    type Result = ();
    fn handle(&mut self, _: Reconcile, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("route_manager").entered();
        ctx.wait(self.reconcile_fut());
    }
}
