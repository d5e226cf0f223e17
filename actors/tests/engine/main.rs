//! The whole engine on in-memory ports, in virtual time (paused tokio clock: timers fire as the
//! test sleeps, nothing waits on the wall clock). Each test builds a fake world with uplinks,
//! starts the engine, drives faults through the fakes and asserts on the fake kernel's table,
//! the status board and the delivered events.

mod dhcp;
mod failover;
mod flows;
mod ipv6;
mod journal;
mod kernel;
mod modem;
mod observe;
mod restart;
mod states;

use std::net::IpAddr;
use std::time::Duration;

use netfailover_actors::fake::{pass, settle, FakeWorld, ProbeBehaviour};
use netfailover_actors::flow_resetter::RESET_TIMEOUT;
use netfailover_actors::flows::{ConntrackFlow, SocketFlow};
use netfailover_actors::model::{
    Config, Connectivity, DeviceEvents, Event, EventKind, Family, FamilyConfig, IfaceAddr,
    IfaceMatch, KernelRoute, LinkKind, MeteredConfig, Method, Metric, Profile, UplinkType,
};
use netfailover_actors::ports::{FlowFailure, FlowFailureKind, Verdict};
use netfailover_actors::status::HistoryEntry;
use netfailover_actors::{start, EngineError, EngineHandle};

#[path = "../support/profiles.rs"]
mod profiles;
use profiles::{checks_every_30s, family, name};

const OURS: u8 = netfailover_actors::model::DEFAULT_ROUTE_PROTOCOL;
const DHCP: u8 = 16;
const PENALTY: u32 = 20_000;

/// The shared fixture with a UUID, as NetworkManager writes one.
fn profile(iface: &str, t: UplinkType, metric: u32) -> Profile {
    Profile {
        uuid: Some(format!("uuid-{iface}")),
        ..profiles::profile(iface, t, metric)
    }
}

/// Short, test-friendly check settings: interval 30 s, timeouts 1 s / 2 s, recheck_max 8 s;
/// every uplink checked at `interval`, the metered wwan0 too (its standby cadence is
/// `actors/tests/metered.rs`'s subject).
fn config() -> Config {
    Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100),
            profile("wlan0", UplinkType::Wifi, 600),
            profile("wwan0", UplinkType::Gsm, 700),
        ],
        adopt: false,
        check: checks_every_30s(),
        metered: MeteredConfig {
            standby_interval: Duration::from_secs(30),
            ..MeteredConfig::default()
        },
        ..Config::default()
    }
}

fn gw(i: u8) -> IpAddr {
    format!("192.0.2.{i}").parse().unwrap()
}

/// A device with eth0, wlan0, wwan0, each with a DHCP client's default route.
fn world() -> FakeWorld {
    let w = FakeWorld::new();
    for (i, (n, metric)) in [("eth0", 100), ("wlan0", 600), ("wwan0", 700)]
        .into_iter()
        .enumerate()
    {
        let ifindex = w.kernel.add_link(n, LinkKind::Other);
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i as u8 + 1)),
            metric,
            protocol: DHCP,
        });
    }
    w
}

fn owned_metrics(w: &FakeWorld) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = w
        .kernel
        .routes()
        .into_iter()
        .filter(|r| r.protocol == OURS)
        .map(|r| {
            let n = ["", "", "eth0", "wlan0", "wwan0"][r.ifindex as usize].to_string();
            (n, r.metric)
        })
        .collect();
    v.sort();
    v
}

fn events(h: &EngineHandle) -> Vec<(EventKind, String, Connectivity)> {
    h.history()
        .into_iter()
        .map(|r| {
            let iface = r.event.iface.map(|i| i.to_string()).unwrap_or_default();
            (r.event.kind, iface, r.event.state)
        })
        .collect()
}

fn state_of(h: &EngineHandle, iface: &str) -> Connectivity {
    h.status()
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == iface)
        .map(|i| i.connectivity)
        .unwrap_or(Connectivity::None)
}

/// Starts the engine and waits until every uplink's first check is in.
async fn started(w: &FakeWorld, cfg: Config) -> EngineHandle {
    tokio::time::pause();
    let h = start(cfg, w.ports());
    settle().await;
    pass(Duration::from_millis(100)).await;
    h
}

/// What "nothing happened" means for the restart tests: owned routes, per-interface state and
/// effective metric, global state.
type Observable = (
    Vec<(String, u32)>,
    Vec<(String, Connectivity, Option<u32>)>,
    Connectivity,
);

fn observable(w: &FakeWorld, h: &EngineHandle) -> Observable {
    let s = h.status();
    let ifaces = s
        .interfaces
        .iter()
        .map(|i| (i.name.to_string(), i.connectivity, i.effective_metric))
        .collect();
    (owned_metrics(w), ifaces, s.connectivity)
}

fn addr(s: &str, prefix_len: u8) -> IfaceAddr {
    IfaceAddr {
        addr: s.parse().unwrap(),
        prefix_len,
    }
}

/// Waits (virtual time) until `iface` has had `n` more checks than `before`.
async fn checks_after(w: &FakeWorld, iface: &str, before: usize, n: usize) {
    for _ in 0..10_000 {
        if w.probe.checks(iface).len() >= before + n {
            break;
        }
        pass(Duration::from_millis(50)).await;
    }
    // Let the last check's answer (10 ms) come in.
    pass(Duration::from_millis(50)).await;
}

/// Per interface, the effective metrics the fake kernel was given (adds and replaces), in order.
fn metric_history(w: &FakeWorld, from: usize) -> Vec<(String, Vec<u32>)> {
    use netfailover_actors::fake::RouteWrite;
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    for write in &w.kernel.write_log()[from..] {
        let (RouteWrite::Add(r) | RouteWrite::Replace(r)) = write else {
            continue;
        };
        if r.protocol != OURS {
            continue;
        }
        let n = ["", "", "eth0", "wlan0", "wwan0"][r.ifindex as usize].to_string();
        match out.iter_mut().find(|(name, _)| *name == n) {
            Some((_, v)) => v.push(r.metric),
            None => out.push((n, vec![r.metric])),
        }
    }
    out
}

/// What scripts would see: (kind, iface, previous, state) of every event.
fn transitions(h: &EngineHandle) -> Vec<(EventKind, String, Connectivity, Connectivity)> {
    h.history()
        .into_iter()
        .map(|r| {
            let iface = r.event.iface.map(|i| i.to_string()).unwrap_or_default();
            (r.event.kind, iface, r.event.previous, r.event.state)
        })
        .collect()
}
