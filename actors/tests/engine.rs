//! The whole engine on in-memory ports, in virtual time (paused tokio clock: timers fire as the
//! test sleeps, nothing waits on the wall clock). Each test builds a fake world with uplinks,
//! starts the engine, drives faults through the fakes and asserts on the fake kernel's table,
//! the status board and the delivered events.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use netfailover_actors::fake::{pass, settle, FakeWorld, ProbeBehaviour};
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

/// eth0's flow to the Internet and its NAT entry are gone; wlan0's NAT entry is kept.
fn assert_only_eth0_internet_flow_reset(w: &FakeWorld) {
    assert!(!w
        .flows
        .sockets()
        .contains(&sock("198.51.100.2", "203.0.113.10")));
    assert_eq!(
        w.flows.conntrack(),
        vec![ct("203.0.113.10", "198.51.100.130")]
    );
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
    assert_only_eth0_internet_flow_reset(&w);
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

    // Fail-back onto the recovered primary: by default the backup's flows are reset too (no
    // source route keeps them on the backup; through the primary they would hang).
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_millis(100)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    let resets = w.flows.resets();
    assert_eq!(resets.len(), 2, "fail-back resets by default: {resets:?}");
    assert_eq!(resets[1].scope.iface.as_str(), "wlan0");
    assert!(!w
        .flows
        .sockets()
        .contains(&sock("198.51.100.130", "203.0.113.10")));
}

/// At start the backup's first check can finish before the primary's: the route in use then
/// flaps off the unchecked (UNKNOWN) primary and back within one check. Nothing failed, so
/// nothing is reset, neither the move off the primary (its connections survive a blip) nor the
/// return onto it, even with `on_failback` (the route never left the primary for its flows);
/// once the primary has been FULL, a real failover resets as usual.
#[actix::test]
async fn a_start_where_the_backup_is_checked_first_resets_nothing() {
    let w = world_with_flows();
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(500)),
    );
    let mut cfg = config();
    cfg.flows.on_failback = true;
    let _h = started(&w, cfg).await;
    pass(Duration::from_secs(2)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    assert!(w.flows.resets().is_empty(), "{:?}", w.flows.resets());
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(w.flows.resets().len(), 1);
    assert_eq!(w.flows.resets()[0].scope.iface.as_str(), "eth0");
}

/// The same start with a primary whose first checks fail: the move off it is held while it is
/// UNKNOWN and reported once its state is known and the route has not come back.
#[actix::test]
async fn a_move_off_an_unchecked_primary_resets_once_its_checks_fail() {
    let w = world_with_flows();
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Limited, Duration::from_millis(500)),
    );
    let cfg = config();
    let _h = started(&w, cfg.clone()).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert!(
        w.flows.resets().is_empty(),
        "held while eth0 is not checked"
    );
    pass(cfg.check.recheck_max + cfg.check.timeout * 4).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    let resets = w.flows.resets();
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0].scope.iface.as_str(), "eth0");
    assert_eq!(resets[0].route_in_use.as_deref(), Some("wlan0"));
}

