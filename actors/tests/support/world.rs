//! The fake world and engine start-up shared by the engine suites in virtual time (`budget.rs`,
//! `cadence.rs`, `metered.rs`, `passive.rs`, `recovery.rs`), included by `#[path]` like
//! `profiles.rs`.

// Each suite uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use netfailover_actors::fake::{pass, settle, FakeWorld};
use netfailover_actors::model::{Config, Connectivity, Family, KernelRoute, LinkKind};
use netfailover_actors::{start, EngineHandle};

/// The routing protocol DHCP clients write their default routes with (`proto dhcp`).
pub const DHCP: u8 = 16;

/// One link per `(name, metric)`, ifindex 2, 3, … in order, each with a DHCP default route via
/// 192.0.2.1, 192.0.2.2, … at its metric.
pub fn dhcp_world(links: &[(&str, u32)]) -> FakeWorld {
    let w = FakeWorld::new();
    for (i, (n, metric)) in links.iter().enumerate() {
        let ifindex = w.kernel.add_link(n, LinkKind::Other);
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(format!("192.0.2.{}", i + 1).parse().unwrap()),
            metric: *metric,
            protocol: DHCP,
        });
    }
    w
}

/// Pauses the clock, then starts an engine on `w`'s fakes ([`again`]).
pub async fn started(w: &FakeWorld, cfg: Config) -> EngineHandle {
    tokio::time::pause();
    again(w, cfg).await
}

/// Another engine on the same fakes (the clock is paused already), settled and 100 ms in.
pub async fn again(w: &FakeWorld, cfg: Config) -> EngineHandle {
    let h = start(cfg, w.ports());
    settle().await;
    pass(Duration::from_millis(100)).await;
    h
}

/// The connectivity `status` shows for `iface` (NONE when it is not listed).
pub fn state_of(h: &EngineHandle, iface: &str) -> Connectivity {
    h.status()
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == iface)
        .map(|i| i.connectivity)
        .unwrap_or(Connectivity::None)
}
