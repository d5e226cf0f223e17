//! The whole engine on in-memory ports, in virtual time (paused tokio clock: timers fire as the
//! test sleeps, nothing waits on the wall clock). Each test builds a fake world with uplinks,
//! starts the engine, drives faults through the fakes and asserts on the fake kernel's table,
//! the status board and the delivered events.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use netfailover_actors::fake::{FakeWorld, ProbeBehaviour};
use netfailover_actors::flow_resetter::RESET_TIMEOUT;
use netfailover_actors::flows::{ConntrackFlow, SocketFlow};
use netfailover_actors::model::{
    CheckConfig, Config, Connectivity, DeviceEvents, Event, EventKind, Family, FamilyConfig,
    IfaceAddr, IfaceMatch, IfaceName, KernelRoute, LinkKind, Method, Metric, Profile, UplinkType,
};
use netfailover_actors::ports::{FlowFailure, FlowFailureKind, Verdict};
use netfailover_actors::status::HistoryEntry;
use netfailover_actors::{start, EngineError, EngineHandle};

const OURS: u8 = netfailover_actors::model::DEFAULT_ROUTE_PROTOCOL;
const DHCP: u8 = 16;
const PENALTY: u32 = 20_000;

fn name(s: &str) -> IfaceName {
    IfaceName::new(s).unwrap()
}

fn family(metric: u32) -> FamilyConfig {
    FamilyConfig {
        manage_default: true,
        method: Method::Auto,
        metric: Metric::new(metric.into()).unwrap(),
        addresses: vec![],
        gateway: None,
    }
}

fn profile(iface: &str, t: UplinkType, metric: u32) -> Profile {
    Profile {
        id: format!("{iface}-profile"),
        uuid: Some(format!("uuid-{iface}")),
        file: PathBuf::from(format!("{iface}.nmconnection")),
        uplink_type: t,
        matches: IfaceMatch::Name(name(iface)),
        managed: true,
        ipv4: family(metric),
        ipv6: FamilyConfig {
            manage_default: false,
            ..family(metric)
        },
        dns: vec![],
    }
}

