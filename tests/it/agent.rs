//! The embedding API (`netfailover::agent`): the handle's life (no task outlives a shutdown or
//! a drop, checked through the runtime and through the ports every task holds), and a dry run
//! on the real kernel adapters in a namespace (the plan is reported, no route changes).

use std::sync::Arc;
use std::time::Duration;

use netfailover::agent::{Agent, PlannedChange, Update};
use netfailover::engine::fake::{manual_profile, FakeProbe, FakeWorld};
use netfailover::engine::model::{
    CheckConfig, Config, Connectivity, Family, LinkKind, Method, Metric, UplinkType,
};
use netfailover::engine::ports::{LinkSource, Ports, Probe, RouteTable, Verdict};
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::{run_in_netns, UplinkWorld};

/// Counts of the strong references to each port beyond the test's own `ports`.
fn holders(ports: &Ports) -> Vec<usize> {
    vec![
        Arc::strong_count(&ports.links) - 1,
        Arc::strong_count(&ports.routes) - 1,
        Arc::strong_count(&ports.sysctl) - 1,
        Arc::strong_count(&ports.probe) - 1,
        Arc::strong_count(&ports.scripts) - 1,
        Arc::strong_count(&ports.journal) - 1,
        Arc::strong_count(&ports.state) - 1,
        Arc::strong_count(&ports.traffic) - 1,
    ]
}

fn device() -> FakeWorld {
    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.kernel.add_link("wlan0", LinkKind::Other);
    world.probe.set("eth0", Verdict::Full);
    world.probe.set("wlan0", Verdict::Full);
    world
}

fn fast_checks() -> Config {
    let gw = |s: &str| s.parse().unwrap();
    Config {
        profiles: vec![
            manual_profile("eth0", UplinkType::Ethernet, 100, gw("192.0.2.1")).unwrap(),
            manual_profile("wlan0", UplinkType::Wifi, 600, gw("198.51.100.1")).unwrap(),
        ],
        check: CheckConfig {
            uri: "http://192.0.2.80/check".into(),
            interval: Duration::from_millis(200),
            recheck_max: Duration::from_millis(200),
            ..CheckConfig::default()
        },
        ..Config::default()
    }
}

/// Everything the engine spawned holds a port: once no one but the test does, no actor, task,
/// subscription or script of the engine is alive.
fn nothing_holds(ports: &Ports) -> bool {
    holders(ports).iter().all(|n| *n == 0)
}

/// Runtime-level tasks (`tokio::spawn`) alive now.
fn runtime_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 10 s");
}

#[test]
fn start_then_shutdown_leaves_no_task_running() {
    let world = device();
    let ports = world.ports();
    actix_rt::System::new().block_on(async {
        let baseline = runtime_tasks();
        let agent = Agent::builder()
            .config(fast_checks())
            .ports(ports.clone())
            .start()
            .unwrap();
        wait_until("both uplinks FULL", || {
            agent.status().connectivity == Connectivity::Full
                && agent.status().interfaces.len() == 2
        })
        .await;
        assert!(!nothing_holds(&ports), "the running engine holds its ports");
        let mut updates = agent.subscribe();
        assert!(matches!(updates.next().await, Some(Update::Snapshot(_))));
        // A penalty, so the shutdown has a metric to restore.
        world.probe.set("eth0", Verdict::Limited);
        let eth0 = agent.check_now("eth0").await.unwrap();
        assert_eq!(eth0.verdict, Verdict::Limited);
        wait_until("eth0 penalised", || {
            world.kernel.best_iface().as_deref() == Some("wlan0")
        })
        .await;

        agent.shutdown().await.unwrap();
        // Graceful: eth0's route is back at its configured metric (adopted ethernet: 100).
        assert_eq!(world.kernel.best_iface().as_deref(), Some("eth0"));
        // The subscription learns the engine stopped (after the changes it had not read).
        let mut ended = false;
        for _ in 0..10_000 {
            if updates.next().await.is_none() {
                ended = true;
                break;
            }
        }
        assert!(ended, "the subscription ends with the engine");
        wait_until("every engine task gone", || nothing_holds(&ports)).await;
        assert_eq!(runtime_tasks(), baseline, "runtime tasks left behind");
    });
}

#[test]
fn dropping_a_spawned_handle_stops_its_system_and_thread() {
    let world = device();
    let ports = world.ports();
    let agent = Agent::builder()
        .config(fast_checks())
        .ports(ports.clone())
        .spawn()
        .unwrap();
    let ready = wait_for(Duration::from_secs(10), || {
        (agent.status().connectivity == Connectivity::Full).then_some(())
    });
    assert!(ready.is_some(), "{:?}", agent.status());
    let threads_before = thread_count();
    assert!(!nothing_holds(&ports));
    drop(agent);
    // The drop joined the engine's thread: its System and runtime are gone, and with them
    // every task (nothing else holds a port).
    assert!(nothing_holds(&ports), "holders left: {:?}", holders(&ports));
    if let (Some(before), Some(after)) = (threads_before, thread_count()) {
        assert!(
            after < before,
            "engine thread still there ({before} → {after})"
        );
    }
}

