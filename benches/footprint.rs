//! Idle footprint of the real daemon (needs root; prints SKIP otherwise): the release binary
//! runs in the lab world (three uplinks, the lab's check and DNS servers, default settings but
//! the check `interval`), and its CPU time and RSS are read from `/proc` over an idle window,
//! once at `interval` 3600 (balenaOS's default) and once at 5 s.
//!
//! The window starts once every uplink is FULL, so start-up work is not counted. Window: 60 s
//! (`NF_BENCH_QUICK`: 15 s; `NF_BENCH_IDLE_SECS` overrides). Run: `cargo bench --bench
//! footprint`; `scripts/bench.sh` collects its `@row` lines.

use std::path::Path;
use std::time::{Duration, Instant};

use netfailover::engine::model::Connectivity;
use netfailover_lab::bench::{cpu_time, open_fds, proc_status_field, quick, value_row, Met};
use netfailover_lab::daemon::{query_status, DaemonProcess};
use netfailover_lab::netns::{is_root, wait_for};
use netfailover_lab::world::World;

/// Bound on the daemon's start-up (all three uplinks FULL).
const READY_WAIT: Duration = Duration::from_secs(30);

fn window() -> Duration {
    let secs = std::env::var("NF_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 15 } else { 60 });
    Duration::from_secs(secs)
}

struct Footprint {
    cpu_percent: f64,
    rss_kib: u64,
    peak_kib: u64,
    fds: usize,
    threads: u64,
}

/// Runs the daemon at `interval` seconds and measures it over `window`.
fn measure(interval: u32, window: Duration) -> Footprint {
    let exe = Path::new(env!("CARGO_BIN_EXE_netfailover"));
    let mut world = World::build().expect("lab world");
    world.start_servers().expect("lab servers");
    let work = tempfile::tempdir().expect("work dir");
    let boot = work.path().join("boot");
    let socket = work.path().join("sock");
    world
        .write_boot_dir(
            &boot,
            "",
            &work.path().join("state"),
            &work.path().join("scripts.log"),
        )
        .expect("boot dir");
    // The lab's config.json checks every 2 s; this run uses `interval`.
    let config_path = boot.join("config.json");
    let config = std::fs::read_to_string(&config_path).expect("config.json");
    let config = config.replace(
        "\"interval\": \"2\"",
        &format!("\"interval\": \"{interval}\""),
    );
    std::fs::write(&config_path, config).expect("config.json");
    let mut daemon = DaemonProcess::start(
        exe,
        &world,
        &boot,
        &socket,
        &work.path().join("daemon.log"),
        &[],
    )
    .expect("daemon");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    wait_for(READY_WAIT, || {
        query_status(&runtime, &socket).filter(|s| {
            s.interfaces.len() == 3
                && s.interfaces
                    .iter()
                    .all(|i| i.connectivity == Connectivity::Full)
        })
    })
    .unwrap_or_else(|| {
        let log = std::fs::read_to_string(work.path().join("daemon.log")).unwrap_or_default();
        panic!("the daemon never had three FULL uplinks; its log:\n{log}")
    });
    let pid = daemon.id();
    let cpu0 = cpu_time(pid);
    let started = Instant::now();
    std::thread::sleep(window);
    let cpu1 = cpu_time(pid);
    let wall = started.elapsed();
    let footprint = Footprint {
        cpu_percent: (cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64() * 100.0,
        rss_kib: proc_status_field(Some(pid), "VmRSS:"),
        peak_kib: proc_status_field(Some(pid), "VmHWM:"),
        fds: open_fds(pid),
        threads: proc_status_field(Some(pid), "Threads:"),
    };
    daemon.stop(Duration::from_secs(5));
    footprint
}

fn main() {
    if !is_root() {
        println!("SKIP footprint bench: needs root to create network namespaces");
        return;
    }
    let window = window();
    for interval in [3600, 5] {
        let f = measure(interval, window);
        println!(
            "interval {interval} s, {} s idle: CPU {:.3} %, RSS {} KiB (peak {} KiB), {} fds, {} threads",
            window.as_secs(),
            f.cpu_percent,
            f.rss_kib,
            f.peak_kib,
            f.fds,
            f.threads
        );
        value_row(
            &format!(
                "idle daemon, 3 uplinks, interval {interval} s: CPU over {} s",
                window.as_secs()
            ),
            format!("{:.3} %", f.cpu_percent),
            "< 1 %",
            Met::from_bool(f.cpu_percent < 1.0),
        );
        value_row(
            &format!("idle daemon, 3 uplinks, interval {interval} s: RSS (peak), fds, threads"),
            format!(
                "{:.1} MiB ({:.1} MiB), {} fds, {} threads",
                f.rss_kib as f64 / 1024.0,
                f.peak_kib as f64 / 1024.0,
                f.fds,
                f.threads
            ),
            "< 16 MiB",
            Met::from_bool(f.rss_kib < 16 * 1024),
        );
    }
}
