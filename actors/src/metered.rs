//! Metered uplinks (docs/semantics.md §9.11), pure and clock-free: which periodic checks are
//! skipped, and how often an uplink that does not carry the route in use is checked. No actix
//! here: ProbeScheduler describes an interface's [`Standing`] and obeys the answers.
//!
//! - [`periodic_gate`]: a periodic check of a metered, FULL interface is skipped (0 bytes) when
//!   its own traffic made two-way progress since its last check or skip. Checks that decide
//!   something are never gated: confirmations, `netfailover check` and a start's first check
//!   do not come through the gate at all, and the gate runs every check of an interface that
//!   is not FULL or is confirming evidence towards a state change.
//! - [`cadence`]: a metered standby is checked every `metered.standby_interval` (never more
//!   often than `interval`) while the route in use is on a healthy FULL interface, unless it
//!   is not FULL and its return would take the route back (a fail-back: its re-checks keep the
//!   health back-off).
//!
//! Adding a skip reason (a budget, say) is one more [`SkipReason`] variant and one more
//! condition in [`periodic_gate`] (with its input in [`Standing`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::model::Connectivity;

/// Why a periodic check of a metered uplink was skipped (docs/semantics.md §9.11).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SkipReason {
    /// Its own traffic made two-way progress since its last check: it works.
    Traffic,
    /// Its monthly probe budget is spent (`metered.budget_month`, docs/semantics.md §10).
    Budget,
}

impl SkipReason {
    /// The word in `status`, the JSON and the metrics' `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Traffic => "traffic",
            SkipReason::Budget => "budget",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one checked interface stands, as far as the metered rules care.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Standing {
    /// The profile says (or the type guesses) its traffic costs money.
    pub metered: bool,
    /// Its check state.
    pub state: Connectivity,
    /// Results are pointing towards a state change (`Health` streak > 0) or a confirmation is
    /// running: the next check decides.
    pub deciding: bool,
    /// It carries the route in use (of a family).
    pub in_use: bool,
    /// Another interface carries the route in use, is FULL and nothing points against it (no
    /// failed check being confirmed, no passive suspicion). False: none does, or it is failing
    /// or has failed — every uplink is about to be needed.
    pub in_use_healthy: bool,
    /// Its configured metric is lower than that of the interface carrying the route in use:
    /// once FULL it takes the route back.
    pub outranks_in_use: bool,
    /// Another uplink, not carrying the route in use, with a lower configured metric is FULL
    /// and nothing points against it: that one takes over first, so this one is not about to
    /// be needed even while the route in use is failing.
    pub covered: bool,
}

/// What to do when a periodic check is due.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Gate {
    Run,
    Skip(SkipReason),
}

/// Whether a periodic check of an interface standing `s` runs. `traffic_proves`: its own
/// traffic made two-way progress since its last check or skip ([`traffic_proves`]).
pub fn periodic_gate(s: &Standing, traffic_proves: bool) -> Gate {
    if !s.metered || s.deciding || s.state != Connectivity::Full {
        return Gate::Run;
    }
    if traffic_proves {
        return Gate::Skip(SkipReason::Traffic);
    }
    Gate::Run
}

/// Whether two-way progress seen `progress` (the sample's time) proves the interface works
/// since its last check (`last_check`, when its result came) or skip. A sample less than
/// `settle` (the sampling period) after the check may compare against a sample taken while
/// the check's own connection was open: such progress is the check's, not the traffic's.
/// Never before a first check.
pub fn traffic_proves(
    progress: Option<Instant>,
    last_check: Option<Instant>,
    last_skip: Option<Instant>,
    settle: Duration,
) -> bool {
    let (Some(progress), Some(checked)) = (progress, last_check) else {
        return false;
    };
    let after_check = progress >= checked + settle;
    match last_skip {
        Some(skipped) if skipped > checked => progress > skipped,
        _ => after_check,
    }
}

/// The delay before the next periodic check: `health` (the check state machine's delay), or
/// the standby cadence (`standby_interval`, at least `interval`) for a metered interface that
/// is not needed now: it does not carry the route in use, a FULL interface does, nothing is
/// being decided, and it is FULL or its return would not take the route back. Never shorter
/// than `health`.
pub fn cadence(
    health: Duration,
    s: &Standing,
    interval: Duration,
    standby_interval: Duration,
) -> Duration {
    if standby(s) {
        health.max(standby_interval.max(interval))
    } else {
        health
    }
}

