//! Passive health benchmark (root, namespaces; prints its own rows, see `lab::bench`):
//!
//! 1. Silent upstream blackhole on the primary under application traffic → route to the
//!    backup, at `interval` 3600 with every other setting at its default: p50/p99 over
//!    `runs(20, 5)` fresh lab worlds (the daemon binary, real kernel, real checks); then the
//!    same at the lab's short settings (`interval` 2 s + `lab::world::FAST_SETTINGS`), where
//!    the periodic checks and passive health race.
//! 2. The sampling's cost: `NetlinkTraffic::sample` of 3 interfaces with 500 open TCP
//!    connections (1000 sockets) on them and 10 000 conntrack entries (NATed UDP flows of a
//!    container whose replies come back to eth0's address, created through ctnetlink) — CPU
//!    per sample, i.e. per pass over every source (hence per second at the default 1 s
//!    period), and the RSS growth of the sampling process.
//! 3. A container behind the device's masquerading bridge keeps a TCP connection busy; silent
//!    upstream blackhole on the primary → route on the backup, and → the container's
//!    application echoing again (through the backup), `runs(20, 5)` fresh lab worlds at
//!    `interval` 3600 with defaults.
//! 4. Confirmations per hour under a churn of dead peers (a new peer that never answers every
//!    5 s, beside healthy traffic), from the rule at the default settings over one virtual
//!    hour, with the bytes they cost at the probe bench's HTTPS bytes per check.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use netfailover::engine::ports::TrafficSource;
use netfailover::os::flows::conntrack::Conntrack;
use netfailover::os::traffic::NetlinkTraffic;
use netfailover_lab::apps::{AppLab, BusyClient, ECHO};
use netfailover_lab::bench::{
    cpu_time, fmt_duration, latency_row, proc_status_field, runs, value_row, Met, Samples,
};
use netfailover_lab::container::masqueraded_container;
use netfailover_lab::netns::{is_root, wait_for, Netns};
use netfailover_lab::uplinks::{block_on_in_netns, UplinkWorld};
use netfailover_lab::world::FAST_SETTINGS;

const CONNECTIONS: usize = 500;
const CT_ENTRIES: u16 = 10_000;
/// HTTPS bytes per check at L3 with a resumed session (docs/benchmarks.md, probe bench).
const HTTPS_CHECK_BYTES: u64 = 1752;
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
        // The first sample turns conntrack accounting on, so the entries made next get counters.
        let source = NetlinkTraffic::new().expect("traffic sockets");
        source.sample(ifindexes.clone()).await.expect("sample");
        let mut ct = Conntrack::open().expect("ctnetlink");
        let container = std::net::Ipv4Addr::new(192, 0, 2, 66);
        let created = (0..CT_ENTRIES)
            .filter(|i| {
                let peer = SocketAddr::from(([203, 0, 113, (i % 200) as u8 + 1], 443));
                let port = 10_000 + i;
                let orig = (SocketAddr::from((container, port)), peer);
                let reply = (peer, SocketAddr::new(addr, port));
                ct.create_udp(orig, reply, 600).is_ok()
            })
            .count();
        let rss_before = proc_status_field(None, "VmRSS:");
        let cpu_before = cpu_time(std::process::id());
        let t0 = Instant::now();
        let (mut sockets, mut flows) = (0, 0);
        for _ in 0..SAMPLES {
            let s = source.sample(ifindexes.clone()).await.expect("sample");
            sockets = s.iter().map(|i| i.tcp.len()).sum::<usize>();
            flows = s
                .iter()
                .map(|i| i.flows.as_ref().map_or(0, Vec::len))
                .sum::<usize>();
        }
        let wall = t0.elapsed();
        let cpu = cpu_time(std::process::id()).saturating_sub(cpu_before);
        let rss_after = proc_status_field(None, "VmRSS:");
        println!(
            "{SAMPLES} samples of {} interfaces, {sockets} sockets, {flows} of {created} conntrack entries each: wall {}, cpu {}",
            ifindexes.len(),
            fmt_duration(wall),
            fmt_duration(cpu)
        );
        assert!(
            sockets >= 2 * CONNECTIONS,
            "every socket attributed: {sockets}"
        );
        assert!(flows >= created, "every entry attributed: {flows} of {created}");
        drop(conns);
        (cpu / SAMPLES, rss_after.saturating_sub(rss_before))
    })
    .expect("namespace")
}

