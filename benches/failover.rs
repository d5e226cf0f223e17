//! Failover benchmark on the real kernel, in namespaces it creates (needs root; prints SKIP
//! otherwise). The engine runs with the real netlink and sysctl adapters in a device namespace
//! with two uplinks (u0 metric 100, u1 metric 200, checks off); a separate measuring thread in
//! the same namespace triggers faults in-process (netlink, no `ip` process spawn in the timed
//! path) and watches the kernel.
//!
//! 1. **Link loss → backup route first**: the ISP end of u0 goes down (carrier loss on u0);
//!    the time until the lowest-metric default route of *both* families — `linkdown` ones
//!    included, the kernel still uses them — is u1's. Also the kernel's own event latency (the
//!    RTM_NEWLINK with carrier off reaching a subscriber) and the fail-back time. `RUNS` runs
//!    (env `NF_BENCH_RUNS`, default 200).
//! 2. **Storm**: `NF_BENCH_STORM` (default 10 000) carrier changes of u0 in one `ip -batch`,
//!    ending up; the time from the end of the storm until the table is back to the desired
//!    state, the overruns the engine saw, and the process's peak RSS during the storm.
//!
//! The engine's `netlink.rcvbuf` is `NF_BENCH_RCVBUF` (default 4 MiB); a small one shows the
//! storm ending in overruns and full resyncs.
//!
//! Run: `cargo bench --bench failover` (prints a Markdown table for docs/netlink.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{BoxStream, StreamExt};
use netfailover::engine::fake::{FakeProbe, FakeScripts, FakeTraffic, MemJournal, MemStateStore};
use netfailover::engine::model::{CheckConfig, Config, Family, KernelRoute, Method, Metric};
use netfailover::engine::ports::{LinkSource, LinkUpdate, Ports, RouteTable};
use netfailover::os::netlink::{NetlinkLinks, NetlinkRoutes, DEFAULT_RCVBUF};
use netfailover::os::sysctl::ProcSysctl;
use netfailover_lab::bench::{
    fmt_duration, latency_row, machine_line, proc_status_field, runs, value_row, Met, Samples,
};
use netfailover_lab::netns::is_root;
use netfailover_lab::uplinks::{block_on_in_netns, run_in_netns, CountingLinks, UplinkWorld};
use rtnetlink::LinkUnspec;
use tokio::sync::oneshot;

/// Bound on any single wait for the kernel or the engine.
const WAIT: Duration = Duration::from_secs(10);
/// How long the table must stay unchanged to call a storm over.
const QUIET: Duration = Duration::from_secs(1);
/// Bound on the storm's convergence.
const STORM_WAIT: Duration = Duration::from_secs(120);
/// Pause between runs, so each starts from a settled engine.
const SETTLE: Duration = Duration::from_millis(20);

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !is_root() {
        println!("SKIP failover bench: needs root to create network namespaces");
        return;
    }
    let runs = runs(200, 30);
    let storm = env_count("NF_BENCH_STORM", 10_000);
    let world = UplinkWorld::new("nlbench", 2).expect("namespace world");
    let rcvbuf = env_count("NF_BENCH_RCVBUF", DEFAULT_RCVBUF);
    let links = CountingLinks::new(NetlinkLinks::new(rcvbuf));
    let (stop_engine, engine_stopped) = oneshot::channel::<()>();
    let stop_watcher = AtomicBool::new(false);

    let (measured, carrier_off) = std::thread::scope(|scope| {
        let engine = scope.spawn(|| run_engine(&world, links.clone(), engine_stopped));
        let watcher =
            scope.spawn(|| watch_carrier_off(&world.dev, world.uplinks[0].ifindex, &stop_watcher));
        let measured = block_on_in_netns(&world.dev, || {
            measure(&world, &links, runs, storm, &stop_watcher)
        })
        .expect("measuring thread");
        println!("netlink.rcvbuf = {rcvbuf} bytes");
        stop_watcher.store(true, Ordering::SeqCst);
        let _ = stop_engine.send(());
        engine
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let carrier_off = watcher
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (measured, carrier_off)
    });
    println!("{}", measured.report(&carrier_off));
}

