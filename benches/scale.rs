//! Scale benchmark on the real kernel: 256 veth uplinks managed at once (needs root; prints SKIP
//! otherwise).
//!
//! A device namespace holds `u0`…`u255`, their peers `p0`…`p255` sit in one ISP namespace. Each
//! pair is a /31 on documentation addresses (192.0.2.0/24 and 198.51.100.0/24 give 128 pairs
//! each). The engine runs with the real netlink and sysctl adapters and checks off, every uplink
//! a manual IPv4 profile with its own metric (1000 + i). Measured:
//!
//! 1. **Start-up**: engine start → all 256 owned default routes in the kernel.
//! 2. **Memory**: this process's RSS before the engine starts and once it has settled (the
//!    observer's own sockets are small next to it).
//! 3. **One reconcile**: an owned route deleted by hand → the engine has put it back (a
//!    `RoutesChanged` from the kernel, one full diff of 256 interfaces, one route add).
//! 4. **Storm**: `NF_BENCH_STORM` (default 10 000) carrier changes spread over the uplinks in
//!    one `ip -batch`, each uplink ending up → time from the storm's end until the table equals
//!    the desired state and stays so for 1 s.
//!
//! Run: `cargo bench --bench scale` (`NF_BENCH_QUICK=1` for fewer reconcile runs and a smaller
//! storm); `scripts/bench.sh` collects its `@row` lines.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netfailover::engine::fake::{FakeProbe, FakeScripts, FakeTraffic, MemJournal, MemStateStore};
use netfailover::engine::model::{
    CheckConfig, Config, Family, FamilyConfig, IfaceAddr, IfaceMatch, IfaceName, KernelRoute,
    Method, Metric, Profile, UplinkType, DEFAULT_ROUTE_PROTOCOL,
};
use netfailover::engine::ports::{Ports, RouteTable};
use netfailover::os::netlink::{NetlinkLinks, NetlinkRoutes, DEFAULT_RCVBUF};
use netfailover::os::sysctl::ProcSysctl;
use netfailover_lab::bench::{
    fmt_duration, latency_row, machine_line, proc_status_field, runs, value_row, Met, Samples,
};
use netfailover_lab::netns::{is_root, run, Netns};
use netfailover_lab::uplinks::{block_on_in_netns, run_in_netns};
use tokio::sync::oneshot;

/// Uplinks managed at once.
const UPLINKS: usize = 256;
/// First configured metric; uplink `i` has `BASE_METRIC + i`.
const BASE_METRIC: u32 = 1000;
/// Bound on start-up and on each reconcile.
const WAIT: Duration = Duration::from_secs(60);
/// How long the table must stay right to call a storm over.
const QUIET: Duration = Duration::from_secs(1);
/// Bound on the storm's convergence.
const STORM_WAIT: Duration = Duration::from_secs(300);

/// Device address and gateway of uplink `i` (a /31 per uplink).
fn addresses(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let net: [u8; 3] = if i < 128 { [192, 0, 2] } else { [198, 51, 100] };
    let host = ((i % 128) * 2) as u8;
    (
        Ipv4Addr::new(net[0], net[1], net[2], host + 1),
        Ipv4Addr::new(net[0], net[1], net[2], host),
    )
}

fn profile(i: usize) -> Profile {
    let (addr, gateway) = addresses(i);
    let metric = Metric::new(i64::from(BASE_METRIC) + i as i64).expect("bench metric in range");
    let name = format!("u{i}");
    Profile {
        id: name.clone(),
        uuid: None,
        file: PathBuf::from(format!("{name}.nmconnection")),
        uplink_type: UplinkType::Ethernet,
        matches: IfaceMatch::Name(IfaceName::new(name).expect("u<i> is a valid name")),
        managed: true,
        ipv4: FamilyConfig {
            manage_default: true,
            method: Method::Manual,
            metric,
            addresses: vec![IfaceAddr {
                addr: addr.into(),
                prefix_len: 31,
            }],
            gateway: Some(gateway.into()),
        },
        ipv6: FamilyConfig {
            manage_default: false,
            method: Method::Auto,
            metric,
            addresses: Vec::new(),
            gateway: None,
        },
        dns: Vec::new(),
        metered: netfailover_actors::model::Metered::guess(UplinkType::Ethernet),
    }
}

/// Runs `lines` through `ip -n NS -batch`.
fn batch(ns: &Netns, what: &str, lines: &str) {
    let path = std::env::temp_dir().join(format!("{}-{what}.batch", ns.name()));
    std::fs::write(&path, lines).expect("batch file");
    let path_text = path.display().to_string();
    run(&["ip", "-n", ns.name(), "-batch", &path_text]).expect("ip -batch");
    let _ = std::fs::remove_file(path);
}

