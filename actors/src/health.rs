//! The per-interface check state machine (docs/semantics.md §3), pure and clock-free: hysteresis
//! (`down_count` / `up_count`), the first result from UNKNOWN deciding, the fast re-check
//! back-off (1 s doubling, capped at `min(recheck_max, interval)`, restarted by every good
//! result and every state change), and the fail-back hold rule. No actix here: ProbeScheduler feeds it results and obeys its delays.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::{CheckConfig, Connectivity};
use crate::ports::Verdict;

/// First fast re-check delay, and the delay after a good check while not FULL (docs/semantics.md §3).
pub const FAST_RECHECK: Duration = Duration::from_secs(1);

/// The subset of `CheckConfig` the state machine needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HealthParams {
    pub interval: Duration,
    pub down_count: u32,
    pub up_count: u32,
    pub recheck_max: Duration,
}

impl HealthParams {
    /// The longest fast re-check delay: a failed interface is never checked less often than a
    /// healthy one, so the cap is `recheck_max` or `interval`, whichever is shorter.
    pub fn backoff_cap(&self) -> Duration {
        self.recheck_max.min(self.interval).max(FAST_RECHECK)
    }
}

impl From<&CheckConfig> for HealthParams {
    fn from(c: &CheckConfig) -> Self {
        Self {
            interval: c.interval,
            // A count of 0 would make a state change need no evidence at all; treat it as 1.
            down_count: c.down_count.max(1),
            up_count: c.up_count.max(1),
            recheck_max: c.recheck_max.max(FAST_RECHECK),
        }
    }
}

/// What one result did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Step {
    /// `(previous, new)` when the state changed.
    pub changed: Option<(Connectivity, Connectivity)>,
    /// When to check next, counted from now.
    pub next_check: Duration,
}

/// One interface's check state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Health {
    state: Connectivity,
    /// Consecutive results that point away from the current state.
    streak: u32,
    /// The next fast re-check delay after a failure.
    backoff: Duration,
}

impl Health {
    /// Starts in `state`: UNKNOWN on a fresh link, or the last recorded state on a restart.
    pub fn new(state: Connectivity) -> Self {
        Self {
            state,
            streak: 0,
            backoff: FAST_RECHECK,
        }
    }

    pub fn state(&self) -> Connectivity {
        self.state
    }

    /// Feeds one check result.
    pub fn on_result(&mut self, verdict: Verdict, p: &HealthParams) -> Step {
        let observed = verdict.connectivity();
        let good = verdict == Verdict::Full;
        let previous = self.state;
        let target = match previous {
            // From UNKNOWN (no result yet: start, link back) the first result decides.
            Connectivity::Unknown => Some(observed),
            Connectivity::Full if good => {
                self.streak = 0;
                None
            }
            Connectivity::Full => {
                self.streak += 1;
                (self.streak >= p.down_count).then_some(observed)
            }
            // NONE reached through checks is a failed state like the others: returning to FULL
            // needs `up_count` good checks.
            Connectivity::None | Connectivity::Limited | Connectivity::Portal if good => {
                self.streak += 1;
                (self.streak >= p.up_count).then_some(Connectivity::Full)
            }
            Connectivity::None | Connectivity::Limited | Connectivity::Portal => {
                self.streak = 0;
                // Between the "not FULL" states the latest evidence is shown at once; the
                // penalty does not change.
                (observed != previous).then_some(observed)
            }
        };
        let changed = match target {
            Some(new) if new != previous => {
                self.state = new;
                self.streak = 0;
                self.backoff = FAST_RECHECK;
                Some((previous, new))
            }
            _ => None,
        };
        let cap = p.backoff_cap();
        let next_check = if good {
            // A good result restarts the back-off: after any history of one-off blips the
            // second check of a real outage still comes FAST_RECHECK after the first.
            self.backoff = FAST_RECHECK;
            if self.state == Connectivity::Full {
                p.interval
            } else {
                FAST_RECHECK
            }
        } else {
            let delay = self.backoff.min(cap);
            self.backoff = (delay * 2).min(cap);
            delay
        };
        Step {
            changed,
            next_check,
        }
    }
}

