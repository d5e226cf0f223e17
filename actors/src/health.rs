//! The per-interface check state machine (docs/semantics.md §3), pure and clock-free: hysteresis
//! (`down_count` / `up_count`), the first result from UNKNOWN deciding (a NONE verdict, no
//! address or route yet, is no result: the link is still coming back), the fast re-check
//! back-off (1 s doubling, capped at `min(recheck_max, interval)`, restarted by every good
//! result and every state change), the return cadence (a young outage re-checked at least every
//! half cap), and the fail-back hold rule. No actix here: ProbeScheduler feeds it results and
//! obeys its delays.
//!
//! Evidence that points towards a state change is confirmed at once, back to back: the
//! checks after a failed one while FULL, and after a good one while not FULL, until
//! `down_count` / `up_count` agree or one disagrees. The counts keep their hysteresis (one
//! result never moves the route) without costing a second of waiting each.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::{CheckConfig, Connectivity};
use crate::ports::Verdict;

/// First fast re-check delay once an interface is not FULL (docs/semantics.md §3).
pub const FAST_RECHECK: Duration = Duration::from_secs(1);

/// The delay before the check that confirms evidence towards a state change: none.
pub const CONFIRM_AT_ONCE: Duration = Duration::ZERO;

/// How many back-off caps an outage stays *young*: re-checked at least every
/// [`HealthParams::return_cap`] so that its end is noticed early (docs/semantics.md §3).
pub const YOUNG_CAPS: u32 = 4;

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

    /// The longest re-check delay while an outage is young: half the back-off cap, never
    /// below [`FAST_RECHECK`]. An outage that ends while young is seen over within this delay
    /// (and the check that confirms it follows at once).
    pub fn return_cap(&self) -> Duration {
        (self.backoff_cap() / 2).max(FAST_RECHECK)
    }

    /// How long an outage stays young, counted from leaving FULL: [`YOUNG_CAPS`] back-off caps.
    /// After it the plain back-off bounds what a long outage costs.
    pub fn young_for(&self) -> Duration {
        self.backoff_cap() * YOUNG_CAPS
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
    /// The delays scheduled since the last state change: the age of an outage, clock-free
    /// (each check's own duration is left out, so it only ever errs on the young side).
    aged: Duration,
}

impl Health {
    /// Starts in `state`: UNKNOWN on a fresh link, or the last recorded state on a restart.
    pub fn new(state: Connectivity) -> Self {
        Self {
            state,
            streak: 0,
            backoff: FAST_RECHECK,
            aged: Duration::ZERO,
        }
    }

    pub fn state(&self) -> Connectivity {
        self.state
    }

    /// The last result pointed away from the state and more are needed to decide: the next
    /// check confirms a failover or a fail-back in the making.
    pub fn deciding(&self) -> bool {
        self.streak > 0
    }

    /// Feeds one check result.
    pub fn on_result(&mut self, verdict: Verdict, p: &HealthParams) -> Step {
        let observed = verdict.connectivity();
        let good = verdict == Verdict::Full;
        let previous = self.state;
        let target = match previous {
            // A NONE verdict is our own view of the kernel (no address, no route, no link), not
            // a check: from UNKNOWN the link is still coming back (waiting for its address or
            // route), so it stays UNKNOWN and its first real result decides (docs/semantics.md
            // §9.2).
            Connectivity::Unknown if verdict == Verdict::None => None,
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
                self.aged = Duration::ZERO;
                Some((previous, new))
            }
            _ => None,
        };
        let next_check = self.next_delay(good, p);
        self.aged = self.aged.saturating_add(next_check);
        Step {
            changed,
            next_check,
        }
    }
}

