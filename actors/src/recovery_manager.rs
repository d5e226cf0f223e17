//! RecoveryManager: the recovery ladder (`docs/recovery.md`). An uplink with link that stays
//! not FULL gets, once per episode, `relink`, then `reconnect`, then (cellular) `modem-reset`;
//! globally, off by default, a guarded `reboot`.
//!
//! Owns: the episodes and their timers (the pure rules are `recovery.rs`: when a rung is due,
//! and the reboot rule), the calls to the `Recovery` port (one at a time, each bounded by
//! [`ACTION_TIMEOUT`]), the `recovery` dispatcher events it pushes into the engine's `EventLog`
//! (with the result, after the action; for `reboot` before it: the event is journaled and its
//! scripts get [`ANNOUNCE_WAIT`] before the reboot is requested), the persisted reboot times
//! (through the port, written before a reboot is requested) and the board's `recovery` part.
//!
//! Talks to: RouteManager sends it the uplinks ([`UplinkStates`]) whenever they change; it asks
//! RouteManager for them on start ([`GetUplinks`]). The ladder only runs while checks are on
//! (with checks off every state stays UNKNOWN and nothing is known to be wedged).
//!
//! On failure: restarted; the episodes start over from the uplinks as they are now (a restart
//! delays a rung, never repeats one sooner) and the reboot times are read back from the port.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::time::Instant;

use crate::board::Board;
use crate::event_log::EventLog;
use crate::messages::{GetUplinks, Reconfigure, Uplink, UplinkStates};
use crate::model::{Config, Connectivity, Event, EventKind, IfaceName, RecoveryInfo};
use crate::peers::Slot;
use crate::ports::{ActionOutcome, Recovery, RecoveryAction, RecoveryTarget};
use crate::recovery::{reboot_verdict, Ladder, RebootVerdict};
use crate::status::{IfaceRecovery, RecoveryStatus};

/// Longest one action may take; past it, it is recorded as failed.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a reboot waits for its `recovery` event's scripts.
pub const ANNOUNCE_WAIT: Duration = Duration::from_secs(60);

/// Reboot times kept in `persist_dir` (the newest ones).
const REBOOTS_KEPT: usize = 16;

/// Everything RecoveryManager needs from outside, shared by its incarnations.
#[derive(Clone)]
pub struct RecoveryDeps {
    pub recovery: Arc<dyn Recovery>,
    pub get_uplinks: Slot<GetUplinks>,
    pub log: EventLog,
    pub board: Board,
}

/// See the module doc.
pub struct RecoveryManager {
    cfg: Arc<Config>,
    deps: RecoveryDeps,
    ladder: Ladder,
    uplinks: Vec<Uplink>,
    /// Persisted reboot times, Unix ms (`None` until loaded: no reboot before that).
    reboots: Option<Vec<u64>>,
    /// An action is running: the next evaluation waits for it.
    busy: bool,
    /// A reboot was requested by this incarnation: no other is.
    rebooted: bool,
    timer: Option<SpawnHandle>,
    /// Results of the rungs taken in each interface's current episode, for `status`.
    results: Vec<(IfaceName, String)>,
    status: RecoveryStatus,
}

impl RecoveryManager {
    pub fn new(cfg: Arc<Config>, deps: RecoveryDeps) -> Self {
        Self {
            cfg,
            deps,
            ladder: Ladder::new(Instant::now()),
            uplinks: Vec::new(),
            reboots: None,
            busy: false,
            rebooted: false,
            timer: None,
            results: Vec::new(),
            status: RecoveryStatus::default(),
        }
    }

    /// The ladder runs at all.
    fn active(&self) -> bool {
        self.cfg.recovery.enabled && self.cfg.check.enabled()
    }

