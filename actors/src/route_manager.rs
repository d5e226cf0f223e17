//! RouteManager: the only writer of routes and the only producer of dispatcher events.
//!
//! Owns: the desired default route of every managed interface and family (configured metric,
//! plus the penalty while checks are on and the interface is not FULL past the fail-back hold,
//! made unique per family), the adoption of foreign default routes on managed interfaces, the
//! per-interface record (connectivity, `up` announced, learned gateways) persisted through the
//! `StateStore` port, and the sysctls it tunes (strict `rp_filter` → loose, `ra_defrtr_metric`).
//!
//! Talks to: LinkWatcher sends it link facts; ProbeScheduler sends it connectivity facts and asks
//! for the uplinks; it sends ProbeScheduler the uplinks when they change and pushes events into
//! the engine's `EventLog`, which Dispatcher drains.
//!
//! Level-triggered: every fact only updates its model and requests a reconcile, which lists the
//! kernel's default routes, computes the plan (`plan.rs`), applies it (additions and replacements
//! before deletions: never a moment without a default route), and only then turns the new
//! interface states into events, so the order is fixed: `down` → `device-connectivity-change` →
//! `connectivity-change`, and `up` before any connectivity event of that interface (docs/semantics.md §5).
//! Reconciles run one at a time (`ctx.wait`), also periodically and after failures.
//!
//! On failure: the supervisor restarts it; the new incarnation loads the record, dumps links,
//! lists routes and converges to the same table, without repeating `up` events (unless this is
//! the daemon's first start, when `up` is announced for every live uplink).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::time::Instant;

use crate::board::Board;
use crate::event_log::EventLog;
use crate::health::penalized;
use crate::messages::{
    ConnectivityChanged, GetUplinks, LinkChanged, LinkRemoved, LinkSnapshot, Reconfigure,
    ResetChecks, RouteInUseMoved, RoutesChanged, Shutdown, Uplink, UplinksChanged,
};
use crate::model::{
    Config, Connectivity, DeviceEvents, Event, EventKind, Family, FamilyConfig, IfaceAddr,
    IfaceMatch, IfaceName, KernelRoute, LinkInfo, Method, RpFilterPolicy, UplinkType,
};
use crate::peers::Slot;
use crate::persist::Persister;
use crate::plan::{assign, diff, unique_routes, Assigned, Ops, RouteWant};
use crate::ports::{
    EngineState, IfaceRecord, LinkSource, PortError, RouteTable, StateStore, Sysctl,
};
use crate::status::IfaceStatus;

/// `rtm_protocol` of router-advertised IPv6 routes (RTPROT_RA). The kernel installs them; we
/// never add or adopt one. Their metric follows `ra_defrtr_metric` (set to the effective metric,
/// then one Router Solicitation so the router's answer re-installs the route at it), and on link
/// loss we delete them (the kernel would keep them, `linkdown`; its own solicitation at link-up
/// brings them back). See README "How it behaves".
const RTPROT_RA: u8 = 9;

/// Longest RouteManager waits for the event journal before handling the next fact.
const JOURNAL_WAIT: Duration = Duration::from_secs(2);

/// First retry delay after a failed route write; doubles up to the reconcile interval.
const RETRY_MIN: Duration = Duration::from_millis(250);

/// Everything RouteManager needs from outside, shared by its incarnations.
#[derive(Clone)]
pub struct RouteDeps {
    pub links: Arc<dyn LinkSource>,
    pub routes: Arc<dyn RouteTable>,
    pub sysctl: Arc<dyn Sysctl>,
    pub store: Arc<dyn StateStore>,
    pub log: EventLog,
    /// Uplinks and check resets go to ProbeScheduler, route moves to FlowResetter, in the tree.
    pub uplinks: Slot<UplinksChanged>,
    pub reset_checks: Slot<ResetChecks>,
    pub moved: Slot<RouteInUseMoved>,
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
    links: BTreeMap<u32, LinkInfo>,
    record: EngineState,
    managed: Vec<Assigned>,
    /// The plan before the last one (events of interfaces that left it still name their profile).
    previous_managed: Vec<Assigned>,
    /// Routes believed installed after the last reconcile, per interface.
    installed: BTreeMap<(IfaceName, Family), KernelRoute>,
    /// Families with a known default route or gateway, per ifindex: a route we want (its
    /// gateway is known) or a router-advertised one.
    routed: BTreeMap<u32, BTreeSet<Family>>,
    full_since: HashMap<IfaceName, Instant>,
    /// Interfaces whose link bounced inside one kernel message (merged flap).
    bounced: BTreeSet<IfaceName>,
    /// Bounced interfaces still usable: ProbeScheduler must start their checks over.
    reset_checks: Vec<IfaceName>,
    /// Events produced by facts, waiting for their routes to be applied.
    queued: Vec<Event>,
    reconcile_requested: bool,
    shutting_down: bool,
    retry_delay: Duration,
    retry: Option<SpawnHandle>,
    last_uplinks: Vec<Uplink>,
    /// Sysctl work already done (per ifindex), so it is done once per link appearance.
    rp_filter_done: BTreeSet<u32>,
    ra_metric: BTreeMap<u32, u32>,
    /// Interfaces whose router-advertised routes we deleted on link loss: solicited again when
    /// the link is back (the kernel's own solicitation at link-up may be its only one, and may
    /// be lost while the router's side comes up).
    ra_deleted: BTreeSet<u32>,
    addresses_done: BTreeSet<(u32, IfaceAddr)>,
    /// Per family, the interface whose owned route has the lowest metric (the route in use)
    /// after the last applied reconcile, with its ifindex. Empty after a (re)start, so a restart
    /// never reports a move.
    in_use: BTreeMap<Family, (IfaceName, u32)>,
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

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn profile_of(&self, name: &IfaceName) -> Option<&crate::model::Profile> {
        // The previous plan names the profile of an interface that just left management.
        let a = self
            .state
            .managed
            .iter()
            .chain(&self.state.previous_managed)
            .find(|a| &a.name == name)?;
        self.cfg.profiles.get(a.profile?)
    }

