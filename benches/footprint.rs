//! Idle footprint of the real daemon (needs root; prints SKIP otherwise): the release binary
//! runs in the lab world (the lab's check and DNS servers, default settings — passive health
//! on — but the check `interval`), and its CPU time and RSS are read from `/proc` over an idle
//! window: at `interval` 3600 (balenaOS's default) and 5 s with two uplinks (`eth0`, `wlan0`:
//! the side-by-side comparison's world), and at 5 s with the lab's three.
//!
//! The window starts once every uplink is FULL, so start-up work is not counted. Window: 60 s
//! (`NF_BENCH_QUICK`: 15 s; `NF_BENCH_IDLE_SECS` overrides). The RSS is also split by what
//! holds it (`/proc/PID/smaps`: the binary's own pages, shared libraries, anonymous memory).
//! Run: `cargo bench --bench footprint`; `scripts/bench.sh` collects its `@row` lines.
//! `NF_BENCH_FOOTPRINT=5:2,3600:3` picks the runs (interval:uplinks); `NF_BENCH_EXE` measures another build of the daemon (for instance a `cargo build --release`
//! binary while the bench itself runs from `cargo test --bench footprint`).

use std::path::Path;
use std::time::{Duration, Instant};

use netfailover::engine::model::Connectivity;
use netfailover_lab::bench::{cpu_time, open_fds, proc_status_field, quick, value_row, Met};
use netfailover_lab::daemon::{query_status, DaemonProcess};
use netfailover_lab::netns::{is_root, wait_for};
use netfailover_lab::world::World;

/// Bound on the daemon's start-up (every uplink FULL).
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
    cpu_ms: f64,
    rss_kib: u64,
    peak_kib: u64,
    fds: usize,
    threads: u64,
    /// Resident KiB by holder: the binary's own file pages, shared libraries, anonymous.
    split: RssSplit,
}

#[derive(Default)]
struct RssSplit {
    binary_kib: u64,
    libs_kib: u64,
    anon_kib: u64,
}

/// Splits the resident set of `pid` by mapping (`/proc/PID/smaps`): the executable's own
/// file, other files (shared libraries), and the rest (heap, stacks, anonymous mappings).
fn rss_split(pid: u32, exe: &Path) -> RssSplit {
    let mut split = RssSplit::default();
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return split;
    };
    let exe = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let exe = exe.to_string_lossy();
    let mut current: Option<u8> = None; // 0 binary, 1 library, 2 anonymous
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A mapping header: address range, perms, offset, device, inode, path.
            let path = fields.nth(4).unwrap_or_default();
            current = Some(if path == exe {
                0
            } else if path.starts_with('/') {
                1
            } else {
                2
            });
        } else if first == "Rss:" {
            let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match current {
                Some(0) => split.binary_kib += kib,
                Some(1) => split.libs_kib += kib,
                _ => split.anon_kib += kib,
            }
        }
    }
    split
}

/// (interval, uplinks) of each run: `NF_BENCH_FOOTPRINT` (`5:2,3600:3`) or the default three.
fn runs() -> Vec<(u32, usize)> {
    let parsed: Option<Vec<(u32, usize)>> = std::env::var("NF_BENCH_FOOTPRINT").ok().map(|v| {
        v.split(',')
            .filter_map(|run| {
                let (i, u) = run.split_once(':')?;
                Some((i.trim().parse().ok()?, u.trim().parse().ok()?))
            })
            .filter(|(_, u)| (1..=3).contains(u))
            .collect()
    });
    parsed
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| vec![(3600, 2), (5, 2), (5, 3)])
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the daemon at `interval` seconds with `uplinks` (2 or 3) uplinks and measures it over
/// `window`.
fn measure(exe: &Path, interval: u32, uplinks: usize, window: Duration) -> Footprint {
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
    // Fewer uplinks: the last ones' profiles and interfaces go (their ISP namespaces stay idle).
    for u in world.uplinks.iter().skip(uplinks) {
        std::fs::remove_file(
            boot.join("system-connections")
                .join(format!("lab-{}", u.iface)),
        )
        .expect("keyfile");
        world
            .device
            .ip(&["link", "del", u.iface])
            .expect("deleting an uplink");
    }
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
            s.interfaces.len() == uplinks
                && s.interfaces
                    .iter()
                    .all(|i| i.connectivity == Connectivity::Full)
        })
    })
    .unwrap_or_else(|| {
        let log = std::fs::read_to_string(work.path().join("daemon.log")).unwrap_or_default();
        panic!("the daemon never had {uplinks} FULL uplinks; its log:\n{log}")
    });
    let pid = daemon.id();
    let cpu0 = cpu_time(pid);
    let started = Instant::now();
    std::thread::sleep(window);
    let cpu1 = cpu_time(pid);
    let wall = started.elapsed();
    let footprint = Footprint {
        cpu_percent: (cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64() * 100.0,
        cpu_ms: (cpu1 - cpu0).as_secs_f64() * 1000.0,
        rss_kib: proc_status_field(Some(pid), "VmRSS:"),
        peak_kib: proc_status_field(Some(pid), "VmHWM:"),
        fds: open_fds(pid),
        threads: proc_status_field(Some(pid), "Threads:"),
        split: rss_split(pid, exe),
    };
    daemon.stop(Duration::from_secs(5));
    footprint
}

fn main() {
    if !is_root() {
        println!("SKIP footprint bench: needs root to create network namespaces");
        return;
    }
    let exe = std::env::var_os("NF_BENCH_EXE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_netfailover")).to_path_buf());
    let window = window();
    for (interval, uplinks) in runs() {
        let f = measure(&exe, interval, uplinks, window);
        println!(
            "{uplinks} uplinks, interval {interval} s, {} s idle: CPU {:.0} ms ({:.3} %), RSS {} KiB (peak {} KiB; binary {} KiB, libraries {} KiB, anonymous {} KiB), {} fds, {} threads",
            window.as_secs(),
            f.cpu_ms,
            f.cpu_percent,
            f.rss_kib,
            f.peak_kib,
            f.split.binary_kib,
            f.split.libs_kib,
            f.split.anon_kib,
            f.fds,
            f.threads
        );
        value_row(
            &format!(
                "idle daemon, {uplinks} uplinks, interval {interval} s, passive health on: CPU over {} s",
                window.as_secs()
            ),
            format!("{:.0} ms ({:.3} %)", f.cpu_ms, f.cpu_percent),
            // NetworkManager 1.42 idles at 30 ms over 60 s (README comparison).
            "≤ 0.05 % (30 ms over 60 s)",
            Met::from_bool(f.cpu_percent <= 0.05),
        );
        value_row(
            &format!(
                "idle daemon, {uplinks} uplinks, interval {interval} s: RSS (peak; binary + libraries + anonymous), fds, threads"
            ),
            format!(
                "{:.1} MiB ({:.1} MiB; {:.1} + {:.1} + {:.1}), {} fds, {} threads",
                mib(f.rss_kib),
                mib(f.peak_kib),
                mib(f.split.binary_kib),
                mib(f.split.libs_kib),
                mib(f.split.anon_kib),
                f.fds,
                f.threads
            ),
            "< 6 MiB",
            Met::from_bool(f.rss_kib < 6 * 1024),
        );
    }
}
