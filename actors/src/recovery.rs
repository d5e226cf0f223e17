//! The recovery ladder's pure rules (`docs/recovery.md`): per-interface episodes and which rung
//! is due when, and the reboot rule. RecoveryManager (`recovery_manager.rs`) only feeds them the
//! uplinks and the clock and carries out what they say, so both are table-tested without actors.
//!
//! An episode of an interface starts when it is seen with link and not FULL, and ends when it
//! is FULL (RouteManager's state: `check.up_count` good checks in a row) or is no longer
//! managed. Time without link does not count (a pulled cable is no wedge, and `relink`'s own
//! bounce must not end the episode it belongs to): the clock stops while the link is away. A
//! rung is only taken with link and a verdict (LIMITED, PORTAL or NONE from the checks, not the
//! UNKNOWN before a first result). Each rung is due at its delay after the start of the
//! episode's current pass, and is taken once per pass; a pass lasts `episode_repeat`, after
//! which the ladder starts over.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::messages::Uplink;
use crate::model::{Connectivity, IfaceName, RecoveryConfig};
use crate::ports::RecoveryAction;

/// One interface's running episode.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Episode {
    /// When the interface was first seen not FULL with link (for `NETFAILOVER_NOT_FULL_SECONDS`).
    pub since: Instant,
    /// Start of the current pass of the ladder (`since`, moved on by `episode_repeat`).
    pub pass_start: Instant,
    /// Rungs already taken in this pass.
    pub taken: Vec<RecoveryAction>,
    pub ifindex: u32,
    pub cellular: bool,
    /// Link present and a verdict known: rungs may be taken.
    pub eligible: bool,
    /// The link went away at this time (the clock is stopped).
    pub link_lost_at: Option<Instant>,
    pub connectivity: Connectivity,
}

/// The per-interface rungs that apply to an interface, with their delays, in ladder order.
pub fn rungs(cfg: &RecoveryConfig, cellular: bool) -> Vec<(RecoveryAction, Duration)> {
    let mut out = vec![
        (RecoveryAction::Relink, cfg.relink_after),
        (RecoveryAction::Reconnect, cfg.reconnect_after),
    ];
    if cellular {
        out.push((RecoveryAction::ModemReset, cfg.modem_reset_after));
    }
    out
}

impl Episode {
    /// The next rung not yet taken in this pass and when it is due.
    pub fn next(&self, cfg: &RecoveryConfig) -> Option<(RecoveryAction, Instant)> {
        rungs(cfg, self.cellular)
            .into_iter()
            .find(|(a, _)| !self.taken.contains(a))
            .map(|(a, after)| (a, self.pass_start + after))
    }

    /// Starts a new pass once `episode_repeat` has passed since this one started.
    fn roll(&mut self, cfg: &RecoveryConfig, now: Instant) {
        if cfg.episode_repeat.is_zero() {
            return;
        }
        while now >= self.pass_start + cfg.episode_repeat {
            self.pass_start += cfg.episode_repeat;
            self.taken.clear();
        }
    }
}

/// Every interface's episode, and since when no uplink has been FULL.
#[derive(Debug)]
pub struct Ladder {
    pub episodes: BTreeMap<IfaceName, Episode>,
    /// Since when no managed uplink has been FULL (`None` while one is).
    pub none_full_since: Option<Instant>,
}

impl Ladder {
    pub fn new(now: Instant) -> Self {
        Self {
            episodes: BTreeMap::new(),
            none_full_since: Some(now),
        }
    }

    /// Folds in RouteManager's uplinks: episodes start, end, pause or carry on.
    pub fn update(&mut self, uplinks: &[Uplink], now: Instant) {
        // FULL, or no uplink at all (it expects no default route and has none): no episode.
        let in_episode = |u: &Uplink| {
            u.connectivity != Connectivity::Full && (u.expects_default || !u.routed.is_empty())
        };
        self.episodes
            .retain(|name, _| uplinks.iter().any(|u| &u.name == name && in_episode(u)));
        for u in uplinks {
            if !in_episode(u) {
                continue;
            }
            let e = match self.episodes.get_mut(&u.name) {
                Some(e) => e,
                None if !u.usable => continue,
                None => self.episodes.entry(u.name.clone()).or_insert(Episode {
                    since: now,
                    pass_start: now,
                    taken: Vec::new(),
                    ifindex: u.ifindex,
                    cellular: u.cellular,
                    eligible: false,
                    link_lost_at: None,
                    connectivity: u.connectivity,
                }),
            };
            match (u.usable, e.link_lost_at) {
                (false, None) => e.link_lost_at = Some(now),
                (true, Some(lost)) => {
                    // The clock was stopped while the link was away.
                    e.pass_start += now.saturating_duration_since(lost);
                    e.since += now.saturating_duration_since(lost);
                    e.link_lost_at = None;
                }
                _ => {}
            }
            e.ifindex = u.ifindex;
            e.cellular = u.cellular;
            e.connectivity = u.connectivity;
            e.eligible = u.usable && u.connectivity != Connectivity::Unknown;
        }
        let any_full = uplinks.iter().any(|u| u.connectivity == Connectivity::Full);
        match (any_full, self.none_full_since) {
            (true, _) => self.none_full_since = None,
            (false, None) => self.none_full_since = Some(now),
            (false, Some(_)) => {}
        }
    }

