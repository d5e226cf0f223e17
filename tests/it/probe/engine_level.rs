//! Phase 2: the engine with the real probe. Links and routes come from the engine's in-memory
//! fake kernel (named like the real veths); checks are real, in the device namespace; sysctls
//! are written to the device namespace's /proc/sys by `ProcSysctl`.

use super::*;

use futures::future::BoxFuture;
use netfailover::engine::fake::FakeWorld;
use netfailover::engine::model::{
    Config, Connectivity, FamilyConfig, IfaceMatch, KernelRoute, LinkKind, Method, Metric, Profile,
    UplinkType,
};
use netfailover::engine::ports::{PortError, PortResult, Sysctl};
use std::sync::Arc;
use std::time::Instant;

/// Sysctls of the namespace of the thread that runs the future: /proc/sys/net resolves
/// through the calling thread's namespace (the engine's arbiters inherit the device's).
struct ProcSysctl;

fn path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

impl Sysctl for ProcSysctl {
    fn read(&self, key: String) -> BoxFuture<'static, PortResult<String>> {
        let r = std::fs::read_to_string(path(&key))
            .map(|s| s.trim().to_string())
            .map_err(|e| PortError::failed(key, e));
        Box::pin(async move { r })
    }
    fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>> {
        let r = std::fs::write(path(&key), value).map_err(|e| PortError::failed(key, e));
        Box::pin(async move { r })
    }
}

const PENALTY: u32 = 20_000;
const INTERVAL: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(2);
const RECHECK_MAX: Duration = Duration::from_secs(2);
/// Generous slack on top of the contract's (docs/semantics.md) bounds for a loaded 2-vCPU machine.
const SLACK: Duration = Duration::from_secs(4);

fn profile(iface: &str, t: UplinkType, metric: u32, dns: Vec<IpAddr>) -> Profile {
    let family = |manage| FamilyConfig {
        manage_default: manage,
        method: Method::Auto,
        metric: Metric::new(metric.into()).unwrap(),
        addresses: vec![],
        gateway: None,
    };
    Profile {
        id: iface.into(),
        uuid: None,
        file: PathBuf::from(format!("{iface}.nmconnection")),
        uplink_type: t,
        matches: IfaceMatch::Name(IfaceName::new(iface).unwrap()),
        managed: true,
        ipv4: family(true),
        ipv6: family(false),
        dns,
        metered: netfailover_actors::model::Metered::guess(t),
    }
}

fn engine_config(bound_wwan0: bool) -> Config {
    let mut config = Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100, vec![]),
            profile("wwan0", UplinkType::Gsm, 700, vec![]),
        ],
        adopt: false,
        check: CheckConfig {
            uri: format!("http://{HOST}/connectivity-check"),
            interval: INTERVAL,
            connect_timeout: Duration::from_secs(1),
            timeout: TIMEOUT,
            recheck_max: RECHECK_MAX,
            ..CheckConfig::default()
        },
        ..Config::default()
    };
    // balenaOS 3016: only a global server (optionally `ADDR@wwan0` too).
    config.dns.global = vec![sa(&format!("{DNS_A}:53"))];
    if bound_wwan0 {
        config.dns.bound.insert(
            IfaceName::new("wwan0").unwrap(),
            vec![sa(&format!("{DNS_A}:53"))],
        );
    }
    config
}

fn fake_links() -> FakeWorld {
    let fake = FakeWorld::new();
    for (k, (uplink, metric)) in [("eth0", 100), ("wwan0", 700)].into_iter().enumerate() {
        let ifindex = fake.kernel.add_link(uplink, LinkKind::Other);
        fake.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(ip(&format!("192.0.2.{}", 16 * k + 1))),
            metric,
            protocol: 16,
        });
    }
    fake
}

/// Checks of `iface` so far, every verdict.
fn checks_of(h: &netfailover::engine::EngineHandle, iface: &str) -> u64 {
    h.status()
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == iface)
        .map_or(0, |i| i.checks.by_verdict.values().sum())
}

fn state(h: &netfailover::engine::EngineHandle, iface: &str) -> (Connectivity, Option<u32>) {
    h.status()
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == iface)
        .map(|i| (i.connectivity, i.effective_metric))
        .unwrap_or((Connectivity::Unknown, None))
}

