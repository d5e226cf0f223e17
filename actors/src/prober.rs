//! Prober: runs the connectivity checks of one interface on its own timer.
//!
//! Owns: the timer and the in-flight check of its interface. Each check goes through the
//! `Probe` port with a safety timeout on top of the probe's own; the result goes to
//! ProbeScheduler, whose reply says when to check next. A hung or failing check only delays
//! this interface. On failure (panic, kill) ProbeScheduler restarts it and it checks at once.
//!
//! Confirmation checks (passive health, `Confirm`) run outside the timer with their own short
//! deadline and leave the periodic timer alone: ProbeScheduler's [`NextCheck`] reply says
//! whether to confirm again at once, keep the timer, or reschedule it. A confirmation whose
//! short deadline passes goes on to the full timeout (its own result counts) when its check
//! already reached the server, or when TrafficWatcher saw traffic through the interface
//! answered since the confirmation started (a congested but working uplink: what only
//! suspects must never act). Otherwise it counts as failed at once, as in a silent blackhole.
//!
//! `CheckAfter` replaces the periodic timer (a metered standby that became needed: checked now,
//! not at its long cadence; docs/semantics.md §9.11).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures::future::Either;

use crate::actor_name::ActorName;
use crate::messages::{
    AnsweredSince, CheckAfter, CheckNow, ConfirmCheck, NextCheck, PeriodicDue, ProbeDone, Retarget,
};
use crate::model::IfaceName;
use crate::peers::Slot;
use crate::ports::{CheckProgress, Probe, ProbeReport, ProbeRequest, Verdict};

/// Added to the probe's own total timeout before the engine gives up on a check itself.
const SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// See the module doc.
pub struct Prober {
    request: ProbeRequest,
    probe: Arc<dyn Probe>,
    /// Where results go (its parent, ProbeScheduler, in the tree).
    done: Recipient<ProbeDone>,
    /// `prober` with this interface's `iface` and `ifindex`, entered in every handler.
    span: tracing::Span,
    /// Longest a check may take before it counts as LIMITED ("timed out").
    deadline: Duration,
    timer: Option<SpawnHandle>,
    in_flight: bool,
    /// Whether the interface's traffic was answered meanwhile (TrafficWatcher, in the tree).
    answered: Slot<AnsweredSince>,
    /// Asked when the periodic timer fires whether the check runs (its parent; none: always).
    gate: Option<Recipient<PeriodicDue>>,
}

impl Prober {
    pub fn new(
        request: ProbeRequest,
        probe: Arc<dyn Probe>,
        done: Recipient<ProbeDone>,
        probe_timeout: Duration,
    ) -> Self {
        let span = tracing::info_span!("prober", iface = %request.iface, ifindex = request.ifindex);
        Self {
            request,
            probe,
            done,
            span,
            deadline: probe_timeout + SAFETY_MARGIN,
            timer: None,
            in_flight: false,
            answered: Slot::default(),
            gate: None,
        }
    }

    /// Who decides whether a periodic check runs when its timer fires (see [`PeriodicDue`]).
    pub fn with_gate(mut self, gate: Recipient<PeriodicDue>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Where to ask whether the interface's traffic was answered (see the module doc).
    pub fn with_answered(mut self, answered: Slot<AnsweredSince>) -> Self {
        self.answered = answered;
        self
    }

    /// One check with the safety timeout applied; NONE without a check when the interface
    /// has no known default route or gateway in any family.
    fn checked(
        &self,
        deadline: Duration,
    ) -> impl std::future::Future<Output = ProbeReport> + 'static {
        if self.request.routed.is_empty() {
            // Through a socket bound to an interface without a route the kernel takes the
            // target as on-link and ARPs for it: the check would come back LIMITED, not NONE.
            let report = ProbeReport {
                verdict: Verdict::None,
                reason: format!("{} has no default route or gateway", self.request.iface),
                bytes: 0,
                dns_bytes: 0,
                elapsed: Duration::ZERO,
            };
            return Either::Left(std::future::ready(report));
        }
        let progress = Arc::new(CheckProgress::default());
        let mut fut = self
            .probe
            .check_with_progress(self.request.clone(), progress.clone());
        let started = tokio::time::Instant::now();
        let full = self.deadline;
        let late = move |after: Duration| ProbeReport {
            verdict: Verdict::Limited,
            reason: format!("check did not finish within {}s", after.as_secs_f64()),
            bytes: 0,
            dns_bytes: 0,
            elapsed: started.elapsed(),
        };
        let ask = self.answered.get().map(|to| {
            let msg = AnsweredSince {
                iface: self.request.iface.clone(),
                ifindex: self.request.ifindex,
                since: started,
            };
            (to, msg)
        });
        Either::Right(async move {
            match tokio::time::timeout(deadline, &mut fut).await {
                Ok(report) => return report,
                Err(_) if full <= deadline => return late(deadline),
                Err(_) => {}
            }
            // A confirmation's short deadline passed. After the check reached its server, the
            // path works and the server is slow; before, traffic answered meanwhile shows the
            // path works and is slow. Neither is a failure: the check goes on to the full
            // timeout and its own result counts.
            let why = if progress.connected() {
                "confirmation connected but slow; awaiting the full timeout"
            } else if answered(ask).await {
                "confirmation not connected, but traffic was answered; awaiting the full timeout"
            } else {
                return late(deadline);
            };
            tracing::debug!(deadline_ms = deadline.as_millis() as u64, "{why}");
            match tokio::time::timeout(full - deadline, fut).await {
                Ok(report) => report,
                Err(_) => late(full),
            }
        })
    }