/// Container blackhole runs: (blackhole → route on the backup, → the container's app echoing
/// again) per run.
fn container_runs(n: usize) -> (Samples, Samples) {
    let exe = Path::new(env!("CARGO_BIN_EXE_netfailover"));
    let (mut moved, mut echoing) = (Samples::default(), Samples::default());
    for run in 0..n {
        let dir = std::env::temp_dir().join(format!("nf-pas-ctr-{}-{run}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let measured = (|| {
            let lab = AppLab::start(exe, &dir).ok()?;
            let ctr = masqueraded_container(&lab.world.device, "pbctr").ok()?;
            let app = BusyClient::start(
                &ctr,
                SocketAddr::from((ECHO, 7)),
                Duration::from_millis(250),
                Duration::from_secs(1),
            )
            .ok()?;
            std::thread::sleep(Duration::from_millis(3000 + (run as u64 * 137) % 1000));
            let t0 = Instant::now();
            let took = lab.time_route_leaves("eth0", Duration::from_secs(30))?;
            let after = t0 + took;
            let back = wait_for(Duration::from_secs(30), || {
                app.round_trips()
                    .iter()
                    .any(|t| t.at > after)
                    .then(|| t0.elapsed())
            })?;
            Some((took, back))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        match measured {
            Some((took, back)) => {
                println!(
                    "run {run}: container blackhole → backup {}, app echoing {}",
                    fmt_duration(took),
                    fmt_duration(back)
                );
                moved.0.push(took);
                echoing.0.push(back);
            }
            None => println!("run {run}: no failover or no echo within 30 s"),
        }
    }
    (moved, echoing)
}

/// One virtual hour of a new never-answering peer every 5 s beside healthy traffic, through
/// the rule at the default settings: (confirmations asked for, most peers remembered).
fn churn_confirmations() -> (u64, usize) {
    use netfailover::engine::passive::{Context, RuleParams, Tracker};
    use netfailover::engine::ports::{IfaceTraffic, TcpPhase, TcpSocketSample};
    let p = RuleParams::from_config(&netfailover::engine::model::Config::default());
    let ctx = Context {
        eligible: true,
        in_use: true,
    };
    let t0 = tokio::time::Instant::now();
    let mut t = Tracker::default();
    let (mut fired, mut most) = (0, 0);
    for i in 0..3600u64 {
        let k = i / 5;
        let peer =
            std::net::Ipv4Addr::from(0xC633_6400 + (k % 250) as u32 + 1 + ((k / 250) << 8) as u32);
        let syn = TcpSocketSample {
            cookie: k,
            local: SocketAddr::from(([192, 0, 2, 2], 40000)),
            remote: SocketAddr::from((peer, 443)),
            phase: TcpPhase::SynSent,
            unacked: 1,
            retransmits: 1,
            total_retrans: 1,
            last_ack_recv: Duration::ZERO,
            rtt: Duration::ZERO,
            bytes_acked: 0,
            bytes_received: 0,
        };
        let s = IfaceTraffic {
            ifindex: 2,
            name: "eth0".into(),
            rx_packets: i * 20,
            tx_packets: i * 20,
            rx_multicast: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            tcp: vec![syn],
            subnets: vec![],
            flows: Some(vec![]),
        };
        if t.observe(t0 + Duration::from_secs(i), "eth0", Some(&s), ctx, &p)
            .is_some()
        {
            fired += 1;
        }
        most = most.max(t.charged());
    }
    (fired, most)
}

fn main() {
    if !is_root() {
        println!("SKIP passive bench: needs root to create network namespaces");
        return;
    }
    let world = UplinkWorld::new("pasbench", 3).expect("namespace world");
    let (cpu_per_sample, rss_growth_kib) = sampling_cost(&world);
    drop(world);
    let (churn, remembered) = churn_confirmations();
    let (moved, echoing) = container_runs(runs(20, 5));
    latency_row(
        "passive: container (masqueraded bridge) blackhole → backup (interval 3600, defaults)",
        &moved,
        "≤ 6 s",
        Some(Duration::from_secs(6)),
    );
    latency_row(
        "passive: container blackhole → container app echoing via the backup",
        &echoing,
        "≤ 8 s",
        Some(Duration::from_secs(8)),
    );
    value_row(
        "passive: confirmations per hour under a dead-peer churn (new peer every 5 s; rule, defaults)",
        format!(
            "{churn} (≈ {:.1} KB of HTTPS checks; ≤ {remembered} peers remembered)",
            (churn * HTTPS_CHECK_BYTES) as f64 / 1000.0
        ),
        "a few KB/h",
        Met::from_bool(churn * HTTPS_CHECK_BYTES <= 10_000),
    );
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
        "passive: sampling CPU per period (3 ifaces, 500 TCP connections, 10000 conntrack entries)",
        fmt_duration(cpu_per_sample),
        "≤ 1 % of a core at 1 s",
        Met::from_bool(cpu_per_sample <= Duration::from_millis(10)),
    );
    value_row(
        "passive: RSS growth of sampling (3 ifaces, 500 TCP connections, 10000 conntrack entries)",
        format!("{rss_growth_kib} KiB"),
        "–",
        Met::NoTarget,
    );
}
