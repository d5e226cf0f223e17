//! What the comparison found, and its Markdown table: one row per measure, NetworkManager's
//! column, netfailover's, and the ratio netfailover / NetworkManager (bold where netfailover
//! is above).

use std::time::Duration;

use super::CompareOptions;
use crate::bench::{machine_line, Samples};

/// The idle window of one daemon.
#[derive(Clone, Debug)]
pub struct Idle {
    pub window: Duration,
    /// utime + stime over the window.
    pub cpu: Duration,
    /// VmRSS at its end.
    pub rss_kib: u64,
    /// Check requests the check server answered over the window (both uplinks).
    pub checks: u64,
    /// Their IP packets' bytes, both directions.
    pub bytes: u64,
}

impl Idle {
    pub fn bytes_per_check(&self) -> Option<u64> {
        (self.checks > 0).then(|| self.bytes / self.checks)
    }
}

/// One daemon's column.
#[derive(Clone, Debug)]
pub struct Measurements {
    pub name: String,
    /// Runs of each series that were started (a run that timed out is a run without sample).
    pub carrier_runs: usize,
    pub upstream_runs: usize,
    pub carrier_backup: Samples,
    pub carrier_removed: Samples,
    pub carrier_back: Samples,
    pub upstream_backup: Samples,
    pub upstream_back: Samples,
    pub idle: Option<Idle>,
    pub notes: Vec<String>,
    /// Why the daemon could not be measured to the end.
    pub error: Option<String>,
}

impl Measurements {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            carrier_runs: 0,
            upstream_runs: 0,
            carrier_backup: Samples::default(),
            carrier_removed: Samples::default(),
            carrier_back: Samples::default(),
            upstream_backup: Samples::default(),
            upstream_back: Samples::default(),
            idle: None,
            notes: Vec::new(),
            error: None,
        }
    }
}

/// When, where and under what load.
#[derive(Clone, Debug)]
pub struct Context {
    pub machine: String,
    pub load_start: String,
    pub load_end: String,
    pub nm_version: String,
}

impl Context {
    pub(super) fn now(_options: &CompareOptions) -> Self {
        let nm_version = crate::netns::run(&["NetworkManager", "--version"])
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| "(not installed)".into());
        Self {
            machine: machine_line(),
            load_start: load_average(),
            load_end: String::new(),
            nm_version,
        }
    }

    pub(super) fn finish(mut self) -> Self {
        self.load_end = load_average();
        self
    }
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The comparison's result.
#[derive(Clone, Debug)]
pub struct Report {
    pub context: Context,
    pub options: CompareOptions,
    pub nm: Measurements,
    pub netfailover: Measurements,
}

/// Milliseconds for a table cell: one decimal under 10 ms, whole above.
fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// One outcome for a progress line: milliseconds, or "never" (timed out).
pub(super) fn cell_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".into(), |d| format!("{} ms", ms(d)))
}

/// `p50 / p90 / max` in ms, with the count when some runs never got there.
fn distribution(samples: &Samples, runs: usize) -> String {
    if samples.is_empty() {
        return if runs == 0 {
            "–".into()
        } else {
            format!("never ({runs} runs)")
        };
    }
    let mut cell = format!(
        "{} / {} / {}",
        ms(samples.p50()),
        ms(samples.percentile(0.9)),
        ms(samples.max())
    );
    if samples.len() < runs {
        cell.push_str(&format!(" ({} of {runs})", samples.len()));
    }
    cell
}

/// netfailover / NetworkManager, two significant digits, bold above 1.
fn ratio(ours: f64, theirs: f64) -> String {
    if !ours.is_finite() || !theirs.is_finite() || theirs < 0.0 || ours < 0.0 {
        return "–".into();
    }
    if theirs == 0.0 {
        // NetworkManager's figure rounds to zero (CPU time comes in 10 ms ticks).
        return if ours == 0.0 {
            "1".into()
        } else {
            "**∞**".into()
        };
    }
    let r = ours / theirs;
    let digits = if r >= 10.0 {
        0
    } else if r >= 1.0 {
        2
    } else {
        // Two significant digits below 1 (0.47, 0.0014).
        (1 - r.log10().floor() as i32).clamp(2, 6) as usize
    };
    let text = format!("{r:.digits$}");
    if r > 1.0 {
        format!("**{text}**")
    } else {
        text
    }
}