    /// Takes what is due, then sleeps until the next rung or reboot decision.
    fn evaluate(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if !self.active() {
            self.ladder.episodes.clear();
            self.publish(None);
            return;
        }
        if self.busy {
            return;
        }
        let now = Instant::now();
        let due = self.ladder.due(&self.cfg.recovery, now);
        if !due.is_empty() {
            self.run_rungs(due, ctx);
            return;
        }
        let verdict = self.reboot_verdict(now);
        if verdict == RebootVerdict::Reboot && !self.rebooted && self.reboots.is_some() {
            self.reboot(ctx);
            return;
        }
        let reboot_wake = match verdict {
            RebootVerdict::Wait(d) | RebootVerdict::RateLimited(d) => Some(now + d),
            _ => None,
        };
        let wake = [self.ladder.next_wake(&self.cfg.recovery), reboot_wake]
            .into_iter()
            .flatten()
            .min();
        if let Some(at) = wake {
            let delay = at.saturating_duration_since(now);
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.evaluate(ctx);
            }));
        }
        self.publish(Some(verdict));
    }

    fn reboot_verdict(&self, now: Instant) -> RebootVerdict {
        let none_full_for = self
            .ladder
            .none_full_since
            .map(|s| now.saturating_duration_since(s));
        let last = self.reboots.as_ref().and_then(|r| r.last().copied());
        reboot_verdict(
            &self.cfg.recovery,
            none_full_for,
            crate::ports::unix_ms_now(),
            last,
        )
    }

    /// Runs the due rungs one after the other, then evaluates again.
    fn run_rungs(&mut self, due: Vec<(IfaceName, RecoveryAction)>, ctx: &mut Context<Self>) {
        self.busy = true;
        let port = self.deps.recovery.clone();
        let targets: Vec<(RecoveryAction, RecoveryTarget)> = due
            .into_iter()
            .filter_map(|(iface, action)| {
                let e = self.ladder.episodes.get(&iface)?;
                tracing::info!(iface = %iface, action = %action, "recovery: taking a rung");
                Some((
                    action,
                    RecoveryTarget {
                        ifindex: e.ifindex,
                        iface,
                    },
                ))
            })
            .collect();
        let work = async move {
            let mut out = Vec::new();
            for (action, target) in targets {
                let call = match action {
                    RecoveryAction::Relink => port.relink(target.clone()),
                    RecoveryAction::Reconnect => port.reconnect(target.clone()),
                    RecoveryAction::ModemReset => port.modem_reset(target.clone()),
                    RecoveryAction::Reboot => continue,
                };
                out.push((action, target.iface, bounded(call).await));
            }
            out
        };
        ctx.spawn(work.into_actor(self).map(|done, act, ctx| {
            for (action, iface, outcome) in done {
                act.record(action, Some(iface), &outcome);
            }
            act.busy = false;
            act.evaluate(ctx);
        }));
    }

    /// Logs, counts and announces one finished action.
    fn record(
        &mut self,
        action: RecoveryAction,
        iface: Option<IfaceName>,
        outcome: &ActionOutcome,
    ) {
        let name = iface.as_ref().map_or_else(String::new, |i| i.to_string());
        let _span = tracing::info_span!("recovery_manager", iface = %name).entered();
        match outcome {
            ActionOutcome::Done => {
                tracing::info!(action = %action, iface = ?iface, "recovery: {action} done")
            }
            ActionOutcome::Skipped(why) => {
                tracing::info!(action = %action, iface = ?iface, "recovery: {action} skipped: {why}")
            }
            ActionOutcome::Failed(why) => {
                tracing::warn!(action = %action, iface = ?iface, "recovery: {action} failed: {why}")
            }
        }
        *self
            .status
            .actions
            .entry(action.as_str().into())
            .or_default()
            .entry(outcome.label().into())
            .or_default() += 1;
        if let Some(iface) = &iface {
            self.results
                .push((iface.clone(), format!("{action}: {outcome}")));
        }
        if action != RecoveryAction::Reboot {
            self.announce(action, iface, outcome.to_string());
        }
    }

    /// Pushes the `recovery` dispatcher event; returns its id.
    fn announce(&self, action: RecoveryAction, iface: Option<IfaceName>, result: String) -> u64 {
        let now = Instant::now();
        let (since, state) = match &iface {
            Some(i) => self
                .ladder
                .episodes
                .get(i)
                .map_or((None, Connectivity::Unknown), |e| {
                    (Some(e.since), e.connectivity)
                }),
            None => (
                self.ladder.none_full_since,
                Connectivity::global(self.uplinks.iter().map(|u| u.connectivity)),
            ),
        };
        let not_full_seconds = since.map_or(0, |s| now.saturating_duration_since(s).as_secs());
        self.deps.log.push(Event {
            id: 0,
            kind: EventKind::Recovery,
            iface,
            state,
            previous: state,
            reason: format!("{action} after {not_full_seconds} s not FULL: {result}"),
            connection_id: None,
            connection_uuid: None,
            ip4_gateway: None,
            ip4_nameservers: vec![],
            at_unix_ms: crate::ports::unix_ms_now(),
            recovery: Some(Box::new(RecoveryInfo {
                action: action.as_str().into(),
                rung: action.rung(),
                not_full_seconds,
                result,
            })),
            budget: None,
        })
    }

    /// The reboot rung: persist the time, announce (journaled, scripts given their time), then
    /// request it.
    fn reboot(&mut self, ctx: &mut Context<Self>) {
        self.busy = true;
        self.rebooted = true;
        let mut reboots = self.reboots.clone().unwrap_or_default();
        reboots.push(crate::ports::unix_ms_now());
        let keep_from = reboots.len().saturating_sub(REBOOTS_KEPT);
        reboots.drain(..keep_from);
        self.reboots = Some(reboots.clone());
        tracing::warn!("recovery: no uplink FULL for reboot_after; rebooting");
        let port = self.deps.recovery.clone();
        let log = self.deps.log.clone();
        let command = self.cfg.recovery.reboot_command.clone();
        let saved = port.save_reboots(reboots);
        ctx.spawn(saved.into_actor(self).map(move |saved, act, ctx| {
            if let Err(e) = saved {
                let outcome = ActionOutcome::Failed(format!(
                    "cannot persist the reboot time, so its rate limit could not hold: {e}"
                ));
                act.record(RecoveryAction::Reboot, None, &outcome);
                act.announce(RecoveryAction::Reboot, None, outcome.to_string());
                act.busy = false;
                act.evaluate(ctx);
                return;
            }
            let id = act.announce(RecoveryAction::Reboot, None, "requested".into());
            let request = async move {
                let delivered = async {
                    log.persisted().await;
                    while log.pending_ids().contains(&id) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                if tokio::time::timeout(ANNOUNCE_WAIT, delivered)
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        event_id = id,
                        "recovery: the reboot's scripts are still running; rebooting anyway"
                    );
                }
                bounded(port.reboot(command)).await
            };
            ctx.spawn(request.into_actor(act).map(|outcome, act, ctx| {
                act.record(RecoveryAction::Reboot, None, &outcome);
                act.busy = false;
                act.evaluate(ctx);
            }));
        }));
    }

    /// RecoveryManager's part of the board.
    fn publish(&mut self, verdict: Option<RebootVerdict>) {
        let now = Instant::now();
        let wall = crate::ports::unix_ms_now();
        let at_ms = |t: Instant| {
            let ahead = t.saturating_duration_since(now).as_millis() as u64;
            let behind = now.saturating_duration_since(t).as_millis() as u64;
            (wall + ahead).saturating_sub(behind)
        };
        let episodes = &self.ladder.episodes;
        self.results.retain(|(i, _)| episodes.contains_key(i));
        self.status.interfaces = episodes
            .iter()
            .map(|(name, e)| {
                let next = e.next(&self.cfg.recovery);
                let taken = self
                    .results
                    .iter()
                    .filter(|(i, _)| i == name)
                    .map(|(_, r)| r.clone())
                    .collect();
                let r = IfaceRecovery {
                    since_unix_ms: at_ms(e.since),
                    next: next.map(|(a, _)| a.as_str().to_string()),
                    next_at_unix_ms: next.map(|(_, t)| at_ms(t)),
                    taken,
                };
                (name.clone(), r)
            })
            .collect();
        self.status.reboot = match verdict {
            _ if self.rebooted => "requested".into(),
            None | Some(RebootVerdict::Off) => "off".into(),
            Some(RebootVerdict::UplinkFull) => "uplink FULL".into(),
            Some(RebootVerdict::Wait(d)) => format!("in {} s", d.as_secs()),
            Some(RebootVerdict::RateLimited(d)) => format!("rate-limited for {} s", d.as_secs()),
            Some(RebootVerdict::Reboot) => "due".into(),
        };
        self.deps.board.lock().status.recovery = self.status.clone();
    }
}