    /// The rungs due now (at most one per interface), marked taken.
    pub fn due(&mut self, cfg: &RecoveryConfig, now: Instant) -> Vec<(IfaceName, RecoveryAction)> {
        let mut out = Vec::new();
        for (name, e) in &mut self.episodes {
            if !e.eligible {
                continue;
            }
            e.roll(cfg, now);
            if let Some((action, at)) = e.next(cfg) {
                if at <= now {
                    e.taken.push(action);
                    out.push((name.clone(), action));
                }
            }
        }
        out
    }

    /// The earliest time a per-interface rung becomes due or a pass restarts.
    pub fn next_wake(&self, cfg: &RecoveryConfig) -> Option<Instant> {
        self.episodes
            .values()
            .filter(|e| e.eligible)
            .flat_map(|e| {
                let repeat =
                    (!cfg.episode_repeat.is_zero()).then(|| e.pass_start + cfg.episode_repeat);
                e.next(cfg).map(|(_, at)| at).into_iter().chain(repeat)
            })
            .min()
    }
}

/// What the reboot rule says now.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RebootVerdict {
    /// `reboot_after` is zero, or recovery is off.
    Off,
    /// An uplink is FULL: never.
    UplinkFull,
    /// Not yet: no uplink FULL for less than `reboot_after`; ask again after this long.
    Wait(Duration),
    /// The last reboot was less than `reboot_min_interval` ago: ask again after this long.
    RateLimited(Duration),
    /// Reboot now.
    Reboot,
}

/// The reboot rule: off unless `reboot_after` > 0; never while an uplink is FULL
/// (`none_full_for` is `None`); only after no uplink has been FULL for `reboot_after`; and
/// never within `reboot_min_interval` of the last reboot (`last_reboot_unix_ms`, persisted; a
/// time in the future, a clock set back, counts as now).
pub fn reboot_verdict(
    cfg: &RecoveryConfig,
    none_full_for: Option<Duration>,
    now_unix_ms: u64,
    last_reboot_unix_ms: Option<u64>,
) -> RebootVerdict {
    if !cfg.enabled || cfg.reboot_after.is_zero() {
        return RebootVerdict::Off;
    }
    let Some(none_full_for) = none_full_for else {
        return RebootVerdict::UplinkFull;
    };
    if none_full_for < cfg.reboot_after {
        return RebootVerdict::Wait(cfg.reboot_after - none_full_for);
    }
    if let Some(last) = last_reboot_unix_ms {
        let since = Duration::from_millis(now_unix_ms.saturating_sub(last));
        if since < cfg.reboot_min_interval {
            return RebootVerdict::RateLimited(cfg.reboot_min_interval - since);
        }
    }
    RebootVerdict::Reboot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(reboot_after: u64) -> RecoveryConfig {
        RecoveryConfig {
            reboot_after: Duration::from_secs(reboot_after),
            reboot_min_interval: Duration::from_secs(3600),
            ..RecoveryConfig::default()
        }
    }

    #[test]
    fn reboot_rule_table() {
        use RebootVerdict::*;
        let s = Duration::from_secs;
        let hour_ms = 3_600_000;
        let now = 100 * hour_ms;
        // (reboot_after, none FULL for, last reboot, verdict)
        let table: [(u64, Option<Duration>, Option<u64>, RebootVerdict); 9] = [
            (0, Some(s(99_999)), None, Off),
            (600, None, None, UplinkFull),
            (600, None, Some(0), UplinkFull),
            (600, Some(s(599)), None, Wait(s(1))),
            (600, Some(s(600)), None, Reboot),
            (600, Some(s(700)), Some(now - hour_ms), Reboot),
            (
                600,
                Some(s(700)),
                Some(now - hour_ms + 1000),
                RateLimited(s(1)),
            ),
            (600, Some(s(700)), Some(now + hour_ms), RateLimited(s(3600))),
            (600, Some(s(700)), Some(0), Reboot),
        ];
        for (after, none_full, last, want) in table {
            assert_eq!(
                reboot_verdict(&cfg(after), none_full, now, last),
                want,
                "reboot_after {after}, none FULL for {none_full:?}, last {last:?}"
            );
        }
        let off = RecoveryConfig {
            enabled: false,
            ..cfg(600)
        };
        assert_eq!(reboot_verdict(&off, Some(s(700)), now, None), Off);
    }
}