async fn wait_state(
    h: &netfailover::engine::EngineHandle,
    iface: &str,
    want: (Connectivity, Option<u32>),
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() <= within {
        if state(h, iface) == want {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn run_loop(tag: &str, bound_wwan0: bool) {
    let world = World::new(tag);
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let _dns = dns_all(&world);
    // Strict reverse-path filtering as many Yocto images set it: the engine relaxes it.
    for key in ["all", "eth0", "wwan0"] {
        world
            .dev
            .sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "1")
            .unwrap();
    }
    let fake = fake_links();
    let mut ports = fake.ports();
    ports.probe = Arc::new(HttpProbe::new(&engine_config(bound_wwan0).check).unwrap());
    ports.sysctl = Arc::new(ProcSysctl);
    let config = engine_config(bound_wwan0);

    std::thread::scope(|s| {
        s.spawn(|| {
            world.dev.enter_current_thread().unwrap();
            actix_rt::System::new().block_on(async {
                let h = netfailover::engine::start(config, ports);
                let up = Duration::from_secs(15);
                // Both FULL: the standby's replies pass because rp_filter was relaxed.
                assert!(
                    wait_state(&h, "eth0", (Connectivity::Full, Some(100)), up)
                        .await
                        .is_some(),
                    "eth0: {:?}",
                    h.status()
                );
                assert!(
                    wait_state(&h, "wwan0", (Connectivity::Full, Some(700)), up)
                        .await
                        .is_some(),
                    "wwan0 (strict rp_filter must have been relaxed): {:?}",
                    h.status()
                );

                // The primary's upstream dies: penalty within interval + 2×timeout + 1 s.
                world.blackhole_upstream(0);
                let bound = INTERVAL + 2 * TIMEOUT + Duration::from_secs(1);
                let took = wait_state(
                    &h,
                    "eth0",
                    (Connectivity::Limited, Some(100 + PENALTY)),
                    bound + SLACK,
                )
                .await;
                eprintln!("{tag}: penalty after {took:?} (bound {bound:?})");
                assert!(took.is_some(), "eth0 not penalised: {:?}", h.status());
                assert_eq!(state(&h, "wwan0"), (Connectivity::Full, Some(700)));

                // Back: penalty removed within recheck_max + 2×timeout + 1 s.
                world.isps[0]
                    .ip(&["route", "del", "blackhole", "203.0.113.0/24"])
                    .unwrap();
                let bound = RECHECK_MAX + 2 * TIMEOUT + Duration::from_secs(1);
                let took =
                    wait_state(&h, "eth0", (Connectivity::Full, Some(100)), bound + SLACK).await;
                eprintln!("{tag}: penalty removed after {took:?} (bound {bound:?})");
                assert!(took.is_some(), "eth0 not restored: {:?}", h.status());
                h.shutdown().await.unwrap();
            });
        });
    });
    let rp = world
        .dev
        .exec(&["sysctl", "-n", "net.ipv4.conf.wwan0.rp_filter"])
        .unwrap();
    assert_eq!(rp.trim(), "2", "the engine set loose rp_filter");
}

/// A managed interface without a default route or gateway is NONE and never checked (a
/// check would ARP for the target on-link and come back LIMITED).
#[test]
fn engine_does_not_check_an_interface_without_a_route() {
    let world = test_setup!(World::new("pengn"));
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let _dns = dns_all(&world);
    world
        .dev
        .ip(&["route", "del", "default", "dev", "wwan0"])
        .expect("route del");
    let fake = fake_links();
    let wwan0 = fake.kernel.link("wwan0").ifindex;
    for r in fake
        .kernel
        .routes()
        .into_iter()
        .filter(|r| r.ifindex == wwan0)
    {
        fake.kernel.delete_route_by_hand(&r);
    }
    let config = engine_config(false);
    let mut ports = fake.ports();
    ports.probe = Arc::new(HttpProbe::new(&config.check).unwrap());
    ports.sysctl = Arc::new(ProcSysctl);
    let before = world.l3_counters("wwan0");
    std::thread::scope(|s| {
        s.spawn(|| {
            world.dev.enter_current_thread().unwrap();
            actix_rt::System::new().block_on(async {
                let h = netfailover::engine::start(config, ports);
                let up = Duration::from_secs(15);
                assert!(
                    wait_state(&h, "eth0", (Connectivity::Full, Some(100)), up)
                        .await
                        .is_some(),
                    "eth0: {:?}",
                    h.status()
                );
                // Two more checks of eth0 (two check intervals): wwan0 stays NONE, unchecked, at
                // every moment.
                let before = checks_of(&h, "eth0");
                let deadline = tokio::time::Instant::now() + up;
                while checks_of(&h, "eth0") < before + 2 {
                    assert_eq!(state(&h, "wwan0"), (Connectivity::None, None));
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "eth0 not checked again"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                assert_eq!(state(&h, "wwan0"), (Connectivity::None, None));
                h.shutdown().await.unwrap();
            });
        });
    });
    assert_eq!(world.l3_counters("wwan0"), before, "nothing sent on wwan0");
}

#[test]
fn engine_penalises_a_blackholed_primary_and_restores_it() {
    test_setup!();
    run_loop("peng", false);
}

#[test]
fn engine_with_a_bound_dns_server_for_the_backup() {
    test_setup!();
    run_loop("pengb", true);
}
