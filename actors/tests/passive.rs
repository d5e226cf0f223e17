//! Passive health in the whole engine, on fakes, in virtual time: the fake traffic source plays
//! an application keeping a TCP connection busy; the fake probe plays the check server. At
//! `interval` 3600 and default timeouts and `[passive]` settings, a stall is confirmed by checks
//! and penalised within seconds; a passing confirmation backs off; a standby is watched only
//! while the route in use is suspect and its traffic never moves the route in use; healthy
//! traffic costs no check.

use std::time::Duration;

use netfailover_actors::fake::{pass, settle, FakeFlow, FakeWorld, ProbeBehaviour};
use netfailover_actors::model::{CheckConfig, Config, Connectivity, UplinkType};
use netfailover_actors::ports::{IfaceTraffic, Verdict};
use netfailover_actors::{start, EngineHandle};

#[path = "support/profiles.rs"]
mod profiles;
#[path = "support/world.rs"]
mod world;
use profiles::profile;
use world::{dhcp_world, started, state_of};

const PENALTY: u32 = 20_000;

/// balenaOS defaults: interval 3600 s, every other setting (checks, `[passive]`) at its default.
fn config() -> Config {
    Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100),
            profile("wlan0", UplinkType::Wifi, 600),
        ],
        adopt: false,
        check: CheckConfig {
            uri: "http://192.0.2.80/check".into(),
            ..CheckConfig::default()
        },
        ..Config::default()
    }
}

fn best(w: &FakeWorld) -> Option<String> {
    w.kernel.best_iface()
}

/// Steps of 100 ms until `f` holds; the virtual time it took, or `None` past `limit`.
async fn time_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() <= limit {
        if f() {
            return Some(t0.elapsed());
        }
        pass(Duration::from_millis(100)).await;
    }
    None
}

#[actix::test]
async fn silent_blackhole_is_confirmed_and_penalised_within_seconds() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = started(&w, config()).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(30)).await;
    assert_eq!(best(&w).as_deref(), Some("eth0"));
    let checks_before = w.probe.checks("eth0").len();
    assert_eq!(
        checks_before, 1,
        "healthy traffic costs no check beyond the first"
    );

    // The upstream dies silently: checks hang, the connection stalls.
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.traffic.stall(2, true);
    let took = time_until(Duration::from_secs(10), || {
        best(&w).as_deref() == Some("wlan0")
    })
    .await
    .expect("the route moves to wlan0 without waiting for the 3600 s check");
    // Bound from the defaults: window 1 s + sampling period 1 s + down_count (2) confirmation
    // deadlines of 500 ms each, plus one period of slack.
    assert!(took <= Duration::from_secs(4), "took {took:?}");
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);
    let eth0 = h
        .status()
        .interfaces
        .into_iter()
        .find(|i| i.name.as_str() == "eth0")
        .unwrap();
    assert_eq!(eth0.effective_metric, Some(100 + PENALTY));
    assert_eq!(eth0.passive.suspicions, 1, "{:?}", eth0.passive);
    assert_eq!(eth0.passive.confirmations, 2, "{:?}", eth0.passive);
    assert_eq!(eth0.passive.confirmations_failed, 2);

    // Upstream back: the normal re-check path brings eth0 back.
    w.probe.set("eth0", Verdict::Full);
    w.traffic.stall(2, false);
    time_until(Duration::from_secs(90), || {
        best(&w).as_deref() == Some("eth0")
    })
    .await
    .expect("fail-back by the periodic re-checks");
}

#[actix::test]
async fn a_passing_confirmation_ends_the_suspicion_and_backs_off() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = started(&w, config()).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(5)).await;
    // One peer dies while the Internet is fine: checks pass.
    w.traffic.stall(2, true);
    pass(Duration::from_secs(50)).await;
    let checks = w.probe.checks("eth0");
    assert_eq!(
        checks.len(),
        2,
        "the start's check and one confirmation: {checks:?}"
    );
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    assert_eq!(best(&w).as_deref(), Some("eth0"));
    // The same stall is confirmed again only after the back-off (60 s after the first).
    pass(Duration::from_secs(20)).await;
    assert_eq!(w.probe.checks("eth0").len(), 3);
    pass(Duration::from_secs(100)).await;
    assert_eq!(w.probe.checks("eth0").len(), 3, "then 120 s: doubling");
    pass(Duration::from_secs(30)).await;
    assert_eq!(w.probe.checks("eth0").len(), 4);
    let passive = h
        .status()
        .interfaces
        .into_iter()
        .find(|i| i.name.as_str() == "eth0")
        .unwrap()
        .passive;
    assert_eq!((passive.suspicions, passive.confirmations), (3, 3));
    assert_eq!(passive.state, "suspect");
}