    /// A periodic check (the timer fired, or a start): it replaces the timer.
    fn run_check(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        // A confirmation in flight stands in for this check: its result reschedules the timer.
        self.start(self.deadline, ctx);
    }

    /// The periodic timer fired: asks the gate, then checks, or sets the timer again when the
    /// gate skips this one. A gate that is gone or does not answer lets the check run.
    fn periodic(&mut self, ctx: &mut Context<Self>) {
        let Some(gate) = self.gate.clone() else {
            return self.run_check(ctx);
        };
        let due = PeriodicDue {
            iface: self.request.iface.clone(),
        };
        ctx.spawn(
            gate.send(due)
                .into_actor(self)
                .map(|answer, act, ctx| match answer {
                    Ok(Some(delay)) if act.timer.is_none() => act.set_timer(delay, ctx),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => act.run_check(ctx),
                }),
        );
    }

    fn set_timer(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_future(t);
        }
        self.timer = Some(ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.periodic(ctx)
        }));
    }

    fn start(&mut self, deadline: Duration, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        self.in_flight = true;
        let fut = self.checked(deadline);
        ctx.spawn(
            fut.into_actor(self)
                .then(|report, act, _| {
                    act.in_flight = false;
                    let done = ProbeDone {
                        iface: act.request.iface.clone(),
                        report,
                    };
                    act.done.send(done).into_actor(act)
                })
                .map(|next, act, ctx| match next {
                    Ok(Some(NextCheck::After(delay))) => act.set_timer(delay, ctx),
                    Ok(Some(NextCheck::Confirm(deadline))) => act.start(deadline, ctx),
                    Ok(Some(NextCheck::KeepTimer(fallback))) => {
                        if act.timer.is_none() {
                            act.set_timer(fallback, ctx);
                        }
                    }
                    // The scheduler no longer wants checks here, or is gone (it stops us anyway).
                    Ok(None) | Err(_) => ctx.stop(),
                }),
        );
    }
}

impl Actor for Prober {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        // Every start checks at once: a new link, a restart, or a resumed state to confirm.
        self.run_check(ctx);
    }
}

impl Handler<ConfirmCheck> for Prober {
    type Result = ();
    fn handle(&mut self, msg: ConfirmCheck, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        tracing::debug!(deadline_ms = msg.0.as_millis() as u64, "confirmation check");
        self.start(msg.0, ctx);
    }
}

impl Handler<CheckAfter> for Prober {
    type Result = ();
    fn handle(&mut self, msg: CheckAfter, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        tracing::debug!(after_s = msg.0.as_secs_f64(), "periodic check rescheduled");
        if msg.0.is_zero() {
            self.run_check(ctx);
        } else {
            self.set_timer(msg.0, ctx);
        }
    }
}

impl Handler<Retarget> for Prober {
    type Result = ();
    fn handle(&mut self, msg: Retarget, _: &mut Self::Context) {
        self.span = tracing::info_span!("prober", iface = %msg.0.iface, ifindex = msg.0.ifindex);
        self.request = msg.0;
    }
}

impl Handler<CheckNow> for Prober {
    type Result = ResponseActFuture<Self, ProbeReport>;
    fn handle(&mut self, _: CheckNow, _: &mut Self::Context) -> Self::Result {
        let _span = self.span.clone().entered();
        tracing::debug!("check requested");
        let fut = self.checked(self.deadline);
        Box::pin(fut.into_actor(self).then(|report, act, _| {
            // The result also counts as a regular check.
            let done = ProbeDone {
                iface: act.request.iface.clone(),
                report: report.clone(),
            };
            act.done.do_send(done);
            actix::fut::ready(report)
        }))
    }
}

/// Longest the question to TrafficWatcher may take (one local sample) before it counts as "no".
const ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// TrafficWatcher's answer to `ask`; no when it is not running or does not answer in time.
async fn answered(ask: Option<(Recipient<AnsweredSince>, AnsweredSince)>) -> bool {
    let Some((to, msg)) = ask else {
        return false;
    };
    matches!(
        tokio::time::timeout(ASK_TIMEOUT, to.send(msg)).await,
        Ok(Ok(true))
    )
}

/// The name of a prober in `status` and `kill`.
pub fn actor_name(iface: &IfaceName) -> String {
    ActorName::Prober(iface.clone()).to_string()
}
