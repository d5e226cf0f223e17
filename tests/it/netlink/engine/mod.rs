//! The real engine (`netfailover_actors::start`) on the real link, route and sysctl adapters,
//! in an actix System on a thread that entered the device namespace. Probe, scripts, journal
//! and state store are the engine's in-memory fakes: connectivity is steered by the test.
//!
//! Every check reads the kernel through netlink (`NetlinkRoutes::list_defaults`, which includes
//! `linkdown` routes, the ones the kernel still uses) or through `ip` run in the namespace, and
//! waits with a generous bound for the table to converge; no test asserts a speed.

mod adoption;
mod failover;
mod ipv6;
mod modem;
mod repair;

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
use netfailover_lab::netns::{run, Netns};
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::{run_in_netns, CountingLinks, Uplink, UplinkWorld};

use super::{add_dhcp_default, world, DHCP, OURS};

/// Generous bound for the engine to bring the kernel to the desired table.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Configured metrics of uplinks 0, 1, 2.
const METRICS: [u32; 3] = [100, 200, 300];
/// `route.penalty` default.
const PENALTY: u32 = 20_000;

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
                accounts: Arc::new(netfailover::engine::fake::MemAccounts::default()),
                calendar: Arc::new(netfailover::engine::ports::SystemCalendar),
            };
            let kernel = Kernel {
                routes: NetlinkRoutes::new().expect("observer route socket"),
            };
            let engine = netfailover::engine::start(config, ports);
            body(&kernel, &engine).await
        })
    }
}

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
            if exactly(&table, managed, want) {
                return table;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: wanted {want:?}, the kernel has {table:#?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Watches the table until `over` says the window is over: panics at the first moment the
    /// routes on `managed` are not exactly `want` (a "stays so" assertion watches every moment
    /// instead of one look after a pause), and after [`CONVERGE_TIMEOUT`] if `over` never does.
    async fn stays(
        &self,
        what: &str,
        managed: &[u32],
        want: &BTreeSet<Key>,
        mut over: impl FnMut() -> bool,
    ) -> Vec<KernelRoute> {
        let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let table = self.defaults().await;
            assert!(
                exactly(&table, managed, want),
                "{what}: wanted {want:?} throughout, the kernel has {table:#?}"
            );
            if over() {
                return table;
            }
            assert!(
                tokio::time::Instant::now() <= deadline,
                "{what}: the window never ended"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The default routes on `managed` interfaces are exactly `want`, all ours.
fn exactly(table: &[KernelRoute], managed: &[u32], want: &BTreeSet<Key>) -> bool {
    let on_managed: Vec<&KernelRoute> = table
        .iter()
        .filter(|r| managed.contains(&r.ifindex))
        .collect();
    let keys: BTreeSet<Key> = on_managed.iter().map(|r| key(r)).collect();
    keys == *want && on_managed.len() == want.len() && on_managed.iter().all(|r| r.protocol == OURS)
}

/// A window that ends once each of `ifaces` has had `n` more checks (each one a verdict the
/// engine acts on) than when this was called.
fn after_checks<'a>(
    probe: &'a FakeProbe,
    ifaces: &'a [&str],
    n: usize,
) -> impl FnMut() -> bool + 'a {
    let before: Vec<usize> = ifaces.iter().map(|i| probe.checks(i).len()).collect();
    move || {
        ifaces
            .iter()
            .zip(&before)
            .all(|(i, b)| probe.checks(i).len() >= b + n)
    }
}

/// Waits (bounded by [`CONVERGE_TIMEOUT`]) until `done` says so, without blocking the engine's
/// thread.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    while !done() {
        assert!(
            tokio::time::Instant::now() <= deadline,
            "{what}: never happened"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A window that ends `d` after this was called (for a "stays so" with no event to end it).
fn after(d: Duration) -> impl FnMut() -> bool {
    let end = tokio::time::Instant::now() + d;
    move || tokio::time::Instant::now() >= end
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