#[actix::test]
async fn failback_resets_by_default_and_disabled_resets_nothing() {
    let w = world_with_flows();
    let mut cfg = config();
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

    // `on_failback = false` by a reload: the next fail-back leaves the backup's flows alone.
    cfg.flows.on_failback = false;
    h.reload(cfg.clone());
    settle().await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_millis(100)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    let scopes: Vec<String> = w
        .flows
        .resets()
        .iter()
        .map(|r| r.scope.iface.to_string())
        .collect();
    assert_eq!(scopes, vec!["eth0", "wlan0", "eth0"], "no fail-back reset");

    // Even so, a cellular (metered) backup's flows move back to the primary.
    w.kernel.set_carrier("eth0", false);
    w.kernel.set_carrier("wlan0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_millis(100)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    let last = w.flows.resets().pop().map(|r| r.scope.iface.to_string());
    assert_eq!(
        last.as_deref(),
        Some("wwan0"),
        "the cellular backup is reset"
    );
    let n = w.flows.resets().len();
    w.kernel.set_carrier("wlan0", true);
    pass(Duration::from_secs(3)).await;

    // Switched off by a reload: moves reset nothing.
    cfg.flows.enabled = false;
    h.reload(cfg);
    settle().await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert_eq!(w.flows.resets().len(), n);
}

/// A modem unplugged (`ip link del`): the interface and its addresses are gone when the reset
/// runs, so it matches the addresses RouteManager last saw on it; its pinned socket and NAT
/// entry are reset, the backup's are not.
#[actix::test]
async fn a_vanished_interface_is_reset_with_the_addresses_it_last_had() {
    let w = world_with_flows();
    let eth0 = addr("198.51.100.2", 25);
    w.kernel.set_addresses("eth0", vec![eth0]);
    w.kernel
        .set_addresses("wlan0", vec![addr("198.51.100.130", 25)]);
    let _h = started(&w, config()).await;
    // Unplugged: the kernel has no eth0 and no addresses on it any more.
    let ifindex = w.kernel.link("eth0").ifindex;
    w.flows.set_addresses(ifindex, vec![]);
    w.kernel.remove_link("eth0");
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    let resets = w.flows.resets();
    assert_eq!(resets.len(), 1, "{resets:?}");
    assert_eq!(resets[0].scope.iface.as_str(), "eth0");
    assert_eq!(resets[0].scope.last_addresses, vec![eth0]);
    assert_only_eth0_internet_flow_reset(&w);
}

/// IPv6 from router advertisements (`proto ra`, never owned): the RA routes count for the
/// route in use, so a carrier loss on eth0 (its RA route deleted) moves the IPv6 route in use
/// to wlan0's RA route and resets eth0's IPv6 flows, as for IPv4.
#[actix::test]
async fn a_move_of_the_router_advertised_ipv6_route_resets_the_ipv6_flows() {
    const RA: u8 = 9;
    let w = world_with_flows();
    let mut cfg = config();
    let mut v6 = Vec::new();
    for (i, (n, metric)) in [("eth0", 100), ("wlan0", 600)].into_iter().enumerate() {
        let ifindex = w.kernel.link(n).ifindex;
        let ra = KernelRoute {
            family: Family::V6,
            ifindex,
            gateway: Some("fe80::1".parse().unwrap()),
            metric,
            protocol: RA,
        };
        w.kernel.add_route_by_hand(ra);
        cfg.profiles[i].ipv6.manage_default = true;
        let a = addr(&format!("2001:db8:{}::2", i + 1), 64);
        w.flows.set_addresses(ifindex, vec![a]);
        v6.push(sock(&a.addr.to_string(), "2001:db8:99::1"));
    }
    for s in &v6 {
        w.flows.add_socket(*s);
    }
    let _h = started(&w, cfg).await;
    assert!(w.flows.resets().is_empty(), "a start resets nothing");
    w.kernel.set_carrier("eth0", false);
    settle().await;
    let scopes: Vec<(String, Family)> = w
        .flows
        .resets()
        .iter()
        .map(|r| (r.scope.iface.to_string(), r.scope.family))
        .collect();
    assert!(
        scopes.contains(&("eth0".into(), Family::V6)),
        "the IPv6 route in use moved: {scopes:?}"
    );
    let v6_reset = w
        .flows
        .resets()
        .into_iter()
        .find(|r| r.scope.family == Family::V6)
        .unwrap();
    assert_eq!(v6_reset.route_in_use.as_deref(), Some("wlan0"));
    assert!(
        !w.flows.sockets().contains(&v6[0]),
        "eth0's IPv6 socket reset"
    );
    assert!(w.flows.sockets().contains(&v6[1]), "wlan0's kept");
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

/// The parts of a view an observer rebuilds (check results are not streamed).
fn rebuilt_view(s: &netfailover_actors::Snapshot) -> impl PartialEq + std::fmt::Debug {
    let ifaces: Vec<_> = s
        .status
        .interfaces
        .iter()
        .map(|i| {
            (
                i.name.to_string(),
                i.link.clone(),
                i.connectivity,
                i.effective_metric,
            )
        })
        .collect();
    let mut actors: Vec<_> = s
        .status
        .actors
        .iter()
        .map(|a| (a.name.clone(), a.restarts, a.kills))
        .collect();
    actors.sort();
    let events: Vec<_> = s
        .events
        .iter()
        .map(|r| (r.event.id, r.delivered, r.scripts.len()))
        .collect();
    (
        ifaces,
        s.status.connectivity,
        actors,
        events,
        s.status.events_total,
        s.status.pending_events,
    )
}

#[actix::test]
async fn a_late_subscriber_gets_the_snapshot_then_every_change_in_order() {
    use netfailover_actors::EngineEvent;
    let w = world();
    let h = started(&w, config()).await;
    // Late: the start-up events are over, the subscriber only gets them in the snapshot.
    let (mut view, mut rx) = h.observe();
    assert_eq!(view.status.connectivity, Connectivity::Full);
    assert_eq!(view.status.interfaces.len(), 3);
    let ups = view
        .events
        .iter()
        .filter(|r| r.event.kind == EventKind::Up)
        .count();
    assert_eq!(ups, 3, "start-up events are in the snapshot");
    assert!(rx.try_recv().is_err(), "nothing happened since");

    h.kill("dispatcher").await.unwrap();
    pass(Duration::from_millis(100)).await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    pass(Duration::from_millis(100)).await;

    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        view.apply(&e);
        got.push(e);
    }
    let eth0 = name("eth0");
    let pos = |want: &dyn Fn(&EngineEvent) -> bool| {
        got.iter()
            .position(want)
            .unwrap_or_else(|| panic!("missing in {got:#?}"))
    };
    let restarted = pos(&|e| {
        matches!(e, EngineEvent::ActorRestarted { actor, reason, .. }
            if actor == "dispatcher" && reason == "killed")
    });
    let link = pos(&|e| {
        matches!(e, EngineEvent::Link { iface, link, previous }
            if *iface == eth0 && link == "down" && previous == "up")
    });
    let route = pos(&|e| {
        matches!(e, EngineEvent::Route { iface, family: Family::V4, old_metric: Some(100), new_metric: None }
            if *iface == eth0)
    });
    let conn = pos(&|e| {
        matches!(e, EngineEvent::Connectivity { iface, state: Connectivity::None, previous: Connectivity::Full }
            if *iface == eth0)
    });
    let down = pos(&|e| matches!(e, EngineEvent::Event(ev) if ev.kind == EventKind::Down));
    let device = pos(
        &|e| matches!(e, EngineEvent::Event(ev) if ev.kind == EventKind::DeviceConnectivityChange),
    );
    let down_id = match &got[down] {
        EngineEvent::Event(ev) => ev.id,
        _ => unreachable!(),
    };
    let delivered =
        pos(&|e| matches!(e, EngineEvent::Delivered { event_id } if *event_id == down_id));
    assert!(restarted < link && link < route && route < conn && conn < down);
    assert!(down < device && down < delivered);
    // The fake runner reports one script per event.
    let script =
        pos(&|e| matches!(e, EngineEvent::Script { event_id, .. } if *event_id == down_id));
    assert!(down < script && script < delivered);

    // Snapshot + events = the engine's own view now.
    let (now, _) = h.observe();
    assert_eq!(rebuilt_view(&view), rebuilt_view(&now));
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

#[actix::test]
async fn the_timing_bounds_hold_after_a_history_of_blips() {
    let w = world();
    let mut cfg = config();
    // interval below recheck_max: the back-off cap must follow interval.
    cfg.check.interval = Duration::from_secs(5);
    cfg.check.recheck_max = Duration::from_secs(60);
    let h = started(&w, cfg.clone()).await;
    // Ten one-off blips: one failed check each, then good again.
    for _ in 0..10 {
        w.probe.set("eth0", Verdict::Limited);
        checks_after(&w, "eth0", w.probe.checks("eth0").len(), 1).await;
        w.probe.set("eth0", Verdict::Full);
        checks_after(&w, "eth0", w.probe.checks("eth0").len(), 1).await;
    }
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Full,
        "blips alone never leave FULL"
    );
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100));
    // A real outage, right after a good check (the worst phase).
    let t0 = tokio::time::Instant::now();
    w.probe.set("eth0", Verdict::Limited);
    let leave = cfg.check.interval + cfg.check.timeout * 2 + Duration::from_secs(1);
    while owned_metrics(&w)[0].1 < PENALTY && t0.elapsed() < leave * 4 {
        pass(Duration::from_millis(100)).await;
    }
    assert!(
        t0.elapsed() <= leave,
        "penalty {:?} after the outage began > bound {leave:?}",
        t0.elapsed()
    );
    // A long outage (the back-off reaches its cap), then the upstream is back.
    pass(Duration::from_secs(120)).await;
    let t1 = tokio::time::Instant::now();
    w.probe.set("eth0", Verdict::Full);
    let cap = cfg.check.recheck_max.min(cfg.check.interval);
    let back = cap + cfg.check.timeout * 2 + Duration::from_secs(1);
    while owned_metrics(&w)[0].1 > PENALTY && t1.elapsed() < back * 4 {
        pass(Duration::from_millis(100)).await;
    }
    assert!(
        t1.elapsed() <= back,
        "fail-back {:?} after the upstream was back > bound {back:?}",
        t1.elapsed()
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
}

