//! Flows follow the route (flow_resetter.rs): which connections are reset when the route in use
//! moves, and which are not.

use super::*;

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
