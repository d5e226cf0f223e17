//! ProbeScheduler: one Prober per usable managed interface, and the check state machines.
//!
//! Owns: the set of Probers (started and stopped as RouteManager reports uplinks, restarted
//! when they fail, with the same restart policy machinery as the top-level supervisor), each
//! interface's `Health` (`health.rs`), and the check counters on the status board. It turns
//! probe results into connectivity facts for RouteManager, which stays the single producer of
//! events and the holder of each interface's recorded state.
//! The supervisor sends it `Reconfigure` on a reload (the last uplinks are applied again under
//! the new checks: Probers start, stop or are re-targeted) and `KillProber` / `CheckIface` for
//! `kill prober:IFACE` and `check`.
//!
//! On start (and restart) it asks RouteManager for the uplinks and their last recorded state,
//! resumes each interface from it (a restart neither drops penalties nor fails back onto a dead
//! primary) and checks every interface at once. When it stops, its Probers are aborted with it.
//!
//! Confirmations (passive health): on `Confirm` from TrafficWatcher a FULL interface becomes
//! *confirming*: its Prober checks at once with a short deadline ([`confirm_deadline`]) and, as
//! long as the checks fail without changing the state, again at once — until `down_count`
//! failures leave FULL (exactly as periodic failures would: same `Health`, same events) or one
//! passes (the suspicion ends and the periodic timer is left as it was). A standby named in the
//! request gets one such check if its last result is older than `recheck_max`.
//!
//! Metered uplinks (`metered.rs`, docs/semantics.md §9.11): each periodic check asks first
//! (`PeriodicDue`) and is skipped while TrafficWatcher reports two-way traffic through the
//! interface since its last check or skip (`TwoWayTraffic`); a metered standby's next periodic
//! check comes at the standby cadence. When such a standby becomes needed (the interface
//! carrying the route in use leaves FULL, loses its link, or the route moves) it is checked
//! at once — unless its last result is younger than `recheck_max`, then at `interval` after it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::actor_name::ActorName;
use crate::board::Board;
use crate::error::EngineError;
use crate::health::{Health, HealthParams};
use crate::messages::{
    AnsweredSince, BudgetExhausted, CheckIface, CheckNow, Confirm, ConfirmCheck,
    ConnectivityChanged, GetUplinks, KillProber, NextCheck, ProbeDone, ProbeSpent, Reconfigure,
    ResetChecks, Retarget, Uplink, UplinksChanged,
};
use crate::model::{Config, Connectivity, IfaceName};
use crate::peers::Slot;
use crate::ports::{Probe, ProbeReport, ProbeRequest};
use crate::prober::{actor_name, Prober};
use crate::status::CheckSummary;
use crate::supervision::{ChildSlot, Decision, Exit, RestartPolicy};

mod standby;

/// How often to ask RouteManager for the uplinks while it is not running.
const UPLINKS_RETRY: Duration = Duration::from_millis(200);

/// Restart policy of each Prober: a flapping prober is restarted with back-off; one that keeps
/// failing makes the scheduler itself fail, which its supervisor then handles.
pub const PROBER_POLICY: RestartPolicy = RestartPolicy {
    intensity: 5,
    period: Duration::from_secs(60),
    backoff_min: Duration::from_millis(100),
    backoff_max: Duration::from_secs(5),
};

/// Shared dependencies of every incarnation.
#[derive(Clone)]
pub struct ProbeDeps {
    pub probe: Arc<dyn Probe>,
    /// Connectivity facts and the uplinks request go to RouteManager, in the tree.
    pub connectivity: Slot<ConnectivityChanged>,
    pub get_uplinks: Slot<GetUplinks>,
    /// Asked by a Prober whose confirmation ran out of its deadline unconnected (TrafficWatcher).
    pub answered_since: Slot<AnsweredSince>,
    /// Every check's bytes go to the Accountant.
    pub spent: Slot<ProbeSpent>,
    pub board: Board,
}

/// See the module doc.
pub struct ProbeScheduler {
    cfg: Arc<Config>,
    deps: ProbeDeps,
    state: State,
}