/// The device and ISP namespaces with every pair up and addressed.
fn build_world() -> (Netns, Netns) {
    let dev = Netns::new("scale-dev").expect("device namespace");
    let isp = Netns::new("scale-isp").expect("ISP namespace");
    // Offset the ISP side's ifindexes from their peers' (see `Netns::pad_ifindex`).
    isp.pad_ifindex(1).expect("pad");
    let mut dev_lines = String::new();
    let mut isp_lines = String::new();
    for i in 0..UPLINKS {
        let (addr, gateway) = addresses(i);
        dev_lines.push_str(&format!(
            "link add u{i} type veth peer name p{i} netns {}\n",
            isp.name()
        ));
        dev_lines.push_str(&format!("addr add {addr}/31 dev u{i}\nlink set u{i} up\n"));
        isp_lines.push_str(&format!(
            "addr add {gateway}/31 dev p{i}\nlink set p{i} up\n"
        ));
    }
    batch(&dev, "links", &dev_lines);
    batch(&isp, "addrs", &isp_lines);
    (dev, isp)
}

/// The engine in the device namespace until `stop` fires, then a clean shutdown.
fn run_engine(dev: &Netns, stop: oneshot::Receiver<()>) {
    let config = Config {
        profiles: (0..UPLINKS).map(profile).collect(),
        adopt: false,
        check: CheckConfig {
            uri: "http://192.0.2.1/check".into(),
            interval: Duration::ZERO,
            ..CheckConfig::default()
        },
        ..Config::default()
    };
    run_in_netns(dev, || {
        actix_rt::System::new().block_on(async {
            let ports = Ports {
                links: Arc::new(NetlinkLinks::new(DEFAULT_RCVBUF)),
                routes: Arc::new(NetlinkRoutes::new().expect("route socket")),
                sysctl: Arc::new(ProcSysctl::new()),
                probe: Arc::new(FakeProbe::default()),
                scripts: Arc::new(FakeScripts::default()),
                journal: Arc::new(MemJournal::default()),
                state: Arc::new(MemStateStore::default()),
                traffic: Arc::new(FakeTraffic::default()),
                recovery: Arc::new(netfailover::engine::ports::NoRecovery),
                accounts: Arc::new(netfailover::engine::fake::MemAccounts::default()),
                calendar: Arc::new(netfailover::engine::ports::SystemCalendar),
                flows: Arc::new(netfailover::os::flows::NetlinkFlows::new()),
            };
            let engine = netfailover::engine::start(config, ports);
            let _ = stop.await;
            if let Err(e) = engine.shutdown().await {
                eprintln!("engine shutdown: {e}");
            }
        })
    })
    .expect("engine thread");
}

/// (ifindex, metric) of every owned IPv4 default route.
fn owned(table: &[KernelRoute]) -> BTreeSet<(u32, u32)> {
    table
        .iter()
        .filter(|r| r.family == Family::V4 && r.protocol == DEFAULT_ROUTE_PROTOCOL)
        .map(|r| (r.ifindex, r.metric))
        .collect()
}

