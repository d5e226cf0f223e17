//! The event journal: a stuck, coalescing, corrupt or stalled journal never wedges routing.

use super::*;

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