/// An action bounded by [`ACTION_TIMEOUT`].
async fn bounded(call: futures::future::BoxFuture<'static, ActionOutcome>) -> ActionOutcome {
    tokio::time::timeout(ACTION_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            ActionOutcome::Failed(format!("no answer in {} s", ACTION_TIMEOUT.as_secs()))
        })
}

impl Actor for RecoveryManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Counters survive a restart of the actor (they are the board's).
        self.status.actions = self.deps.board.lock().status.recovery.actions.clone();
        let load = self.deps.recovery.load_reboots();
        ctx.wait(load.into_actor(self).map(|loaded, act, _| {
            act.reboots = loaded
                .map_err(|e| tracing::error!(error = %e, "recovery: cannot read the reboot times; no reboot by this incarnation"))
                .ok();
        }));
        if let Some(rm) = self.deps.get_uplinks.get() {
            ctx.spawn(
                async move { rm.send(GetUplinks).await.ok() }
                    .into_actor(self)
                    .map(|uplinks, act, ctx| {
                        if let Some(u) = uplinks {
                            act.handle(UplinkStates(u), ctx);
                        }
                    }),
            );
        }
        self.evaluate(ctx);
    }
}

impl Handler<UplinkStates> for RecoveryManager {
    type Result = ();
    fn handle(&mut self, msg: UplinkStates, ctx: &mut Self::Context) {
        self.ladder.update(&msg.0, Instant::now());
        self.uplinks = msg.0;
        self.evaluate(ctx);
    }
}

impl Handler<Reconfigure> for RecoveryManager {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.cfg = msg.0;
        // Turned back on: the episodes start again from the uplinks as they are.
        self.ladder.update(&self.uplinks, Instant::now());
        self.evaluate(ctx);
    }
}