#[actix::test]
async fn past_journal_limit_connectivity_changes_coalesce_across_interface_events() {
    let w = world();
    w.scripts.set_duration(Duration::from_secs(10_000));
    let mut cfg = config();
    cfg.dispatcher.journal_limit = 4;
    let h = started(&w, cfg).await;
    // Everything down, then everything back, five times: each round produces `down`s and `up`s
    // between two global `connectivity-change` events, while the first event's scripts hang.
    for _ in 0..5 {
        for n in ["eth0", "wlan0", "wwan0"] {
            w.kernel.set_carrier(n, false);
        }
        settle().await;
        for n in ["eth0", "wlan0", "wwan0"] {
            w.kernel.set_carrier(n, true);
        }
        pass(Duration::from_secs(3)).await;
    }
    let produced = events(&h);
    let produced_cc = produced
        .iter()
        .filter(|e| e.0 == EventKind::ConnectivityChange)
        .count();
    assert!(
        produced_cc >= 10,
        "the scenario changes global state: {produced:?}"
    );
    let pending = w.journal.get().pending;
    let count = |k: EventKind| pending.iter().filter(|e| e.kind == k).count();
    let produced_count = |k: EventKind| produced.iter().filter(|e| e.0 == k).count();
    // At most the one in flight and the latest.
    assert!(
        count(EventKind::ConnectivityChange) <= 2,
        "{:?}",
        pending.iter().map(|e| e.kind).collect::<Vec<_>>()
    );
    let latest = produced
        .iter()
        .rev()
        .find(|e| e.0 == EventKind::ConnectivityChange)
        .map(|e| e.2);
    assert_eq!(
        pending
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::ConnectivityChange)
            .map(|e| e.state),
        latest,
        "the latest global state survives"
    );
    for k in [
        EventKind::Up,
        EventKind::Down,
        EventKind::DeviceConnectivityChange,
    ] {
        // The oldest event may be in flight (it is still pending): nothing else was delivered.
        assert_eq!(count(k), produced_count(k), "{k:?} never dropped");
    }
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

