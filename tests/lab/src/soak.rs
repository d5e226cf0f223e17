//! `netfailover-lab --soak MINUTES`: the lab's default timeline in a loop for a long time, to
//! show that the daemon does not grow. Every round plays the whole default scenario (cable,
//! upstream, portal, DNS, outage; each step waits for the kernel's route and the daemon's
//! status), then flaps two uplinks quickly (bursts of `down`/`up` events) and kills every
//! actor once over the control socket. A sampler thread reads the daemon's resident memory,
//! open file descriptors, thread count and the size of its `state_dir` (the event journal and
//! the interface state) at a fixed period, and the run ends with a table of those samples.
//!
//! Not part of `cargo test`: a soak takes as long as it is asked to. docs/testing.md
//! ("Reliability") shows a 30-minute run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::daemon::{self, DaemonProcess, WorkDir};
use super::timeline;
use super::world::{LabError, World, FAST_SETTINGS};
use netfailover::control::{self, Request};

/// Longest soak accepted (a day); every loop below is bounded by it.
pub const MAX_MINUTES: u64 = 24 * 60;
/// Quick link flaps per uplink per round, and the pause between two transitions.
const FLAPS: usize = 10;
const FLAP_PAUSE: Duration = Duration::from_millis(50);
/// Uplinks flapped every round (the primary's cable is already pulled by the timeline).
const FLAPPED: [&str; 2] = ["wlan0", "wwan0"];
/// How long the daemon may take to answer on its control socket after the start.
const START_WAIT: Duration = Duration::from_secs(30);

/// One observation of the daemon process.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub at: Duration,
    /// Resident set and its high-water mark, KiB (`VmRSS`, `VmHWM`).
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub fds: usize,
    pub threads: u64,
    /// Bytes of every file in `state_dir` (journal and interface state).
    pub state_bytes: u64,
    pub pending_events: usize,
    pub events_total: u64,
    /// Actor kills the soak made so far (each one a restart in the daemon).
    pub kills: u64,
    pub rounds: u64,
}

/// Reads `VmRSS`, `VmHWM` and `Threads` from `/proc/PID/status` text.
pub fn parse_proc_status(text: &str) -> (u64, u64, u64) {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

/// Memory, fds and threads of process `pid` (zeros when it is gone).
fn sample_process(pid: u32, sample: &mut Sample) {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap_or_default();
    (sample.rss_kib, sample.hwm_kib, sample.threads) = parse_proc_status(&status);
    sample.fds = std::fs::read_dir(proc_dir.join("fd")).map_or(0, |d| d.count());
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    })
}

/// The samples as a table; `every` keeps one row in `every` (the first and last always).
pub fn table(samples: &[Sample], every: usize) -> String {
    let every = every.max(1);
    let last = samples.len().saturating_sub(1);
    let rows: Vec<Vec<String>> = samples
        .iter()
        .enumerate()
        .filter(|(n, _)| n % every == 0 || *n == last)
        .map(|(_, s)| {
            vec![
                format!("{:.1}", s.at.as_secs_f64() / 60.0),
                s.rounds.to_string(),
                format!("{:.1}", s.rss_kib as f64 / 1024.0),
                format!("{:.1}", s.hwm_kib as f64 / 1024.0),
                s.fds.to_string(),
                s.threads.to_string(),
                s.state_bytes.to_string(),
                s.pending_events.to_string(),
                s.events_total.to_string(),
                s.kills.to_string(),
            ]
        })
        .collect();
    netfailover::print::table(
        &[
            "MIN", "ROUNDS", "RSS MiB", "PEAK MiB", "FDS", "THREADS", "STATE B", "PENDING",
            "EVENTS", "KILLS",
        ],
        &rows,
    )
}

