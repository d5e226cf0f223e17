//! Observers: a late subscriber rebuilds the view from the snapshot and the changes.

use super::*;

/// The parts of a view an observer rebuilds (check results are not streamed).
fn rebuilt_view(s: &netfailover_actors::Snapshot) -> impl PartialEq + std::fmt::Debug {
    let ifaces: Vec<_> = s
        .status
        .interfaces
        .iter()
        .map(|i| {
            (
                i.name.to_string(),
                i.link,
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