/// Short, test-friendly check settings: interval 30 s, timeouts 1 s / 2 s, recheck_max 8 s.
fn config() -> Config {
    Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100),
            profile("wlan0", UplinkType::Wifi, 600),
            profile("wwan0", UplinkType::Gsm, 700),
        ],
        adopt: false,
        check: CheckConfig {
            uri: "http://192.0.2.80/check".into(),
            interval: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            recheck_max: Duration::from_secs(8),
            ..CheckConfig::default()
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

/// Lets every ready task run without moving the clock.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Lets virtual time pass (timers fire in order as the paused clock auto-advances).
async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
    settle().await;
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

#[actix::test]
async fn startup_adopts_dhcp_routes_and_announces_up() {
    let w = world();
    let h = started(&w, config()).await;
    assert_eq!(
        owned_metrics(&w),
        vec![
            ("eth0".into(), 100),
            ("wlan0".into(), 600),
            ("wwan0".into(), 700)
        ]
    );
    assert!(
        w.kernel.routes().iter().all(|r| r.protocol == OURS),
        "DHCP routes replaced: {:?}",
        w.kernel.routes()
    );
    let ev = events(&h);
    let ups: Vec<_> = ev
        .iter()
        .filter(|e| e.0 == EventKind::Up)
        .map(|e| e.1.clone())
        .collect();
    assert_eq!(ups, vec!["eth0", "wlan0", "wwan0"]);
    assert_eq!(h.status().connectivity, Connectivity::Full);
    assert_eq!(w.kernel.gaps(), 0, "never without a default route");
    let first_cc = h
        .history()
        .into_iter()
        .map(|r| r.event)
        .find(|e| e.kind == EventKind::ConnectivityChange)
        .unwrap();
    assert_eq!(
        (first_cc.previous, first_cc.state),
        (Connectivity::None, Connectivity::Unknown),
        "the first global change starts from NONE"
    );
    // Every `up` comes before any connectivity event.
    let first_cc = ev
        .iter()
        .position(|e| e.0 == EventKind::ConnectivityChange)
        .unwrap();
    assert!(ev[..first_cc].iter().all(|e| e.0 == EventKind::Up));
}

#[actix::test]
async fn carrier_loss_fails_over_in_the_same_tick_and_back_after_a_check() {
    let w = world();
    let h = started(&w, config()).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    let before = tokio::time::Instant::now();
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(
        tokio::time::Instant::now(),
        before,
        "no virtual time passed"
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert!(
        owned_metrics(&w).iter().all(|(n, _)| n != "eth0"),
        "eth0's route removed"
    );
    assert_eq!(state_of(&h, "eth0"), Connectivity::None);

    // Link back: re-added with the penalty until its first check passes, then configured. The
    // fake probe answers after 10 ms of virtual time, which `settle()` does not let pass.
    w.kernel.set_carrier("eth0", true);
    settle().await;
    assert!(
        owned_metrics(&w).contains(&("eth0".into(), 100 + PENALTY)),
        "{:?}",
        owned_metrics(&w)
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    pass(Duration::from_millis(100)).await;
    assert!(owned_metrics(&w).contains(&("eth0".into(), 100)));
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    assert_eq!(w.kernel.gaps(), 0);

    let ev: Vec<_> = events(&h)
        .into_iter()
        .filter(|e| e.1 == "eth0" || e.1.is_empty())
        .collect();
    let tail: Vec<(EventKind, String)> = ev
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|e| (e.0, e.1.clone()))
        .collect();
    assert_eq!(tail[0], (EventKind::Down, "eth0".into()), "{ev:?}");
    assert_eq!(
        tail[1],
        (EventKind::DeviceConnectivityChange, "eth0".into())
    );
    assert_eq!(tail[2], (EventKind::Up, "eth0".into()));
}

#[actix::test]
async fn admin_down_and_up_with_checks_disabled() {
    let w = world();
    let mut cfg = config();
    cfg.check.interval = Duration::ZERO;
    let h = started(&w, cfg).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Unknown,
        "checks off: UNKNOWN"
    );
    assert_eq!(
        owned_metrics(&w)[0],
        ("eth0".into(), 100),
        "checks off: no penalty"
    );
    w.kernel.set_admin("eth0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    w.kernel.set_admin("eth0", true);
    settle().await;
    assert_eq!(
        owned_metrics(&w)[0],
        ("eth0".into(), 100),
        "back at its configured metric at once"
    );
    assert_eq!(w.probe.checks("eth0").len(), 0, "no checks when disabled");
}

#[actix::test]
async fn failing_checks_penalise_within_the_spec_bound_and_recover() {
    let w = world();
    let cfg = config();
    let h = started(&w, cfg.clone()).await;
    let t0 = tokio::time::Instant::now();
    w.probe.set("eth0", Verdict::Limited);
    // Leaving FULL: at most interval + 2 x timeout + 1 s after the upstream broke.
    let bound = cfg.check.interval + cfg.check.timeout * 2 + Duration::from_secs(1);
    while owned_metrics(&w)[0].1 < PENALTY && t0.elapsed() < bound * 2 {
        pass(Duration::from_millis(100)).await;
    }
    assert!(
        t0.elapsed() <= bound,
        "penalty after {:?} > bound {bound:?}",
        t0.elapsed()
    );
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100 + PENALTY));
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);

    // Stay broken long enough for the back-off to reach recheck_max, then repair.
    pass(Duration::from_secs(40)).await;
    let t1 = tokio::time::Instant::now();
    w.probe.set("eth0", Verdict::Full);
    let bound = cfg.check.recheck_max + cfg.check.timeout * 2 + Duration::from_secs(1);
    while owned_metrics(&w)[0].1 > PENALTY && t1.elapsed() < bound * 2 {
        pass(Duration::from_millis(100)).await;
    }
    assert!(
        t1.elapsed() <= bound,
        "fail-back after {:?} > bound {bound:?}",
        t1.elapsed()
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    assert_eq!(w.kernel.gaps(), 0);
    let dcc: Vec<_> = events(&h)
        .into_iter()
        .filter(|e| e.0 == EventKind::DeviceConnectivityChange)
        .collect();
    assert_eq!(
        dcc,
        vec![(
            EventKind::DeviceConnectivityChange,
            "eth0".into(),
            Connectivity::Limited
        )],
        "leave-full only"
    );
}

