//! Embedding the netfailover engine in a larger device supervisor.
//!
//! The engine is a library: build a `Config` (here by hand; `netfailover::config::load` builds
//! one from a boot directory), hand it `Ports` (here the in-memory fakes of the `fake` feature;
//! on a device, the kernel adapters of `netfailover::os`), start it inside an actix System,
//! then read its status, follow its events and stop it. Run with
//! `cargo run --example embed`: it fails eth0 over to wlan0 and back in a simulated kernel.

use std::path::PathBuf;
use std::time::Duration;

use netfailover::engine::fake::FakeWorld;
use netfailover::engine::model::{
    Config, EventKind, FamilyConfig, IfaceMatch, IfaceName, LinkKind, Method, Metric, Profile,
    UplinkType,
};
use netfailover::engine::ports::Verdict;

/// A profile for `iface` with a manual IPv4 gateway, as a NetworkManager keyfile would give.
fn profile(iface: &str, uplink_type: UplinkType, metric: i64, gateway: &str) -> Profile {
    let family = |manage_default, gateway: Option<&str>| FamilyConfig {
        manage_default,
        method: Method::Manual,
        metric: Metric::new(metric).expect("example metrics are in range"),
        addresses: Vec::new(),
        gateway: gateway.and_then(|g| g.parse().ok()),
    };
    Profile {
        id: format!("example-{iface}"),
        uuid: None,
        file: PathBuf::from(format!("system-connections/{iface}")),
        uplink_type,
        matches: IfaceMatch::Name(IfaceName::new(iface).expect("example names are valid")),
        managed: true,
        ipv4: family(true, Some(gateway)),
        ipv6: family(false, None),
        dns: Vec::new(),
    }
}

fn main() {
    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.kernel.add_link("wlan0", LinkKind::Other);
    world.probe.set("eth0", Verdict::Full);
    world.probe.set("wlan0", Verdict::Full);

    let mut config = Config::default();
    config.check.interval = Duration::from_secs(1);
    config.check.recheck_max = Duration::from_secs(1);
    config.profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100, "192.0.2.1"),
        profile("wlan0", UplinkType::Wifi, 600, "198.51.100.1"),
    ];

    actix_rt::System::new().block_on(async move {
        let engine = netfailover::engine::start(config, world.ports());
        let mut events = engine.subscribe();
        let wait_for_best = |want: &'static str| {
            let kernel = world.kernel.clone();
            async move {
                for _ in 0..100 {
                    if kernel.best_iface().as_deref() == Some(want) {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                false
            }
        };

        println!(
            "best uplink at start: eth0? {}",
            wait_for_best("eth0").await
        );
        world.kernel.set_carrier("eth0", false);
        println!(
            "eth0 cable pulled; wlan0 now? {}",
            wait_for_best("wlan0").await
        );
        world.kernel.set_carrier("eth0", true);
        println!("eth0 back; eth0 again? {}", wait_for_best("eth0").await);

        let status = engine.status();
        println!("global connectivity: {}", status.connectivity);
        for i in &status.interfaces {
            println!(
                "  {} link {} {} metric {} effective {:?}",
                i.name, i.link, i.connectivity, i.metric, i.effective_metric
            );
        }
        while let Ok(event) = events.try_recv() {
            if event.kind != EventKind::ConnectivityChange {
                let iface = event.iface.map(|i| i.to_string()).unwrap_or_default();
                println!(
                    "event {} {} {} ({})",
                    event.id, event.kind, iface, event.reason
                );
            }
        }
        if let Err(e) = engine.shutdown().await {
            eprintln!("shutdown: {e}");
        }
    });
}