#[actix::test]
async fn a_fresh_start_produces_each_state_once() {
    let w = world();
    // Route writes take a netlink round trip, so check results queue up behind reconciles.
    w.kernel.set_write_delay(Duration::from_millis(1));
    w.probe.set_behaviour(
        "wlan0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(12)),
    );
    w.probe.set_behaviour(
        "wwan0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(14)),
    );
    let mut cfg = config();
    cfg.dispatcher.device_events = DeviceEvents::All;
    let h = started(&w, cfg).await;
    pass(Duration::from_secs(1)).await;
    // Routes: penalised while UNKNOWN, then the configured metric, never penalised again.
    for (iface, metrics) in metric_history(&w, 0) {
        let first_good = metrics.iter().position(|m| *m < PENALTY);
        assert!(first_good.is_some(), "{iface}: {metrics:?}");
        assert!(
            metrics[first_good.unwrap_or(0)..]
                .iter()
                .all(|m| *m < PENALTY),
            "{iface}: penalty blink {metrics:?}"
        );
    }
    // Events: up(UNKNOWN), NONE -> UNKNOWN -> FULL, each state once per interface.
    for iface in ["eth0", "wlan0", "wwan0"] {
        let dcc: Vec<_> = transitions(&h)
            .into_iter()
            .filter(|e| e.0 == EventKind::DeviceConnectivityChange && e.1 == iface)
            .map(|e| (e.2, e.3))
            .collect();
        assert_eq!(
            dcc,
            vec![
                (Connectivity::None, Connectivity::Unknown),
                (Connectivity::Unknown, Connectivity::Full)
            ],
            "{iface}"
        );
    }
}

