//! What checking costs, per interface and calendar month (UTC), and the monthly budget of a
//! metered uplink (docs/semantics.md §10): the pure rules the Accountant (`accountant.rs`)
//! applies. No actix, no clock, no I/O: every function takes the time it needs.
//!
//! - [`Month`]: a calendar month in UTC, from Unix milliseconds (no calendar crate: the civil
//!   date is computed from the day number).
//! - [`IfaceAccount`]: one interface's month: the bytes of its checks (L3, both directions, DNS
//!   included, as the probe adapter reports them), its link's rx/tx bytes (deltas of the
//!   kernel's counters, see [`counter_delta`]), and the budget thresholds already announced.
//!   Persisted ([`Accounts`]) so a restart or a reboot does not reset it.
//! - The budget rule ([`IfaceAccount::budget_level`]): 75 % and 95 % when the month's check
//!   bytes reach that share of `metered.budget_month`; 100 % when the budget cannot take one more
//!   check (spent plus the cost of the last check is more than the budget), so periodic checks
//!   stop *before* the budget is passed.
//! - [`projected_month_bytes`]: what checking every so often costs in a month.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::counters::counter_step;
use crate::model::IfaceName;

/// The budget thresholds, in percent, in the order they are announced.
pub const THRESHOLDS: [u8; 3] = [75, 95, 100];

/// The average length of a calendar month (365.25 / 12 days), for projections.
pub const MONTH_SECONDS: u64 = 2_629_800;

/// A calendar month in UTC. Orders by time; shown and stored as `2026-12`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month {
    pub year: i32,
    /// 1 to 12.
    pub month: u8,
}

