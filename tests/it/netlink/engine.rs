//! The real engine (`netfailover_actors::start`) on the real link, route and sysctl adapters,
//! in an actix System on a thread that entered the device namespace. Probe, scripts, journal
//! and state store are the engine's in-memory fakes: connectivity is steered by the test.
//!
//! Every check reads the kernel through netlink (`NetlinkRoutes::list_defaults`, which includes
//! `linkdown` routes, the ones the kernel still uses) or through `ip` run in the namespace, and
//! waits with a generous bound for the table to converge; no test asserts a speed.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netfailover::engine::fake::{FakeProbe, FakeScripts, MemJournal, MemStateStore};
use netfailover::engine::model::{
    CheckConfig, Config, Family, KernelRoute, Method, Metric, Profile,
};
use netfailover::engine::ports::{Ports, RouteTable, Verdict};
use netfailover::engine::EngineHandle;
use netfailover::os::netlink::{NetlinkLinks, NetlinkRoutes, DEFAULT_RCVBUF};
use netfailover::os::sysctl::ProcSysctl;
use netfailover::os::traffic::NetlinkTraffic;
use netfailover_lab::netns::{require_root, run, Netns};
use netfailover_lab::uplinks::{run_in_netns, CountingLinks, Uplink, UplinkWorld};

use super::{add_dhcp_default, world, DHCP, OURS};

/// Generous bound for the engine to bring the kernel to the desired table.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Configured metrics of uplinks 0, 1, 2.
const METRICS: [u32; 3] = [100, 200, 300];
/// `route.penalty` default.
const PENALTY: u32 = 20_000;

// ---------------------------------------------------------------------------------------------
// Rig: the engine in the device namespace
// ---------------------------------------------------------------------------------------------

/// What one engine run is built from. `journal` and `state` stand for `state_dir`: sharing them
/// between two runs is a daemon restart.
struct Rig {
    probe: FakeProbe,
    journal: MemJournal,
    state: MemStateStore,
    links: CountingLinks<NetlinkLinks>,
}

impl Rig {
    fn new() -> Self {
        Self {
            probe: FakeProbe::default(),
            journal: MemJournal::default(),
            state: MemStateStore::default(),
            links: CountingLinks::new(NetlinkLinks::new(DEFAULT_RCVBUF)),
        }
    }

    fn with_rcvbuf(rcvbuf: usize) -> Self {
        Self {
            links: CountingLinks::new(NetlinkLinks::new(rcvbuf)),
            ..Self::new()
        }
    }

    /// Starts the engine in `ns` inside a new actix System and runs `body`. The System (and
    /// with it every actor and socket) is dropped when `body` returns: without a
    /// `shutdown()` in `body`, that is a crash — nothing cleans up, as after SIGKILL.
    fn run<T: Send>(
        &self,
        ns: &Netns,
        config: Config,
        body: impl AsyncFnOnce(&Kernel, &EngineHandle) -> T + Send,
    ) -> T {
        run_in_netns(ns, || self.run_here(config, body)).expect("entering the device namespace")
    }