#[actix::test]
async fn a_restart_resumes_full_without_a_blink() {
    let w = world();
    w.kernel.set_write_delay(Duration::from_millis(1));
    w.probe.set_behaviour(
        "wlan0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(12)),
    );
    w.probe.set_behaviour(
        "wwan0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(14)),
    );
    let mut cfg = config();
    cfg.dispatcher.device_events = DeviceEvents::All;
    let h = started(&w, cfg.clone()).await;
    pass(Duration::from_secs(1)).await;
    assert_eq!(h.status().connectivity, Connectivity::Full);

    // Every actor killed and crashed: no route write, no event.
    let writes = w.kernel.write_log().len();
    let events = h.history().len();
    for actor in [
        "route-manager",
        "probe-scheduler",
        "link-watcher",
        "dispatcher",
        "prober:eth0",
    ] {
        for crash in [false, true] {
            if crash {
                h.crash(actor).await.unwrap();
            } else {
                h.kill(actor).await.unwrap();
            }
            for _ in 0..20 {
                pass(Duration::from_millis(50)).await;
            }
        }
    }
    assert_eq!(
        metric_history(&w, writes),
        vec![],
        "actor restarts wrote routes"
    );
    assert_eq!(
        transitions(&h)[events..].to_vec(),
        vec![],
        "actor restarts produced events"
    );

    // A daemon restart: a new engine on the same kernel and state resumes FULL at once.
    h.shutdown().await.unwrap();
    let writes = w.kernel.write_log().len();
    let h2 = start(cfg, w.ports());
    for _ in 0..20 {
        pass(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric_history(&w, writes)
            .into_iter()
            .filter(|(_, m)| m.iter().any(|m| *m >= PENALTY))
            .collect::<Vec<_>>(),
        vec![],
        "penalty blink on a resumed FULL interface"
    );
    let seen = transitions(&h2);
    assert!(
        seen.iter()
            .all(|e| e.0 == EventKind::Up && e.3 == Connectivity::Full),
        "only `up` events, each carrying the resumed FULL: {seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[actix::test]
async fn every_managed_interface_that_vanishes_gets_down() {
    // eth0 by name, wlan0 matched by type, wwan0 by MAC, and an adopted usb0 (no profile).
    let w = world();
    let usb0 = w.kernel.add_link("usb0", LinkKind::Other);
    w.kernel.add_route_by_hand(KernelRoute {
        family: Family::V4,
        ifindex: usb0,
        gateway: Some(gw(9)),
        metric: 900,
        protocol: DHCP,
    });
    let mut cfg = config();
    cfg.adopt = true;
    cfg.profiles[1].matches = IfaceMatch::ByType;
    cfg.profiles[2].matches =
        IfaceMatch::Mac(w.kernel.link("wwan0").mac.expect("fake links have a MAC"));
    let h = started(&w, cfg).await;
    pass(Duration::from_secs(1)).await;
    assert_eq!(
        h.status().interfaces.len(),
        4,
        "{:?}",
        h.status().interfaces
    );
    for (i, iface) in ["usb0", "wlan0", "wwan0", "eth0"].into_iter().enumerate() {
        assert_eq!(state_of(&h, iface), Connectivity::Full, "{iface}");
        let n = h.history().len();
        w.kernel.remove_link(iface);
        settle().await;
        let ev: Vec<_> = transitions(&h)[n..]
            .iter()
            .map(|e| (e.0, e.1.clone(), e.3))
            .collect();
        let mut want = vec![
            (EventKind::Down, iface.to_string(), Connectivity::None),
            (
                EventKind::DeviceConnectivityChange,
                iface.to_string(),
                Connectivity::None,
            ),
        ];
        if i == 3 {
            // The last one: the device has no connectivity any more.
            want.push((
                EventKind::ConnectivityChange,
                String::new(),
                Connectivity::None,
            ));
        }
        assert_eq!(ev, want, "{iface} removed");
    }
}

#[actix::test]
async fn a_none_result_from_the_checks_stays_none_and_needs_up_count_to_return() {
    let w = world();
    let cfg = config();
    let h = started(&w, cfg.clone()).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    w.probe.set("eth0", Verdict::None);
    pass(cfg.check.interval + Duration::from_secs(5)).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::None,
        "the checks' NONE is kept, not taken for a fresh link"
    );
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100 + PENALTY));
    pass(Duration::from_secs(20)).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::None, "still NONE");
    // Back: one good check is not enough. (Its confirmation follows at once; answering slowly
    // lets the test look in between.)
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(500)),
    );
    let checks = w.probe.checks("eth0").len();
    checks_after(&w, "eth0", checks, 2).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::None, "one good check");
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100 + PENALTY));
    pass(Duration::from_millis(500)).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Full,
        "up_count good checks"
    );
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100));
    let dcc: Vec<_> = transitions(&h)
        .into_iter()
        .filter(|e| e.0 == EventKind::DeviceConnectivityChange && e.1 == "eth0")
        .map(|e| (e.2, e.3))
        .collect();
    assert_eq!(
        dcc,
        vec![(Connectivity::Full, Connectivity::None)],
        "no UNKNOWN in between"
    );
}