    fn family_config(&self, a: &Assigned, family: Family) -> FamilyConfig {
        match a.profile.and_then(|i| self.cfg.profiles.get(i)) {
            Some(p) => match family {
                Family::V4 => p.ipv4.clone(),
                Family::V6 => p.ipv6.clone(),
            },
            None => adopted_family(a.uplink_type),
        }
    }

    fn dns_for(&self, name: &IfaceName) -> Vec<SocketAddr> {
        let profile_dns = self
            .profile_of(name)
            .map(|p| p.dns.clone())
            .unwrap_or_default();
        self.cfg.dns.servers_for(name, &profile_dns)
    }

    /// Families with a known default route or gateway on `a` (checks go only there).
    fn routed(&self, a: &Assigned) -> Vec<Family> {
        a.ifindex
            .and_then(|i| self.state.routed.get(&i))
            .map(|f| f.iter().copied().collect())
            .unwrap_or_default()
    }

    fn usable(&self, a: &Assigned) -> bool {
        a.ifindex
            .and_then(|i| self.state.links.get(&i))
            .is_some_and(LinkInfo::usable)
    }

    fn connectivity(&self, name: &IfaceName) -> Connectivity {
        self.state
            .record
            .interfaces
            .get(name)
            .map(|r| r.connectivity)
            .unwrap_or(Connectivity::None)
    }

    /// An `up` was announced for `name` and no `down` since.
    fn announced(&self, name: &IfaceName) -> bool {
        self.state
            .record
            .interfaces
            .get(name)
            .is_some_and(|r| r.announced_up)
    }

    /// Builds an event for `iface` (or the device when `None`).
    fn event(
        &self,
        kind: EventKind,
        iface: Option<&IfaceName>,
        state: Connectivity,
        previous: Connectivity,
        reason: String,
    ) -> Event {
        let profile = iface.and_then(|n| self.profile_of(n));
        let ip4_gateway = iface.and_then(|n| {
            self.state
                .installed
                .get(&(n.clone(), Family::V4))
                .and_then(|r| r.gateway)
                .or_else(|| learned(&self.state.record, n, Family::V4))
        });
        let ip4_nameservers = iface
            .map(|n| {
                self.dns_for(n)
                    .into_iter()
                    .map(|s| s.ip())
                    .filter(IpAddr::is_ipv4)
                    .collect()
            })
            .unwrap_or_default();
        Event {
            id: 0,
            kind,
            iface: iface.cloned(),
            state,
            previous,
            reason,
            connection_id: profile.map(|p| p.id.clone()),
            connection_uuid: profile.and_then(|p| p.uuid.clone()),
            ip4_gateway,
            ip4_nameservers,
            at_unix_ms: Self::now_ms(),
        }
    }

    /// Records a new connectivity for `name` and queues the device event docs/semantics.md §5 asks for.
    fn set_connectivity(&mut self, name: &IfaceName, new: Connectivity, reason: &str) {
        let rec = self
            .state
            .record
            .interfaces
            .entry(name.clone())
            .or_insert(IfaceRecord {
                connectivity: Connectivity::None,
                announced_up: false,
            });
        let previous = rec.connectivity;
        if previous == new {
            return;
        }
        rec.connectivity = new;
        if new == Connectivity::Full {
            self.state.full_since.insert(name.clone(), Instant::now());
        } else {
            self.state.full_since.remove(name);
        }
        tracing::info!(iface = %name, state = %new, previous = %previous, reason, "connectivity");
        let fire = match self.cfg.dispatcher.device_events {
            DeviceEvents::LeaveFull => previous == Connectivity::Full,
            DeviceEvents::All => true,
        };
        if fire {
            let ev = self.event(
                EventKind::DeviceConnectivityChange,
                Some(name),
                new,
                previous,
                reason.to_string(),
            );
            self.state.queued.push(ev);
        }
    }

    fn request_reconcile(&mut self, ctx: &mut Context<Self>) {
        if !self.state.reconcile_requested {
            self.state.reconcile_requested = true;
            ctx.notify(Reconcile);
        }
    }

