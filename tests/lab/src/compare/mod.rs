//! `netfailover-lab --compare-nm` (run by `scripts/compare-nm.sh`): NetworkManager 1.42 and
//! netfailover, one after the other, each alone in a fresh copy of the same namespace world
//! (two uplinks, `eth0` metric 100 and `wlan0` metric 600, static addresses from the same
//! keyfiles, the lab's Internet with its check server), with the same check (`interval` 5 s,
//! plain HTTP to the check server's IP literal), measured by the same observer and printed as
//! one Markdown table (docs/benchmarks.md, "NetworkManager side by side").
//!
//! Per daemon: start it, wait until both uplinks are fully connected, measure the idle window
//! (CPU, RSS, bytes per check), then the series, each run from a ready state after a random
//! phase against the daemon's check timer:
//! - **carrier**: the ISP end of `eth0`'s veth goes down (netlink, in process); when the kernel
//!   first sends towards the check server through `wlan0`, and when `eth0`'s default route is
//!   gone from the main table; then the carrier comes back and when the kernel uses `eth0` again;
//! - **upstream**: `eth0`'s ISP starts answering "network unreachable" for the Internet (an
//!   `unreachable` policy rule there); when the kernel first uses `wlan0`; 8 s after the outage
//!   began it ends, and when the kernel uses `eth0` again.
//!
//! NetworkManager runs as `netfailover_lab::dbus` runs it for the recovery tests: its own
//! network namespace, its own private D-Bus, its own `/run/NetworkManager` and
//! `/var/lib/NetworkManager` (bind mounts in the mount namespace of its `ip netns exec`), a
//! read-only `/sys`, `dns=none`, `rc-manager=unmanaged`, `hostname-mode=none`: nothing of the
//! host is touched. Everything (daemons, bus, namespaces) is stopped and removed on return,
//! on error and on Ctrl-C.

mod contender;
pub mod monitor;
mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use report::{Idle, Measurements, Report};

use contender::{Contender, Running};
use monitor::{CarrierSwitch, RouteMonitor};

use crate::bench::Samples;
use crate::daemon::{interrupted, watch_interrupts, WorkDir};
use crate::world::{LabError, World, CHECK_ADDR};

/// The uplinks: the primary and the backup, by interface name.
const PRIMARY: &str = "eth0";
const BACKUP: &str = "wlan0";
/// Longest a daemon may take to start and report both uplinks fully connected.
const START_WAIT: Duration = Duration::from_secs(60);
/// Longest a run waits for the daemon to be back in its ready state before the next fault.
const READY_WAIT: Duration = Duration::from_secs(60);
/// Longest a fault's outcome is waited for; a run that waits longer counts as a miss.
const OUTCOME_WAIT: Duration = Duration::from_secs(30);
/// Carrier down this long after the route moved before it comes back (the daemon settles in
/// the outage state, as after a real pulled cable).
const DOWN_HOLD: Duration = Duration::from_millis(500);

/// Which series to run (the namespace test runs a short subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    pub carrier: bool,
    pub upstream: bool,
}

/// What to measure and how long.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Runs per series.
    pub runs: usize,
    /// The idle window (CPU, RSS, bytes per check); zero skips it.
    pub idle: Duration,
    /// Check interval of both daemons, seconds.
    pub interval: u32,
    /// Length of the upstream outage.
    pub outage: Duration,
    pub series: Series,
    /// The executable whose hidden `run` verb is the daemon (the lab itself).
    pub daemon_exe: PathBuf,
    /// Whether this is the quick mode (said in the heading).
    pub quick: bool,
}

impl CompareOptions {
    /// The full comparison (`quick`: n = 8, a 20 s idle window), every series.
    pub fn new(daemon_exe: PathBuf, quick: bool) -> Self {
        Self {
            runs: if quick { 8 } else { 20 },
            idle: Duration::from_secs(if quick { 20 } else { 60 }),
            interval: 5,
            outage: Duration::from_secs(8),
            series: Series {
                carrier: true,
                upstream: true,
            },
            daemon_exe,
            quick,
        }
    }
}

/// `netfailover-lab --compare-nm`: measures and prints the table; progress goes to stderr.
pub fn run_cli(options: &CompareOptions) -> Result<bool, LabError> {
    watch_interrupts();
    let report = measure(options)?;
    println!("{}", report.markdown());
    Ok(report.complete())
}

/// Both daemons, NetworkManager first. A daemon that cannot be measured (NetworkManager
/// missing, a start that never becomes ready) leaves its error in its column and the other is
/// still measured; Ctrl-C stops everything.
pub fn measure(options: &CompareOptions) -> Result<Report, LabError> {
    let started = report::Context::now(options);
    let mut columns = Vec::new();
    for contender in [Contender::NetworkManager, Contender::Netfailover] {
        eprintln!("compare: {} …", contender.name());
        let mut m = Measurements::new(contender.name());
        match measure_one(contender, options, &mut m) {
            Ok(()) => {}
            Err(LabError::Interrupted) => return Err(LabError::Interrupted),
            Err(e) => {
                eprintln!("compare: {}: {e}", contender.name());
                m.error = Some(e.to_string());
            }
        }
        columns.push(m);
    }
    let netfailover = columns
        .pop()
        .unwrap_or_else(|| Measurements::new("netfailover"));
    let nm = columns
        .pop()
        .unwrap_or_else(|| Measurements::new("NetworkManager"));
    Ok(Report {
        context: started.finish(),
        options: options.clone(),
        nm,
        netfailover,
    })
}

