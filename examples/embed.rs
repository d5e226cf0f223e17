//! Embedding netfailover in a larger device supervisor, on a simulated device (no root, no
//! network): `cargo run --example embed`.
//!
//! The supervisor builds an agent with `netfailover::agent::Agent::builder()`: a configuration
//! (here two profiles by hand; on a device `.boot_dir("/mnt/boot")` reads the real files) and
//! ports (here the in-memory fakes; on a device leave them out and the kernel's are used). It
//! subscribes to the agent's changes (a snapshot first, then typed events), pulls eth0's cable
//! and plugs it back, checks an uplink on demand, then shuts the agent down cleanly.
//!
//! `spawn()` runs the engine on a thread of its own, so this `main` needs no actix: it is a
//! plain tokio program, as many supervisors are.

use std::time::Duration;

use netfailover::agent::{Agent, Update};
use netfailover::engine::fake::{manual_profile, FakeWorld};
use netfailover::engine::model::{CheckConfig, Config, LinkKind, UplinkType};
use netfailover::engine::ports::Verdict;
use netfailover::engine::EngineEvent;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The simulated device: Ethernet and Wi-Fi, both with working Internet.
    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.kernel.add_link("wlan0", LinkKind::Other);
    world.probe.set("eth0", Verdict::Full);
    world.probe.set("wlan0", Verdict::Full);

    let config = Config {
        profiles: vec![
            manual_profile("eth0", UplinkType::Ethernet, 100, "192.0.2.1".parse()?)?,
            manual_profile("wlan0", UplinkType::Wifi, 600, "198.51.100.1".parse()?)?,
        ],
        check: CheckConfig {
            interval: Duration::from_secs(1),
            recheck_max: Duration::from_secs(1),
            ..CheckConfig::default()
        },
        ..Config::default()
    };

    let agent = Agent::builder()
        .config(config)
        .ports(world.ports())
        .spawn()?;
    let mut updates = agent.subscribe();

    // Prints updates as they come until `until` matches one (or 10 s pass).
    let mut follow = async |until: &dyn Fn(&EngineEvent) -> bool| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Ok(Some(update)) = tokio::time::timeout_at(deadline, updates.next()).await {
            match update {
                Update::Snapshot(s) => println!(
                    "snapshot: global {}, {} interfaces, {} past events",
                    s.status.connectivity,
                    s.status.interfaces.len(),
                    s.events.len()
                ),
                Update::Lagged { missed } => println!("fell behind by {missed} changes"),
                Update::Event(event) => {
                    println!("  {}", netfailover::print::describe(&event));
                    if until(&event) {
                        return;
                    }
                }
            }
        }
    };

    println!("-- start: both uplinks come up and pass their checks");
    follow(&|e| {
        matches!(e, EngineEvent::GlobalConnectivity { state, .. }
            if *state == netfailover::engine::model::Connectivity::Full)
    })
    .await;

    println!("-- eth0's cable pulled: wlan0 takes over in the same tick");
    world.kernel.set_carrier("eth0", false);
    follow(&|e| matches!(e, EngineEvent::Event(ev) if ev.kind.as_str() == "down")).await;
    println!(
        "   the kernel now routes via {:?}",
        world.kernel.best_iface()
    );

    println!("-- eth0 back: penalised until a check passes, then first again");
    world.kernel.set_carrier("eth0", true);
    follow(&|e| {
        matches!(e, EngineEvent::Route { iface, new_metric: Some(100), .. }
            if iface.as_str() == "eth0")
    })
    .await;
    println!(
        "   the kernel now routes via {:?}",
        world.kernel.best_iface()
    );

    let report = agent.check_now("wlan0").await?;
    println!(
        "-- check wlan0 now: {:?} ({})",
        report.verdict, report.reason
    );

    let status = agent.status();
    for i in &status.interfaces {
        println!(
            "   {} link {} {} metric {} effective {:?}",
            i.name, i.link, i.connectivity, i.metric, i.effective_metric
        );
    }
    agent.shutdown().await?;
    println!("-- stopped cleanly");
    Ok(())
}