#[derive(Default)]
struct State {
    ifaces: BTreeMap<IfaceName, Probed>,
    last_uplinks: Vec<Uplink>,
    /// Metered uplinks whose monthly budget cannot take another check (the Accountant's
    /// [`BudgetExhausted`]): their periodic checks stop.
    budget_exhausted: BTreeSet<IfaceName>,
}

impl Probed {
    fn running(&self) -> Option<&Addr<Prober>> {
        self.prober.as_ref().filter(|_| self.child.is_running())
    }
}

struct Probed {
    request: ProbeRequest,
    health: Health,
    child: ChildSlot,
    /// The running Prober's address (only while `child` runs).
    prober: Option<Addr<Prober>>,
    /// While confirming a suspicion: the confirmation checks' deadline, and whether one check
    /// is all that was asked (a standby).
    confirming: Option<Confirming>,
    /// When the last result came, and how long that check took.
    last_result: Option<(tokio::time::Instant, Duration)>,
    /// When the last periodic check was skipped.
    last_skip: Option<tokio::time::Instant>,
    /// The latest sample that showed two-way traffic through it (metered only).
    two_way_at: Option<tokio::time::Instant>,
    /// Its periodic timer runs at the standby cadence (a metered standby not needed now).
    long: bool,
}

#[derive(Clone, Copy, Debug)]
struct Confirming {
    deadline: Duration,
    single: bool,
}

/// How long a confirmation check may take: long enough for the interface's own recent check
/// (three times its latency) and TCP round trips (eight RTTs: DNS, handshake, request, reply
/// with margin), never below `floor` (`passive.confirm_timeout_min`) nor above the check's own
/// total timeout.
pub fn confirm_deadline(
    floor: Duration,
    last_check: Option<Duration>,
    rtt: Option<Duration>,
    timeout: Duration,
) -> Duration {
    let from_check = last_check.map_or(Duration::ZERO, |d| d * 3);
    let from_rtt = rtt.map_or(Duration::ZERO, |d| d * 8);
    from_check.max(from_rtt).max(floor).min(timeout.max(floor))
}

impl ProbeScheduler {
    pub fn new(cfg: Arc<Config>, deps: ProbeDeps) -> Self {
        Self {
            cfg,
            deps,
            state: State::default(),
        }
    }

    fn params(&self) -> HealthParams {
        HealthParams::from(&self.cfg.check)
    }