#[actix::test]
async fn an_interface_without_a_gateway_is_none_and_never_checked() {
    let w = world();
    let wwan0 = w.kernel.link("wwan0").ifindex;
    let dhcp = w
        .kernel
        .routes()
        .into_iter()
        .find(|r| r.ifindex == wwan0)
        .expect("the world gives wwan0 a DHCP route");
    w.kernel.delete_route_by_hand(&dhcp);
    let h = started(&w, config()).await;
    pass(Duration::from_secs(65)).await; // two check intervals
    assert!(
        w.probe.checks("wwan0").is_empty(),
        "no check through an interface without a route"
    );
    assert_eq!(state_of(&h, "wwan0"), Connectivity::None);
    assert!(w.probe.checks("eth0").len() >= 2);
    assert_eq!(
        w.probe.last_request("eth0").map(|r| r.routed),
        Some(vec![Family::V4]),
        "checks go only to families with a route"
    );
    // The DHCP client installs a route: checked at once, FULL after its first check.
    w.kernel.add_route_by_hand(dhcp);
    pass(Duration::from_millis(500)).await;
    assert_eq!(w.probe.checks("wwan0").len(), 1);
    assert_eq!(state_of(&h, "wwan0"), Connectivity::Full);
}

#[actix::test]
async fn a_running_failback_hold_survives_route_manager_and_daemon_restarts() {
    let w = world();
    let mut cfg = config();
    cfg.check.failback_hold = Duration::from_secs(30);
    w.probe.set("eth0", Verdict::Limited);
    let h = started(&w, cfg.clone()).await;
    assert_eq!(owned_metrics(&w)[0].1, 100 + PENALTY);
    w.probe.set("eth0", Verdict::Full);
    pass(Duration::from_secs(5)).await; // FULL again after two good checks, hold running
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    let full_at = tokio::time::Instant::now() - Duration::from_secs(3);
    for (i, crash) in [false, true].into_iter().enumerate() {
        if crash {
            h.crash("route-manager").await.unwrap();
        } else {
            h.kill("route-manager").await.unwrap();
        }
        pass(Duration::from_secs(1)).await;
        assert_eq!(
            owned_metrics(&w)[0].1,
            100 + PENALTY,
            "hold kept across route-manager restart {i}"
        );
    }
    // A daemon restart: a new engine on the same kernel and state store.
    h.shutdown().await.unwrap();
    let h2 = start(cfg.clone(), w.ports());
    pass(Duration::from_secs(1)).await;
    assert_eq!(state_of(&h2, "eth0"), Connectivity::Full, "resumed");
    assert_eq!(
        owned_metrics(&w)[0].1,
        100 + PENALTY,
        "hold kept across a daemon restart"
    );
    // It still ends: by the end of the hold (plus one reconcile interval of slack for the
    // time since the last save), the penalty is gone.
    let end = full_at + cfg.check.failback_hold + cfg.route.reconcile_interval;
    while owned_metrics(&w)[0].1 > PENALTY
        && tokio::time::Instant::now() < end + Duration::from_secs(30)
    {
        pass(Duration::from_millis(200)).await;
    }
    assert!(
        tokio::time::Instant::now() <= end,
        "hold over {:?} after FULL",
        tokio::time::Instant::now() - full_at
    );
    assert!(
        tokio::time::Instant::now() >= full_at + cfg.check.failback_hold - Duration::from_secs(3),
        "hold not cut short"
    );
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100));
}