    /// Lists, plans, applies, then updates interface states and emits events.
    fn reconcile_fut(&mut self) -> impl ActorFuture<Self, Output = ()> {
        self.state.reconcile_requested = false;
        let input = PlanInput {
            cfg: self.cfg.clone(),
            links: self.state.links.clone(),
            record: self.state.record.clone(),
            full_since: self.state.full_since.clone(),
            shutting_down: self.state.shutting_down,
            rp_filter_done: self.state.rp_filter_done.clone(),
            ra_metric: self.state.ra_metric.clone(),
            ra_deleted: self.state.ra_deleted.clone(),
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
            addresses_done: self.state.addresses_done.clone(),
        };
        let routes = self.deps.routes.clone();
        let sysctl = self.deps.sysctl.clone();
        async move {
            let kernel = match routes.list_defaults().await {
                Ok(k) => k,
                Err(e) => return Err(e),
            };
            let plan = input.plan(&kernel);
            let applied = apply(&*routes, &*sysctl, &plan).await;
            Ok((plan, applied))
        }
        .into_actor(self)
        .map(|result, act, ctx| act.after_apply(result, ctx))
    }

    fn after_apply(&mut self, result: Result<(Plan, Applied), PortError>, ctx: &mut Context<Self>) {
        let failed = match result {
            Err(e) => {
                tracing::error!(error = %e, "listing routes failed; will retry");
                true
            }
            Ok((plan, applied)) => {
                for f in &applied.failures {
                    tracing::warn!(error = %f, "route change failed; will retry");
                }
                self.state.routed = BTreeMap::new();
                for r in plan.desired.iter().chain(&plan.ra_routes) {
                    self.state
                        .routed
                        .entry(r.ifindex)
                        .or_default()
                        .insert(r.family);
                }
                self.state.previous_managed =
                    std::mem::replace(&mut self.state.managed, plan.managed);
                self.state.installed = plan
                    .desired
                    .iter()
                    .filter(|r| !applied.failed_routes.contains(r))
                    .filter_map(|r| {
                        let a = self
                            .state
                            .managed
                            .iter()
                            .find(|a| a.ifindex == Some(r.ifindex))?;
                        Some(((a.name.clone(), r.family), r.clone()))
                    })
                    .collect();
                for (name, gws) in plan.learned {
                    self.state.record.learned_gateways.insert(name, gws);
                }
                self.state.rp_filter_done.extend(applied.rp_filter_done);
                self.state.ra_metric.extend(applied.ra_metric);
                self.state.ra_deleted.extend(applied.ra_deleted);
                for i in &applied.resolicited {
                    self.state.ra_deleted.remove(i);
                }
                self.state.addresses_done.extend(applied.addresses_done);
                // `installed` holds only the routes whose write succeeded.
                self.report_moves();
                !applied.failures.is_empty()
            }
        };
        self.update_interface_states();
        self.update_global();
        // The board first, so observers read the state changes (link, route, connectivity)
        // before the dispatcher events they cause.
        self.publish_board();
        if self.flush_events() {
            // Events are acknowledged only once they are in the journal (docs/semantics.md §5): hold the
            // mailbox until then. The routes are already applied, so failover is not delayed.
            // Bounded: a stuck disk must never wedge routing; past the bound the events stay
            // queued in memory and reach the journal with its next write.
            let persisted = self.deps.log.persisted();
            let bounded = async move {
                if tokio::time::timeout(JOURNAL_WAIT, persisted).await.is_err() {
                    tracing::error!("event journal write is taking too long; going on without it");
                }
            };
            ctx.wait(bounded.into_actor(self));
        }
        self.record_holds();
        self.persister.submit(self.state.record.clone());
        ctx.spawn(self.persister.flush().into_actor(self));
        self.publish_uplinks();
        let reset = std::mem::take(&mut self.state.reset_checks);
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
        for family in [Family::V4, Family::V6] {
            let now = self
                .state
                .installed
                .iter()
                .filter(|((_, f), _)| *f == family)
                .min_by_key(|(_, r)| r.metric)
                .map(|((name, _), r)| (name.clone(), r.ifindex));
            let before = match &now {
                Some(n) => self.state.in_use.insert(family, n.clone()),
                // No route at all: nothing moved *to* another interface; keep the last one so
                // the move is reported when a route comes back elsewhere.
                None => continue,
            };
            let (Some((from, from_ifindex)), Some((to, _))) = (before, now) else {
                continue;
            };
            if from == to {
                continue;
            }
            let metric_of = |name: &IfaceName| {
                self.state
                    .managed
                    .iter()
                    .find(|a| &a.name == name)
                    .map(|a| self.family_config(a, family).metric.get())
            };
            let failback =
                matches!((metric_of(&to), metric_of(&from)), (Some(t), Some(f)) if t < f);
            tracing::info!(family = ?family, from = %from, to = %to, failback, "route in use moved");
            self.deps.moved.do_send(RouteInUseMoved {
                family,
                from,
                from_ifindex,
                to,
                failback,
                at: Instant::now(),
            });
        }
    }