/// Threads of this process (Linux), to see the engine's own thread end.
fn thread_count() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/task").ok()?.count())
}

#[test]
fn builder_errors_are_explained() {
    let err = Agent::builder().start().err().unwrap();
    assert!(err.to_string().contains("no configuration"), "{err}");
    actix_rt::System::new().block_on(async {
        let world = device();
        let agent = Agent::builder()
            .config(fast_checks())
            .ports(world.ports())
            .start()
            .unwrap();
        let err = agent.check_now("not a valid name").await.unwrap_err();
        assert!(err.to_string().contains("interface name"), "{err}");
        let err = agent.kill("no-such-actor").await.unwrap_err();
        assert!(err.to_string().contains("no-such-actor"), "{err}");
        assert!(agent.plan().is_none(), "not a dry run");
        agent.shutdown().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Dry run on the real kernel adapters
// ---------------------------------------------------------------------------------------------

/// `ip route` and `ip addr` of the device namespace: what a dry run must leave as it is.
fn kernel_view(w: &UplinkWorld) -> (String, String, String) {
    (
        w.dev.ip(&["-4", "route", "show", "table", "main"]).unwrap(),
        w.dev.ip(&["-6", "route", "show", "table", "main"]).unwrap(),
        w.dev.ip(&["addr", "show"]).unwrap(),
    )
}

#[test]
fn dry_run_changes_no_route_in_a_namespace_and_reports_the_plan() {
    let w = test_setup!(UplinkWorld::new("dry", 2).expect("building the namespace world"));
    // A DHCP client's routes; the profiles want metrics 100 and 200 instead.
    for (up, metric) in w.uplinks.iter().zip(["500", "600"]) {
        let gw = up.gateway_v4.to_string();
        w.dev
            .ip(&[
                "-4",
                "route",
                "add",
                "default",
                "via",
                &gw,
                "dev",
                &up.dev_iface,
                "metric",
                metric,
                "proto",
                "dhcp",
            ])
            .unwrap();
    }
    let profiles = w
        .uplinks
        .iter()
        .zip([100, 200])
        .map(|(up, m)| up.profile(Method::Auto, Metric::new(m).unwrap()))
        .collect();
    let config = Config {
        profiles,
        adopt: false,
        check: CheckConfig {
            interval: Duration::ZERO, // checks off: the plan is about routes
            ..CheckConfig::default()
        },
        ..Config::default()
    };
    let before = kernel_view(&w);
    let u0 = w.uplinks[0].ifindex;
    let probe: Arc<dyn Probe> = Arc::new(FakeProbe::default());
    let plan = run_in_netns(&w.dev, || {
        actix_rt::System::new().block_on(async {
            // Every other port is the kernel's: netlink links and routes, /proc sysctls.
            let agent = Agent::builder()
                .config(config)
                .probe(probe)
                .state_dir("/nonexistent/dry-run-must-not-write-here")
                .dry_run(true)
                .start()
                .unwrap();
            let wants = |p: &[PlannedChange]| {
                p.iter().any(|c| {
                    matches!(c, PlannedChange::ReplaceRoute { route } | PlannedChange::AddRoute { route }
                        if route.ifindex == u0 && route.metric == 100 && route.family == Family::V4)
                })
            };
            wait_until("a plan for u0", || wants(&agent.plan().unwrap())).await;
            // The engine believes its plan: status shows the metric it would have set.
            wait_until("status shows the planned metric", || {
                agent
                    .status()
                    .interfaces
                    .iter()
                    .any(|i| i.ifindex == Some(u0) && i.effective_metric == Some(100))
            })
            .await;
            // Settled: it does not plan the same change again and again.
            let planned = agent.plan().unwrap().len();
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(agent.plan().unwrap().len(), planned, "{:#?}", agent.plan());
            let plan = agent.plan().unwrap();
            agent.shutdown().await.unwrap();
            plan
        })
    })
    .expect("entering the device namespace");
    assert_eq!(kernel_view(&w), before, "a dry run changed the kernel");
    assert!(
        !std::path::Path::new("/nonexistent/dry-run-must-not-write-here").exists(),
        "a dry run wrote its state"
    );
    // The plan names real kernel objects and serialises for a report.
    let json = serde_json::to_value(&plan).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["op"] == "replace-route" || c["op"] == "add-route"));
}

/// A supplied route table is wrapped too: nothing reaches it but listings.
#[test]
fn dry_run_wraps_a_supplied_route_table() {
    let world = device();
    let routes: Arc<dyn RouteTable> = world.ports().routes;
    let links: Arc<dyn LinkSource> = world.ports().links;
    actix_rt::System::new().block_on(async {
        let agent = Agent::builder()
            .config(fast_checks())
            .ports(world.ports())
            .route_table(routes)
            .link_source(links)
            .dry_run(true)
            .start()
            .unwrap();
        wait_until("a plan", || !agent.plan().unwrap().is_empty()).await;
        wait_until("checks done", || {
            agent.status().connectivity == Connectivity::Full
        })
        .await;
        agent.shutdown().await.unwrap();
    });
    assert_eq!(world.kernel.writes(), 0, "the fake kernel got a write");
    assert!(world.kernel.routes().is_empty());
}
