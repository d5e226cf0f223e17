//! What scripts see at start and restart: each state once, no blink; NONE results and
//! interfaces without a gateway.

use super::*;

/// The world both start tests run in, with every device event on: route writes take a netlink
/// round trip (1 ms), so check results queue up behind reconciles; the checks of wlan0 and wwan0
/// answer 2 and 4 ms after eth0's.
fn staggered() -> (FakeWorld, Config) {
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
    (w, cfg)
}

#[actix::test]
async fn a_fresh_start_produces_each_state_once() {
    let (w, cfg) = staggered();
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
    let (w, cfg) = staggered();
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