/// Thousands with a thin space, as the README writes them (20 664).
fn grouped(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// Both daemons measured to the end, every run with its outcome.
    pub fn complete(&self) -> bool {
        [&self.nm, &self.netfailover].iter().all(|m| {
            m.error.is_none()
                && m.carrier_backup.len() == m.carrier_runs
                && m.upstream_backup.len() == m.upstream_runs
        })
    }

    /// The rows as (measure, NetworkManager, netfailover, ratio).
    pub fn rows(&self) -> Vec<[String; 4]> {
        let mut rows = self.latency_rows();
        rows.extend(self.idle_rows());
        rows
    }

    /// The rows of the series that ran: how long each fault's outcome took.
    fn latency_rows(&self) -> Vec<[String; 4]> {
        let series = self.options.series;
        let mut rows = Vec::new();
        if series.carrier {
            rows.push(self.latency(
                "carrier loss → traffic on the backup (p50 / p90 / max, ms)".into(),
                |m| &m.carrier_backup,
                |m| m.carrier_runs,
            ));
            rows.push(self.latency(
                "carrier loss → the primary's default route gone from the table".into(),
                |m| &m.carrier_removed,
                |m| m.carrier_runs,
            ));
            rows.push(self.latency(
                "carrier back → traffic on the primary".into(),
                |m| &m.carrier_back,
                |m| m.carrier_runs,
            ));
        }
        if series.upstream {
            rows.push(self.latency(
                "upstream loss (ISP answers unreachable) → backup".into(),
                |m| &m.upstream_backup,
                |m| m.upstream_runs,
            ));
            rows.push(self.latency(
                format!(
                    "upstream back (after an outage of {} s) → primary",
                    self.options.outage.as_secs()
                ),
                |m| &m.upstream_back,
                |m| m.upstream_runs,
            ));
        }
        rows
    }

    /// One latency row: each daemon's distribution of `pick` over its `runs`, and the ratio
    /// of the medians.
    fn latency(
        &self,
        what: String,
        pick: fn(&Measurements) -> &Samples,
        runs: fn(&Measurements) -> usize,
    ) -> [String; 4] {
        let (nm, nf) = (&self.nm, &self.netfailover);
        let (a, b) = (pick(nm), pick(nf));
        let r = if a.is_empty() || b.is_empty() {
            "–".into()
        } else {
            ratio(b.p50().as_secs_f64(), a.p50().as_secs_f64())
        };
        [
            what,
            distribution(a, runs(nm)),
            distribution(b, runs(nf)),
            r,
        ]
    }

    /// The idle window's rows (CPU, RSS, bytes per check); none when neither daemon had one.
    fn idle_rows(&self) -> Vec<[String; 4]> {
        let (a, b) = (self.nm.idle.as_ref(), self.netfailover.idle.as_ref());
        if a.is_none() && b.is_none() {
            return Vec::new();
        }
        let window = a.or(b).map_or(0, |i| i.window.as_secs_f64().round() as u64);
        let value = |i: Option<&Idle>, f: &dyn Fn(&Idle) -> String| i.map_or("–".into(), f);
        let both = |f: &dyn Fn(&Idle) -> f64| match (a, b) {
            (Some(a), Some(b)) => ratio(f(b), f(a)),
            _ => "–".into(),
        };
        let per_check = |i: &Idle| {
            i.bytes_per_check().map_or_else(
                || "no check in the window".into(),
                |b| format!("{b} ({} checks)", i.checks),
            )
        };
        vec![
            [
                format!("idle CPU over {window} s (utime + stime)"),
                value(a, &|i| format!("{} ms", i.cpu.as_millis())),
                value(b, &|i| format!("{} ms", i.cpu.as_millis())),
                both(&|i| i.cpu.as_secs_f64()),
            ],
            [
                "idle RSS (VmRSS)".into(),
                value(a, &|i| format!("{} kB", grouped(i.rss_kib))),
                value(b, &|i| format!("{} kB", grouped(i.rss_kib))),
                both(&|i| i.rss_kib as f64),
            ],
            [
                "bytes per check (HTTP to an IP literal, IP packets both ways)".into(),
                value(a, &per_check),
                value(b, &per_check),
                match (
                    a.and_then(Idle::bytes_per_check),
                    b.and_then(Idle::bytes_per_check),
                ) {
                    (Some(x), Some(y)) => ratio(y as f64, x as f64),
                    _ => "–".into(),
                },
            ],
        ]
    }

    /// The heading, the table and how it was measured.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let c = &self.context;
        let mut out = format!(
            "{}, load average {} at the start and {} at the end; n = {} per series{}, \
             `interval` {} s for both.\n\n",
            c.machine,
            c.load_start,
            c.load_end,
            o.runs,
            if o.quick { " (`--quick`)" } else { "" },
            o.interval,
        );
        out.push_str(&format!(
            "| measure | {} | netfailover {} | ratio netfailover / NM |\n|---|---|---|---|\n",
            c.nm_version
                .split_whitespace()
                .next()
                .map_or("NetworkManager".to_string(), |v| format!(
                    "NetworkManager {v}"
                )),
            env!("CARGO_PKG_VERSION"),
        ));
        for row in self.rows() {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push('\n');
        for m in [&self.nm, &self.netfailover] {
            if let Some(e) = &m.error {
                out.push_str(&format!("- **{} not measured to the end**: {e}\n", m.name));
            }
            for note in &m.notes {
                out.push_str(&format!("- {}: {note}\n", m.name));
            }
        }
        out.push_str(&format!(
            "How: each daemon alone in a fresh copy of the same namespace world (device with \
             `eth0` metric 100 and `wlan0` metric 600, static addresses from the same keyfiles, \
             one ISP namespace per uplink, an Internet namespace with the check server); both \
             check `http://203.0.113.10/connectivity-check` (an IP literal, answered 204) every \
             {} s, otherwise at their defaults (NetworkManager: `[connectivity] interval={} \
             response=`, no DHCP; netfailover: its default `[check]` and passive health). Route \
             times come from the kernel, polled every 5 ms (`RTM_GETROUTE` towards the check \
             server: the route really used, `linkdown` ones included); each run starts from \
             both uplinks fully online after a random pause within one interval. Carrier: the \
             ISP end of `eth0` goes down (netlink) and comes back {} ms after the primary's \
             default route was gone (or 30 s without). \
             Upstream: `eth0`'s ISP answers ICMP unreachable for the Internet for {} s. Idle: \
             over {} s after start-up, CPU from `/proc/PID/stat`, RSS from `/proc/PID/status`, \
             bytes from nftables counters on the check server's port 80 divided by the requests \
             it answered.\n",
            o.interval,
            o.interval,
            super::DOWN_HOLD.as_millis(),
            o.outage.as_secs(),
            o.idle.as_secs(),
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_keep_two_significant_digits_and_mark_ours_above() {
        assert_eq!(ratio(4.0, 2855.0), "0.0014");
        assert_eq!(ratio(9.0, 19.0), "0.47");
        assert_eq!(ratio(4629.0, 2449.0), "**1.89**");
        assert_eq!(ratio(100.0, 10.0), "**10**");
        assert_eq!(ratio(10.0, 0.0), "**∞**");
        assert_eq!(ratio(0.0, 0.0), "1");
        assert_eq!(ratio(f64::NAN, 1.0), "–");
    }

    #[test]
    fn cells_show_the_distribution_and_the_misses() {
        let s = Samples(
            [5u64, 1, 4, 2, 3, 9, 7, 8, 6, 10]
                .iter()
                .map(|&m| Duration::from_millis(m * 100))
                .collect(),
        );
        assert_eq!(distribution(&s, 10), "500 / 900 / 1000");
        assert_eq!(distribution(&s, 12), "500 / 900 / 1000 (10 of 12)");
        assert_eq!(distribution(&Samples::default(), 3), "never (3 runs)");
        assert_eq!(ms(Duration::from_micros(4400)), "4.4");
        assert_eq!(grouped(20664), "20 664");
        assert_eq!(grouped(512), "512");
    }
}
