//! Passive health benchmark (root, namespaces; prints its own rows, see `lab::bench`):
//!
//! 1. Silent upstream blackhole on the primary under application traffic → route to the
//!    backup, at `interval` 3600 with every other setting at its default: p50/p99 over
//!    `runs(20, 5)` fresh lab worlds (the daemon binary, real kernel, real checks); then the
//!    same at the lab's short settings (`interval` 2 s + `lab::world::FAST_SETTINGS`), where
//!    the periodic checks and passive health race.
//! 2. The sampling's cost: `NetlinkTraffic::sample` of 3 interfaces with 500 open TCP
//!    connections (1000 sockets) on them — CPU per sample (hence per second at the default
//!    1 s period) and the RSS growth of the sampling process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use netfailover::engine::ports::TrafficSource;
use netfailover::os::traffic::NetlinkTraffic;
use netfailover_lab::apps::{AppLab, BusyClient, ECHO};
use netfailover_lab::bench::{
    cpu_time, fmt_duration, latency_row, proc_status_field, runs, value_row, Met, Samples,
};
use netfailover_lab::netns::{is_root, Netns};
use netfailover_lab::uplinks::{block_on_in_netns, UplinkWorld};
use netfailover_lab::world::FAST_SETTINGS;

const CONNECTIONS: usize = 500;
const SAMPLES: u32 = 200;

fn blackhole_runs(n: usize, interval_secs: u32, settings: &str) -> Samples {
    let exe = Path::new(env!("CARGO_BIN_EXE_netfailover"));
    let mut out = Samples::default();
    for run in 0..n {
        let dir =
            std::env::temp_dir().join(format!("nf-passive-bench-{}-{run}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let measured = (|| {
            let lab = AppLab::start_with(exe, &dir, interval_secs, settings).ok()?;
            let app = BusyClient::start(
                &lab.world.device,
                SocketAddr::from((ECHO, 7)),
                Duration::from_millis(250),
                Duration::from_secs(1),
            )
            .ok()?;
            // Traffic established; blackhole at a random phase of the sampling period.
            std::thread::sleep(Duration::from_millis(3000 + (run as u64 * 137) % 1000));
            let took = lab.time_route_leaves("eth0", Duration::from_secs(30));
            drop(app);
            took
        })();
        let _ = std::fs::remove_dir_all(&dir);
        match measured {
            Some(d) => {
                println!("run {run}: blackhole → backup {}", fmt_duration(d));
                out.0.push(d);
            }
            None => println!("run {run}: no failover within 30 s"),
        }
    }
    out
}

/// 500 connections from the device's eth0 address to a listener on the same address (their
/// source is on eth0, so they are attributed to it), then `SAMPLES` samples of 3 interfaces.
fn sampling_cost(world: &UplinkWorld) -> (Duration, u64) {
    let dev: &Netns = &world.dev;
    let addr = std::net::IpAddr::V4(world.uplinks[0].dev_v4);
    let ifindexes: Vec<u32> = world.uplinks.iter().map(|u| u.ifindex).collect();
    block_on_in_netns(dev, || async move {
        let listener = TcpListener::bind(SocketAddr::new(addr, 0)).expect("listener");
        let target = listener.local_addr().expect("address");
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            let c = TcpStream::connect(target).expect("connect");
            let (s, _) = listener.accept().expect("accept");
            conns.push((c, s));
        }
        let source = NetlinkTraffic::new().expect("traffic sockets");
        let rss_before = proc_status_field(None, "VmRSS:");
        let cpu_before = cpu_time(std::process::id());
        let t0 = Instant::now();
        let mut sockets = 0;
        for _ in 0..SAMPLES {
            let s = source.sample(ifindexes.clone()).await.expect("sample");
            sockets = s.iter().map(|i| i.tcp.len()).sum::<usize>();
        }
        let wall = t0.elapsed();
        let cpu = cpu_time(std::process::id()).saturating_sub(cpu_before);
        let rss_after = proc_status_field(None, "VmRSS:");
        println!(
            "{SAMPLES} samples of {} interfaces, {sockets} sockets each: wall {}, cpu {}",
            ifindexes.len(),
            fmt_duration(wall),
            fmt_duration(cpu)
        );
        assert!(
            sockets >= 2 * CONNECTIONS,
            "every socket attributed: {sockets}"
        );
        drop(conns);
        (cpu / SAMPLES, rss_after.saturating_sub(rss_before))
    })
    .expect("namespace")
}

fn main() {
    if !is_root() {
        println!("SKIP passive bench: needs root to create network namespaces");
        return;
    }
    let world = UplinkWorld::new("pasbench", 3).expect("namespace world");
    let (cpu_per_sample, rss_growth_kib) = sampling_cost(&world);
    drop(world);
    let samples = blackhole_runs(runs(20, 5), 3600, "");
    latency_row(
        "passive: silent blackhole → backup (interval 3600, defaults, app traffic)",
        &samples,
        "p50 ≤ 3 s, p99 ≤ 4 s",
        Some(Duration::from_secs(4)),
    );
    // The lab's settings: leaving FULL is bounded by interval + 2 × timeout + 1 s = 5 s
    // (docs/semantics.md §3) without passive health; with it, usually sooner.
    let samples = blackhole_runs(runs(20, 5), 2, FAST_SETTINGS);
    latency_row(
        "silent blackhole → backup at the lab's settings (interval 2 s, timeout 1 s, down_count 2, app traffic)",
        &samples,
        "≤ 5 s p99 (interval + 2 × timeout + 1 s)",
        Some(Duration::from_secs(5)),
    );
    value_row(
        "passive: sampling CPU per period (3 ifaces, 500 TCP connections)",
        fmt_duration(cpu_per_sample),
        "≤ 1 % of a core at 1 s",
        Met::from_bool(cpu_per_sample <= Duration::from_millis(10)),
    );
    value_row(
        "passive: RSS growth of sampling (3 ifaces, 500 TCP connections)",
        format!("{rss_growth_kib} KiB"),
        "–",
        Met::NoTarget,
    );
}