#[actix::test]
async fn a_standby_is_not_watched_while_the_route_in_use_is_healthy() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = started(&w, config()).await;
    w.traffic.busy(3, "wlan0");
    pass(Duration::from_secs(5)).await;
    w.probe.set_behaviour("wlan0", ProbeBehaviour::Hang);
    w.traffic.stall(3, true);
    for _ in 0..100 {
        pass(Duration::from_millis(100)).await;
        assert_eq!(
            best(&w).as_deref(),
            Some("eth0"),
            "the route in use never moves"
        );
    }
    // The standby's traffic cannot change a decision while eth0 is healthy: it is not
    // sampled, so its stall costs no check (its periodic check and the standby check before
    // a failover still judge it).
    assert_eq!(w.traffic.whole_samples(3), 0);
    assert_eq!(state_of(&h, "wlan0"), Connectivity::Full);
    assert_eq!(w.probe.checks("wlan0").len(), 1, "only its first check");
    assert_eq!(
        w.probe.checks("eth0").len(),
        1,
        "the primary was not checked"
    );
}

#[actix::test]
async fn a_standby_is_watched_while_the_route_in_use_is_suspect() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let _h = started(&w, config()).await;
    w.traffic.busy(2, "eth0");
    w.traffic.busy(3, "wlan0");
    pass(Duration::from_secs(5)).await;
    assert_eq!(
        w.traffic.whole_samples(3),
        0,
        "healthy primary: standby idle"
    );
    // The primary's upstream dies; its confirmations hang for their deadlines, meanwhile the
    // standby about to take over is sampled.
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.traffic.stall(2, true);
    time_until(Duration::from_secs(10), || {
        best(&w).as_deref() == Some("wlan0")
    })
    .await
    .expect("the route moves to wlan0");
    assert!(w.traffic.whole_samples(3) >= 1, "the standby was sampled");
}

#[actix::test]
async fn a_suspect_primary_gets_its_stale_standby_checked_once() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let _h = started(&w, config()).await;
    w.traffic.busy(2, "eth0");
    // wlan0's last result is older than recheck_max (60 s).
    pass(Duration::from_secs(70)).await;
    assert_eq!(w.probe.checks("wlan0").len(), 1);
    w.traffic.stall(2, true);
    pass(Duration::from_secs(5)).await;
    assert_eq!(w.probe.checks("wlan0").len(), 2, "one check of the standby");
    pass(Duration::from_secs(30)).await;
    assert_eq!(w.probe.checks("wlan0").len(), 2, "and no more");
}

#[actix::test]
async fn disabled_passive_health_never_samples() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    tokio::time::pause();
    let mut cfg = config();
    cfg.passive.enabled = false;
    let h = start(cfg, w.ports());
    settle().await;
    w.traffic.busy(2, "eth0");
    w.traffic.stall(2, true);
    pass(Duration::from_secs(30)).await;
    // No sample of passive health's; the link counters are still read, by the Accountant (the
    // monthly accounts, docs/semantics.md §10), a few times at its start, then every 5 minutes.
    assert_eq!(w.traffic.whole_samples(2) + w.traffic.whole_samples(3), 0);
    assert!(w.traffic.samples() <= 3, "{}", w.traffic.samples());
    assert_eq!(w.probe.checks("eth0").len(), 1);
    assert_eq!(best(&w).as_deref(), Some("eth0"));
    let eth0 = h.status().interfaces.into_iter().next().unwrap();
    assert_eq!(eth0.passive.state, "off");
}

#[actix::test]
async fn a_containers_stalled_flow_is_confirmed_through_conntrack() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = started(&w, config()).await;
    // A container's connection behind the NAT bridge: no socket of the daemon's own.
    w.traffic.busy_natted(2, "eth0");
    pass(Duration::from_secs(30)).await;
    assert_eq!(w.probe.checks("eth0").len(), 1, "healthy: no check");
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.traffic.stall(2, true);
    let took = time_until(Duration::from_secs(10), || {
        best(&w).as_deref() == Some("wlan0")
    })
    .await
    .expect("the route moves to wlan0 without waiting for the 3600 s check");
    // Window 1 s + a period for the resend to be seen + two 500 ms confirmations + slack.
    assert!(took <= Duration::from_secs(4), "took {took:?}");
    let eth0 = h.status().interfaces.into_iter().next().unwrap();
    assert_eq!(eth0.passive.sees, "sockets+conntrack");
}

