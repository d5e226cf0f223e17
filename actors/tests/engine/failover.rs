//! Failover and failback: carrier loss, admin down, failing checks and their penalty,
//! the failback hold, a hung probe, everything down.

use super::*;

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
    // Leaving FULL: at most interval + 2 x timeout after the upstream broke (docs/semantics.md §3).
    let bound = cfg.check.interval + cfg.check.timeout * 2;
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
    let bound = cfg.check.recheck_max + cfg.check.timeout * 2;
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
    let leave = cfg.check.interval + cfg.check.timeout * 2;
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
    let back = cap + cfg.check.timeout * 2;
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