    /// Puts what is left of every running fail-back hold into the record, so a restart resumes
    /// it. Saved with each reconcile: after a crash the hold may last up to one reconcile
    /// interval longer, never shorter.
    fn record_holds(&mut self) {
        let hold = self.cfg.check.failback_hold;
        let now = Instant::now();
        let record = &mut self.state.record;
        record.failback_hold_ms = self
            .state
            .full_since
            .iter()
            .filter(|(name, _)| {
                record
                    .interfaces
                    .get(*name)
                    .is_some_and(|r| r.connectivity == Connectivity::Full)
            })
            .filter_map(|(name, since)| {
                let left = (*since + hold).checked_duration_since(now)?;
                (!left.is_zero()).then(|| (name.clone(), left.as_millis() as u64))
            })
            .collect();
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

    /// The interface lost its link (or left management): `down` if `up` was announced, then NONE
    /// (with its device event).
    fn lose(&mut self, name: &IfaceName, reason: &str) {
        if self.announced(name) {
            let prev = self.connectivity(name);
            let ev = self.event(
                EventKind::Down,
                Some(name),
                Connectivity::None,
                prev,
                reason.into(),
            );
            self.state.queued.push(ev);
            if let Some(r) = self.state.record.interfaces.get_mut(name) {
                r.announced_up = false;
            }
        }
        self.state.record.none_from_checks.remove(name);
        self.set_connectivity(name, Connectivity::None, reason);
    }

    /// NONE that the checks reported (kept while the link stays up), not a lost link's.
    fn none_from_checks(&self, name: &IfaceName) -> bool {
        self.state.record.none_from_checks.contains(name)
    }

    /// Level-triggered link → state: `down`/NONE for managed interfaces without a usable link,
    /// `up`/UNKNOWN for usable ones whose route is installed.
    fn update_interface_states(&mut self) {
        let managed = self.state.managed.clone();
        let facts = std::mem::take(&mut self.state.queued);
        // Interfaces with a record that are no longer managed: a vanished link matched by type,
        // by MAC or adopted (a named profile stays managed without its link), or a profile
        // removed on reload. Their scripts get `down` like any lost link.
        let departed: Vec<IfaceName> = self
            .state
            .record
            .interfaces
            .keys()
            .filter(|n| !managed.iter().any(|a| &a.name == *n))
            .cloned()
            .collect();
        for name in departed {
            let present = self.state.links.values().any(|l| l.name == name);
            if self.announced(&name) || self.connectivity(&name) != Connectivity::None {
                self.lose(
                    &name,
                    if present {
                        "no longer managed"
                    } else {
                        "interface gone"
                    },
                );
            }
        }
        for a in &managed {
            let usable = self.usable(a);
            let bounced = self.state.bounced.remove(&a.name);
            let announced = self.announced(&a.name);
            let lost_reason = match a.ifindex.and_then(|i| self.state.links.get(&i)) {
                None => "interface gone",
                Some(l) if !l.admin_up => "admin down",
                Some(l) if !l.carrier => "carrier lost",
                Some(_) => "carrier flapped (changes merged by the kernel)",
            };
            if (!usable || bounced)
                && (announced || self.connectivity(&a.name) != Connectivity::None)
            {
                self.lose(&a.name, lost_reason);
            }
            if !usable {
                continue;
            }
            if bounced {
                self.state.reset_checks.push(a.name.clone());
            }
            let has_route = self.state.installed.keys().any(|(n, _)| n == &a.name);
            let announced = self.announced(&a.name);
            if has_route && !announced {
                // The state the interface has once up: UNKNOWN until its first check (set just
                // below, after this event, so `up` precedes its device event).
                let previous = self.connectivity(&a.name);
                let state = if previous == Connectivity::None && !self.none_from_checks(&a.name) {
                    Connectivity::Unknown
                } else {
                    previous
                };
                let metric = self
                    .state
                    .installed
                    .get(&(a.name.clone(), Family::V4))
                    .or_else(|| self.state.installed.get(&(a.name.clone(), Family::V6)))
                    .map(|r| r.metric)
                    .unwrap_or_default();
                let ev = self.event(
                    EventKind::Up,
                    Some(&a.name),
                    state,
                    previous,
                    format!("link up, route installed (metric {metric})"),
                );
                self.state.queued.push(ev);
                self.state
                    .record
                    .interfaces
                    .entry(a.name.clone())
                    .or_insert(IfaceRecord {
                        connectivity: Connectivity::None,
                        announced_up: false,
                    })
                    .announced_up = true;
            }
            if self.routed(a).is_empty() {
                // No route to check through: NONE (docs/semantics.md: no link or no route), not UNKNOWN.
                self.set_connectivity(&a.name, Connectivity::None, "no default route or gateway");
            } else if self.connectivity(&a.name) == Connectivity::None
                && !self.none_from_checks(&a.name)
            {
                let reason = if self.cfg.check.enabled() {
                    "link up, not checked yet"
                } else {
                    "link up, checks disabled"
                };
                self.set_connectivity(&a.name, Connectivity::Unknown, reason);
            }
        }
        // Records of interfaces no longer managed are dropped (their events already went out).
        let names: BTreeSet<&IfaceName> = managed.iter().map(|a| &a.name).collect();
        self.state
            .record
            .interfaces
            .retain(|n, _| names.contains(n));
        self.state
            .record
            .none_from_checks
            .retain(|n| names.contains(n));
        // Order: facts produced before this reconcile, then this pass's events, which were
        // queued per interface in sequence: `down` → device event, then `up` → device event.
        let this_pass = std::mem::take(&mut self.state.queued);
        let mut ordered = facts;
        ordered.extend(this_pass);
        self.state.queued = ordered;
    }

    fn update_global(&mut self) {
        let global = Connectivity::global(
            self.state
                .managed
                .iter()
                .map(|a| self.connectivity(&a.name)),
        );
        let previous = self.state.record.global;
        if previous == Some(global) {
            return;
        }
        self.state.record.global = Some(global);
        // Before the first announcement the device had no connectivity to speak of.
        let previous = previous.unwrap_or(Connectivity::None);
        let reason = format!("global connectivity {previous} -> {global}");
        let ev = self.event(
            EventKind::ConnectivityChange,
            None,
            global,
            previous,
            reason,
        );
        self.state.queued.push(ev);
    }

    /// Hands the queued events to the log; true if there were any.
    fn flush_events(&mut self) -> bool {
        let events = std::mem::take(&mut self.state.queued);
        let any = !events.is_empty();
        for ev in events {
            self.deps.log.push(ev);
        }
        any
    }

    fn uplinks(&self) -> Vec<Uplink> {
        self.state
            .managed
            .iter()
            .filter_map(|a| {
                Some(Uplink {
                    name: a.name.clone(),
                    ifindex: a.ifindex?,
                    usable: self.usable(a),
                    dns: self.dns_for(&a.name),
                    routed: self.routed(a),
                    connectivity: self.connectivity(&a.name),
                    metric: self.family_config(a, Family::V4).metric.get(),
                })
            })
            .collect()
    }

    fn publish_uplinks(&mut self) {
        let uplinks = self.uplinks();
        if uplinks != self.state.last_uplinks {
            self.deps.uplinks.do_send(UplinksChanged(uplinks.clone()));
            self.state.last_uplinks = uplinks;
        }
    }

    fn publish_board(&self) {
        let mut board = self.deps.board.lock();
        let old = &board.status.interfaces;
        let interfaces = self
            .state
            .managed
            .iter()
            .map(|a| {
                let mut s = old
                    .iter()
                    .find(|s| s.name == a.name)
                    .cloned()
                    .unwrap_or_else(|| empty_status(a.name.clone(), a.uplink_type));
                let link = a.ifindex.and_then(|i| self.state.links.get(&i));
                s.ifindex = a.ifindex;
                s.link = match link {
                    None => "absent".into(),
                    Some(l) if l.usable() => "up".into(),
                    Some(_) => "down".into(),
                };
                s.connectivity = self.connectivity(&a.name);
                let v4 = self.family_config(a, Family::V4);
                let v6 = self.family_config(a, Family::V6);
                s.metric = v4.metric.get();
                s.metric6 = v6.metric.get();
                let r4 = self.state.installed.get(&(a.name.clone(), Family::V4));
                let r6 = self.state.installed.get(&(a.name.clone(), Family::V6));
                s.effective_metric = r4.map(|r| r.metric);
                s.effective_metric6 = r6.map(|r| r.metric);
                s.gateway4 = r4.and_then(|r| r.gateway);
                s.gateway6 = r6.and_then(|r| r.gateway);
                s.uplink_type = a.uplink_type;
                s.source = match a.profile.and_then(|i| self.cfg.profiles.get(i)) {
                    Some(p) => format!("profile {} ({})", p.id, p.file.display()),
                    None => "adopted".into(),
                };
                s.dns = self.dns_for(&a.name);
                s
            })
            .collect();
        board.set_interfaces(interfaces, self.state.record.global.unwrap_or_default());
    }

    fn on_link(&mut self, info: LinkInfo) {
        if let Some(old) = self.state.links.get(&info.ifindex) {
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
            self.state
                .addresses_done
                .retain(|(i, _)| *i != info.ifindex);
        }
        self.state.links.insert(info.ifindex, info);
    }
}

/// Settings of an adopted interface: the per-type default metric, gateway learned.
fn adopted_family(t: UplinkType) -> FamilyConfig {
    FamilyConfig {
        manage_default: true,
        method: Method::Auto,
        metric: t.default_metric(),
        addresses: Vec::new(),
        gateway: None,
    }
}

fn learned(record: &EngineState, name: &IfaceName, family: Family) -> Option<IpAddr> {
    record
        .learned_gateways
        .get(name)?
        .iter()
        .find(|g| Family::of(g) == family)
        .copied()
}

fn empty_status(name: IfaceName, uplink_type: UplinkType) -> IfaceStatus {
    IfaceStatus {
        name,
        ifindex: None,
        link: "absent".into(),
        connectivity: Connectivity::None,
        metric: 0,
        effective_metric: None,
        metric6: 0,
        effective_metric6: None,
        gateway4: None,
        gateway6: None,
        uplink_type,
        source: String::new(),
        dns: Vec::new(),
        last_check: None,
        probe_bytes: 0,
        probe_dns_bytes: 0,
        checks: Default::default(),
        passive: Default::default(),
    }
}

/// A consistent copy of what planning needs, so the plan is computed inside the reconcile
/// future against the route listing it just made.
struct PlanInput {
    cfg: Arc<Config>,
    links: BTreeMap<u32, LinkInfo>,
    record: EngineState,
    full_since: HashMap<IfaceName, Instant>,
    shutting_down: bool,
    rp_filter_done: BTreeSet<u32>,
    ra_metric: BTreeMap<u32, u32>,
    ra_deleted: BTreeSet<u32>,
    addresses_done: BTreeSet<(u32, IfaceAddr)>,
    /// Control devices of profiles and the network interface each has now.
    control_nets: BTreeMap<String, IfaceName>,
}

/// The outcome of planning: route ops plus kernel settings to apply first.
struct Plan {
    managed: Vec<Assigned>,
    desired: Vec<KernelRoute>,
    ops: Ops,
    learned: Vec<(IfaceName, Vec<IpAddr>)>,
    /// (ifindex, name) whose rp_filter must be checked.
    rp_filter: Vec<(u32, IfaceName)>,
    /// (ifindex, name, metric) for `ra_defrtr_metric`.
    ra_metric: Vec<(u32, IfaceName, u32)>,
    addresses: Vec<(u32, IfaceAddr)>,
    rp_policy: RpFilterPolicy,
    /// The kernel's router-advertised IPv6 default routes.
    ra_routes: Vec<KernelRoute>,
    /// Router-advertised routes of interfaces whose link is lost: deleted.
    ra_delete: Vec<KernelRoute>,
    /// (ifindex, name) of links back after we deleted their router-advertised routes.
    ra_resolicit: Vec<(u32, IfaceName)>,
}

impl PlanInput {
    fn plan(&self, kernel: &[KernelRoute]) -> Plan {
        let protocol = self.cfg.route.protocol;
        // Router-advertised IPv6 routes belong to the kernel: never adopted or swept.
        let visible: Vec<KernelRoute> = kernel
            .iter()
            .filter(|r| r.protocol != RTPROT_RA)
            .cloned()
            .collect();
        let holds: BTreeSet<u32> = visible.iter().map(|r| r.ifindex).collect();
        let sticky: BTreeSet<IfaceName> = self.record.learned_gateways.keys().cloned().collect();
        // Control devices found now map to their interface; the rest fall back (plan::assign).
        let profiles: Vec<crate::model::Profile> = self
            .cfg
            .profiles
            .iter()
            .map(|p| match &p.matches {
                IfaceMatch::ControlDevice(dev) => match self.control_nets.get(dev) {
                    Some(name) => crate::model::Profile {
                        matches: IfaceMatch::Name(name.clone()),
                        ..p.clone()
                    },
                    None => p.clone(),
                },
                _ => p.clone(),
            })
            .collect();
        let managed = assign(&profiles, self.cfg.adopt, &self.links, &holds, &sticky);
        let now = Instant::now();
        let mut wants = Vec::new();
        let mut sweep = BTreeSet::new();
        let mut learned_out = Vec::new();
        let mut rp_filter = Vec::new();
        let mut ra_metric = Vec::new();
        let mut ra_delete = Vec::new();
        let mut ra_resolicit = Vec::new();
        let mut addresses = Vec::new();
        let mut managed_pairs = BTreeSet::new();
        for a in &managed {
            let Some(ifindex) = a.ifindex else { continue };
            let Some(link) = self.links.get(&ifindex) else {
                continue;
            };
            let usable = link.usable();
            let state = self
                .record
                .interfaces
                .get(&a.name)
                .map(|r| r.connectivity)
                .unwrap_or(Connectivity::None);
            let penalty = if !self.shutting_down
                && penalized(
                    self.cfg.check.enabled(),
                    state,
                    self.full_since.get(&a.name).copied(),
                    self.cfg.check.failback_hold,
                    now,
                ) {
                self.cfg.route.penalty
            } else {
                0
            };
            let mut gws_learned = Vec::new();
            for family in [Family::V4, Family::V6] {
                let fc = match a.profile.and_then(|i| self.cfg.profiles.get(i)) {
                    Some(p) if family == Family::V4 => p.ipv4.clone(),
                    Some(p) => p.ipv6.clone(),
                    None => adopted_family(a.uplink_type),
                };
                if !fc.manage_default {
                    continue;
                }
                managed_pairs.insert((family, ifindex));
                let mut metric = fc.metric.get();
                if family == Family::V6 && metric == 0 {
                    metric = 1024; // the kernel stores IPv6 metric 0 as 1024
                }
                let effective = metric.saturating_add(penalty);
                let mut foreign: Vec<&KernelRoute> = visible
                    .iter()
                    .filter(|r| {
                        r.ifindex == ifindex && r.family == family && r.protocol != protocol
                    })
                    .collect();
                foreign.sort_by_key(|r| r.metric);
                let owned = visible
                    .iter()
                    .find(|r| r.ifindex == ifindex && r.family == family && r.protocol == protocol);
                let gateway: Option<Option<IpAddr>> = match fc.method {
                    Method::Manual => fc.gateway.filter(|g| Family::of(g) == family).map(Some),
                    Method::Auto => foreign
                        .first()
                        .map(|r| r.gateway)
                        .or_else(|| learned(&self.record, &a.name, family).map(Some))
                        .or_else(|| owned.map(|r| r.gateway)),
                };
                if let Some(Some(gw)) = gateway {
                    if fc.method == Method::Auto {
                        gws_learned.push(gw);
                    }
                }
                if family == Family::V6
                    && usable
                    && self.ra_metric.get(&ifindex) != Some(&effective)
                {
                    ra_metric.push((ifindex, a.name.clone(), effective));
                }
                if family == Family::V6 && usable && self.ra_deleted.contains(&ifindex) {
                    ra_resolicit.push((ifindex, a.name.clone()));
                }
                if !usable {
                    sweep.insert((family, ifindex));
                    if family == Family::V6 {
                        ra_delete.extend(
                            kernel
                                .iter()
                                .filter(|r| r.protocol == RTPROT_RA && r.ifindex == ifindex)
                                .cloned(),
                        );
                    }
                    continue;
                }
                if let Some(gateway) = gateway {
                    if fc.method == Method::Manual {
                        for addr in fc
                            .addresses
                            .iter()
                            .filter(|ad| Family::of(&ad.addr) == family)
                        {
                            if !self.addresses_done.contains(&(ifindex, *addr)) {
                                addresses.push((ifindex, *addr));
                            }
                        }
                    }
                    wants.push(RouteWant {
                        family,
                        ifindex,
                        gateway,
                        metric: effective,
                    });
                    sweep.insert((family, ifindex));
                }
            }
            if !gws_learned.is_empty() {
                learned_out.push((a.name.clone(), gws_learned));
            }
            if usable && !self.rp_filter_done.contains(&ifindex) {
                rp_filter.push((ifindex, a.name.clone()));
            }
        }
        // Metrics held by routes we neither own nor sweep must not be reused.
        let reserved: BTreeSet<(Family, u32)> = kernel
            .iter()
            .filter(|r| r.protocol != protocol && !sweep.contains(&(r.family, r.ifindex)))
            .map(|r| (r.family, r.metric))
            .collect();
        let desired = unique_routes(wants, &reserved, protocol);
        let ops = diff(&desired, &visible, protocol, &sweep);
        Plan {
            managed,
            desired,
            ops,
            learned: learned_out,
            rp_filter,
            ra_metric,
            addresses,
            rp_policy: self.cfg.route.rp_filter,
            ra_routes: kernel
                .iter()
                .filter(|r| r.protocol == RTPROT_RA)
                .cloned()
                .collect(),
            ra_delete,
            ra_resolicit,
        }
    }
}

/// What applying a plan did.
#[derive(Default)]
struct Applied {
    failures: Vec<PortError>,
    failed_routes: Vec<KernelRoute>,
    rp_filter_done: Vec<u32>,
    ra_metric: Vec<(u32, u32)>,
    ra_deleted: Vec<u32>,
    resolicited: Vec<u32>,
    addresses_done: Vec<(u32, IfaceAddr)>,
}

/// Applies a plan: addresses and sysctls, then replacements and additions, then deletions.
/// Keeps going after a failure and reports every one (the next reconcile retries).
async fn apply(routes: &dyn RouteTable, sysctl: &dyn Sysctl, plan: &Plan) -> Applied {
    let mut out = Applied::default();
    for (ifindex, name) in &plan.rp_filter {
        match relax_rp_filter(sysctl, name, plan.rp_policy).await {
            Ok(()) => out.rp_filter_done.push(*ifindex),
            Err(e) => out.failures.push(e),
        }
    }
    for (ifindex, name, metric) in &plan.ra_metric {
        let key = format!("net.ipv6.conf.{name}.ra_defrtr_metric");
        match sysctl.write(key, metric.to_string()).await {
            Ok(()) => {
                out.ra_metric.push((*ifindex, *metric));
                // The setting applies to the next advertisement; ask for one now, so a route
                // already there moves to the new metric (the kernel updates it in place; adding
                // it ourselves would lose its lifetime and duplicate it on the next RA).
                if plan
                    .ra_routes
                    .iter()
                    .any(|r| r.ifindex == *ifindex && r.metric != *metric)
                {
                    tracing::info!(iface = %name, metric, "router-advertised route: metric changed, soliciting a new advertisement");
                    if let Err(e) = routes.solicit_router(*ifindex, name.clone()).await {
                        // Not retried: the router's next periodic advertisement applies it.
                        tracing::warn!(iface = %name, error = %e, "router solicitation failed");
                    }
                }
            }
            // Kernels before 5.16 have no ra_defrtr_metric; nothing to retry.
            Err(PortError::NotFound { .. }) => out.ra_metric.push((*ifindex, *metric)),
            Err(e) => out.failures.push(e),
        }
    }
    for (ifindex, addr) in &plan.addresses {
        match routes.ensure_address(*ifindex, *addr).await {
            Ok(()) => out.addresses_done.push((*ifindex, *addr)),
            Err(e) => out.failures.push(e),
        }
    }
    for r in &plan.ops.replace {
        tracing::info!(ifindex = r.ifindex, metric = r.metric, gateway = ?r.gateway, "replacing default route");
        if let Err(e) = routes.replace(r.clone()).await {
            out.failures.push(e);
            out.failed_routes.push(r.clone());
        }
    }
    for r in &plan.ops.add {
        tracing::info!(ifindex = r.ifindex, metric = r.metric, gateway = ?r.gateway, "adding default route");
        if let Err(e) = routes.add(r.clone()).await {
            out.failures.push(e);
            out.failed_routes.push(r.clone());
        }
    }
    for r in plan.ops.delete.iter().chain(&plan.ra_delete) {
        tracing::info!(ifindex = r.ifindex, metric = r.metric, protocol = r.protocol, gateway = ?r.gateway, "deleting default route");
        match routes.delete(r.clone()).await {
            Ok(()) | Err(PortError::NotFound { .. }) => {
                if r.protocol == RTPROT_RA {
                    out.ra_deleted.push(r.ifindex);
                }
            }
            Err(e) => out.failures.push(e),
        }
    }
    for (ifindex, name) in &plan.ra_resolicit {
        tracing::info!(iface = %name, "link back: soliciting the router-advertised route again");
        match routes.solicit_router(*ifindex, name.clone()).await {
            Ok(()) => out.resolicited.push(*ifindex),
            // Tried again with the next reconcile (no link-local address yet, ...).
            Err(e) => tracing::warn!(iface = %name, error = %e, "router solicitation failed"),
        }
    }
    out
}

/// Strict reverse-path filtering drops the replies of every standby's checks (docs/semantics.md §3).
async fn relax_rp_filter(
    sysctl: &dyn Sysctl,
    name: &IfaceName,
    policy: RpFilterPolicy,
) -> Result<(), PortError> {
    let read = |k: String| async move {
        sysctl
            .read(k)
            .await
            .map(|v| v.trim().parse::<u8>().unwrap_or(0))
    };
    let all = read("net.ipv4.conf.all.rp_filter".into()).await?;
    let own_key = format!("net.ipv4.conf.{name}.rp_filter");
    let own = read(own_key.clone()).await?;
    // The kernel uses the larger of `all` and the interface's value; 2 (loose) beats 1.
    if all.max(own) != 1 {
        return Ok(());
    }
    match policy {
        RpFilterPolicy::Loose => {
            sysctl.write(own_key, "2".into()).await?;
            tracing::info!(iface = %name, "rp_filter was strict (1): set to loose (2) so standby checks get their replies");
        }
        RpFilterPolicy::Keep => {
            tracing::warn!(iface = %name, "rp_filter is strict (1): standby checks will likely fail (route.rp_filter = \"keep\")");
        }
    }
    Ok(())
}

impl Actor for RouteManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let store = self.deps.store.clone();
        let links = self.deps.links.clone();
        let load = async move { (store.load().await, links.dump().await) };
        ctx.wait(load.into_actor(self).map(|(record, dump), act, ctx| {
            match record {
                Ok(r) => act.state.record = r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot load interface state; starting empty")
                }
            }
            if act.first_start {
                for r in act.state.record.interfaces.values_mut() {
                    r.announced_up = false;
                }
            }
            // Resumed FULL interfaces keep what was left of a running fail-back hold (saved
            // with the record); the others have proven themselves already: no new hold.
            let hold = act.cfg.check.failback_hold;
            let now = Instant::now();
            let mut holds = Vec::new();
            for (name, r) in &act.state.record.interfaces {
                if r.connectivity != Connectivity::Full {
                    continue;
                }
                let left = act
                    .state
                    .record
                    .failback_hold_ms
                    .get(name)
                    .map(|ms| Duration::from_millis(*ms).min(hold))
                    .unwrap_or_default();
                // Clock too young to go back that far: start the hold now (errs on holding).
                let since = now.checked_sub(hold - left).unwrap_or(now);
                act.state.full_since.insert(name.clone(), since);
                if !left.is_zero() {
                    holds.push(left);
                }
            }
            for left in holds {
                ctx.run_later(left, |act, ctx| act.request_reconcile(ctx));
            }
            match dump {
                Ok(links) => act.state.links = links.into_iter().map(|l| (l.ifindex, l)).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot dump links; will retry");
                    act.schedule_retry(ctx);
                }
            }
            ctx.wait(act.reconcile_fut());
        }));
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
        self.on_link(msg.0);
        self.request_reconcile(ctx);
    }
}