    fn ask_uplinks(&mut self, ctx: &mut Context<Self>) {
        let Some(rm) = self.deps.get_uplinks.get() else {
            ctx.run_later(UPLINKS_RETRY, |act, ctx| act.ask_uplinks(ctx));
            return;
        };
        ctx.spawn(
            rm.send(GetUplinks)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(uplinks) => act.apply_uplinks(uplinks, ctx),
                    Err(_) => {
                        ctx.run_later(UPLINKS_RETRY, |act, ctx| act.ask_uplinks(ctx));
                    }
                }),
        );
    }

    fn apply_uplinks(&mut self, uplinks: Vec<Uplink>, ctx: &mut Context<Self>) {
        self.state.last_uplinks = uplinks.clone();
        let wanted: Vec<&Uplink> = if self.cfg.check.enabled() {
            uplinks.iter().filter(|u| u.usable).collect()
        } else {
            Vec::new()
        };
        let gone: Vec<IfaceName> = self
            .state
            .ifaces
            .keys()
            .filter(|n| !wanted.iter().any(|u| &u.name == *n))
            .cloned()
            .collect();
        for name in gone {
            self.stop_prober(&name);
        }
        for u in wanted {
            let request = ProbeRequest {
                iface: u.name.clone(),
                ifindex: u.ifindex,
                dns: u.dns.clone(),
                routed: u.routed.clone(),
            };
            match self.state.ifaces.get_mut(&u.name) {
                None => {
                    self.state.ifaces.insert(
                        u.name.clone(),
                        Probed {
                            request,
                            health: Health::new(u.connectivity),
                            child: ChildSlot::default(),
                            prober: None,
                            confirming: None,
                            last_result: None,
                            last_skip: None,
                            two_way_at: None,
                            long: false,
                        },
                    );
                    self.start_prober(&u.name, ctx);
                }
                Some(p) => {
                    if p.request.routed.is_empty() != request.routed.is_empty() {
                        // A route appeared (DHCP done, RA received, the address back after a
                        // carrier return) or the last one went (address lost): either way a
                        // link that (just) came back, UNKNOWN, whatever was recorded before
                        // the wait. A new route is checked now and its first result decides
                        // (docs/semantics.md §9.2); without one, nothing is checked.
                        p.request = request;
                        p.health = Health::new(Connectivity::Unknown);
                        self.restart_prober_now(&u.name, ctx);
                        continue;
                    }
                    if p.request != request {
                        p.request = request.clone();
                        if let Some(addr) = p.running() {
                            addr.do_send(Retarget(request));
                        }
                    }
                    // RouteManager's snapshot may be older than our latest result (it was sent
                    // before our last ConnectivityChanged reached it), so a difference is never
                    // taken as a reset: RouteManager says so explicitly (`ResetChecks`). With a
                    // result of our own, we repeat it (harmless when RouteManager has it, a repair
                    // when it missed it while restarting); with none yet, the next one decides.
                    let ours = p.health.state();
                    if ours != Connectivity::Unknown && u.connectivity != ours {
                        self.deps.connectivity.do_send(ConnectivityChanged {
                            iface: u.name.clone(),
                            state: ours,
                            reason: "resynchronised with the checks".into(),
                        });
                    }
                }
            }
        }
        self.wake_needed();
    }

    fn start_prober(&mut self, name: &IfaceName, ctx: &mut Context<Self>) {
        let timeout = self.cfg.check.timeout;
        let scheduler = ctx.address();
        let probe = self.deps.probe.clone();
        let Some(p) = self.state.ifaces.get_mut(name) else {
            return;
        };
        let prober = Prober::new(
            p.request.clone(),
            probe,
            scheduler.clone().recipient(),
            timeout,
        )
        .with_answered(self.deps.answered_since.clone())
        .with_gate(scheduler.clone().recipient());
        let iface = name.clone();
        let addr = p.child.start(prober, move |generation, exit| {
            scheduler.do_send(ProberExited {
                iface,
                generation,
                exit,
            });
        });
        p.prober = Some(addr);
        self.publish_actor(name);
    }

    fn restart_prober_now(&mut self, name: &IfaceName, ctx: &mut Context<Self>) {
        // `start` aborts the running incarnation first.
        self.start_prober(name, ctx);
    }

    fn stop_prober(&mut self, name: &IfaceName) {
        if let Some(mut p) = self.state.ifaces.remove(name) {
            p.child.stop();
        }
        let actor = actor_name(name);
        self.deps.board.lock().remove_actor(&actor);
    }

    fn publish_actor(&self, name: &IfaceName) {
        let Some(p) = self.state.ifaces.get(name) else {
            return;
        };
        let status = p.child.status(actor_name(name));
        self.deps.board.lock().upsert_actor(status);
    }

    fn record_check(&self, name: &IfaceName, report: &ProbeReport) {
        let mut board = self.deps.board.lock();
        if let Some(s) = board.checks_mut(name) {
            let at_unix_ms = crate::ports::unix_ms_now();
            s.last_check = Some(CheckSummary {
                at_unix_ms,
                verdict: report.verdict,
                reason: report.reason.clone(),
                latency_ms: report.elapsed.as_secs_f64() * 1000.0,
                skipped: None,
            });
            s.probe_bytes += report.bytes;
            s.probe_dns_bytes += report.dns_bytes;
            s.checks
                .record(report.verdict, report.elapsed.as_secs_f64());
        }
        drop(board);
        if report.bytes > 0 {
            self.deps.spent.do_send(ProbeSpent {
                iface: name.clone(),
                bytes: report.bytes,
                dns_bytes: report.dns_bytes,
            });
        }
    }

    /// Whether the periodic check of `iface` is skipped for its budget: the budget of a metered
    /// uplink is exhausted, and the check would not decide a failover or a fail-back in the
    /// making (those, and confirmations, always run).
    fn budget_spent(&self, iface: &IfaceName) -> bool {
        self.state
            .ifaces
            .get(iface)
            .is_some_and(|p| self.state.budget_exhausted.contains(iface) && !p.health.deciding())
    }
}

