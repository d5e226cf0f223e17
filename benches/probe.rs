//! Probe cost: check latency over a veth, bytes per check, memory per `HttpProbe`.
//!
//! Needs root (it builds two throw-away namespaces, `nf-pb*`, deleted at the end); otherwise it
//! says so and exits. Traffic stays inside them (documentation addresses). Run with
//! `cargo bench --bench probe`; numbers go to docs/probe.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netfailover::engine::model::{CheckConfig, Family, IfaceName};
use netfailover::engine::ports::{ProbeRequest, Verdict};
use netfailover::os::probe::HttpProbe;
use netfailover_lab::bench::{latency_row, runs, value_row, Met, Samples};
use netfailover_lab::internet::{CheckServer, DnsResponder, TestCa};
use netfailover_lab::netns::{is_root, veth, Netns};

/// Checks per measured series: enough for a p99, bounded so the bench ends in seconds
/// (`NF_BENCH_QUICK`: 50).
fn checks() -> usize {
    runs(200, 50).max(2)
}
/// Probe instances built to measure memory per instance.
const INSTANCES: usize = 500;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("bench address")
}

fn config(uri: &str, ca_file: Option<std::path::PathBuf>) -> CheckConfig {
    CheckConfig {
        uri: uri.into(),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        ca_file,
        ..CheckConfig::default()
    }
}

/// Resident set size of this process in KiB (read from /proc, which follows the process).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn main() {
    if !is_root() {
        eprintln!("bench probe: needs root to build network namespaces; skipped");
        return;
    }
    let dev = Netns::new("pbd").expect("dev ns");
    let inet = Netns::new("pbi").expect("inet ns");
    veth((&dev, "eth0"), (&inet, "d0")).expect("veth");
    dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"])
        .expect("addr");
    inet.ip(&["addr", "add", "192.0.2.1/24", "dev", "d0"])
        .expect("addr");
    inet.ip(&["addr", "add", "203.0.113.10/32", "dev", "lo"])
        .expect("addr");
    inet.ip(&["addr", "add", "203.0.113.53/32", "dev", "lo"])
        .expect("addr");
    dev.ip(&["route", "add", "default", "via", "192.0.2.1", "dev", "eth0"])
        .expect("route");
    let ca = TestCa::new(&["check.test"]).expect("ca");
    let _server = CheckServer::start(
        &inet,
        sa("203.0.113.10:80"),
        Some((sa("203.0.113.10:443"), &ca)),
    )
    .expect("server");
    let _dns = DnsResponder::start(
        &inet,
        sa("203.0.113.53:53"),
        &[("check.test", "203.0.113.10".parse().expect("ip"))],
        300,
    )
    .expect("dns");
    let dir = std::env::temp_dir().join(format!("nf-bench-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).expect("ca file");

    let request = ProbeRequest {
        iface: IfaceName::new("eth0").expect("iface"),
        ifindex: 0,
        dns: vec![sa("203.0.113.53:53")],
        routed: vec![Family::V4],
    };
    let series = [
        ("HTTP", config("http://check.test/connectivity-check", None)),
        (
            "HTTPS",
            config(
                "https://check.test/connectivity-check",
                Some(ca_file.clone()),
            ),
        ),
    ];
    std::thread::scope(|s| {
        s.spawn(|| {
            dev.enter_current_thread().expect("enter");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            for (name, check) in &series {
                let probe = HttpProbe::new(check).expect("probe");
                let rss0 = rss_kib();
                let checks = checks();
                let (mut times, mut bytes, mut first_bytes) = (Vec::new(), 0u64, 0u64);
                for i in 0..checks {
                    let started = Instant::now();
                    let report = rt.block_on(probe.run(request.clone()));
                    times.push(started.elapsed());
                    assert_eq!(report.verdict, Verdict::Full, "{report:?}");
                    if i == 0 {
                        first_bytes = report.bytes;
                    } else {
                        bytes += report.bytes;
                    }
                }
                let rss1 = rss_kib();
                let times = Samples(times);
                let per_check = bytes / (checks as u64 - 1);
                println!(
                    "{name}: {checks} checks over veth: p50 {:?}, p99 {:?}, max {:?}; \
                     first check {first_bytes} B (with DNS), then {per_check} B/check; \
                     RSS growth over the series {} KiB",
                    times.p50(),
                    times.p99(),
                    times.max(),
                    rss1.saturating_sub(rss0),
                );
                latency_row(
                    &format!("{name} check latency over a veth (DNS cached)"),
                    &times,
                    "< 50 ms p99",
                    Some(Duration::from_millis(50)),
                );
                let (target, bound) = if *name == "HTTP" {
                    ("≤ 700 B", 700)
                } else {
                    ("< 6 KB", 6000)
                };
                value_row(
                    &format!(
                        "{name} bytes per check at L3 (first check with DNS: {first_bytes} B)"
                    ),
                    format!("{per_check} B"),
                    target,
                    Met::from_bool(per_check <= bound),
                );
            }
            for (name, check) in &series {
                let rss0 = rss_kib();
                let probes: Vec<HttpProbe> = (0..INSTANCES)
                    .map(|_| HttpProbe::new(check).expect("probe"))
                    .collect();
                let rss1 = rss_kib();
                println!(
                    "{name}: memory per HttpProbe ≈ {:.1} KiB ({INSTANCES} instances, RSS)",
                    rss1.saturating_sub(rss0) as f64 / INSTANCES as f64
                );
                drop(probes);
            }
        });
    });
    std::fs::remove_dir_all(dir).ok();
}