/// Whether an interface's route carries the penalty (docs/semantics.md §2): checks on, and not FULL for at
/// least `hold` (the fail-back hold).
pub fn penalized(
    checks_enabled: bool,
    state: Connectivity,
    full_since: Option<Instant>,
    hold: Duration,
    now: Instant,
) -> bool {
    if !checks_enabled {
        return false;
    }
    match (state, full_since) {
        (Connectivity::Full, Some(since)) => now < since + hold,
        (Connectivity::Full, None) => !hold.is_zero(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Connectivity::*;
    use Verdict as V;

    fn params() -> HealthParams {
        HealthParams {
            interval: Duration::from_secs(3600),
            down_count: 2,
            up_count: 2,
            recheck_max: Duration::from_secs(60),
        }
    }

    /// Feeds results one by one and returns (state, next delay in seconds) after each.
    fn run(start: Connectivity, results: &[Verdict]) -> Vec<(Connectivity, u64)> {
        let p = params();
        let mut h = Health::new(start);
        results
            .iter()
            .map(|v| {
                let s = h.on_result(*v, &p);
                (h.state(), s.next_check.as_secs())
            })
            .collect()
    }

    /// (name, state before, results fed, (state, next delay in s) after each).
    type Case<'a> = (
        &'a str,
        Connectivity,
        &'a [Verdict],
        &'a [(Connectivity, u64)],
    );
    /// The state machine's rules, one case per rule.
    const CASES: &[Case<'static>] = &[
        (
            "first result decides: full",
            Unknown,
            &[V::Full],
            &[(Full, 3600)],
        ),
        (
            "first result decides: limited",
            Unknown,
            &[V::Limited],
            &[(Limited, 1)],
        ),
        (
            "first result decides: portal",
            Unknown,
            &[V::Portal],
            &[(Portal, 1)],
        ),
        (
            "leaving FULL needs down_count failures, re-checking after 1 s",
            Full,
            &[V::Limited, V::Limited],
            &[(Full, 1), (Limited, 1)],
        ),
        (
            "a good check between failures resets the count",
            Full,
            &[V::Limited, V::Full, V::Limited],
            &[(Full, 1), (Full, 3600), (Full, 1)],
        ),
        (
            "back-off doubles while failing and caps at recheck_max",
            Limited,
            &[V::Limited; 8],
            &[
                (Limited, 1),
                (Limited, 2),
                (Limited, 4),
                (Limited, 8),
                (Limited, 16),
                (Limited, 32),
                (Limited, 60),
                (Limited, 60),
            ],
        ),
        (
            "returning needs up_count good checks, 1 s apart",
            Limited,
            &[V::Full, V::Full],
            &[(Limited, 1), (Full, 3600)],
        ),
        (
            "a failure between good checks resets the count",
            Limited,
            &[V::Full, V::Limited, V::Full, V::Full],
            &[(Limited, 1), (Limited, 1), (Limited, 1), (Full, 3600)],
        ),
        (
            "limited to portal shows at once",
            Limited,
            &[V::Portal],
            &[(Portal, 1)],
        ),
        (
            "no route is NONE from UNKNOWN",
            Unknown,
            &[V::None],
            &[(None, 1)],
        ),
        (
            "NONE through checks needs up_count good checks to return",
            None,
            &[V::Full, V::Full],
            &[(None, 1), (Full, 3600)],
        ),
        (
            "NONE through checks shows other failures at once",
            None,
            &[V::Limited],
            &[(Limited, 1)],
        ),
        (
            "a good check while failing restarts the back-off",
            Limited,
            &[V::Limited, V::Limited, V::Limited, V::Full, V::Limited],
            &[
                (Limited, 1),
                (Limited, 2),
                (Limited, 4),
                (Limited, 1),
                (Limited, 1),
            ],
        ),
    ];

    #[test]
    fn table() {
        for (name, start, results, want) in CASES {
            assert_eq!(&run(*start, results), want, "{name}");
        }
    }

    #[test]
    fn backoff_restarts_on_state_change() {
        let p = params();
        let mut h = Health::new(Full);
        h.on_result(V::Limited, &p); // streak 1, next 1 s, backoff now 2 s
        let s = h.on_result(V::Limited, &p); // leaves FULL: backoff reset
        assert_eq!(s.changed, Some((Full, Limited)));
        assert_eq!(s.next_check, FAST_RECHECK);
        assert_eq!(
            h.on_result(V::Limited, &p).next_check,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn blips_never_grow_the_backoff() {
        // One-off failed checks while FULL, each followed by a good one: the second check of a
        // real outage still comes FAST_RECHECK after the first.
        let p = params();
        let mut h = Health::new(Full);
        for _ in 0..10 {
            assert_eq!(h.on_result(V::Limited, &p).next_check, FAST_RECHECK);
            assert_eq!(h.on_result(V::Full, &p).next_check, p.interval);
        }
        assert_eq!(h.on_result(V::Limited, &p).next_check, FAST_RECHECK);
        assert_eq!(h.on_result(V::Limited, &p).changed, Some((Full, Limited)));
    }

    #[test]
    fn backoff_cap_never_exceeds_interval() {
        let p = HealthParams {
            interval: Duration::from_secs(5),
            ..params()
        };
        let mut h = Health::new(Limited);
        let waits: Vec<u64> = (0..8)
            .map(|_| h.on_result(V::Limited, &p).next_check.as_secs())
            .collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5, 5, 5, 5]);
    }

    #[test]
    fn counts_of_one() {
        let p = HealthParams {
            down_count: 1,
            up_count: 1,
            ..params()
        };
        let mut h = Health::new(Full);
        assert_eq!(h.on_result(V::Limited, &p).changed, Some((Full, Limited)));
        assert_eq!(h.on_result(V::Full, &p).changed, Some((Limited, Full)));
    }

    #[test]
    fn spec_bounds_hold_for_defaults() {
        // Leaving FULL: at most interval + 2 x timeout + 1 s after the break. The machine's part
        // is the delays between the two failing checks: exactly one FAST_RECHECK.
        let p = params();
        let mut h = Health::new(Full);
        let first = h.on_result(V::Limited, &p);
        assert_eq!(first.next_check, FAST_RECHECK);
        assert!(h.on_result(V::Limited, &p).changed.is_some());
        // Returning: the longest wait is min(recheck_max, interval), then one FAST_RECHECK
        // between two goods.
        let mut h = Health::new(Limited);
        let waits: Vec<Duration> = (0..20)
            .map(|_| h.on_result(V::Limited, &p).next_check)
            .collect();
        assert!(waits.iter().all(|w| *w <= p.recheck_max.min(p.interval)));
        assert_eq!(h.on_result(V::Full, &p).next_check, FAST_RECHECK);
        assert!(h.on_result(V::Full, &p).changed.is_some());
    }

    #[test]
    fn penalty_and_hold() {
        let now = Instant::now();
        let hold = Duration::from_secs(30);
        assert!(
            !penalized(false, Limited, Option::None, hold, now),
            "checks off: never"
        );
        assert!(
            penalized(true, Unknown, Option::None, hold, now),
            "unknown is penalised"
        );
        assert!(penalized(true, Portal, Option::None, hold, now));
        assert!(
            penalized(true, Full, Some(now), hold, now),
            "hold not yet over"
        );
        assert!(!penalized(true, Full, Some(now), hold, now + hold));
        assert!(!penalized(true, Full, Some(now), Duration::ZERO, now));
    }
}