/// Whether `s` is on the standby cadence (see [`cadence`]).
pub fn standby(s: &Standing) -> bool {
    let returns_to_route = s.state != Connectivity::Full && s.outranks_in_use;
    s.metered && !s.deciding && !s.in_use && (s.in_use_healthy || s.covered) && !returns_to_route
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn standby_full() -> Standing {
        Standing {
            metered: true,
            state: Connectivity::Full,
            deciding: false,
            in_use: false,
            in_use_healthy: true,
            outranks_in_use: false,
            covered: false,
        }
    }

    #[test]
    fn only_metered_full_undecided_checks_are_skipped_on_traffic() {
        let s = standby_full();
        assert_eq!(periodic_gate(&s, true), Gate::Skip(SkipReason::Traffic));
        assert_eq!(periodic_gate(&s, false), Gate::Run);
        let in_use = Standing { in_use: true, ..s };
        assert_eq!(
            periodic_gate(&in_use, true),
            Gate::Skip(SkipReason::Traffic)
        );
        for never in [
            Standing {
                metered: false,
                ..s
            },
            Standing {
                deciding: true,
                ..s
            },
            Standing {
                state: Connectivity::Limited,
                ..s
            },
            Standing {
                state: Connectivity::Unknown,
                ..s
            },
            Standing {
                state: Connectivity::Portal,
                outranks_in_use: true,
                ..s
            },
        ] {
            assert_eq!(periodic_gate(&never, true), Gate::Run, "{never:?}");
        }
    }

    #[test]
    fn progress_counts_after_the_check_settled_or_after_the_last_skip() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let settle = s(1);
        assert!(!traffic_proves(None, Some(t0), None, settle));
        assert!(
            !traffic_proves(Some(t0 + s(5)), None, None, settle),
            "never before a first check"
        );
        assert!(
            !traffic_proves(
                Some(t0 + Duration::from_millis(900)),
                Some(t0),
                None,
                settle
            ),
            "the check's own connection"
        );
        assert!(traffic_proves(Some(t0 + s(1)), Some(t0), None, settle));
        assert!(!traffic_proves(Some(t0 - s(1)), Some(t0), None, settle));
        // After a skip: only progress since it counts.
        assert!(!traffic_proves(
            Some(t0 + s(5)),
            Some(t0),
            Some(t0 + s(10)),
            settle
        ));
        assert!(traffic_proves(
            Some(t0 + s(11)),
            Some(t0),
            Some(t0 + s(10)),
            settle
        ));
        // A check after the skip: the check counts again.
        assert!(!traffic_proves(
            Some(t0 + s(20)),
            Some(t0 + s(20)),
            Some(t0 + s(10)),
            settle
        ));
    }

    #[test]
    fn a_metered_standby_waits_the_standby_cadence_while_the_route_in_use_is_full() {
        let six = 6 * H;
        let s = standby_full();
        assert_eq!(cadence(H, &s, H, six), six);
        assert_eq!(
            cadence(H, &s, H, Duration::from_secs(60)),
            H,
            "never more often than interval"
        );
        let not = |s: Standing| cadence(H, &s, H, six);
        assert_eq!(
            not(Standing {
                metered: false,
                ..s
            }),
            H
        );
        assert_eq!(not(Standing { in_use: true, ..s }), H);
        assert_eq!(
            not(Standing {
                in_use_healthy: false,
                ..s
            }),
            H,
            "the route in use is failing or not FULL: needed"
        );
        assert_eq!(
            cadence(
                Duration::ZERO,
                &Standing {
                    deciding: true,
                    ..s
                },
                H,
                six
            ),
            Duration::ZERO,
            "deciding: at once"
        );
        // A failed standby: its back-off is bounded below by the standby cadence, unless its
        // return would take the route back (a fail-back).
        let failed = Standing {
            state: Connectivity::Limited,
            ..s
        };
        assert_eq!(cadence(Duration::from_secs(1), &failed, H, six), six);
        let primary = Standing {
            outranks_in_use: true,
            ..failed
        };
        assert_eq!(
            cadence(Duration::from_secs(1), &primary, H, six),
            Duration::from_secs(1)
        );
    }
}