/// Samples the daemon every `period` until `stop`; shares the rows through `samples`.
struct Sampler {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    kills: Arc<AtomicU64>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32, socket: PathBuf, state_dir: PathBuf, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let kills = Arc::new(AtomicU64::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, rounds, kills, samples) =
                (stop.clone(), rounds.clone(), kills.clone(), samples.clone());
            std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let started = Instant::now();
                let mut next = Duration::ZERO;
                while !stop.load(Ordering::SeqCst) {
                    if started.elapsed() >= next {
                        let mut s = Sample {
                            at: started.elapsed(),
                            rounds: rounds.load(Ordering::SeqCst),
                            kills: kills.load(Ordering::SeqCst),
                            state_bytes: dir_bytes(&state_dir),
                            ..Sample::default()
                        };
                        sample_process(pid, &mut s);
                        if let Some(status) = daemon::query_status(&runtime, &socket) {
                            s.pending_events = status.pending_events;
                            s.events_total = status.events_total;
                        }
                        println!(
                            "soak sample: {:.1} min, RSS {} KiB, fds {}, threads {}, state {} B",
                            s.at.as_secs_f64() / 60.0,
                            s.rss_kib,
                            s.fds,
                            s.threads,
                            s.state_bytes
                        );
                        samples.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                        next += period;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Self {
            stop,
            rounds,
            kills,
            samples,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Kills every actor the daemon lists, once; returns how many kills it accepted.
fn kill_every_actor(runtime: &tokio::runtime::Runtime, socket: &Path) -> u64 {
    let Some(status) = daemon::query_status(runtime, socket) else {
        return 0;
    };
    let mut kills = 0;
    for actor in status.actors {
        let request = Request::Kill { actor: actor.name };
        if runtime.block_on(control::request(socket, &request)).is_ok() {
            kills += 1;
        }
    }
    kills
}

/// `netfailover-lab --soak MINUTES`: returns whether every timeline step of every round passed.
pub fn run(minutes: u64) -> Result<bool, LabError> {
    let minutes = minutes.clamp(1, MAX_MINUTES);
    let duration = Duration::from_secs(minutes * 60);
    let steps = timeline::scenario("default")?;
    daemon::watch_interrupts();
    println!("netfailover-lab --soak {minutes}: building the world (device, 3 ISPs, Internet)…");
    let mut world = World::build()?;
    world.start_servers()?;
    let work = WorkDir::new()?;
    let boot = work.path().join("boot");
    let socket = work.path().join("sock");
    let state_dir = work.path().join("state");
    let script_log = work.path().join("scripts.log");
    let daemon_log = work.path().join("daemon.log");
    world.write_boot_dir(&boot, FAST_SETTINGS, &state_dir, &script_log)?;
    let exe = std::env::current_exe().map_err(|error| LabError::Daemon { error })?;
    let mut daemon = DaemonProcess::start(&exe, &world, &boot, &socket, &daemon_log, &[])?;
    println!(
        "daemon started (pid {}), log {}",
        daemon.id(),
        daemon_log.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| LabError::Daemon { error })?;
    // The first sample is the started daemon, not `ip netns exec` before it.
    let ready = super::netns::wait_for(START_WAIT, || {
        daemon::query_status(&runtime, &socket).filter(|s| !s.interfaces.is_empty())
    });
    if ready.is_none() {
        let log = std::fs::read_to_string(&daemon_log).unwrap_or_default();
        return Err(LabError::DaemonNotReady {
            secs: START_WAIT.as_secs(),
            log,
        });
    }
    // About 30 rows whatever the length, at least 10 s apart.
    let period = (duration / 30).max(Duration::from_secs(10));
    let sampler = Sampler::start(daemon.id(), socket.clone(), state_dir, period);
    let started = Instant::now();
    let (mut steps_ok, mut steps_run, mut kills, mut flaps) = (0u64, 0u64, 0u64, 0u64);
    let mut failure = None;
    // Bounded: a round takes well over a second, and the time check ends the loop.
    for _ in 0..minutes * 60 {
        if started.elapsed() >= duration {
            break;
        }
        match timeline::play(
            &steps,
            timeline::STEP_TIMEOUT,
            &world,
            &mut daemon,
            &socket,
            &script_log,
        ) {
            Ok(outcomes) => {
                steps_run += outcomes.len() as u64;
                steps_ok += outcomes.iter().filter(|o| o.ok).count() as u64;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if daemon.exited().is_some() {
            println!("the daemon exited; stopping the soak");
            break;
        }
        for iface in FLAPPED {
            for _ in 0..FLAPS {
                world.pull_cable(iface)?;
                std::thread::sleep(FLAP_PAUSE);
                world.plug_cable(iface)?;
                std::thread::sleep(FLAP_PAUSE);
                flaps += 1;
            }
        }
        let killed = kill_every_actor(&runtime, &socket);
        kills += killed;
        sampler.kills.fetch_add(killed, Ordering::SeqCst);
        sampler.rounds.fetch_add(1, Ordering::SeqCst);
    }
    let samples = sampler.finish();
    let alive = daemon.exited().is_none();
    drop(daemon);
    drop(world);
    if let Some(e) = failure {
        println!("\nstopping: {e}; namespaces removed");
        return Err(e);
    }
    let rows = samples.len();
    println!(
        "\nsoak: {:.1} min, {} rounds, {steps_ok}/{steps_run} timeline steps ok, {flaps} flaps, \
         {kills} actor kills, daemon {}",
        started.elapsed().as_secs_f64() / 60.0,
        samples.last().map_or(0, |s| s.rounds),
        if alive { "alive to the end" } else { "DIED" }
    );
    println!("{}", table(&samples, rows.div_ceil(30)));
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        println!(
            "start → end: RSS {:.1} → {:.1} MiB, fds {} → {}, threads {} → {}, state_dir {} → {} B",
            first.rss_kib as f64 / 1024.0,
            last.rss_kib as f64 / 1024.0,
            first.fds,
            last.fds,
            first.threads,
            last.threads,
            first.state_bytes,
            last.state_bytes
        );
    }
    println!("namespaces removed");
    Ok(alive && steps_ok == steps_run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_fields_are_read() {
        let text = "Name:\tnetfailover\nVmHWM:\t   9000 kB\nVmRSS:\t    8123 kB\nThreads:\t4\n";
        assert_eq!(parse_proc_status(text), (8123, 9000, 4));
        assert_eq!(parse_proc_status("garbage"), (0, 0, 0));
    }

    #[test]
    fn table_keeps_first_and_last_rows() {
        let samples: Vec<Sample> = (0..10)
            .map(|n| Sample {
                at: Duration::from_secs(60 * n),
                rss_kib: 1024 * (n + 1),
                ..Sample::default()
            })
            .collect();
        let text = table(&samples, 4);
        // Header + rows 0, 4, 8 and the last (9).
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("10.0"), "{text}");
    }
}