#[actix::test]
async fn a_confirmation_that_only_runs_out_of_its_short_deadline_is_no_failure() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = started(&w, config()).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(30)).await;
    // The check server turns slow (1.5 s, well within check.timeout) while the last check
    // took 10 ms and the socket's RTT is 20 ms: the confirmation deadline is 500 ms. A peer
    // dies: confirmations run, reach the server, and pass late.
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Slow(Verdict::Full, Duration::from_millis(1500)),
    );
    w.traffic.stall(2, true);
    stays_full_without_failover(&w, &h, Duration::from_secs(60)).await;
}

/// Over `span`, the route stays on eth0; then eth0 is FULL, confirmed at least once, and no
/// confirmation or check failed.
async fn stays_full_without_failover(w: &FakeWorld, h: &EngineHandle, span: Duration) {
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() < span {
        pass(Duration::from_millis(100)).await;
        assert_eq!(best(w).as_deref(), Some("eth0"), "no failover");
    }
    let eth0 = h.status().interfaces.into_iter().next().unwrap();
    assert_eq!(eth0.name.as_str(), "eth0");
    assert_eq!(eth0.connectivity, Connectivity::Full);
    assert!(eth0.passive.confirmations >= 1, "{:?}", eth0.passive);
    assert_eq!(eth0.passive.confirmations_failed, 0, "{:?}", eth0.passive);
    assert_eq!(
        eth0.checks.by_verdict.get("LIMITED"),
        None,
        "{:?}",
        eth0.checks
    );
}

/// eth0's busy connection stalls and stays suspect until a confirmation runs; then, with
/// `answered`, it gets answers again (a congested uplink: late answers) while the check server
/// takes 1.5 s to accept the check's connection (beyond the 500 ms confirmation deadline,
/// within `check.timeout`). Returns the engine after the suspicion.
async fn confirmation_that_never_connects_in_time(w: &FakeWorld, answered: bool) -> EngineHandle {
    let h = started(w, config()).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(30)).await;
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(1500)),
    );
    w.traffic.stall(2, true);
    let suspected = || {
        h.status()
            .interfaces
            .iter()
            .any(|i| i.name.as_str() == "eth0" && i.passive.suspicions >= 1)
    };
    time_until(Duration::from_secs(5), suspected)
        .await
        .expect("the stall is suspected");
    if answered {
        w.traffic.stall(2, false);
    }
    h
}

#[actix::test]
async fn an_unconnected_confirmation_while_traffic_is_answered_is_no_failure() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = confirmation_that_never_connects_in_time(&w, true).await;
    stays_full_without_failover(&w, &h, Duration::from_secs(30)).await;
}

#[actix::test]
async fn an_unconnected_confirmation_without_answered_traffic_fails_as_before() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let h = confirmation_that_never_connects_in_time(&w, false).await;
    // The blackhole bound from the suspicion on: down_count (2) confirmation deadlines of
    // 500 ms each, plus one sampling period of slack.
    let took = time_until(Duration::from_secs(10), || {
        best(&w).as_deref() == Some("wlan0")
    })
    .await
    .expect("the route moves to wlan0");
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);
    let eth0 = h.status().interfaces.into_iter().next().unwrap();
    assert_eq!(eth0.passive.confirmations_failed, 2, "{:?}", eth0.passive);
}

#[actix::test]
async fn idle_interfaces_are_sampled_whole_only_after_they_send() {
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let idle = |name: &str, ifindex: u32| {
        FakeFlow::Fixed(IfaceTraffic {
            ifindex,
            name: name.into(),
            rx_packets: 1000,
            tx_packets: 1000,
            rx_multicast: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            tcp: vec![],
            subnets: vec![],
            flows: Some(vec![]),
        })
    };
    w.traffic.set(2, idle("eth0", 2));
    w.traffic.set(3, idle("wlan0", 3));
    let h = started(&w, config()).await;
    pass(Duration::from_secs(60)).await;
    // One whole sample of the primary, then the link counters alone: nothing was sent since.
    // The standby is not watched while the primary is healthy.
    assert_eq!(w.traffic.whole_samples(2), 1);
    assert_eq!(w.traffic.whole_samples(3), 0);
    assert!(
        w.traffic.samples() >= 60,
        "the counters are still read every period"
    );
    // Traffic on the primary: it is sampled whole every period again, the idle standby not.
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(10)).await;
    assert!(
        w.traffic.whole_samples(2) >= 10,
        "{}",
        w.traffic.whole_samples(2)
    );
    assert_eq!(w.traffic.whole_samples(3), 0);
    // And a stall on it is still confirmed and moves the route.
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.traffic.stall(2, true);
    time_until(Duration::from_secs(10), || {
        best(&w).as_deref() == Some("wlan0")
    })
    .await
    .expect("the route moves to wlan0");
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);
}