/// Polls the table every 2 ms until `done` holds; the instant it first did, or `None`.
async fn until(
    routes: &NetlinkRoutes,
    bound: Duration,
    done: impl Fn(&[KernelRoute]) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if let Ok(table) = routes.list_defaults().await {
            if done(&table) {
                return Some(Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

struct Measured {
    startup: Duration,
    rss_before_kib: u64,
    rss_settled_kib: u64,
    reconcile: Samples,
    storm: usize,
    storm_took: Duration,
    settled_after: Option<Duration>,
    peak_kib: u64,
}

async fn measure(
    dev: &Netns,
    isp: &Netns,
    desired: &BTreeSet<(u32, u32)>,
    engine_started: Instant,
    reconcile_runs: usize,
    storm: usize,
) -> Measured {
    let routes = NetlinkRoutes::new().expect("observer route socket");
    let all_in = |t: &[KernelRoute]| owned(t) == *desired;
    let ready = until(&routes, WAIT, all_in)
        .await
        .expect("the engine never installed all 256 routes");
    let startup = ready - engine_started;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_settled_kib = proc_status_field(None, "VmRSS:");

    // One reconcile: delete an owned route behind the engine's back, wait for it to return.
    let table = routes.list_defaults().await.expect("table");
    let mut reconcile = Vec::new();
    for run in 0..reconcile_runs {
        let victim = table
            .iter()
            .filter(|r| r.family == Family::V4 && r.protocol == DEFAULT_ROUTE_PROTOCOL)
            .nth(run % UPLINKS)
            .cloned()
            .expect("an owned route");
        let started = Instant::now();
        routes.delete(victim).await.expect("delete by hand");
        let back = until(&routes, WAIT, all_in)
            .await
            .unwrap_or_else(|| panic!("run {run}: the deleted route never came back"));
        reconcile.push(back - started);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Storm: carrier changes of the ISP ends, spread over the uplinks (a fixed stride so the
    // run is repeatable), every uplink ending up.
    let storm = storm + storm % 2;
    let mut lines = String::new();
    for k in 0..storm / 2 {
        let i = (k * 37) % UPLINKS;
        lines.push_str(&format!("link set dev p{i} down\nlink set dev p{i} up\n"));
    }
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let isp_name = isp.name().to_string();
    tokio::task::spawn_blocking(move || {
        let path = std::env::temp_dir().join(format!("{isp_name}-storm.batch"));
        std::fs::write(&path, lines).expect("storm file");
        let path_text = path.display().to_string();
        let result = run(&["ip", "-n", &isp_name, "-batch", &path_text]);
        let _ = std::fs::remove_file(path);
        result
    })
    .await
    .expect("storm task")
    .expect("storm");
    let storm_done = Instant::now();
    let settled_after = settle(&routes, desired).await.map(|at| at - storm_done);
    let _ = dev;
    Measured {
        startup,
        rss_before_kib: 0,
        rss_settled_kib,
        reconcile: Samples(reconcile),
        storm,
        storm_took: storm_done - started,
        settled_after,
        peak_kib: proc_status_field(None, "VmHWM:"),
    }
}

/// The instant the table last differed before it stayed equal to `desired` for [`QUIET`].
async fn settle(routes: &NetlinkRoutes, desired: &BTreeSet<(u32, u32)>) -> Option<Instant> {
    let deadline = Instant::now() + STORM_WAIT;
    let mut right_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let right = routes
            .list_defaults()
            .await
            .map(|t| owned(&t) == *desired)
            .unwrap_or(false);
        match (right, right_since) {
            (true, None) => right_since = Some(Instant::now()),
            (true, Some(since)) if since.elapsed() >= QUIET => return Some(since),
            (false, _) => right_since = None,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn main() {
    if !is_root() {
        println!("SKIP scale bench: needs root to create network namespaces");
        return;
    }
    let reconcile_runs = runs(50, 10);
    let storm: usize = std::env::var("NF_BENCH_STORM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if netfailover_lab::bench::quick() {
            2_000
        } else {
            10_000
        });
    let built = Instant::now();
    let (dev, isp) = build_world();
    println!(
        "scale bench, {}: {UPLINKS} veth pairs built in {}",
        machine_line(),
        fmt_duration(built.elapsed())
    );
    let desired: BTreeSet<(u32, u32)> = {
        let listing = dev.ip(&["-o", "link", "show"]).expect("link list");
        (0..UPLINKS)
            .map(|i| {
                let name = format!(" u{i}@");
                let ifindex = listing
                    .lines()
                    .find(|l| l.contains(&name))
                    .and_then(|l| l.split(':').next())
                    .and_then(|n| n.trim().parse().ok())
                    .expect("ifindex of u<i>");
                (ifindex, BASE_METRIC + i as u32)
            })
            .collect()
    };
    let rss_before_kib = proc_status_field(None, "VmRSS:");
    let (stop_engine, engine_stopped) = oneshot::channel::<()>();
    let measured = std::thread::scope(|scope| {
        let engine_started = Instant::now();
        let engine = scope.spawn(|| run_engine(&dev, engine_stopped));
        let measured = block_on_in_netns(&dev, || {
            measure(&dev, &isp, &desired, engine_started, reconcile_runs, storm)
        })
        .expect("measuring thread");
        let _ = stop_engine.send(());
        engine
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        Measured {
            rss_before_kib,
            ..measured
        }
    });

    println!(
        "start-up {}; RSS {} KiB before the engine, {} KiB settled; reconcile p50 {} p99 {}; \
         storm of {} in {}: settled {}; peak RSS {} KiB",
        fmt_duration(measured.startup),
        measured.rss_before_kib,
        measured.rss_settled_kib,
        fmt_duration(measured.reconcile.p50()),
        fmt_duration(measured.reconcile.p99()),
        measured.storm,
        fmt_duration(measured.storm_took),
        measured
            .settled_after
            .map(|d| format!("{} after it ended", fmt_duration(d)))
            .unwrap_or_else(|| "never".into()),
        measured.peak_kib
    );
    value_row(
        "scale, 256 uplinks: engine start → all 256 routes in the kernel",
        fmt_duration(measured.startup),
        "< 2 s",
        Met::from_bool(measured.startup < Duration::from_secs(2)),
    );
    value_row(
        "scale, 256 uplinks: RSS of the process (engine + observer), before → settled",
        format!(
            "{} → {} KiB",
            measured.rss_before_kib, measured.rss_settled_kib
        ),
        "< 32 MiB",
        Met::from_bool(measured.rss_settled_kib < 32 * 1024),
    );
    latency_row(
        "scale, 256 uplinks: one reconcile (owned route deleted by hand → back)",
        &measured.reconcile,
        "< 50 ms p99",
        Some(Duration::from_millis(50)),
    );
    value_row(
        &format!(
            "scale, 256 uplinks: storm of {} carrier changes → desired table (peak RSS {} KiB)",
            measured.storm, measured.peak_kib
        ),
        measured
            .settled_after
            .map(|d| format!("{} after it ends", fmt_duration(d)))
            .unwrap_or_else(|| format!("not within {}", fmt_duration(STORM_WAIT))),
        "< 5 s after it ends",
        Met::from_bool(
            measured
                .settled_after
                .is_some_and(|d| d < Duration::from_secs(5)),
        ),
    );
}