#[actix::test]
async fn failback_hold_delays_removing_the_penalty() {
    let w = world();
    let mut cfg = config();
    cfg.check.failback_hold = Duration::from_secs(20);
    w.probe.set("eth0", Verdict::Limited);
    let _h = started(&w, cfg).await;
    assert_eq!(owned_metrics(&w)[0].1, 100 + PENALTY);
    w.probe.set("eth0", Verdict::Full);
    pass(Duration::from_secs(12)).await; // FULL again after two good checks, hold running
    assert_eq!(owned_metrics(&w)[0].1, 100 + PENALTY, "still held");
    pass(Duration::from_secs(20)).await;
    assert_eq!(owned_metrics(&w)[0].1, 100);
}

#[actix::test]
async fn a_hung_probe_does_not_delay_other_interfaces() {
    let w = world();
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    let cfg = config();
    let h = started(&w, cfg.clone()).await;
    pass(cfg.check.interval * 3).await;
    let wlan = w.probe.checks("wlan0");
    assert!(
        wlan.len() >= 4,
        "wlan0 checked on schedule: {} checks",
        wlan.len()
    );
    assert_eq!(state_of(&h, "wlan0"), Connectivity::Full);
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Limited,
        "a hung check times out as LIMITED"
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
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

#[actix::test]
async fn every_actor_killed_or_crashed_is_restarted_to_the_same_state() {
    let w = world();
    w.probe.set("eth0", Verdict::Limited); // a penalised primary makes a wrong restart visible
    let h = started(&w, config()).await;
    pass(Duration::from_secs(3)).await;
    let before = observable(&w, &h);
    let events_before = h.history().len();
    assert_eq!(before.0[0], ("eth0".into(), 100 + PENALTY));
    for actor in [
        "link-watcher",
        "route-manager",
        "probe-scheduler",
        "dispatcher",
        "flow-resetter",
        "prober:eth0",
    ] {
        for crash in [false, true] {
            if crash {
                h.crash(actor).await.unwrap();
            } else {
                h.kill(actor).await.unwrap();
            }
            pass(Duration::from_secs(1)).await;
            assert_eq!(
                observable(&w, &h),
                before,
                "after {} {actor}",
                if crash { "crash" } else { "kill" }
            );
            let st = h.status();
            let a = st.actors.iter().find(|a| a.name == actor).unwrap();
            assert!(a.running, "{actor} running again");
        }
        let st = h.status();
        let a = st.actors.iter().find(|a| a.name == actor).unwrap();
        assert_eq!((a.restarts, a.kills), (2, 1), "{actor}: {a:?}");
    }
    assert_eq!(
        h.history().len(),
        events_before,
        "restarts produced no events"
    );
    assert_eq!(w.kernel.gaps(), 0);
    // The restarted tree still reacts.
    w.kernel.set_carrier("wlan0", false);
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("wwan0"),
        "penalised eth0 stays behind wwan0"
    );
}

#[actix::test]
async fn restart_intensity_exceeded_escalates() {
    let w = world();
    let h = started(&w, config()).await;
    for _ in 0..6 {
        let _ = h.crash("route-manager").await;
        pass(Duration::from_secs(2)).await;
    }
    let r = tokio::time::timeout(Duration::from_secs(60), h.wait())
        .await
        .expect("engine stopped");
    assert!(
        matches!(r, Err(EngineError::Escalated { ref actor, .. }) if actor == "route-manager"),
        "{r:?}"
    );
}

#[actix::test]
async fn dispatcher_killed_with_events_pending_delivers_all_in_order() {
    let w = world();
    w.scripts.set_duration(Duration::from_secs(5));
    let h = started(&w, config()).await;
    // Ten more events: wwan0 flaps five times (down + up each).
    for _ in 0..5 {
        w.kernel.set_carrier("wwan0", false);
        settle().await;
        w.kernel.set_carrier("wwan0", true);
        settle().await;
    }
    let produced: Vec<u64> = h.history().iter().map(|r| r.event.id).collect();
    assert!(produced.len() >= 14, "{produced:?}");
    pass(Duration::from_millis(2500)).await; // mid-script
    assert_eq!(w.scripts.running(), 1);
    h.kill("dispatcher").await.unwrap();
    settle().await;
    assert_eq!(
        w.scripts.running(),
        0,
        "the running script was stopped with its Dispatcher"
    );
    pass(Duration::from_secs(5 * 40)).await;
    let delivered: Vec<u64> = w.scripts.finished().iter().map(|e| e.id).collect();
    let mut sorted = delivered.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        delivered, sorted,
        "in order, ids increasing, none twice to completion"
    );
    let all: Vec<u64> = h.history().iter().map(|r| r.event.id).collect();
    assert_eq!(delivered, all, "every event delivered");
    let started_ids: Vec<u64> = w.scripts.started().iter().map(|e| e.id).collect();
    assert_eq!(
        started_ids.len(),
        all.len() + 1,
        "the interrupted event ran again (at-least-once)"
    );
    assert!(w.journal.get().pending.is_empty());
}

