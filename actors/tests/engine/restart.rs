//! Actors killed, crashed or restarted, and a new engine resuming where the last one stopped.

use super::*;

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
    assert_eq!(lw.last_failure.map(|f| f.as_str()), Some("panicked"));
    // The new subscription works: a carrier loss still moves the route.
    w.kernel.set_carrier("wlan0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
}