impl Month {
    /// The UTC month holding `unix_ms`.
    pub fn of_unix_ms(unix_ms: u64) -> Month {
        let days = (unix_ms / 86_400_000) as i64;
        let (year, month, _) = civil_from_days(days);
        Month { year, month }
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        if self.month >= 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first millisecond, Unix ms (0 before 1970).
    pub fn start_unix_ms(self) -> u64 {
        let days = days_from_civil(self.year, self.month, 1);
        u64::try_from(days).unwrap_or(0).saturating_mul(86_400_000)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Not a `YYYY-MM` month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a month (YYYY-MM)")]
pub struct BadMonth(pub String);

impl TryFrom<String> for Month {
    type Error = BadMonth;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let bad = || BadMonth(s.clone());
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
}

impl From<Month> for String {
    fn from(m: Month) -> Self {
        m.to_string()
    }
}

/// (year, month, day) of a day number (days since 1970-01-01), proleptic Gregorian: Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// The day number of a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The link counters as last read: the baseline of the next delta.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LinkCounters {
    /// The interface index they were read from: another index is another counter.
    pub ifindex: u32,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Largest value of a 32-bit counter plus one: some drivers' counters wrap there.
/// Bytes counted between two readings of one counter.
///
/// A counter that went back and did not wrap ([`counter_step`]) restarted from zero: then
/// everything it shows now was counted since the restart.
pub fn counter_delta(last: u64, now: u64) -> u64 {
    counter_step(last, now).unwrap_or(now)
}

/// One interface's month.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IfaceAccount {
    pub month: Month,
    /// Bytes of the month's checks at L3, both directions, DNS included.
    pub probe_bytes: u64,
    /// Of which DNS.
    pub probe_dns_bytes: u64,
    /// Checks counted this month (every kind: periodic, confirming, requested).
    #[serde(default)]
    pub checks: u64,
    /// The link's bytes this month (every packet through the interface, ours included).
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Budget thresholds announced this month, percent, in order.
    #[serde(default)]
    pub announced: Vec<u8>,
    /// The link counters as last read (kept across months: the baseline of the next delta).
    #[serde(default)]
    pub counters: Option<LinkCounters>,
    /// Bytes of the last check: what the next one is expected to cost (kept across months).
    #[serde(default)]
    pub last_check_bytes: u64,
}

impl IfaceAccount {
    pub fn new(month: Month) -> Self {
        Self {
            month,
            probe_bytes: 0,
            probe_dns_bytes: 0,
            checks: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            announced: Vec::new(),
            counters: None,
            last_check_bytes: 0,
        }
    }

    /// Starts a new month when `now` is a later one (a clock that says an earlier month, as a
    /// device without a real-time clock does before NTP, never undoes the month counted);
    /// true when it did.
    pub fn roll(&mut self, now: Month) -> bool {
        if now <= self.month {
            return false;
        }
        *self = IfaceAccount {
            counters: self.counters,
            last_check_bytes: self.last_check_bytes,
            ..IfaceAccount::new(now)
        };
        true
    }

    /// Counts one check.
    pub fn add_check(&mut self, bytes: u64, dns_bytes: u64) {
        self.probe_bytes = self.probe_bytes.saturating_add(bytes);
        self.probe_dns_bytes = self.probe_dns_bytes.saturating_add(dns_bytes);
        self.checks += 1;
        self.last_check_bytes = bytes;
    }

    /// Counts the link's bytes since the last reading ([`counter_delta`]); the first reading
    /// of an interface is only the baseline. A reading from another ifindex (the interface was
    /// re-created) counts its whole counters: they started with the new interface.
    pub fn add_link(&mut self, now: LinkCounters) {
        let (rx, tx) = match self.counters {
            None => (0, 0),
            Some(last) if last.ifindex != now.ifindex => (now.rx_bytes, now.tx_bytes),
            Some(last) => (
                counter_delta(last.rx_bytes, now.rx_bytes),
                counter_delta(last.tx_bytes, now.tx_bytes),
            ),
        };
        self.rx_bytes = self.rx_bytes.saturating_add(rx);
        self.tx_bytes = self.tx_bytes.saturating_add(tx);
        self.counters = Some(now);
    }

    /// The highest threshold the month's checks reached under `budget` bytes (0: no budget,
    /// never a level): 100 when one more check like the last would pass the budget.
    pub fn budget_level(&self, budget: u64) -> Option<u8> {
        if budget == 0 {
            return None;
        }
        let spent = u128::from(self.probe_bytes);
        let next = spent + u128::from(self.last_check_bytes);
        if next > u128::from(budget) || spent >= u128::from(budget) {
            return Some(100);
        }
        THRESHOLDS
            .iter()
            .rev()
            .copied()
            .find(|&t| spent * 100 >= u128::from(budget) * u128::from(t))
    }

    /// Periodic checks stop: the budget cannot take one more check.
    pub fn exhausted(&self, budget: u64) -> bool {
        self.budget_level(budget) == Some(100)
    }

    /// The thresholds reached and not announced yet this month, lowest first (a check that
    /// crosses two announces both, in order); they are marked announced.
    pub fn announce(&mut self, budget: u64) -> Vec<u8> {
        let Some(level) = self.budget_level(budget) else {
            return Vec::new();
        };
        let due: Vec<u8> = THRESHOLDS
            .iter()
            .copied()
            .filter(|t| *t <= level && !self.announced.contains(t))
            .collect();
        self.announced.extend(&due);
        due
    }
}

/// What the Accountant persists (`persist_dir/accounting.json` in the daemon).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Accounts {
    pub interfaces: BTreeMap<IfaceName, IfaceAccount>,
}

impl Accounts {
    /// `iface`'s account, rolled to `now` (a new one starts in `now`).
    pub fn account(&mut self, iface: &IfaceName, now: Month) -> &mut IfaceAccount {
        let a = self
            .interfaces
            .entry(iface.clone())
            .or_insert_with(|| IfaceAccount::new(now));
        a.roll(now);
        a
    }