#[actix::test]
async fn a_new_engine_resumes_states_and_pending_events() {
    let w = world();
    w.scripts.set_duration(Duration::from_secs(3600));
    w.probe.set("eth0", Verdict::Limited);
    let h = started(&w, config()).await;
    pass(Duration::from_secs(5)).await;
    assert_eq!(owned_metrics(&w)[0].1, 100 + PENALTY);
    let pending = w.journal.get().pending;
    assert!(pending.len() > 3, "scripts are slow: events pending");
    let last_id = pending.last().unwrap().id;
    h.shutdown().await.unwrap();
    assert_eq!(
        owned_metrics(&w)[0],
        ("eth0".into(), 100),
        "clean shutdown removes penalties"
    );

    // "Daemon restart": a new engine on the same kernel, journal and state store. eth0's check
    // now hangs: it must stay penalised (resumed LIMITED), not fail back while unproven.
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.scripts.set_duration(Duration::from_millis(1));
    let h2 = start(config(), w.ports());
    settle().await;
    pass(Duration::from_millis(100)).await;
    assert_eq!(state_of(&h2, "eth0"), Connectivity::Limited, "resumed");
    assert_eq!(owned_metrics(&w)[0].1, 100 + PENALTY);
    pass(Duration::from_secs(10)).await;
    let finished: Vec<u64> = w.scripts.finished().iter().map(|e| e.id).collect();
    for p in &pending {
        assert!(
            finished.contains(&p.id),
            "pending event {} delivered after restart",
            p.id
        );
    }
    let new_ids: Vec<u64> = h2
        .history()
        .iter()
        .map(|r| r.event.id)
        .filter(|id| *id > last_id)
        .collect();
    assert!(!new_ids.is_empty(), "startup `up` events got fresh ids");
    assert!(
        new_ids.iter().all(|id| *id > last_id),
        "ids continue, never reused"
    );
}

#[actix::test]
async fn failed_route_writes_are_retried() {
    let w = world();
    let h = started(&w, config()).await;
    w.kernel.fail_route_writes(4);
    w.kernel.set_carrier("eth0", false);
    settle().await;
    // Retries back off from 250 ms, doubling: the fifth attempt (after 3.75 s) succeeds.
    pass(Duration::from_secs(5)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert!(owned_metrics(&w).iter().all(|(n, _)| n != "eth0"));
    assert!(
        h.status().actors.iter().all(|a| a.restarts == 0),
        "nothing crashed"
    );
}

#[actix::test]
async fn drift_is_repaired_and_overruns_resync() {
    let w = world();
    let h = started(&w, config()).await;
    let eth0 = KernelRoute {
        family: Family::V4,
        ifindex: 2,
        gateway: Some(gw(1)),
        metric: 100,
        protocol: OURS,
    };
    w.kernel.delete_route_by_hand(&eth0);
    settle().await;
    assert!(
        w.kernel.routes().contains(&eth0),
        "hand-deleted route restored"
    );
    let stray = KernelRoute {
        metric: 5000,
        ..eth0.clone()
    };
    w.kernel.add_route_by_hand(stray.clone());
    settle().await;
    assert!(
        !w.kernel.routes().contains(&stray),
        "stray duplicate removed"
    );
    // A DHCP renewal re-adds its own route: replaced again.
    let dhcp = KernelRoute {
        protocol: DHCP,
        metric: 300,
        ..eth0.clone()
    };
    w.kernel.add_route_by_hand(dhcp.clone());
    settle().await;
    assert!(!w.kernel.routes().contains(&dhcp));
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100));
    // Periodic reconcile repairs drift nobody announced.
    pass(Duration::from_secs(11)).await;
    assert_eq!(h.status().interfaces[0].effective_metric, Some(100));
}