/// The engine in the device namespace until `stop` fires, then a clean shutdown.
fn run_engine(
    world: &UplinkWorld,
    links: CountingLinks<NetlinkLinks>,
    stop: oneshot::Receiver<()>,
) {
    let metric = |m| Metric::new(m).expect("bench metric in range");
    let config = Config {
        profiles: vec![
            world.uplinks[0].profile(Method::Manual, metric(100)),
            world.uplinks[1].profile(Method::Manual, metric(200)),
        ],
        adopt: false,
        check: CheckConfig {
            uri: "http://192.0.2.1/check".into(),
            interval: Duration::ZERO,
            ..CheckConfig::default()
        },
        ..Config::default()
    };
    run_in_netns(&world.dev, || {
        actix_rt::System::new().block_on(async {
            let ports = Ports {
                links: Arc::new(links),
                routes: Arc::new(NetlinkRoutes::new().expect("route socket")),
                sysctl: Arc::new(ProcSysctl::new()),
                probe: Arc::new(FakeProbe::default()),
                scripts: Arc::new(FakeScripts::default()),
                journal: Arc::new(MemJournal::default()),
                state: Arc::new(MemStateStore::default()),
                flows: Arc::new(netfailover::os::flows::NetlinkFlows::new()),
                traffic: Arc::new(FakeTraffic::default()),
                recovery: Arc::new(netfailover::engine::ports::NoRecovery),
                accounts: Arc::new(netfailover::engine::fake::MemAccounts::default()),
                calendar: Arc::new(netfailover::engine::ports::SystemCalendar),
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

/// The kernel's first default route per family is on `ifindex` (both families).
fn first_is(table: &[KernelRoute], ifindex: u32) -> bool {
    [Family::V4, Family::V6].into_iter().all(|family| {
        table
            .iter()
            .filter(|r| r.family == family)
            .min_by_key(|r| r.metric)
            .is_some_and(|r| r.ifindex == ifindex)
    })
}

/// Owned routes exactly at the configured metrics on both uplinks, both families.
fn desired(table: &[KernelRoute], u0: u32, u1: u32) -> bool {
    let ours: Vec<(u32, u32)> = table
        .iter()
        .filter(|r| r.protocol == netfailover::engine::model::DEFAULT_ROUTE_PROTOCOL)
        .map(|r| (r.ifindex, r.metric))
        .collect();
    ours.len() == 4
        && [(u0, 100), (u1, 200)]
            .iter()
            .all(|want| ours.iter().filter(|got| *got == want).count() == 2)
}

/// Reads events until `done` holds for the table (checked at once and after every event);
/// returns when it first held, or `None` after [`WAIT`].
async fn until(
    events: &mut BoxStream<'static, LinkUpdate>,
    routes: &NetlinkRoutes,
    done: impl Fn(&[KernelRoute]) -> bool,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let table = routes.list_defaults().await.ok()?;
        if done(&table) {
            return Some(Instant::now());
        }
        tokio::time::timeout_at(deadline, events.next())
            .await
            .ok()??;
    }
}

/// After a storm the table may look right while the engine still works through a backlog (a
/// late carrier-off removes the route again). Converged = the table's last change, after which
/// it stayed in the `done` state for [`QUIET`]. Returns that instant (`since` if nothing
/// changed), or `None` if it does not settle within [`STORM_WAIT`].
async fn settle(
    events: &mut BoxStream<'static, LinkUpdate>,
    routes: &NetlinkRoutes,
    since: Instant,
    done: impl Fn(&[KernelRoute]) -> bool,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + STORM_WAIT;
    let mut last_change = since;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(QUIET, events.next()).await {
            Ok(Some(LinkUpdate::RoutesChanged)) => last_change = Instant::now(),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(_quiet) => {
                if done(&routes.list_defaults().await.ok()?) {
                    return Some(last_change);
                }
            }
        }
    }
    None
}

/// Times at which a subscriber on its own thread (in `ns`) saw carrier-off of `ifindex`, until
/// `stop` is set (at most [`STORM_WAIT`] plus the runs).
fn watch_carrier_off(
    ns: &netfailover_lab::netns::Netns,
    ifindex: u32,
    stop: &AtomicBool,
) -> Vec<Instant> {
    block_on_in_netns(ns, || async {
        let mut updates = NetlinkLinks::default()
            .subscribe()
            .await
            .expect("kernel-event subscription");
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(50), updates.next()).await {
                Ok(Some(LinkUpdate::Link(l))) if l.ifindex == ifindex && !l.carrier => {
                    seen.push(Instant::now())
                }
                Ok(None) => break,
                _ => {}
            }
        }
        seen
    })
    .expect("kernel-event thread")
}

/// The failover table's row: runs, p50, p99, max.
fn table_row(what: &str, samples: &Samples) -> String {
    format!(
        "| {what} | {} | {} | {} | {} |",
        samples.len(),
        fmt_duration(samples.p50()),
        fmt_duration(samples.p99()),
        fmt_duration(samples.max())
    )
}

fn memory_kib(field: &str) -> u64 {
    proc_status_field(None, field)
}

async fn measure(
    world: &UplinkWorld,
    links: &CountingLinks<NetlinkLinks>,
    runs: usize,
    storm: usize,
    stop_watcher: &AtomicBool,
) -> Measured {
    let (u0, u1) = (&world.uplinks[0], &world.uplinks[1]);
    let isp = &u0.isp;
    let peer = isp.ifindex(&u0.isp_iface).expect("peer ifindex");
    // The trigger's socket is created in the ISP namespace (registered with this runtime's
    // reactor), then driven from here.
    let runtime = tokio::runtime::Handle::current();
    let (connection, trigger, _) = run_in_netns(isp, move || {
        let _reactor = runtime.enter();
        rtnetlink::new_connection()
    })
    .expect("ISP namespace")
    .expect("trigger socket");
    tokio::spawn(connection);
    let set_peer = |up: bool| {
        let message = LinkUnspec::new_with_index(peer);
        let message = if up { message.up() } else { message.down() };
        trigger.link().set(message.build()).execute()
    };
    let routes = NetlinkRoutes::new().expect("observer route socket");
    let mut events = NetlinkLinks::default()
        .subscribe()
        .await
        .expect("observer subscription");

    until(&mut events, &routes, |t| desired(t, u0.ifindex, u1.ifindex))
        .await
        .expect("the engine never installed both uplinks");

    let (mut failover, mut failback, mut starts) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        tokio::time::sleep(SETTLE).await;
        let start = Instant::now();
        set_peer(false).await.expect("peer down");
        let switched = until(&mut events, &routes, |t| first_is(t, u1.ifindex))
            .await
            .unwrap_or_else(|| panic!("run {run}: the backup never became first"));
        failover.push(switched - start);
        starts.push(start);

        tokio::time::sleep(SETTLE).await;
        let start = Instant::now();
        set_peer(true).await.expect("peer up");
        let back = until(&mut events, &routes, |t| {
            first_is(t, u0.ifindex) && desired(t, u0.ifindex, u1.ifindex)
        })
        .await
        .unwrap_or_else(|| panic!("run {run}: the primary never came back"));
        failback.push(back - start);
    }

    // Storm: one `ip -batch` of carrier changes on the ISP end, ending up. The observers stop
    // listening meanwhile so their queues do not count in the process's memory.
    stop_watcher.store(true, Ordering::SeqCst);
    drop(events);
    let storm = storm + storm % 2;
    let script: String = (0..storm)
        .map(|i| {
            format!(
                "link set dev {} {}\n",
                u0.isp_iface,
                if i % 2 == 0 { "down" } else { "up" }
            )
        })
        .collect();
    let batch = std::env::temp_dir().join(format!("{}-bench-storm.txt", isp.name()));
    std::fs::write(&batch, script).expect("storm script");
    // Reset the peak-RSS mark (clear_refs 5, Linux ≥ 4.0) so VmHWM is the storm's peak.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = memory_kib("VmRSS:");
    let overruns_before = links.overruns();
    let started = Instant::now();
    let isp_name = isp.name().to_string();
    let batch_path = batch.display().to_string();
    tokio::task::spawn_blocking(move || {
        netfailover_lab::netns::run(&["ip", "-n", &isp_name, "-batch", &batch_path])
    })
    .await
    .expect("storm task")
    .expect("storm");
    let storm_done = Instant::now();
    let mut events = NetlinkLinks::default()
        .subscribe()
        .await
        .expect("observer subscription");
    let converged = settle(&mut events, &routes, storm_done, |t| {
        desired(t, u0.ifindex, u1.ifindex) && first_is(t, u0.ifindex)
    })
    .await
    .expect("no convergence after the storm");
    let _ = std::fs::remove_file(&batch);
    let peak = memory_kib("VmHWM:");

    Measured {
        runs,
        failover,
        failback,
        starts,
        storm,
        storm_took: storm_done - started,
        settled_after: converged - storm_done,
        overruns: links.overruns() - overruns_before,
        rss_before_kib: rss_before,
        peak_kib: peak,
    }
}

/// What [`measure`] found.
struct Measured {
    runs: usize,
    failover: Vec<Duration>,
    failback: Vec<Duration>,
    /// When each run's link loss was triggered.
    starts: Vec<Instant>,
    storm: usize,
    storm_took: Duration,
    settled_after: Duration,
    overruns: usize,
    rss_before_kib: u64,
    peak_kib: u64,
}

impl Measured {
    /// The rows `scripts/bench.sh` collects (targets: docs/benchmarks.md).
    fn print_rows(&self, failover: &Samples, failback: &Samples) {
        latency_row(
            "carrier loss → backup route first, real kernel, both families",
            failover,
            "< 5 ms p99",
            Some(Duration::from_millis(5)),
        );
        latency_row(
            "carrier back → primary first again at its configured metric (checks off)",
            failback,
            "< 5 ms p99",
            Some(Duration::from_millis(5)),
        );
        value_row(
            &format!(
                "storm of {} carrier changes → table equals desired state",
                self.storm
            ),
            format!(
                "{} after the storm ({} overruns)",
                fmt_duration(self.settled_after),
                self.overruns
            ),
            "< 1 s after it ends",
            Met::from_bool(self.settled_after < Duration::from_secs(1)),
        );
        value_row(
            "storm: process RSS before → peak",
            format!("{} → {} KiB", self.rss_before_kib, self.peak_kib),
            "< 16 MiB peak",
            Met::from_bool(self.peak_kib < 16 * 1024),
        );
    }

    /// The Markdown report; `carrier_off` are the instants the kernel-event watcher saw u0 lose
    /// its carrier (matched to the run that caused each).
    fn report(&self, carrier_off: &[Instant]) -> String {
        let kernel_event: Vec<Duration> = self
            .starts
            .iter()
            .filter_map(|start| {
                carrier_off
                    .iter()
                    .find(|at| *at >= start)
                    .map(|at| *at - *start)
            })
            .filter(|latency| *latency < Duration::from_secs(1))
            .collect();
        let kernel_event = Samples(kernel_event);
        let failover = Samples(self.failover.clone());
        let failback = Samples(self.failback.clone());
        self.print_rows(&failover, &failback);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "Failover bench, {}, {} runs\n\n\
             | measure | runs | p50 | p99 | max |\n|---|---|---|---|---|\n{}\n{}\n{}\n\n\
             Storm: {} carrier changes of u0 in {:.0} ms; last route change {:.1} ms after the \
             storm ended, then the desired table for 1 s; overruns seen by the engine: {}; \
             process RSS (engine and observers) {} KiB before, peak {} KiB during the storm.",
            machine_line(),
            self.runs,
            table_row("link loss → backup first (both families)", &failover),
            table_row(
                "kernel: carrier-off RTM_NEWLINK reaches a subscriber",
                &kernel_event
            ),
            table_row("link back → primary first at configured metric", &failback),
            self.storm,
            ms(self.storm_took),
            ms(self.settled_after),
            self.overruns,
            self.rss_before_kib,
            self.peak_kib,
        )
    }
}
