//! ProbeScheduler's part for metered uplinks (the rule: `crate::metered`; docs/semantics.md
//! §9.11): where an interface stands, the delay of its next periodic check, waking the
//! standbys that became needed, and the gate a Prober asks before a periodic check.

use std::time::Duration;

use actix::prelude::*;

use super::ProbeScheduler;
use crate::messages::{CheckAfter, PeriodicDue, TwoWayTraffic, Uplink};
use crate::metered::{self, Gate, Standing};
use crate::model::{Config, Connectivity, IfaceName};
use crate::ports::Verdict;
use crate::status::{CheckSummary, SkipReason};

impl ProbeScheduler {
    /// Where `name` stands for the metered rules: its own state, and the route in use as the
    /// uplinks last said (their states as our checks know them, which may be newer).
    fn standing(&self, name: &IfaceName) -> Option<Standing> {
        let p = self.state.ifaces.get(name)?;
        let uplinks = &self.state.last_uplinks;
        let me = uplinks.iter().find(|u| &u.name == name)?;
        let others: Vec<&Uplink> = uplinks
            .iter()
            .filter(|u| u.in_use && &u.name != name)
            .collect();
        // FULL with nothing pointing against it, as our checks know it (newer than the uplinks').
        let healthy = |u: &Uplink| match self.state.ifaces.get(&u.name) {
            Some(p) => {
                p.health.state() == Connectivity::Full
                    && !p.health.deciding()
                    && p.confirming.is_none()
            }
            None => u.connectivity == Connectivity::Full,
        };
        Some(Standing {
            metered: me.metered,
            state: p.health.state(),
            deciding: p.health.deciding() || p.confirming.is_some(),
            in_use: me.in_use,
            in_use_healthy: !others.is_empty() && others.iter().all(|u| healthy(u)),
            outranks_in_use: others.iter().any(|u| me.metric < u.metric),
            covered: uplinks.iter().any(|u| {
                u.usable && !u.in_use && &u.name != name && u.metric < me.metric && healthy(u)
            }),
        })
    }

    /// The delay before `name`'s next periodic check after `health`'s (the check state
    /// machine's), at the standby cadence when it is a metered standby not needed now; notes
    /// which.
    pub(super) fn periodic_delay(&mut self, name: &IfaceName, health: Duration) -> Duration {
        let Some(s) = self.standing(name) else {
            return health;
        };
        let (interval, standby) = (self.cfg.check.interval, self.cfg.metered.standby_interval);
        let delay = metered::cadence(health, &s, interval, standby);
        if let Some(p) = self.state.ifaces.get_mut(name) {
            p.long = delay > health;
        }
        delay
    }

    /// After a reload (`old`: the configuration before): a timer set at the old standby cadence
    /// runs at the new one, from the last result.
    pub(super) fn retime_standbys(&self, old: &Config) {
        let cadence = |c: &Config| c.metered.standby_cadence(c.check.interval);
        if cadence(old) == cadence(&self.cfg) {
            return;
        }
        let cadence = cadence(&self.cfg);
        for p in self.state.ifaces.values().filter(|p| p.long) {
            let age = p.last_result.map_or(cadence, |(at, _)| at.elapsed());
            if let Some(addr) = p.running() {
                addr.do_send(CheckAfter(cadence.saturating_sub(age)));
            }
        }
    }

    /// Metered standbys on the standby cadence that are needed now (the interface carrying the
    /// route in use is failing or left FULL, or the route moved to them, and no healthy uplink
    /// ranked before them would take over first) are checked at once,
    /// or at `interval` after their last result when it is younger than `recheck_max`.
    pub(super) fn wake_needed(&mut self) {
        let names: Vec<IfaceName> = (self.state.ifaces.iter())
            .filter(|(_, p)| p.long)
            .map(|(n, _)| n.clone())
            .collect();
        let (interval, fresh) = (self.cfg.check.interval, self.cfg.check.recheck_max);
        for name in names {
            if self.standing(&name).is_some_and(|s| metered::standby(&s)) {
                continue;
            }
            let Some(p) = self.state.ifaces.get_mut(&name) else {
                continue;
            };
            p.long = false;
            let age = p.last_result.map(|(at, _)| at.elapsed());
            let delay = match age {
                Some(age) if age <= fresh => interval.saturating_sub(age),
                _ => Duration::ZERO,
            };
            if let Some(addr) = p.running() {
                tracing::info!(iface = %name, after_s = delay.as_secs_f64(), "metered standby needed: leaving the standby cadence");
                addr.do_send(CheckAfter(delay));
            }
        }
    }
    /// Records a skipped periodic check. A traffic skip stands in for a good result (the
    /// interface is FULL and its own traffic proves it), so it is shown as the last check; a
    /// budget skip proves nothing, so the last real result stays shown and only the counters
    /// (status, `checks_skipped_total{reason="budget"}`) say the check was not run.
    fn record_skip(&self, name: &IfaceName, reason: SkipReason) {
        let mut board = self.deps.board.lock();
        let Some(s) = board.checks_mut(name) else {
            return;
        };
        s.checks.record_skip(reason);
        if reason != SkipReason::Traffic {
            return;
        }
        let at_unix_ms = crate::ports::unix_ms_now();
        s.last_check = Some(CheckSummary {
            at_unix_ms,
            verdict: Verdict::Full,
            reason: "its own traffic went both ways since the last check".into(),
            latency_ms: 0.0,
            skipped: Some(reason),
        });
    }
}

impl Handler<PeriodicDue> for ProbeScheduler {
    type Result = Option<Duration>;
    /// `None`: run the check; `Some(delay)`: skipped, asked again after `delay`.
    fn handle(&mut self, msg: PeriodicDue, _: &mut Self::Context) -> Self::Result {
        if self.budget_spent(&msg.iface) {
            let _span = tracing::info_span!("probe_scheduler", iface = %msg.iface).entered();
            tracing::debug!(iface = %msg.iface, "periodic check skipped: budget exhausted");
            self.record_skip(&msg.iface, SkipReason::Budget);
            // Asked again after an interval: a new month or a larger budget lets it run then.
            return Some(self.cfg.check.interval);
        }
        let settle = self.cfg.passive.period;
        let s = self.standing(&msg.iface)?;
        let p = self.state.ifaces.get(&msg.iface)?;
        let proves = metered::traffic_proves(
            p.two_way_at,
            p.last_result.map(|(at, _)| at),
            p.last_skip,
            settle,
        );
        match metered::periodic_gate(&s, proves) {
            Gate::Run => None,
            Gate::Skip(reason) => {
                let _span = tracing::info_span!("probe_scheduler", iface = %msg.iface).entered();
                tracing::debug!(%reason, "periodic check skipped");
                let next = self.periodic_delay(&msg.iface, self.cfg.check.interval);
                if let Some(p) = self.state.ifaces.get_mut(&msg.iface) {
                    p.last_skip = Some(tokio::time::Instant::now());
                }
                self.record_skip(&msg.iface, reason);
                Some(next)
            }
        }
    }
}

impl Handler<TwoWayTraffic> for ProbeScheduler {
    type Result = ();
    fn handle(&mut self, msg: TwoWayTraffic, _: &mut Self::Context) {
        if let Some(p) = self.state.ifaces.get_mut(&msg.iface) {
            p.two_way_at = Some(p.two_way_at.map_or(msg.at, |t| t.max(msg.at)));
        }
    }
}