#[actix::test]
async fn merged_flap_and_overrun_produce_down_and_up() {
    let w = world();
    let h = started(&w, config()).await;
    let n = h.history().len();
    w.kernel.merged_flap("wlan0");
    settle().await;
    let ev: Vec<_> = events(&h)[n..].iter().map(|e| (e.0, e.1.clone())).collect();
    assert_eq!(
        ev[..3],
        [
            (EventKind::Down, "wlan0".into()),
            (EventKind::DeviceConnectivityChange, "wlan0".into()),
            (EventKind::Up, "wlan0".into())
        ],
        "{ev:?}"
    );
    pass(Duration::from_millis(100)).await;
    assert_eq!(state_of(&h, "wlan0"), Connectivity::Full, "re-checked");
    // Overrun: the kernel changed without telling; the resync finds it.
    w.kernel.set_carrier_unannounced("eth0", false);
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("eth0"),
        "not noticed yet"
    );
    w.kernel.overrun();
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("wlan0"),
        "noticed by the resync"
    );
}

#[actix::test]
async fn equal_metrics_are_made_unique_and_device_events_all() {
    let w = world();
    let mut cfg = config();
    cfg.profiles[1].ipv4.metric = Metric::new(100).unwrap();
    cfg.dispatcher.device_events = DeviceEvents::All;
    let h = started(&w, cfg).await;
    assert_eq!(
        owned_metrics(&w)[..2],
        [("eth0".into(), 100), ("wlan0".into(), 101)]
    );
    let wlan = h
        .status()
        .interfaces
        .into_iter()
        .find(|i| i.name.as_str() == "wlan0")
        .unwrap();
    assert_eq!((wlan.metric, wlan.effective_metric), (100, Some(101)));
    let dcc = events(&h)
        .into_iter()
        .filter(|e| e.0 == EventKind::DeviceConnectivityChange)
        .count();
    assert!(
        dcc >= 6,
        "all mode reports NONE->UNKNOWN->FULL for each of 3 interfaces: {dcc}"
    );
}

#[actix::test]
async fn everything_down_changes_global_connectivity() {
    let w = world();
    let h = started(&w, config()).await;
    for n in ["eth0", "wlan0", "wwan0"] {
        w.kernel.set_carrier(n, false);
        settle().await;
    }
    let cc: Vec<Event> = h
        .history()
        .into_iter()
        .map(|r| r.event)
        .filter(|e| e.kind == EventKind::ConnectivityChange)
        .collect();
    let last = cc.last().unwrap();
    assert_eq!(
        (last.state, last.previous, last.iface.clone()),
        (Connectivity::None, Connectivity::Full, None)
    );
    assert!(w.kernel.routes().iter().all(|r| r.protocol != OURS));
}

#[actix::test]
async fn manual_profiles_get_addresses_and_gateways_again_after_admin_down() {
    use netfailover_actors::model::IfaceAddr;
    let w = FakeWorld::new();
    let eth0 = w.kernel.add_link("eth0", LinkKind::Other);
    let mut p = profile("eth0", UplinkType::Ethernet, 100);
    let v4 = IfaceAddr {
        addr: "192.0.2.10".parse().unwrap(),
        prefix_len: 24,
    };
    let v6 = IfaceAddr {
        addr: "2001:db8::10".parse().unwrap(),
        prefix_len: 64,
    };
    p.ipv4 = FamilyConfig {
        method: Method::Manual,
        addresses: vec![v4],
        gateway: Some(gw(1)),
        ..family(100)
    };
    p.ipv6 = FamilyConfig {
        method: Method::Manual,
        addresses: vec![v6],
        gateway: Some("2001:db8::1".parse().unwrap()),
        ..family(100)
    };
    let mut cfg = config();
    cfg.profiles = vec![p];
    cfg.check.interval = Duration::ZERO;
    let _h = started(&w, cfg).await;
    let want: Vec<(Family, u32)> = vec![(Family::V4, 100), (Family::V6, 100)];
    let owned = |w: &FakeWorld| -> Vec<(Family, u32)> {
        w.kernel
            .routes()
            .iter()
            .filter(|r| r.protocol == OURS)
            .map(|r| (r.family, r.metric))
            .collect()
    };
    assert_eq!(owned(&w), want);
    assert!(
        w.kernel.addresses().contains(&(eth0, v4)) && w.kernel.addresses().contains(&(eth0, v6))
    );
    w.kernel.set_admin("eth0", false);
    settle().await;
    assert!(owned(&w).is_empty(), "{:?}", w.kernel.routes());
    w.kernel.set_admin("eth0", true);
    settle().await;
    assert!(
        w.kernel.addresses().contains(&(eth0, v6)),
        "IPv6 address re-applied"
    );
    assert_eq!(owned(&w), want);
}