/// A router-advertised IPv6 default route (`proto ra`) on eth0: demoted through
/// `ra_defrtr_metric` plus one Router Solicitation on a penalty, deleted on link loss.
#[actix::test]
async fn router_advertised_routes_are_demoted_and_removed_with_the_link() {
    const RA: u8 = 9;
    let w = world();
    let eth0 = w.kernel.link("eth0").ifindex;
    let ra = KernelRoute {
        family: Family::V6,
        ifindex: eth0,
        gateway: Some("fe80::1".parse().unwrap()),
        metric: 1024,
        protocol: RA,
    };
    w.kernel.add_route_by_hand(ra.clone());
    let mut cfg = config();
    cfg.profiles[0].ipv6.manage_default = true; // method auto: the IPv6 route comes from RAs
    let h = started(&w, cfg).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    assert!(h
        .status()
        .interfaces
        .iter()
        .all(|i| i.ipv6_penalty_unavailable.is_none()));
    let key = "net.ipv6.conf.eth0.ra_defrtr_metric";
    assert_eq!(w.kernel.sysctl_get(key).as_deref(), Some("100"));
    // The RA route was at another metric: solicitations so the router's answer moves it (one
    // per metric change: penalised while UNKNOWN, then FULL).
    let at_start = w.kernel.solicitations();
    assert!(
        !at_start.is_empty() && at_start.iter().all(|i| *i == eth0),
        "{at_start:?}"
    );
    // The router answers: the kernel re-installs its route at the new metric.
    w.kernel.delete_route_by_hand(&ra);
    let ra = KernelRoute { metric: 100, ..ra };
    w.kernel.add_route_by_hand(ra.clone());
    settle().await;
    assert_eq!(
        w.kernel.solicitations(),
        at_start,
        "no repeat once it moved"
    );

    // A penalty: the RA metric follows, with one more solicitation; the route is never re-added
    // by us.
    w.probe.set("eth0", Verdict::Limited);
    pass(Duration::from_secs(40)).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);
    assert_eq!(
        w.kernel.sysctl_get(key).as_deref(),
        Some(&*(100 + PENALTY).to_string())
    );
    assert_eq!(w.kernel.solicitations().len(), at_start.len() + 1);
    let ours_v6 = w
        .kernel
        .routes()
        .into_iter()
        .filter(|r| r.family == Family::V6 && r.protocol != RA)
        .count();
    assert_eq!(ours_v6, 0, "never added by us");

    // Link loss: the RA route goes at once (the kernel would keep it, linkdown).
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert!(
        !w.kernel.routes().contains(&ra),
        "RA route deleted on carrier loss: {:?}",
        w.kernel.routes()
    );
    // Link back: one solicitation brings it back (the kernel's own may be lost).
    let before = w.kernel.solicitations().len();
    w.kernel.set_carrier("eth0", true);
    settle().await;
    assert_eq!(w.kernel.solicitations().len(), before + 1);
}

/// A kernel without `ra_defrtr_metric` (before 5.12): the IPv6 penalty cannot work, which is
/// said in `status` (per interface) instead of being silently recorded as done (a kernel with
/// it says nothing: `router_advertised_routes_are_demoted_and_removed_with_the_link`).
#[actix::test]
async fn a_kernel_without_ra_defrtr_metric_shows_the_ipv6_penalty_unavailable() {
    const RA: u8 = 9;
    {
        let w = world();
        w.kernel.sysctl_missing("ra_defrtr_metric");
        let eth0 = w.kernel.link("eth0").ifindex;
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V6,
            ifindex: eth0,
            gateway: Some("fe80::1".parse().unwrap()),
            metric: 1024,
            protocol: RA,
        });
        let mut cfg = config();
        cfg.profiles[0].ipv6.manage_default = true;
        let h = started(&w, cfg).await;
        let st = h.status();
        let why = |n: &str| {
            st.interfaces
                .iter()
                .find(|i| i.name.as_str() == n)
                .and_then(|i| i.ipv6_penalty_unavailable.clone())
        };
        assert!(why("eth0").is_some_and(|w| w.contains("5.12")), "{st:?}");
        assert!(why("wlan0").is_none(), "no IPv6 managed there");
        assert!(
            w.kernel.solicitations().is_empty(),
            "nothing to solicit for"
        );
    }
}

/// A corrupt journal (or a lost one) never restarts ids at 1: they continue above the
/// journal's boot-clock floor, so no id of the previous run repeats.
#[actix::test]
async fn a_corrupt_journal_never_restarts_event_ids() {
    let w = world();
    w.journal.set_id_floor(1_000);
    let first = started(&w, config()).await;
    w.kernel.set_carrier("wwan0", false);
    settle().await;
    let before: Vec<u64> = first.history().iter().map(|r| r.event.id).collect();
    assert!(before.iter().all(|id| *id >= 1_000), "{before:?}");
    first.shutdown().await.unwrap();
    // "Daemon restart" with an unreadable journal, later in the same boot.
    w.journal.set_corrupt(true);
    w.journal.set_id_floor(2_000);
    let second = start(config(), w.ports());
    settle().await;
    pass(Duration::from_millis(100)).await;
    w.kernel.set_carrier("wwan0", true);
    pass(Duration::from_millis(100)).await;
    let after: Vec<u64> = second.history().iter().map(|r| r.event.id).collect();
    assert!(!after.is_empty());
    let last_before = before.iter().max().copied().unwrap_or(0);
    assert!(
        after.iter().all(|id| *id > last_before),
        "ids repeat: before {before:?}, after {after:?}"
    );
}