impl Actor for ProbeScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("probe_scheduler").entered();
        tracing::debug!("asking RouteManager for the uplinks");
        self.ask_uplinks(ctx);
    }
}

impl Drop for ProbeScheduler {
    fn drop(&mut self) {
        // Probers are this actor's children: none outlives it (a restart starts fresh ones).
        let names: Vec<IfaceName> = self.state.ifaces.keys().cloned().collect();
        for name in names {
            self.stop_prober(&name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A Prober's task ended (sent by its exit watcher to this scheduler).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
struct ProberExited {
    pub iface: IfaceName,
    pub generation: u64,
    pub exit: Exit,
}

impl Handler<UplinksChanged> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: UplinksChanged, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("probe_scheduler").entered();
        self.apply_uplinks(msg.0, ctx);
    }
}

impl Handler<ResetChecks> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: ResetChecks, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("probe_scheduler").entered();
        for name in msg.0 {
            if let Some(p) = self.state.ifaces.get_mut(&name) {
                p.health = Health::new(Connectivity::Unknown);
                self.restart_prober_now(&name, ctx);
            }
        }
    }
}

impl ProbeScheduler {
    /// Starts confirming `iface` (one check only with `single`); false if it is not FULL, has
    /// no running Prober, or is confirming already.
    fn start_confirming(&mut self, iface: &IfaceName, rtt: Option<Duration>, single: bool) -> bool {
        let floor = self.cfg.passive.confirm_timeout_min;
        let timeout = self.cfg.check.timeout;
        let Some(p) = self.state.ifaces.get_mut(iface) else {
            return false;
        };
        if p.confirming.is_some() || p.health.state() != Connectivity::Full {
            return false;
        }
        let Some(addr) = p.running().cloned() else {
            return false;
        };
        let deadline = confirm_deadline(floor, p.last_result.map(|(_, d)| d), rtt, timeout);
        p.confirming = Some(Confirming { deadline, single });
        addr.do_send(ConfirmCheck(deadline));
        true
    }
}

impl Handler<Confirm> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: Confirm, _: &mut Self::Context) {
        let _span = tracing::info_span!("probe_scheduler", iface = %msg.iface).entered();
        if self.start_confirming(&msg.iface, msg.rtt, false) {
            tracing::info!(iface = %msg.iface, reason = %msg.reason, "passive health: confirming a suspected stall");
        }
        let stale_after = self.cfg.check.recheck_max;
        if let Some(standby) = msg.standby {
            let stale = self.state.ifaces.get(&standby).is_some_and(|p| {
                p.last_result
                    .is_none_or(|(at, _)| at.elapsed() > stale_after)
            });
            if stale && self.start_confirming(&standby, None, true) {
                tracing::info!(iface = %standby, "passive health: checking the standby that would take over");
            }
        }
    }
}