/// One daemon in its own world: start, idle window, series, stop.
fn measure_one(
    contender: Contender,
    options: &CompareOptions,
    out: &mut Measurements,
) -> Result<(), LabError> {
    let world = fresh_world()?;
    let counter = contender::ByteCounter::install(&world)?;
    let work = WorkDir::new()?;
    let dir = work.path().join(contender.tag());
    let mut running = Running::start(contender, &world, &dir, options)?;
    let primary = world.device.ifindex(PRIMARY)?;
    let backup = world.device.ifindex(BACKUP)?;
    wait_started(contender, &mut running, &world)?;
    // Start-up work (first checks, first samples) settles before the idle window.
    pause(Duration::from_secs(u64::from(options.interval)))?;
    if !options.idle.is_zero() {
        out.idle = Some(idle_window(&running, &world, &counter, options.idle)?);
    }

    let mut trial = Trial {
        contender,
        options,
        world: &world,
        monitor: RouteMonitor::start(&world.device, CHECK_ADDR, primary)?,
        running: &mut running,
        primary,
        backup,
    };
    if options.series.carrier {
        trial.carrier_series(out)?;
    }
    if options.series.upstream {
        trial.upstream_series(out)?;
    }
    // The route monitor stops before the daemon.
    drop(trial);
    running.check_alive()?;
    running.stop();
    Ok(())
}

/// A fresh two-uplink world with its servers running and its uplinks without addresses.
fn fresh_world() -> Result<World, LabError> {
    let mut world = World::build_with(2)?;
    world.start_servers()?;
    // The uplinks start without addresses: each daemon configures them from the keyfiles (an
    // interface NetworkManager finds already configured is "assumed", left as it is, and gets
    // neither its profile nor a connectivity check).
    for iface in [PRIMARY, BACKUP] {
        world.device.ip(&["addr", "flush", "dev", iface])?;
    }
    Ok(world)
}

/// Waits until the kernel sends towards the check server through the primary and the daemon
/// has both uplinks fully connected; an error with the daemon's log after [`START_WAIT`].
fn wait_started(
    contender: Contender,
    running: &mut Running,
    world: &World,
) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        running.check_alive()?;
        if world.route_dev(CHECK_ADDR).as_deref() == Some(PRIMARY) && running.all_full() {
            break;
        }
        if start.elapsed() > START_WAIT {
            return Err(LabError::Compare(format!(
                "{} never had both uplinks fully connected within {} s; its log:\n{}",
                contender.name(),
                START_WAIT.as_secs(),
                running.log_tail()
            )));
        }
        pause(Duration::from_millis(200))?;
    }
    eprintln!(
        "compare: {} ready after {:.1} s",
        contender.name(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The fault series against one started daemon, timed by a [`RouteMonitor`] on the device
/// (stopped when the trial is dropped).
struct Trial<'a> {
    contender: Contender,
    options: &'a CompareOptions,
    world: &'a World,
    monitor: RouteMonitor,
    running: &'a mut Running,
    /// Interface indexes of [`PRIMARY`] and [`BACKUP`].
    primary: u32,
    backup: u32,
}

impl Trial<'_> {
    /// Waits up to [`READY_WAIT`] for the ready state: the kernel sends through the primary
    /// and the daemon has both uplinks fully connected.
    fn wait_ready(&mut self) -> Result<bool, LabError> {
        let since = Instant::now();
        while since.elapsed() < READY_WAIT {
            self.running.check_alive()?;
            let via = self.monitor.now().and_then(|s| s.via);
            if via == Some(self.primary) && self.running.all_full() {
                return Ok(true);
            }
            pause(Duration::from_millis(100))?;
        }
        Ok(false)
    }

    /// Readies run `run` of `series`: the ready state, then a random phase. `false`, with a
    /// note, when the daemon was not ready in time (the series stops there).
    fn begin_run(
        &mut self,
        series: &str,
        run: usize,
        out: &mut Measurements,
    ) -> Result<bool, LabError> {
        if !self.wait_ready()? {
            out.notes.push(format!(
                "{series} run {}: not back to both uplinks full within {} s; series stopped",
                run + 1,
                READY_WAIT.as_secs()
            ));
            return Ok(false);
        }
        pause(random_phase(run, self.options.interval))?;
        Ok(true)
    }

    /// How long after `since` the kernel first sends through `ifindex` (`None`: not within
    /// [`OUTCOME_WAIT`]).
    fn until_via(&self, since: Instant, ifindex: u32) -> Result<Option<Duration>, LabError> {
        self.monitor
            .wait(since, OUTCOME_WAIT, |s| s.via == Some(ifindex))
    }

    /// The carrier series: the primary's carrier lost, then back.
    fn carrier_series(&mut self, out: &mut Measurements) -> Result<(), LabError> {
        let carrier = CarrierSwitch::new(&self.world.uplink(PRIMARY)?.isp, "down0")?;
        for run in 0..self.options.runs {
            out.carrier_runs += 1;
            if !self.begin_run("carrier", run, out)? {
                out.carrier_runs -= 1;
                break;
            }
            let lost = Instant::now();
            carrier.set(false)?;
            let on_backup = self.until_via(lost, self.backup)?;
            let removed = self
                .monitor
                .wait(lost, OUTCOME_WAIT, |s| !s.watched_default)?;
            pause(DOWN_HOLD)?;
            let plugged = Instant::now();
            carrier.set(true)?;
            let back = self.until_via(plugged, self.primary)?;
            eprintln!(
                "compare: {} carrier run {}/{}: backup {}, route gone {}, primary again {}",
                self.contender.name(),
                run + 1,
                self.options.runs,
                report::cell_ms(on_backup),
                report::cell_ms(removed),
                report::cell_ms(back)
            );
            push(&mut out.carrier_backup, on_backup);
            push(&mut out.carrier_removed, removed);
            push(&mut out.carrier_back, back);
        }
        Ok(())
    }

    /// The upstream series: the primary's ISP unreachable for the Internet for the outage.
    fn upstream_series(&mut self, out: &mut Measurements) -> Result<(), LabError> {
        for run in 0..self.options.runs {
            out.upstream_runs += 1;
            if !self.begin_run("upstream", run, out)? {
                out.upstream_runs -= 1;
                break;
            }
            self.world.unreachable_upstream(PRIMARY)?;
            let lost = Instant::now();
            let outcome = self.until_via(lost, self.backup).and_then(|on_backup| {
                pause((lost + self.options.outage).saturating_duration_since(Instant::now()))?;
                Ok(on_backup)
            });
            // The outage ends even when the wait above failed.
            self.world.restore_reachable_upstream(PRIMARY)?;
            let restored = Instant::now();
            let on_backup = outcome?;
            let back = self
                .monitor
                .wait(restored, OUTCOME_WAIT * 2, |s| s.via == Some(self.primary))?;
            eprintln!(
                "compare: {} upstream run {}/{}: backup {}, primary again {} after the outage",
                self.contender.name(),
                run + 1,
                self.options.runs,
                report::cell_ms(on_backup),
                report::cell_ms(back)
            );
            push(&mut out.upstream_backup, on_backup);
            push(&mut out.upstream_back, back);
        }
        Ok(())
    }
}