#[actix::test]
async fn a_stuck_journal_never_wedges_routing() {
    let w = world();
    let h = started(&w, config()).await;
    w.journal.set_stalled(true);
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("wlan0"),
        "routes first"
    );
    // The events wait for the journal at most a bounded time; routing goes on.
    pass(Duration::from_secs(3)).await;
    w.kernel.set_carrier("wlan0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
    w.journal.set_stalled(false);
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_secs(3)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    let downs = events(&h)
        .into_iter()
        .filter(|e| e.0 == EventKind::Down)
        .count();
    assert_eq!(downs, 2, "no event lost while the journal was stuck");
    // Once the disk answers again, the journal catches up with every event produced.
    w.kernel.set_carrier("wlan0", true);
    pass(Duration::from_secs(3)).await;
    let last = h.history().last().map(|r| r.event.id).unwrap();
    assert!(
        w.journal.get().next_id > last,
        "journal written again after the stall"
    );
}

// ---------------------------------------------------------------------------------------------
// Flows follow the route (flow_resetter.rs)
// ---------------------------------------------------------------------------------------------

fn addr(s: &str, prefix_len: u8) -> IfaceAddr {
    IfaceAddr {
        addr: s.parse().unwrap(),
        prefix_len,
    }
}

fn sock(local: &str, remote: &str) -> SocketFlow {
    SocketFlow {
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        listening: false,
        bound_ifindex: 0,
    }
}

fn ct(reply_src: &str, reply_dst: &str) -> ConntrackFlow {
    ConntrackFlow {
        reply_src: reply_src.parse().unwrap(),
        reply_dst: reply_dst.parse().unwrap(),
    }
}

/// eth0 198.51.100.2/25, wlan0 198.51.100.130/25; flows through each, to the Internet and to a
/// LAN peer, one bound to eth0, one listening; conntrack entries of a NATed container flow
/// through each uplink.
fn world_with_flows() -> FakeWorld {
    let w = world();
    let eth0 = w.kernel.link("eth0").ifindex;
    let wlan0 = w.kernel.link("wlan0").ifindex;
    w.flows.set_addresses(eth0, vec![addr("198.51.100.2", 25)]);
    w.flows
        .set_addresses(wlan0, vec![addr("198.51.100.130", 25)]);
    w.flows.add_socket(sock("198.51.100.2", "203.0.113.10")); // pinned to eth0
    w.flows.add_socket(sock("198.51.100.2", "198.51.100.77")); // LAN peer
    w.flows.add_socket(SocketFlow {
        bound_ifindex: eth0,
        ..sock("198.51.100.2", "203.0.113.11")
    });
    w.flows.add_socket(SocketFlow {
        listening: true,
        ..sock("198.51.100.2", "0.0.0.0")
    });
    w.flows.add_socket(sock("198.51.100.130", "203.0.113.10")); // through wlan0
    w.flows.add_conntrack(ct("203.0.113.10", "198.51.100.2")); // masqueraded via eth0
    w.flows.add_conntrack(ct("203.0.113.10", "198.51.100.130")); // masqueraded via wlan0
    w
}

#[actix::test]
async fn failover_resets_the_flows_pinned_to_the_demoted_uplink_after_the_routes_moved() {
    let w = world_with_flows();
    let h = started(&w, config()).await;
    assert!(w.flows.resets().is_empty(), "a start resets nothing");
    w.kernel.set_carrier("eth0", false);
    settle().await;
    let resets = w.flows.resets();
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0].scope.iface.as_str(), "eth0");
    assert_eq!(resets[0].scope.family, Family::V4);
    assert_eq!(
        resets[0].route_in_use.as_deref(),
        Some("wlan0"),
        "the reset starts after the new route is in the kernel"
    );
    // Only the flow to the Internet through eth0 and its NAT entry are gone.
    assert_eq!(w.flows.sockets().len(), 4);
    assert!(!w
        .flows
        .sockets()
        .contains(&sock("198.51.100.2", "203.0.113.10")));
    assert_eq!(
        w.flows.conntrack(),
        vec![ct("203.0.113.10", "198.51.100.130")]
    );
    let records = h.flow_resets();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(
        (r.iface.as_str(), r.to.as_str(), r.failback),
        ("eth0", "wlan0", false)
    );
    assert_eq!((r.sockets_destroyed, r.conntrack_deleted), (1, 1));
    assert!(r.failures.is_empty());
    let c = h.status().flows;
    assert_eq!(
        (
            c.resets,
            c.sockets_destroyed,
            c.conntrack_deleted,
            c.failures
        ),
        (1, 1, 1, 0)
    );
    // In the `events` history, beside (not among) the dispatcher events.
    assert!(h.timeline().iter().any(
        |e| matches!(e, HistoryEntry::FlowsReset { flows_reset } if flows_reset.iface.as_str() == "eth0")
    ));

    // Fail-back onto the recovered primary: defaults reset nothing.
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_millis(100)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    assert_eq!(
        w.flows.resets().len(),
        1,
        "fail-back resets nothing by default"
    );
    assert!(w
        .flows
        .sockets()
        .contains(&sock("198.51.100.130", "203.0.113.10")));
}