impl Handler<LinkRemoved> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: LinkRemoved, ctx: &mut Self::Context) {
        self.state.links.remove(&msg.ifindex);
        self.state.rp_filter_done.remove(&msg.ifindex);
        self.state.ra_metric.remove(&msg.ifindex);
        self.state.ra_deleted.remove(&msg.ifindex);
        self.state.addresses_done.retain(|(i, _)| *i != msg.ifindex);
        self.request_reconcile(ctx);
    }
}

impl Handler<LinkSnapshot> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: LinkSnapshot, ctx: &mut Self::Context) {
        let present: BTreeSet<u32> = msg.0.iter().map(|l| l.ifindex).collect();
        self.state.links.retain(|i, _| present.contains(i));
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
        let usable = self
            .state
            .managed
            .iter()
            .find(|a| a.name == msg.iface)
            .is_some_and(|a| self.usable(a));
        if !usable {
            // A late result for a link that is gone: the link fact already set NONE.
            return;
        }
        // A NONE from the checks (an interface with no route to check through) is a result,
        // not the lack of one: it stays NONE until the checks say otherwise.
        if msg.state == Connectivity::None {
            self.state.record.none_from_checks.insert(msg.iface.clone());
        } else {
            self.state.record.none_from_checks.remove(&msg.iface);
        }
        self.set_connectivity(&msg.iface, msg.state, &msg.reason);
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
        MessageResult(self.uplinks())
    }
}

impl Handler<Reconfigure> for RouteManager {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.cfg = msg.0;
        // A new metric or profile may change every route; the address cache stays valid.
        self.state.ra_metric.clear();
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
        ctx.wait(self.reconcile_fut());
    }
}