impl Health {
    /// When to check next after a result (the state already updated).
    fn next_delay(&mut self, good: bool, p: &HealthParams) -> Duration {
        let full = self.state == Connectivity::Full;
        if good {
            // A good result restarts the back-off: after any history of one-off blips the
            // re-checks of a real outage still start at FAST_RECHECK.
            self.backoff = FAST_RECHECK;
        }
        if self.streak > 0 {
            // The result points towards a state change that needs more of them: confirm at
            // once. A failure while FULL leaves the back-off as the good results before it
            // left it, so the re-checks after leaving still start at FAST_RECHECK.
            return CONFIRM_AT_ONCE;
        }
        if good {
            return if full { p.interval } else { FAST_RECHECK };
        }
        let cap = if !full && self.aged < p.young_for() {
            p.return_cap()
        } else {
            p.backoff_cap()
        };
        let delay = self.backoff.min(cap);
        self.backoff = (delay * 2).min(p.backoff_cap());
        delay
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
            "leaving FULL needs down_count failures, the second one at once",
            Full,
            &[V::Limited, V::Limited],
            &[(Full, 0), (Limited, 1)],
        ),
        (
            "a good check between failures resets the count",
            Full,
            &[V::Limited, V::Full, V::Limited],
            &[(Full, 0), (Full, 3600), (Full, 0)],
        ),
        (
            "back-off doubles while failing, at most half recheck_max while young, then recheck_max",
            Limited,
            &[V::Limited; 14],
            &[
                (Limited, 1),
                (Limited, 2),
                (Limited, 4),
                (Limited, 8),
                (Limited, 16),
                (Limited, 30),
                (Limited, 30),
                (Limited, 30),
                (Limited, 30),
                (Limited, 30),
                (Limited, 30),
                (Limited, 30),
                (Limited, 60),
                (Limited, 60),
            ],
        ),
        (
            "returning needs up_count good checks, the second one at once",
            Limited,
            &[V::Full, V::Full],
            &[(Limited, 0), (Full, 3600)],
        ),
        (
            "a failure between good checks resets the count",
            Limited,
            &[V::Full, V::Limited, V::Full, V::Full],
            &[(Limited, 0), (Limited, 1), (Limited, 0), (Full, 3600)],
        ),
        (
            "limited to portal shows at once",
            Limited,
            &[V::Portal],
            &[(Portal, 1)],
        ),
        (
            "no address or route yet from UNKNOWN: still coming back, no result",
            Unknown,
            &[V::None, V::None],
            &[(Unknown, 1), (Unknown, 2)],
        ),
        (
            "waiting then the address: the first real result decides",
            Unknown,
            &[V::None, V::Full],
            &[(Unknown, 1), (Full, 3600)],
        ),
        (
            "waiting then a failure: the first real result decides too",
            Unknown,
            &[V::None, V::Limited],
            &[(Unknown, 1), (Limited, 1)],
        ),
        (
            "NONE through checks needs up_count good checks to return",
            None,
            &[V::Full, V::Full],
            &[(None, 0), (Full, 3600)],
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
                (Limited, 0),
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
        assert_eq!(h.on_result(V::Limited, &p).next_check, CONFIRM_AT_ONCE);
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
        // real outage still comes at once, and the re-checks after leaving start at 1 s.
        let p = params();
        let mut h = Health::new(Full);
        for _ in 0..10 {
            assert_eq!(h.on_result(V::Limited, &p).next_check, CONFIRM_AT_ONCE);
            assert_eq!(h.on_result(V::Full, &p).next_check, p.interval);
        }
        assert_eq!(h.on_result(V::Limited, &p).next_check, CONFIRM_AT_ONCE);
        let left = h.on_result(V::Limited, &p);
        assert_eq!(left.changed, Some((Full, Limited)));
        assert_eq!(left.next_check, FAST_RECHECK);
    }

    #[test]
    fn backoff_cap_never_exceeds_interval() {
        let p = HealthParams {
            interval: Duration::from_secs(5),
            ..params()
        };
        let mut h = Health::new(Limited);
        let waits: Vec<u128> = (0..12)
            .map(|_| h.on_result(V::Limited, &p).next_check.as_millis())
            .collect();
        // Young (the first 4 x 5 s): at most 2.5 s apart; then the plain cap, interval.
        assert_eq!(
            waits,
            vec![1000, 2000, 2500, 2500, 2500, 2500, 2500, 2500, 2500, 5000, 5000, 5000]
        );
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
        // Leaving FULL: at most interval + 2 x timeout after the break. The machine's part is
        // the delay between the two failing checks: none.
        let p = params();
        let mut h = Health::new(Full);
        let first = h.on_result(V::Limited, &p);
        assert_eq!(
            first.changed,
            Option::None,
            "one failed check moves nothing"
        );
        assert_eq!(first.next_check, CONFIRM_AT_ONCE);
        assert!(h.on_result(V::Limited, &p).changed.is_some());
        // Returning: the longest wait is min(recheck_max, interval) (half of it while the
        // outage is young), then none between two goods.
        let mut h = Health::new(Limited);
        let mut aged = Duration::ZERO;
        for _ in 0..40 {
            let wait = h.on_result(V::Limited, &p).next_check;
            let bound = if aged < p.young_for() {
                p.return_cap()
            } else {
                p.backoff_cap()
            };
            assert!(wait <= bound, "{wait:?} after {aged:?} > {bound:?}");
            aged += wait;
        }
        let first = h.on_result(V::Full, &p);
        assert_eq!(first.changed, Option::None, "one good check moves nothing");
        assert_eq!(first.next_check, CONFIRM_AT_ONCE);
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