#[actix::test]
async fn failback_resets_when_configured_and_disabled_resets_nothing() {
    let w = world_with_flows();
    let mut cfg = config();
    cfg.flows.on_failback = true;
    let h = started(&w, cfg.clone()).await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_millis(100)).await;
    let scopes: Vec<String> = w
        .flows
        .resets()
        .iter()
        .map(|r| r.scope.iface.to_string())
        .collect();
    assert_eq!(
        scopes,
        vec!["eth0", "wlan0"],
        "fail-back resets the backup's flows"
    );
    assert!(!w
        .flows
        .sockets()
        .contains(&sock("198.51.100.130", "203.0.113.10")));
    assert_eq!(w.flows.resets()[1].route_in_use.as_deref(), Some("eth0"));
    assert!(h.flow_resets()[1].failback);

    // Switched off by a reload: moves reset nothing.
    cfg.flows.enabled = false;
    h.reload(cfg);
    settle().await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert_eq!(w.flows.resets().len(), 2);
}

#[actix::test]
async fn a_blackholed_primary_resets_once_penalised_and_all_penalised_resets_nothing() {
    let w = world_with_flows();
    let cfg = config();
    let h = started(&w, cfg.clone()).await;
    // Every uplink fails its checks: all penalised alike, eth0 stays in use, nothing moves.
    for i in ["eth0", "wlan0", "wwan0"] {
        w.probe.set(i, Verdict::Limited);
    }
    pass(cfg.check.interval + cfg.check.timeout * 4).await;
    assert!(owned_metrics(&w).iter().all(|(_, m)| *m > PENALTY));
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    assert!(w.flows.resets().is_empty(), "{:?}", w.flows.resets());
    // wlan0 recovers: the route moves off the penalised eth0 → reset.
    w.probe.set("wlan0", Verdict::Full);
    pass(cfg.check.recheck_max + cfg.check.timeout * 4).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    let resets = w.flows.resets();
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].scope.iface.as_str(), "eth0");
    assert_eq!(h.flow_resets()[0].sockets_destroyed, 1);
}

#[actix::test]
async fn a_hung_or_failing_reset_never_delays_routing_or_events() {
    let w = world_with_flows();
    w.flows.set_delay(Duration::from_secs(3600));
    let h = started(&w, config()).await;
    let events_before = h.history().len();
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("wlan0"),
        "routing goes on"
    );
    assert!(h.history().len() > events_before, "events go on");
    assert_eq!(w.flows.resets().len(), 1);
    pass(RESET_TIMEOUT + Duration::from_secs(1)).await;
    let r = &h.flow_resets()[0];
    assert_eq!(r.failures.len(), 1, "{r:?}");
    assert!(r.failures[0].message.contains("gave up"), "{r:?}");

    // A kernel without CONFIG_INET_DIAG_DESTROY: recorded with its message, counted.
    w.flows.set_delay(Duration::ZERO);
    w.flows.set_failure(Some(FlowFailure {
        kind: FlowFailureKind::Unsupported,
        what: "destroying TCP sockets".into(),
        message: "the kernel lacks CONFIG_INET_DIAG_DESTROY".into(),
    }));
    w.kernel.set_carrier("wlan0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
    let records = h.flow_resets();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].failures[0].kind, FlowFailureKind::Unsupported);
    assert_eq!(h.status().flows.failures, 2);
}