    /// [`Rig::run`] on the calling thread, which must already be in the device namespace.
    fn run_here<T>(
        &self,
        config: Config,
        body: impl AsyncFnOnce(&Kernel, &EngineHandle) -> T,
    ) -> T {
        actix_rt::System::new().block_on(async {
            let ports = Ports {
                links: Arc::new(self.links.clone()),
                routes: Arc::new(NetlinkRoutes::new().expect("route socket")),
                sysctl: Arc::new(ProcSysctl::new()),
                probe: Arc::new(self.probe.clone()),
                scripts: Arc::new(FakeScripts::default()),
                journal: Arc::new(self.journal.clone()),
                state: Arc::new(self.state.clone()),
                flows: Arc::new(netfailover::os::flows::NetlinkFlows::new()),
                traffic: Arc::new(NetlinkTraffic::new().expect("traffic sockets")),
                recovery: Arc::new(netfailover::engine::ports::NoRecovery),
            };
            let kernel = Kernel {
                routes: NetlinkRoutes::new().expect("observer route socket"),
            };
            let engine = netfailover::engine::start(config, ports);
            body(&kernel, &engine).await
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// An uplink's profile (both families) at `metric`.
fn profile(up: &Uplink, method: Method, metric: u32) -> Profile {
    up.profile(
        method,
        Metric::new(i64::from(metric)).expect("test metric in range"),
    )
}

/// Manual profiles at [`METRICS`], checks on (interval 1 s, one result decides) or off.
fn config(w: &UplinkWorld, checks: bool) -> Config {
    let profiles = w
        .uplinks
        .iter()
        .zip(METRICS)
        .map(|(up, metric)| profile(up, Method::Manual, metric))
        .collect();
    config_with(profiles, checks)
}

fn config_with(profiles: Vec<Profile>, checks: bool) -> Config {
    let second = Duration::from_secs(1);
    Config {
        profiles,
        adopt: false,
        check: CheckConfig {
            // Never contacted: the probe is the engine's fake.
            uri: "http://192.0.2.1/check".into(),
            interval: if checks { second } else { Duration::ZERO },
            down_count: 1,
            up_count: 1,
            connect_timeout: second,
            timeout: 2 * second,
            recheck_max: second,
            ..CheckConfig::default()
        },
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Observing the kernel
// ---------------------------------------------------------------------------------------------

/// The test's own view of the device namespace's main table.
struct Kernel {
    routes: NetlinkRoutes,
}

/// (family, ifindex, metric) of a route.
type Key = (Family, u32, u32);

impl Kernel {
    async fn defaults(&self) -> Vec<KernelRoute> {
        self.routes.list_defaults().await.expect("listing routes")
    }

    /// Waits until the default routes on `managed` interfaces are exactly `want`, all ours;
    /// panics with the last table seen after [`CONVERGE_TIMEOUT`].
    async fn converge(
        &self,
        what: &str,
        managed: &[u32],
        want: &BTreeSet<Key>,
    ) -> Vec<KernelRoute> {
        let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let table = self.defaults().await;
            let on_managed: Vec<&KernelRoute> = table
                .iter()
                .filter(|r| managed.contains(&r.ifindex))
                .collect();
            let keys: BTreeSet<Key> = on_managed.iter().map(|r| key(r)).collect();
            if keys == *want
                && on_managed.len() == want.len()
                && on_managed.iter().all(|r| r.protocol == OURS)
            {
                return table;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: wanted {want:?}, the kernel has {table:#?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn key(r: &KernelRoute) -> Key {
    (r.family, r.ifindex, r.metric)
}

/// Both families' routes of these uplinks at these metrics.
fn both(uplinks: &[(&Uplink, u32)]) -> BTreeSet<Key> {
    uplinks
        .iter()
        .flat_map(|(up, metric)| {
            [
                (Family::V4, up.ifindex, *metric),
                (Family::V6, up.ifindex, *metric),
            ]
        })
        .collect()
}

fn ifindexes(w: &UplinkWorld) -> Vec<u32> {
    w.uplinks.iter().map(|u| u.ifindex).collect()
}

/// The default route the kernel uses for `family`: the lowest metric, `linkdown` included.
fn first(table: &[KernelRoute], family: Family) -> Option<&KernelRoute> {
    table
        .iter()
        .filter(|r| r.family == family)
        .min_by_key(|r| r.metric)
}

fn assert_first(table: &[KernelRoute], up: &Uplink) {
    for family in [Family::V4, Family::V6] {
        let got = first(table, family).map(|r| r.ifindex);
        assert_eq!(
            got,
            Some(up.ifindex),
            "{family:?}: first default should be {}: {table:#?}",
            up.dev_iface
        );
    }
}

/// `ip` in a namespace, off the engine's thread (the System keeps running meanwhile).
async fn ip(ns: &Netns, args: &[&str]) -> String {
    let mut argv: Vec<String> = vec!["ip".into(), "-n".into(), ns.name().into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        run(&argv)
    })
    .await
    .expect("ip task")
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The IPv6 route the kernel picks for a documentation address outside every uplink's subnet.
async fn ipv6_route_get(dev: &Netns) -> String {
    ip(dev, &["-6", "route", "get", "2001:db8:ffff::1"]).await
}

// ---------------------------------------------------------------------------------------------
// Failover on link loss
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Loss {
    /// The ISP end goes down: carrier loss on the device side.
    PeerCarrier,
    /// `ip link set dev u<i> down` on the device.
    DeviceAdmin,
}

async fn lose(w: &UplinkWorld, i: usize, loss: Loss, down: bool) {
    let state = if down { "down" } else { "up" };
    let up = &w.uplinks[i];
    match loss {
        Loss::PeerCarrier => ip(&up.isp, &["link", "set", &up.isp_iface, state]).await,
        Loss::DeviceAdmin => ip(&w.dev, &["link", "set", &up.dev_iface, state]).await,
    };
}

/// Loses the uplinks one after the other down to the last (each time the next one must be
/// first), then brings them back in reverse order (each time the returning one is first again,
/// at its configured metric), in both families.
fn failover_round_trip(tag: &str, count: usize, loss: Loss) {
    let w = world(tag, count);
    let managed = ifindexes(&w);
    let metric_of = |i: usize| (&w.uplinks[i], METRICS[i]);
    let alive =
        |from: usize| -> BTreeSet<Key> { both(&(from..count).map(metric_of).collect::<Vec<_>>()) };
    Rig::new().run(&w.dev, config(&w, false), async |kernel, engine| {
        let table = kernel.converge("start", &managed, &alive(0)).await;
        assert_first(&table, &w.uplinks[0]);

        for i in 0..count - 1 {
            lose(&w, i, loss, true).await;
            let table = kernel
                .converge(&format!("{loss:?} on u{i}"), &managed, &alive(i + 1))
                .await;
            assert_first(&table, &w.uplinks[i + 1]);
            let chosen = ipv6_route_get(&w.dev).await;
            assert!(chosen.contains(&format!("dev u{} ", i + 1)), "{chosen}");
        }
        for i in (0..count - 1).rev() {
            lose(&w, i, loss, false).await;
            let table = kernel
                .converge(&format!("u{i} back"), &managed, &alive(i))
                .await;
            assert_first(&table, &w.uplinks[i]);
        }
        let status = engine.status();
        let u0 = status
            .interfaces
            .iter()
            .find(|s| s.name.as_str() == "u0")
            .expect("u0 in status");
        assert_eq!(
            (u0.link.as_str(), u0.effective_metric),
            ("up", Some(METRICS[0]))
        );
        engine.shutdown().await.expect("clean shutdown");
    });
}

#[test]
fn engine_two_uplinks_fail_over_on_peer_carrier_loss_and_back() {
    if require_root("engine_two_uplinks_fail_over_on_peer_carrier_loss_and_back") {
        failover_round_trip("nlec2", 2, Loss::PeerCarrier);
    }
}

#[test]
fn engine_three_uplinks_fail_over_on_peer_carrier_loss_and_back() {
    if require_root("engine_three_uplinks_fail_over_on_peer_carrier_loss_and_back") {
        failover_round_trip("nlec3", 3, Loss::PeerCarrier);
    }
}

#[test]
fn engine_two_uplinks_fail_over_on_admin_down_and_back() {
    if require_root("engine_two_uplinks_fail_over_on_admin_down_and_back") {
        failover_round_trip("nlea2", 2, Loss::DeviceAdmin);
    }
}

#[test]
fn engine_three_uplinks_fail_over_on_admin_down_and_back() {
    if require_root("engine_three_uplinks_fail_over_on_admin_down_and_back") {
        failover_round_trip("nlea3", 3, Loss::DeviceAdmin);
    }
}

// ---------------------------------------------------------------------------------------------
// Penalty without a gap; clean shutdown
// ---------------------------------------------------------------------------------------------

/// Sets the flag when dropped, so the watcher stops even if the engine side panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls the table from its own thread (in the namespace) until stopped (at most a minute);
/// returns the number of samples and how many of them lacked a default route of either family.
fn watch_for_gaps(ns: &Netns, stop: &AtomicBool) -> (usize, usize) {
    netfailover_lab::uplinks::block_on_in_netns(ns, || async {
        let routes = NetlinkRoutes::new().expect("watcher route socket");
        let (mut samples, mut gaps) = (0, 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
            let table = routes.list_defaults().await.expect("watcher listing");
            samples += 1;
            if first(&table, Family::V4).is_none() || first(&table, Family::V6).is_none() {
                gaps += 1;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        (samples, gaps)
    })
    .expect("watcher thread")
}

#[test]
fn engine_penalty_changes_the_metric_without_a_moment_without_default_route() {
    if !require_root("engine_penalty_changes_the_metric_without_a_moment_without_default_route") {
        return;
    }
    // One uplink: any delete-before-add would leave the table without a default route.
    let w = world("nlpen", 1);
    let u0 = &w.uplinks[0];
    let managed = ifindexes(&w);
    let rig = Rig::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let engine_side = scope.spawn(|| {
            rig.run(&w.dev, config(&w, true), async |kernel, engine| {
                // UNKNOWN is penalised until the first check; the fake answers FULL.
                let _stop_watcher = StopOnDrop(&stop);
                kernel.converge("FULL", &managed, &both(&[(u0, 100)])).await;
                for round in 0..2 {
                    rig.probe.set("u0", Verdict::Limited);
                    kernel
                        .converge(
                            &format!("LIMITED #{round}"),
                            &managed,
                            &both(&[(u0, 100 + PENALTY)]),
                        )
                        .await;
                    rig.probe.set("u0", Verdict::Full);
                    kernel
                        .converge(&format!("FULL #{round}"), &managed, &both(&[(u0, 100)]))
                        .await;
                }
                rig.probe.set("u0", Verdict::Limited);
                kernel
                    .converge(
                        "LIMITED before shutdown",
                        &managed,
                        &both(&[(u0, 100 + PENALTY)]),
                    )
                    .await;
                engine.shutdown().await.expect("clean shutdown");
                // Penalties removed, owned routes left at their configured metric.
                let table = kernel.defaults().await;
                let keys: BTreeSet<Key> = table.iter().map(key).collect();
                (keys, table)
            })
        });
        let watcher = scope.spawn(|| {
            // Wait for the first default route, then sample until told to stop.
            netfailover_lab::netns::wait_for(CONVERGE_TIMEOUT, || {
                let routes = run(&["ip", "-n", w.dev.name(), "route", "show", "default"]).ok()?;
                routes.contains("proto 78").then_some(())
            });
            watch_for_gaps(&w.dev, &stop)
        });
        let (keys, table) = engine_side
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let (samples, gaps) = watcher
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        assert_eq!(keys, both(&[(u0, 100)]), "after shutdown: {table:#?}");
        assert!(samples > 50, "the watcher sampled only {samples} times");
        assert_eq!(gaps, 0, "{gaps} of {samples} samples saw no default route");
    });
}

// ---------------------------------------------------------------------------------------------
// Drift repair, restart after a crash, overrun
// ---------------------------------------------------------------------------------------------

#[test]
fn engine_repairs_a_hand_deleted_route_and_removes_a_stray_duplicate() {
    if !require_root("engine_repairs_a_hand_deleted_route_and_removes_a_stray_duplicate") {
        return;
    }
    let w = world("nldrift", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    let want = both(&[(u0, 100), (u1, 200)]);
    Rig::new().run(&w.dev, config(&w, false), async |kernel, engine| {
        kernel.converge("start", &managed, &want).await;

        ip(
            &w.dev,
            &[
                "route",
                "del",
                "default",
                "via",
                "192.0.2.1",
                "dev",
                "u0",
                "metric",
                "100",
                "proto",
                "78",
            ],
        )
        .await;
        ip(
            &w.dev,
            &[
                "-6",
                "route",
                "del",
                "default",
                "via",
                "2001:db8:1::1",
                "dev",
                "u1",
                "metric",
                "200",
                "proto",
                "78",
            ],
        )
        .await;
        kernel
            .converge("hand-deleted routes restored", &managed, &want)
            .await;

        ip(
            &w.dev,
            &[
                "route",
                "add",
                "default",
                "via",
                "192.0.2.1",
                "dev",
                "u0",
                "metric",
                "5000",
                "proto",
                "78",
            ],
        )
        .await;
        ip(
            &w.dev,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                "2001:db8::1",
                "dev",
                "u0",
                "metric",
                "5000",
                "proto",
                "78",
            ],
        )
        .await;
        kernel
            .converge("stray duplicates removed", &managed, &want)
            .await;

        // A competing foreign default route on a managed interface is taken over.
        ip(
            &w.dev,
            &[
                "route",
                "add",
                "default",
                "via",
                "198.51.100.1",
                "dev",
                "u1",
                "metric",
                "50",
                "proto",
                "dhcp",
            ],
        )
        .await;
        kernel
            .converge("competing route replaced", &managed, &want)
            .await;
        engine.shutdown().await.expect("clean shutdown");
    });
}

#[test]
fn engine_restart_without_shutdown_adopts_its_leftover_routes() {
    if !require_root("engine_restart_without_shutdown_adopts_its_leftover_routes") {
        return;
    }
    let w = world("nlcrash", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    let rig = Rig::new();
    // First run: u0 is LIMITED (penalised), then the process "dies" (no shutdown).
    rig.probe.set("u0", Verdict::Limited);
    let penalised = both(&[(u0, 100 + PENALTY), (u1, 200)]);
    rig.run(&w.dev, config(&w, true), async |kernel, _engine| {
        kernel.converge("first run", &managed, &penalised).await;
    });
    let shown = w.dev.ip(&["route", "show", "default"]).unwrap();
    assert!(
        shown.contains("metric 20100"),
        "the crash left the routes: {shown}"
    );

    // Second run on the same state_dir: one owned route each, u0 still penalised.
    rig.run(&w.dev, config(&w, true), async |kernel, engine| {
        kernel.converge("second run", &managed, &penalised).await;
        // Stays converged (no duplicate appears on a later reconcile).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        kernel
            .converge("still one route each", &managed, &penalised)
            .await;
        rig.probe.set("u0", Verdict::Full);
        kernel
            .converge("u0 FULL", &managed, &both(&[(u0, 100), (u1, 200)]))
            .await;
        engine.shutdown().await.expect("clean shutdown");
    });
    let v4 = w
        .dev
        .ip(&["route", "show", "default", "proto", "78"])
        .unwrap();
    let v6 = w
        .dev
        .ip(&["-6", "route", "show", "default", "proto", "78"])
        .unwrap();
    for (family, shown) in [("v4", &v4), ("v6", &v6)] {
        assert_eq!(
            shown.lines().count(),
            2,
            "{family}: one owned route per interface:\n{shown}"
        );
    }
}

#[test]
fn engine_overrun_ends_with_a_resync_and_the_desired_table() {
    if !require_root("engine_overrun_ends_with_a_resync_and_the_desired_table") {
        return;
    }
    let w = world("nlovr", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    // First 100 MTU changes of u0 (each says: u0 up, with carrier), then 1001 carrier toggles
    // of u0 (the ISP end), ending down. The few messages a 4 KiB buffer keeps are the first
    // MTU ones: stale "u0 up" news that must not outlive the resync.
    let mtu: String = (0..100)
        .map(|i| format!("link set dev u0 mtu {}\n", 1400 + (i % 2) * 100))
        .collect();
    let toggles: String = (0..1001)
        .map(|i| {
            format!(
                "link set dev p0 {}\n",
                if i % 2 == 0 { "down" } else { "up" }
            )
        })
        .collect();
    let mtu_batch = std::env::temp_dir().join(format!("{}-mtu.txt", w.dev.name()));
    let batch = std::env::temp_dir().join(format!("{}-storm.txt", u0.isp.name()));
    std::fs::write(&mtu_batch, mtu).unwrap();
    std::fs::write(&batch, toggles).unwrap();
    let rig = Rig::with_rcvbuf(4096);
    rig.run(&w.dev, config(&w, false), async |kernel, engine| {
        kernel
            .converge("start", &managed, &both(&[(u0, 100), (u1, 200)]))
            .await;
        let dumps_before = rig.links.dumps();
        // The storm runs while the engine's thread is blocked in the commands, so nobody
        // drains the 4 KiB socket: notifications are lost for sure, the last one (carrier
        // down) among them.
        w.dev.ip(&["-batch", mtu_batch.to_str().unwrap()]).unwrap();
        u0.isp.ip(&["-batch", batch.to_str().unwrap()]).unwrap();
        kernel
            .converge("after the storm", &managed, &both(&[(u1, 200)]))
            .await;
        // And it stays so: no stale "u0 up" brings its route back.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let table = kernel
            .converge("a while after the storm", &managed, &both(&[(u1, 200)]))
            .await;
        assert_first(&table, u1);
        assert!(rig.links.overruns() >= 1, "the engine saw no overrun");
        assert!(
            rig.links.dumps() > dumps_before,
            "no resync dump after the overrun"
        );

        // Still watching: u0 back → first again.
        ip(&u0.isp, &["link", "set", "p0", "up"]).await;
        let table = kernel
            .converge("u0 back", &managed, &both(&[(u0, 100), (u1, 200)]))
            .await;
        assert_first(&table, u0);
        engine.shutdown().await.expect("clean shutdown");
    });
    let _ = std::fs::remove_file(batch);
    let _ = std::fs::remove_file(mtu_batch);
}

/// Set in the child process of the SIGKILL test: the device namespace to run the engine in.
const CRASH_CHILD_ENV: &str = "NF_NETLINK_SIGKILL_CHILD";
/// The child's engine configuration, as JSON.
const SIGKILL_CONFIG_ENV: &str = "NF_NETLINK_SIGKILL_CONFIG";
/// This test's path inside the `it` binary, to run it again as the child.
const SIGKILL_TEST: &str =
    "netlink::engine::engine_second_start_after_sigkill_keeps_one_route_each";

/// Kills the child process (SIGKILL) when dropped, so it never outlives a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's role: the engine in the named namespace, u0 LIMITED, until killed (at most a
/// minute).
fn sigkill_child(ns_name: &str) {
    let config: Config =
        serde_json::from_str(&std::env::var(SIGKILL_CONFIG_ENV).expect("child: config"))
            .expect("child: config JSON");
    let path = format!("/run/netns/{ns_name}");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let ns = std::fs::File::open(&path).expect("child: namespace file");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("child: setns");
            let rig = Rig::new();
            rig.probe.set("u0", Verdict::Limited);
            rig.run_here(config, async |_kernel, _engine| {
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        });
    });
}

/// A real crash: the engine runs in a child process (this test binary, re-run as the child),
/// which is SIGKILLed once its routes are in; a second engine then starts on the leftovers.
#[test]
fn engine_second_start_after_sigkill_keeps_one_route_each() {
    if let Ok(ns_name) = std::env::var(CRASH_CHILD_ENV) {
        return sigkill_child(&ns_name);
    }
    if !require_root("engine_second_start_after_sigkill_keeps_one_route_each") {
        return;
    }
    let w = world("nlkill", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    let penalised = both(&[(u0, 100 + PENALTY), (u1, 200)]);
    let config_json = serde_json::to_string(&config(&w, true)).expect("config to JSON");
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", SIGKILL_TEST, "--test-threads=1", "--nocapture"])
        .env(CRASH_CHILD_ENV, w.dev.name())
        .env(SIGKILL_CONFIG_ENV, config_json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the child engine");
    let mut child = KillOnDrop(child);
    let shows_penalised = || {
        let v4 = w
            .dev
            .ip(&["route", "show", "default", "proto", "78"])
            .ok()?;
        let v6 = w
            .dev
            .ip(&["-6", "route", "show", "default", "proto", "78"])
            .ok()?;
        let installed = [&v4, &v6]
            .iter()
            .all(|t| t.contains("dev u0 metric 20100") && t.contains("dev u1 metric 200"));
        installed.then_some(())
    };
    netfailover_lab::netns::wait_for(CONVERGE_TIMEOUT, shows_penalised)
        .expect("the child engine never installed its routes");
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaping the child");
    assert!(
        shows_penalised().is_some(),
        "SIGKILL leaves the routes in place"
    );

    let rig = Rig::new();
    rig.probe.set("u0", Verdict::Limited);
    rig.run(&w.dev, config(&w, true), async |kernel, engine| {
        kernel.converge("after SIGKILL", &managed, &penalised).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        kernel
            .converge("still one route each", &managed, &penalised)
            .await;
        engine.shutdown().await.expect("clean shutdown");
    });
    for family in ["-4", "-6"] {
        let shown = w
            .dev
            .ip(&[family, "route", "show", "default", "proto", "78"])
            .unwrap();
        assert_eq!(
            shown.lines().count(),
            2,
            "{family}: one owned route per interface:\n{shown}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics, adoption, sysctls
// ---------------------------------------------------------------------------------------------

#[test]
fn engine_same_metric_uplinks_both_get_a_route_the_later_at_plus_one() {
    if !require_root("engine_same_metric_uplinks_both_get_a_route_the_later_at_plus_one") {
        return;
    }
    let w = world("nlsame", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    assert!(u1.ifindex > u0.ifindex);
    let managed = ifindexes(&w);
    // Strict reverse-path filtering on u1: the engine relaxes it to loose.
    w.dev.sysctl("net.ipv4.conf.u1.rp_filter", "1").unwrap();
    let profiles = vec![
        profile(u0, Method::Manual, 100),
        profile(u1, Method::Manual, 100),
    ];
    Rig::new().run(
        &w.dev,
        config_with(profiles, false),
        async |kernel, engine| {
            let table = kernel
                .converge("same metric", &managed, &both(&[(u0, 100), (u1, 101)]))
                .await;
            assert_first(&table, u0);
            let status = engine.status();
            let u1s = status
                .interfaces
                .iter()
                .find(|s| s.name.as_str() == "u1")
                .expect("u1");
            assert_eq!(
                (u1s.effective_metric, u1s.effective_metric6),
                (Some(101), Some(101))
            );
            engine.shutdown().await.expect("clean shutdown");
        },
    );
    let rp = w
        .dev
        .exec(&["sysctl", "-n", "net.ipv4.conf.u1.rp_filter"])
        .unwrap();
    assert_eq!(
        rp.trim(),
        "2",
        "strict rp_filter relaxed to loose in the namespace"
    );
}

#[test]
fn engine_adopts_foreign_default_routes_keeping_their_gateways() {
    if !require_root("engine_adopts_foreign_default_routes_keeping_their_gateways") {
        return;
    }
    let w = world("nladopt", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    // A DHCP client's routes: u0 at a different metric (add ours, delete theirs), u1 at the
    // metric we want (replace in place).
    add_dhcp_default(&w.dev, "192.0.2.1", "u0", 1024);
    add_dhcp_default(&w.dev, "2001:db8::1", "u0", 1024);
    add_dhcp_default(&w.dev, "198.51.100.1", "u1", 200);
    add_dhcp_default(&w.dev, "2001:db8:1::1", "u1", 200);
    let profiles = vec![
        profile(u0, Method::Auto, 100),
        profile(u1, Method::Auto, 200),
    ];
    Rig::new().run(
        &w.dev,
        config_with(profiles, false),
        async |kernel, engine| {
            let table = kernel
                .converge("adopted", &managed, &both(&[(u0, 100), (u1, 200)]))
                .await;
            for up in [u0, u1] {
                for (family, gateway) in [
                    (Family::V4, IpAddr::from(up.gateway_v4)),
                    (Family::V6, up.gateway_v6.into()),
                ] {
                    let route = table
                        .iter()
                        .find(|r| r.ifindex == up.ifindex && r.family == family)
                        .expect("adopted route");
                    assert_eq!(route.gateway, Some(gateway), "gateway kept: {route:?}");
                }
            }
            assert!(table.iter().all(|r| r.protocol != DHCP), "{table:#?}");
            engine.shutdown().await.expect("clean shutdown");
        },
    );
    // Router advertisements would install u0's IPv6 default route at its effective metric.
    let ra = w
        .dev
        .exec(&["sysctl", "-n", "net.ipv6.conf.u0.ra_defrtr_metric"])
        .unwrap();
    assert_eq!(ra.trim(), "100");
}

// ---------------------------------------------------------------------------------------------
// Router-advertised IPv6 default routes
// ---------------------------------------------------------------------------------------------

/// Polls `ip -6 route get` (the kernel's own choice) and the RA route on the primary until both
/// match; panics with the last answers after [`CONVERGE_TIMEOUT`].
async fn wait_ipv6(dev: &Netns, what: &str, chosen_dev: &str, ra_metric: Option<u32>) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let chosen = ipv6_route_get(dev).await;
        let ra = ip(
            dev,
            &["-6", "route", "show", "default", "dev", "u0", "proto", "ra"],
        )
        .await;
        let ra_ok = match ra_metric {
            Some(m) => ra.contains(&format!("metric {m} ")),
            None => ra.trim().is_empty(),
        };
        if chosen.contains(&format!("dev {chosen_dev} ")) && ra_ok {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: route get says {chosen:?}; RA routes on u0: {ra:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// u0's IPv6 default route comes from router advertisements (`proto ra`), u1's is ours. The
/// RA route carries IPv6 traffic while u0 is FULL, is demoted on a penalty (ra_defrtr_metric and
/// one Router Solicitation: the router's answer re-installs it at the new metric) and is gone
/// on carrier loss; the kernel's own solicitation at link-up brings it back.
#[test]
fn engine_moves_router_advertised_routes_with_penalties_and_link_loss() {
    if !require_root("engine_moves_router_advertised_routes_with_penalties_and_link_loss") {
        return;
    }
    let w = world("nlra", 2);
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    // A router: forwarding, so it joins all-routers (ff02::2) and hears solicitations.
    u0.isp
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding");
    // Its link-local address (the advertisements' source) survives the link bounce below.
    u0.isp
        .sysctl(
            &format!("net.ipv6.conf.{}.keep_addr_on_down", u0.isp_iface),
            "1",
        )
        .expect("keep_addr_on_down");
    let router =
        netfailover_lab::router::Advertiser::start(&u0.isp, &u0.isp_iface).expect("test router");
    let mut primary = profile(u0, Method::Manual, 100);
    primary.ipv6.method = Method::Auto;
    primary.ipv6.addresses.clear();
    primary.ipv6.gateway = None;
    let config = config_with(vec![primary, profile(u1, Method::Manual, 200)], true);
    let rig = Rig::new();
    rig.run(&w.dev, config, async |_kernel, engine| {
        wait_ipv6(&w.dev, "FULL", "u0", Some(100)).await;
        let asked = router.solicitations();

        rig.probe.set("u0", Verdict::Limited);
        wait_ipv6(&w.dev, "penalty", "u1", Some(100 + PENALTY)).await;
        assert!(router.solicitations() > asked, "the penalty solicited");

        rig.probe.set("u0", Verdict::Full);
        wait_ipv6(&w.dev, "FULL again", "u0", Some(100)).await;

        ip(&u0.isp, &["link", "set", &u0.isp_iface, "down"]).await;
        wait_ipv6(&w.dev, "carrier lost", "u1", None).await;

        ip(&u0.isp, &["link", "set", &u0.isp_iface, "up"]).await;
        wait_ipv6(&w.dev, "carrier back", "u0", Some(100)).await;
        engine.shutdown().await.expect("clean shutdown");
    });
}

// ---------------------------------------------------------------------------------------------
// Modems named by their control device
// ---------------------------------------------------------------------------------------------

/// A gsm profile naming a control device that has no network interface here: a USB gadget
/// `usb0` present at the start is never taken as the modem, and the modem's `wwan0` appearing
/// after the start is (the control-device fallback is `wwan*` only).
#[test]
fn engine_takes_a_late_modem_and_never_a_usb_gadget_for_a_control_device() {
    if !require_root("engine_takes_a_late_modem_and_never_a_usb_gadget_for_a_control_device") {
        return;
    }
    use netfailover::engine::model::{FamilyConfig, IfaceAddr, IfaceMatch, UplinkType};
    let dev = Netns::new("nlmdm").expect("namespace");
    let link = |name: &str| {
        // A veth pair inside the namespace (carrier on once both ends are up).
        let peer = format!("p{name}");
        dev.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])
            .expect("veth");
        dev.ip(&["link", "set", &peer, "up"]).expect("peer up");
        dev.ip(&["addr", "add", "192.0.2.2/24", "dev", name])
            .expect("address");
        dev.ip(&["link", "set", name, "up"]).expect("up");
    };
    link("usb0");
    let v4 = FamilyConfig {
        manage_default: true,
        method: Method::Manual,
        metric: Metric::new(700).expect("metric"),
        addresses: vec![IfaceAddr {
            addr: "192.0.2.2".parse().expect("address"),
            prefix_len: 24,
        }],
        gateway: Some("192.0.2.1".parse().expect("gateway")),
    };
    let modem = Profile {
        id: "modem".into(),
        uuid: None,
        file: "modem.nmconnection".into(),
        uplink_type: UplinkType::Gsm,
        // A control device this machine's sysfs does not have (no real modem in a test).
        matches: IfaceMatch::ControlDevice("cdc-wdm97".into()),
        managed: true,
        ipv4: v4.clone(),
        ipv6: FamilyConfig {
            manage_default: false,
            addresses: vec![],
            gateway: None,
            ..v4
        },
        dns: vec![],
    };
    Rig::new().run(
        &dev,
        config_with(vec![modem], false),
        async |_kernel, engine| {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let routes = ip(&dev, &["route", "show", "default", "proto", "78"]).await;
            assert_eq!(routes, "", "usb0 is not the modem");
            assert!(
                engine.status().interfaces.is_empty(),
                "{:?}",
                engine.status()
            );
            tokio::task::spawn_blocking({
                let name = dev.name().to_string();
                move || {
                    for args in [
                        vec![
                            "link", "add", "wwan0", "type", "veth", "peer", "name", "pwwan0",
                        ],
                        vec!["link", "set", "pwwan0", "up"],
                        vec!["addr", "add", "192.0.2.2/24", "dev", "wwan0"],
                        vec!["link", "set", "wwan0", "up"],
                    ] {
                        let mut argv = vec!["ip", "-n", name.as_str()];
                        argv.extend(args);
                        run(&argv).expect("wwan0");
                    }
                }
            })
            .await
            .expect("ip task");
            // Poll without blocking the engine's thread.
            let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
            let mut routes = String::new();
            while tokio::time::Instant::now() < deadline {
                routes = ip(&dev, &["route", "show", "default", "proto", "78"]).await;
                if routes.contains("dev wwan0") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                routes.contains("dev wwan0"),
                "no route on the late modem: {routes:?}"
            );
            assert!(!routes.contains("usb0"), "{routes}");
            engine.shutdown().await.expect("clean shutdown");
        },
    );
}