    /// The interfaces whose periodic checks stop: metered, with a budget it cannot take
    /// another check of, this month.
    pub fn exhausted(&self, metered: &BTreeSet<IfaceName>, budget: u64) -> BTreeSet<IfaceName> {
        self.interfaces
            .iter()
            .filter(|(name, a)| metered.contains(*name) && a.exhausted(budget))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// What checking every `every` costs in a month at `bytes_per_check`.
pub fn projected_month_bytes(bytes_per_check: u64, every: Duration) -> u64 {
    bytes_per_check.saturating_mul(checks_per_month(every))
}

/// Checks in an average month at one every `every`.
pub fn checks_per_month(every: Duration) -> u64 {
    MONTH_SECONDS.div_ceil(every.as_secs().max(1))
}

/// The README's "what checking costs per month" table (Markdown rows): for each kind of check
/// (`name`, L3 bytes per check), the month of an uplink checked every `every` of each
/// configuration (`label`, `every`). Printed by the test `prints_the_cost_table`.
pub fn cost_table(checks: &[(&str, u64)], configurations: &[(&str, Duration)]) -> String {
    let mut out = String::from("| check | bytes per check |");
    for (label, every) in configurations {
        out.push_str(&format!(" {label} ({} checks) |", checks_per_month(*every)));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(configurations.len()));
    out.push('\n');
    for (name, bytes) in checks {
        out.push_str(&format!("| {name} | {bytes} B |"));
        for (_, every) in configurations {
            let month = projected_month_bytes(*bytes, *every);
            out.push_str(&format!(" {:.1} KB |", month as f64 / 1000.0));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn months_follow_the_utc_calendar() {
        // 2026-12-07 21:00 UTC.
        assert_eq!(Month::of_unix_ms(1_796_677_200_000).to_string(), "2026-12");
        assert_eq!(Month::of_unix_ms(0).to_string(), "1970-01");
        // The last millisecond of February in a leap year, and the first of March.
        let march = Month {
            year: 2028,
            month: 3,
        };
        let start = march.start_unix_ms();
        assert_eq!(Month::of_unix_ms(start - 1).to_string(), "2028-02");
        assert_eq!(Month::of_unix_ms(start), march);
        assert_eq!(
            (start
                - Month {
                    year: 2028,
                    month: 2
                }
                .start_unix_ms())
                / DAY_MS,
            29
        );
        // Every month boundary of four years round-trips.
        let mut m = Month {
            year: 2025,
            month: 1,
        };
        for _ in 0..48 {
            let next = m.next();
            assert_eq!(Month::of_unix_ms(next.start_unix_ms() - 1), m);
            assert_eq!(Month::of_unix_ms(next.start_unix_ms()), next);
            assert!(next > m);
            m = next;
        }
        assert_eq!(Month::try_from("2026-12".to_string()), Ok(m_of(2026, 12)));
        assert!(Month::try_from("2026-13".to_string()).is_err());
        assert!(Month::try_from("december".to_string()).is_err());
    }

    fn m_of(year: i32, month: u8) -> Month {
        Month { year, month }
    }

    #[test]
    fn counters_count_deltas_resets_and_32_bit_wraps() {
        assert_eq!(counter_delta(100, 250), 150);
        // Restarted from zero (reboot, re-created interface): what it shows now is new.
        assert_eq!(counter_delta(10_000_000, 1_200), 1_200);
        // A 32-bit counter wrapped.
        assert_eq!(counter_delta((1 << 32) - 100, 50), 150);
        // A 64-bit counter far past 2^32 that went back restarted, it did not wrap.
        assert_eq!(counter_delta((1 << 32) * 3, 50), 50);
    }

    #[test]
    fn link_bytes_start_from_a_baseline_and_follow_a_new_ifindex() {
        let mut a = IfaceAccount::new(m_of(2026, 12));
        let c = |ifindex, rx, tx| LinkCounters {
            ifindex,
            rx_bytes: rx,
            tx_bytes: tx,
        };
        a.add_link(c(3, 5_000, 7_000));
        assert_eq!((a.rx_bytes, a.tx_bytes), (0, 0), "first reading: baseline");
        a.add_link(c(3, 6_000, 7_500));
        assert_eq!((a.rx_bytes, a.tx_bytes), (1_000, 500));
        a.add_link(c(9, 100, 200));
        assert_eq!(
            (a.rx_bytes, a.tx_bytes),
            (1_100, 700),
            "re-created interface"
        );
    }

    #[test]
    fn thresholds_are_announced_in_order_once_and_100_before_the_budget_is_passed() {
        let budget = 10_000;
        let mut a = IfaceAccount::new(m_of(2026, 12));
        let mut announced = Vec::new();
        let mut stopped_at = None;
        for i in 1..=20 {
            if a.exhausted(budget) {
                stopped_at.get_or_insert(i);
                continue; // periodic checks stop
            }
            a.add_check(1_000, 100);
            announced.extend(a.announce(budget));
        }
        assert_eq!(announced, vec![75, 95, 100]);
        // 8 checks: 75 % at the 8th; at 9 000 the 10th would still fit; at 10 000 none does.
        assert_eq!(a.probe_bytes, 10_000, "never past the budget");
        assert_eq!(stopped_at, Some(11));
        assert!(a.announce(budget).is_empty(), "once per month");
        // No budget: no level at all.
        assert_eq!(a.budget_level(0), None);
    }

    #[test]
    fn one_check_that_crosses_several_thresholds_announces_each_lowest_first() {
        let mut a = IfaceAccount::new(m_of(2026, 12));
        a.add_check(2_000, 0);
        // 2 000 of 2 500: 80 %, and a next check of 2 000 would not fit.
        assert_eq!(a.announce(2_500), vec![75, 95, 100]);
        assert!(a.exhausted(2_500));
        // A larger budget after a reload: checks resume; 100 is not announced twice.
        assert!(!a.exhausted(100_000));
    }

    #[test]
    fn a_later_month_starts_over_and_an_earlier_clock_does_not() {
        let mut a = IfaceAccount::new(m_of(2026, 12));
        a.add_check(1_500, 300);
        a.add_link(LinkCounters {
            ifindex: 3,
            rx_bytes: 10,
            tx_bytes: 10,
        });
        a.rx_bytes = 77;
        a.announced = vec![75];
        assert!(!a.roll(m_of(1970, 1)), "a clock before NTP");
        assert_eq!(a.probe_bytes, 1_500);
        assert!(a.roll(m_of(2027, 1)));
        assert_eq!(
            (
                a.month,
                a.probe_bytes,
                a.probe_dns_bytes,
                a.checks,
                a.rx_bytes
            ),
            (m_of(2027, 1), 0, 0, 0, 0)
        );
        assert!(a.announced.is_empty());
        assert!(a.counters.is_some(), "the baseline stays");
        assert_eq!(a.last_check_bytes, 1_500);
    }

    #[test]
    fn only_metered_interfaces_are_exhausted() {
        let mut acc = Accounts::default();
        let wwan = IfaceName::new("wwan0").unwrap();
        let eth = IfaceName::new("eth0").unwrap();
        for n in [&wwan, &eth] {
            acc.account(n, m_of(2026, 12)).add_check(5_000, 0);
        }
        let metered: BTreeSet<IfaceName> = [wwan.clone()].into();
        assert_eq!(acc.exhausted(&metered, 6_000), [wwan].into());
        assert!(acc.exhausted(&metered, 0).is_empty());
    }

    /// The README's cost table, computed: bytes per check as measured (docs/benchmarks.md
    /// rows "HTTP/HTTPS bytes per check", docs/probe.md "Bytes on the wire"; HTTP from
    /// `tests/it/probe/classify.rs` (`bytes`), HTTPS from `tests/it/probe/resumption.rs`,
    /// 2026-12-08, delayed ACKs and SHA-256 suites first), times the checks of
    /// a month at balenaOS's `interval` 3600 (unmetered) and at the metered standby cadence
    /// (`metered.standby_interval`, 6 h). `cargo test -p netfailover-actors --lib cost_table
    /// -- --nocapture` prints it.
    #[test]
    fn prints_the_cost_table() {
        const HOUR: Duration = Duration::from_secs(3600);
        let checks = [
            ("HTTP, DNS cached", 446),
            ("HTTP with DNS", 574),
            ("HTTPS resumed, DNS cached", 1461),
            ("HTTPS first (full handshake) with DNS", 1975),
        ];
        let configurations = [
            ("unmetered defaults: every 3600 s", HOUR),
            ("metered standby: every 6 h", 6 * HOUR),
        ];
        let table = cost_table(&checks, &configurations);
        println!("{table}");
        assert!(table.contains("| HTTPS resumed, DNS cached | 1461 B | 1068.0 KB | 178.2 KB |"));
        assert_eq!(table.lines().count(), 2 + checks.len());
    }

    #[test]
    fn projection_is_checks_per_month_times_bytes() {
        // Hourly: 731 checks in an average month.
        assert_eq!(
            projected_month_bytes(1_000, Duration::from_secs(3600)),
            731_000
        );
        assert_eq!(
            projected_month_bytes(1_000, Duration::from_secs(6 * 3600)),
            122_000
        );
    }
}