impl Handler<ProbeDone> for ProbeScheduler {
    type Result = Option<NextCheck>;
    fn handle(&mut self, msg: ProbeDone, _: &mut Self::Context) -> Self::Result {
        let span = tracing::info_span!(
            "probe_scheduler",
            iface = %msg.iface,
            state = tracing::field::Empty
        );
        let _span = span.clone().entered();
        let params = self.params();
        self.record_check(&msg.iface, &msg.report);
        let p = self.state.ifaces.get_mut(&msg.iface)?;
        tracing::debug!(iface = %msg.iface, verdict = ?msg.report.verdict, reason = %msg.report.reason, "check");
        p.last_result = Some((tokio::time::Instant::now(), msg.report.elapsed));
        let step = p.health.on_result(msg.report.verdict, &params);
        let good = msg.report.verdict == crate::ports::Verdict::Full;
        let next = match p.confirming.take() {
            None => NextCheck::After(step.next_check),
            Some(c) => {
                let mut board = self.deps.board.lock();
                if let Some(s) = board.checks_mut(&msg.iface) {
                    s.confirmations += 1;
                    s.confirmations_failed += u64::from(!good);
                }
                drop(board);
                if step.changed.is_some() || (!good && c.single) {
                    // Left FULL (or a standby failed once): from here on exactly the periodic
                    // path's schedule.
                    NextCheck::After(step.next_check)
                } else if good {
                    NextCheck::KeepTimer(step.next_check)
                } else {
                    p.confirming = Some(c);
                    NextCheck::Confirm(c.deadline)
                }
            }
        };
        let next = match next {
            NextCheck::After(delay) => NextCheck::After(self.periodic_delay(&msg.iface, delay)),
            other => other,
        };
        if let Some((previous, state)) = step.changed {
            span.record("state", tracing::field::debug(state));
            let reason = match (previous, state) {
                (Connectivity::Full, _) => {
                    format!("{} checks failed: {}", params.down_count, msg.report.reason)
                }
                (_, Connectivity::Full) if previous != Connectivity::Unknown => {
                    format!("{} checks passed: {}", params.up_count, msg.report.reason)
                }
                _ => format!("check: {}", msg.report.reason),
            };
            self.deps.connectivity.do_send(ConnectivityChanged {
                iface: msg.iface.clone(),
                state,
                reason,
            });
        }
        // Every result may change whether a standby is needed (a failure of the interface
        // carrying the route in use is being confirmed, or it left FULL).
        self.wake_needed();
        Some(next)
    }
}

impl Handler<ProberExited> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: ProberExited, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("probe_scheduler", iface = %msg.iface).entered();
        let Some(p) = self.state.ifaces.get_mut(&msg.iface) else {
            return;
        };
        let now = tokio::time::Instant::now();
        // `None`: an older incarnation, already replaced.
        let Some(decision) = p
            .child
            .on_exit(msg.generation, msg.exit, &PROBER_POLICY, now)
        else {
            return;
        };
        match decision {
            Decision::Restart(delay) => {
                tracing::warn!(exit = ?msg.exit, delay_ms = delay.as_millis() as u64, "prober exited; restarting");
                let iface = msg.iface.clone();
                ctx.run_later(delay, move |act, ctx| {
                    if act
                        .state
                        .ifaces
                        .get(&iface)
                        .is_some_and(|p| !p.child.is_running())
                    {
                        act.start_prober(&iface, ctx);
                    }
                });
            }
            Decision::Escalate => {
                tracing::error!("prober keeps failing; restarting the scheduler");
                ctx.stop();
            }
        }
        self.publish_actor(&msg.iface);
    }
}

impl Handler<KillProber> for ProbeScheduler {
    type Result = Result<(), EngineError>;
    fn handle(&mut self, msg: KillProber, _: &mut Self::Context) -> Self::Result {
        let name = ActorName::Prober(msg.iface.clone());
        let p = self
            .state
            .ifaces
            .get(&msg.iface)
            .ok_or_else(|| EngineError::UnknownActor {
                name: name.to_string(),
            })?;
        if p.child.kill(msg.how) {
            Ok(())
        } else {
            Err(EngineError::Unavailable { actor: name })
        }
    }
}

impl Handler<CheckIface> for ProbeScheduler {
    type Result = ResponseFuture<Result<ProbeReport, EngineError>>;
    fn handle(&mut self, msg: CheckIface, _: &mut Self::Context) -> Self::Result {
        let addr = self
            .state
            .ifaces
            .get(&msg.0)
            .and_then(|p| p.running().cloned());
        let cannot = move |reason: String| EngineError::CannotCheck {
            iface: msg.0.to_string(),
            reason,
        };
        Box::pin(async move {
            let Some(addr) = addr else {
                return Err(cannot(
                    "not being checked (no link, not managed, or checks disabled)".into(),
                ));
            };
            addr.send(CheckNow)
                .await
                .map_err(|e| cannot(format!("its prober: {e}")))
        })
    }
}

impl Handler<BudgetExhausted> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: BudgetExhausted, _: &mut Self::Context) {
        self.state.budget_exhausted = msg.0;
    }
}

impl Handler<Reconfigure> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let old = std::mem::replace(&mut self.cfg, msg.0);
        self.retime_standbys(&old);
        let uplinks = self.state.last_uplinks.clone();
        self.apply_uplinks(uplinks, ctx);
    }
}
