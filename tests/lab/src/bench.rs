//! What every benchmark harness shares: sample statistics, process footprint readings and the
//! one-line row format that `scripts/bench.sh` collects into one table (docs/benchmarks.md).
//!
//! A bench prints, besides its own human report, one line per figure:
//!
//! ```text
//! @row | measure | runs | p50 | p99 | target | met |
//! ```
//!
//! `scripts/bench.sh` keeps the lines that start with `@row `, strips the marker, and prints
//! them under one header with the date, machine and commit. `NF_BENCH_QUICK=1` asks a bench for
//! a short run (fewer samples, shorter windows); the rows keep their shape.

use std::time::Duration;

/// True when `NF_BENCH_QUICK` is set to anything but `0` or empty: a short run.
pub fn quick() -> bool {
    std::env::var("NF_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `full` normally, `quick` under [`quick`]; `NF_BENCH_RUNS` overrides both.
pub fn runs(full: usize, quick_runs: usize) -> usize {
    std::env::var("NF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { quick_runs } else { full })
        .max(1)
}

/// A series of measured durations.
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// The nearest-rank percentile `q` in 0..=1 (zero for an empty series).
    pub fn percentile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.5)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    pub fn max(&self) -> Duration {
        self.0.iter().max().copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A duration for a table cell, in the unit that keeps 2–3 significant digits.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.1} µs", secs * 1e6)
    }
}

/// Whether a figure meets its target, for the `met` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Met {
    Yes,
    No,
    /// Informational figure without a target.
    NoTarget,
}

impl Met {
    pub fn from_bool(met: bool) -> Self {
        if met {
            Met::Yes
        } else {
            Met::No
        }
    }

    fn cell(self) -> &'static str {
        match self {
            Met::Yes => "yes",
            Met::No => "**no**",
            Met::NoTarget => "–",
        }
    }
}

/// One row of the benchmark table, as `scripts/bench.sh` collects it.
#[derive(Clone, Debug)]
pub struct Row<'a> {
    pub measure: &'a str,
    pub runs: String,
    pub p50: String,
    pub p99: String,
    pub target: &'a str,
    pub met: Met,
}

impl Row<'_> {
    /// The `@row | … |` line.
    pub fn line(&self) -> String {
        format!(
            "@row | {} | {} | {} | {} | {} | {} |",
            self.measure,
            self.runs,
            self.p50,
            self.p99,
            self.target,
            self.met.cell()
        )
    }

    pub fn print(&self) {
        println!("{}", self.line());
    }
}

/// Prints the row of a latency series against an upper bound on its p99.
pub fn latency_row(measure: &str, samples: &Samples, target: &str, p99_bound: Option<Duration>) {
    Row {
        measure,
        runs: samples.len().to_string(),
        p50: fmt_duration(samples.p50()),
        p99: fmt_duration(samples.p99()),
        target,
        met: match p99_bound {
            Some(bound) if !samples.is_empty() => Met::from_bool(samples.p99() <= bound),
            Some(_) => Met::No,
            None => Met::NoTarget,
        },
    }
    .print();
}

/// Prints a single-value row (memory, size, counts): `value` goes in the p50 column.
pub fn value_row(measure: &str, value: String, target: &str, met: Met) {
    Row {
        measure,
        runs: "1".into(),
        p50: value,
        p99: "–".into(),
        target,
        met,
    }
    .print();
}

/// A field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`, `Threads:`) in its unit (KiB for memory);
/// `pid` `None` is this process. Zero when unreadable.
pub fn proc_status_field(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// User + system CPU time a process has used so far (`/proc/PID/stat` fields 14 and 15).
pub fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name (field 2) may hold spaces; the fields after it start past the last ')'.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let per_sec = clock_ticks_per_second();
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// Open file descriptors of a process (entries of `/proc/PID/fd`), zero when unreadable.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        // Linux has used 100 on every architecture for decades.
        .unwrap_or(100)
}

/// `date -u`, `uname -r`, core count and the commit, for a report's heading.
pub fn machine_line() -> String {
    let run = |argv: &[&str]| {
        super::netns::run(argv)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!(
        "{} UTC, {cores} cores, Linux {}",
        run(&["date", "-u", "+%Y-%m-%d %H:%M"]),
        run(&["uname", "-r"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Samples {
        Samples(v.iter().map(|&m| Duration::from_millis(m)).collect())
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = ms(&[5, 1, 4, 2, 3]);
        assert_eq!(s.p50(), Duration::from_millis(3));
        assert_eq!(s.p99(), Duration::from_millis(5));
        assert_eq!(s.max(), Duration::from_millis(5));
        assert_eq!(Samples::default().p99(), Duration::ZERO);
    }

    #[test]
    fn rows_carry_the_marker_and_the_verdict() {
        let s = ms(&[1, 2, 3]);
        let line = Row {
            measure: "x",
            runs: s.len().to_string(),
            p50: fmt_duration(s.p50()),
            p99: fmt_duration(s.p99()),
            target: "< 2 ms",
            met: Met::from_bool(s.p99() < Duration::from_millis(2)),
        }
        .line();
        assert_eq!(line, "@row | x | 3 | 2.00 ms | 3.00 ms | < 2 ms | **no** |");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(fmt_duration(Duration::from_micros(55)), "55.0 µs");
        assert_eq!(fmt_duration(Duration::from_micros(1500)), "1.50 ms");
        assert_eq!(fmt_duration(Duration::from_millis(2500)), "2.50 s");
    }

    #[test]
    fn this_process_has_memory_and_fds() {
        assert!(proc_status_field(None, "VmRSS:") > 0);
        assert!(open_fds(std::process::id()) > 0);
    }
}