/// CPU time, RSS, and the checks and their bytes on the wire over `window`, nothing else
/// happening in the world.
fn idle_window(
    running: &Running,
    world: &World,
    counter: &contender::ByteCounter,
    window: Duration,
) -> Result<Idle, LabError> {
    let pid = running.pid();
    let requests = || world.servers.as_ref().map_or(0, |s| s.check.requests());
    let (cpu0, bytes0, checks0) = (crate::bench::cpu_time(pid), counter.bytes()?, requests());
    let started = Instant::now();
    pause(window)?;
    let (cpu1, bytes1, checks1) = (crate::bench::cpu_time(pid), counter.bytes()?, requests());
    Ok(Idle {
        window: started.elapsed(),
        cpu: cpu1.saturating_sub(cpu0),
        rss_kib: crate::bench::proc_status_field(Some(pid), "VmRSS:"),
        checks: checks1.saturating_sub(checks0),
        bytes: bytes1.saturating_sub(bytes0),
    })
}

fn push(samples: &mut Samples, outcome: Option<Duration>) {
    if let Some(d) = outcome {
        samples.0.push(d);
    }
}

/// Sleeps `d` in short slices, stopping early on Ctrl-C.
fn pause(d: Duration) -> Result<(), LabError> {
    let until = Instant::now() + d;
    loop {
        interrupted()?;
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// A pause in `0..interval` before a fault, so faults land at every phase of the daemon's
/// check timer rather than always at the same one (a hash of the run and the clock; no
/// reproducibility needed, only spread).
fn random_phase(run: usize, interval: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_usize(run);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    hasher.write_u32(nanos);
    let span_ms = u64::from(interval.max(1)) * 1000;
    Duration::from_millis(hasher.finish() % span_ms)
}

/// Writes `text` to `path`, creating its folder.
fn write(path: &Path, text: &str) -> Result<(), LabError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| LabError::Write {
            path: parent.to_path_buf(),
            error,
        })?;
    }
    std::fs::write(path, text).map_err(|error| LabError::Write {
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_over_the_interval() {
        let phases: Vec<Duration> = (0..50).map(|run| random_phase(run, 5)).collect();
        assert!(phases.iter().all(|p| *p < Duration::from_secs(5)));
        let distinct: std::collections::BTreeSet<_> = phases.iter().collect();
        assert!(distinct.len() > 10, "{phases:?}");
    }
}