/// While the journal cannot write, `status` says it is behind and by how many events; once the
/// disk answers again, it catches up.
#[actix::test]
async fn a_stalled_journal_shows_in_status() {
    let w = world();
    let h = started(&w, config()).await;
    assert!(!h.status().journal.behind, "{:?}", h.status().journal);
    w.journal.set_stalled(true);
    w.kernel.set_carrier("eth0", false);
    pass(Duration::from_secs(3)).await;
    let j = h.status().journal;
    assert!(j.behind && j.unsaved_events >= 1, "{j:?}");
    w.journal.set_stalled(false);
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_secs(3)).await;
    let j = h.status().journal;
    assert!(!j.behind && j.unsaved_events == 0, "{j:?}");
}

/// A gsm profile naming a modem's control device: a USB gadget `usb0` is never taken as the
/// modem; a modem that appears after the start is found through its control device (a fake
/// sysfs), and without that, the fallback is the first `wwan*` only.
#[actix::test]
async fn a_control_device_profile_follows_the_modem_not_usb_gadgets() {
    let w = FakeWorld::new();
    let eth0 = w.kernel.add_link("eth0", LinkKind::Other);
    let usb0 = w.kernel.add_link("usb0", LinkKind::Other);
    for (ifindex, i, metric) in [(eth0, 1, 100), (usb0, 2, 800)] {
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i)),
            metric,
            protocol: DHCP,
        });
    }
    let mut cfg = config();
    cfg.profiles.truncate(1);
    let mut modem = profile("wwan9", UplinkType::Gsm, 700);
    modem.matches = IfaceMatch::ControlDevice("cdc-wdm0".into());
    cfg.profiles.push(modem);
    let h = started(&w, cfg).await;
    let managed = |h: &EngineHandle| -> Vec<String> {
        h.status()
            .interfaces
            .iter()
            .map(|i| i.name.to_string())
            .collect()
    };
    assert_eq!(managed(&h), vec!["eth0"], "usb0 is not the modem");
    // The modem enumerates after the start: net interface wwan3 of cdc-wdm0 (wwan0 exists too,
    // but the control device names its own interface).
    w.kernel.set_control_device("cdc-wdm0", "wwan3");
    let wwan0 = w.kernel.add_link("wwan0", LinkKind::Other);
    let wwan3 = w.kernel.add_link("wwan3", LinkKind::Other);
    for (ifindex, i) in [(wwan0, 3), (wwan3, 4)] {
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i)),
            metric: 700,
            protocol: DHCP,
        });
    }
    pass(Duration::from_millis(100)).await;
    let status = h.status();
    let modem = status
        .interfaces
        .iter()
        .find(|i| i.source.contains("wwan9-profile"))
        .map(|i| i.name.to_string());
    assert_eq!(modem.as_deref(), Some("wwan3"), "{status:?}");
}

/// Without a sysfs answer the control-device fallback is the first `wwan*`, never `usb*`.
#[actix::test]
async fn the_control_device_fallback_is_wwan_only() {
    let w = FakeWorld::new();
    let usb0 = w.kernel.add_link("usb0", LinkKind::Other);
    let wwan1 = w.kernel.add_link("wwan1", LinkKind::Other);
    for (ifindex, i) in [(usb0, 1), (wwan1, 2)] {
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i)),
            metric: 700,
            protocol: DHCP,
        });
    }
    let mut modem = profile("wwan9", UplinkType::Gsm, 700);
    modem.matches = IfaceMatch::ControlDevice("cdc-wdm0".into());
    let cfg = Config {
        profiles: vec![modem],
        ..config()
    };
    let h = started(&w, cfg).await;
    let names: Vec<String> = h
        .status()
        .interfaces
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, vec!["wwan1"]);
}

#[actix::test]
async fn a_panicking_link_port_fails_only_the_link_watcher_which_resubscribes() {
    let w = world();
    w.probe.set("eth0", Verdict::Limited);
    let h = started(&w, config()).await;
    pass(Duration::from_secs(3)).await;
    let before = observable(&w, &h);
    let events_before = h.history().len();
    w.kernel.panic_next();
    pass(Duration::from_secs(1)).await;
    assert_eq!(observable(&w, &h), before, "restarted to the same state");
    assert_eq!(h.history().len(), events_before, "no events");
    let st = h.status();
    for a in &st.actors {
        let want = if a.name == "link-watcher" { 1 } else { 0 };
        assert_eq!(a.restarts, want, "{a:?}");
        assert!(a.running, "{a:?}");
    }
    let lw = st.actors.iter().find(|a| a.name == "link-watcher").unwrap();
    assert_eq!(lw.last_failure.as_deref(), Some("panicked"));
    // The new subscription works: a carrier loss still moves the route.
    w.kernel.set_carrier("wlan0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
}
