//! Beside a DHCP client (NetworkManager with `method=auto`, balenaOS's configuration): the
//! client drops the address during a carrier outage and gets its lease back a moment after the
//! carrier. A link waiting for its address is a link that just came back: UNKNOWN, nothing
//! checked, no route write retried on a timer; once the address is there its first check
//! decides. A real outage (checks failing while the address is there) keeps its hysteresis.

use super::*;

fn eth0_address() -> IfaceAddr {
    addr("192.0.2.10", 24)
}

/// The usual world, with eth0 checking gateways as Linux does (a route via 192.0.2.1 needs an
/// address on 192.0.2.0/24) and holding its lease.
fn dhcp_world() -> FakeWorld {
    let w = world();
    w.kernel.check_gateways("eth0");
    w.kernel.set_addresses("eth0", vec![eth0_address()]);
    w
}

/// Route writes (successful or refused) on eth0 since `from` writes.
fn eth0_write_attempts(w: &FakeWorld, from: u64) -> u64 {
    w.kernel.writes() - from
}

/// Carrier off long enough for the DHCP client to drop the address, carrier back; the address
/// is not there yet. The probe answers NONE ("no IPv4 address") meanwhile, as the real one does.
async fn outage_then_carrier_back(w: &FakeWorld, h: &EngineHandle) {
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    w.kernel.set_addresses("eth0", vec![]);
    w.probe.set("eth0", Verdict::None);
    pass(Duration::from_secs(6)).await;
    assert_eq!(state_of(h, "eth0"), Connectivity::None, "carrier lost");
    w.kernel.set_carrier("eth0", true);
    settle().await;
}

#[actix::test]
async fn waiting_for_the_lease_after_a_carrier_return_is_a_link_that_just_came_back() {
    let w = dhcp_world();
    let h = started(&w, config()).await;
    outage_then_carrier_back(&w, &h).await;
    let writes = w.kernel.writes();
    let checks = w.probe.checks("eth0").len();
    // The lease takes its time: the link waits, UNKNOWN, without checks (nothing to check
    // through) and without retrying its route on a timer.
    pass(Duration::from_secs(5)).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Unknown,
        "waiting for the address: UNKNOWN, not NONE through checks"
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert!(
        owned_metrics(&w).iter().all(|(n, _)| n != "eth0"),
        "no route through eth0 yet: {:?}",
        owned_metrics(&w)
    );
    assert_eq!(
        w.probe.checks("eth0").len(),
        checks,
        "nothing sent through an interface without a route"
    );
    assert!(
        eth0_write_attempts(&w, writes) <= 1,
        "no retry storm while waiting (only the periodic reconcile tries): {} writes",
        eth0_write_attempts(&w, writes)
    );
    assert!(
        !transitions(&h)
            .iter()
            .any(|e| e.1 == "eth0" && e.3 == Connectivity::None && e.2 == Connectivity::Unknown),
        "never NONE from the checks: {:?}",
        transitions(&h)
    );

    // The lease is back: the route goes in with the address's own notification, the first
    // check decides, and the primary is the route in use again at once.
    w.probe.set("eth0", Verdict::Full);
    let back = tokio::time::Instant::now();
    w.kernel.set_addresses("eth0", vec![eth0_address()]);
    for _ in 0..100 {
        if w.kernel.best_iface().as_deref() == Some("eth0") {
            break;
        }
        pass(Duration::from_millis(1)).await;
    }
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    let took = tokio::time::Instant::now() - back;
    assert!(
        took <= Duration::from_millis(50),
        "primary first again {took:?} after its lease (one 10 ms check)"
    );
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    assert_eq!(
        w.probe.checks("eth0").len(),
        checks + 1,
        "the first result decided: one check, not up_count"
    );
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100));
}

#[actix::test]
async fn a_real_outage_with_the_address_there_still_needs_up_count() {
    let w = dhcp_world();
    let cfg = config();
    let h = started(&w, cfg.clone()).await;
    outage_then_carrier_back(&w, &h).await;
    // The lease comes back while the upstream is still dead: the first result decides
    // (LIMITED), as for any link that just came back.
    w.probe.set("eth0", Verdict::Limited);
    w.kernel.set_addresses("eth0", vec![eth0_address()]);
    pass(Duration::from_millis(100)).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100 + PENALTY));
    // Checks failing while the address is there: a real outage. Its end needs `up_count` good
    // checks (answering slowly lets the test look between the first and the second).
    pass(Duration::from_secs(3)).await;
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::from_millis(500)),
    );
    let checks = w.probe.checks("eth0").len();
    checks_after(&w, "eth0", checks, 2).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Limited,
        "one good check"
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    pass(Duration::from_millis(500)).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Full,
        "up_count good checks"
    );
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
}

#[actix::test]
async fn a_none_verdict_while_coming_back_is_no_result_the_first_real_one_decides() {
    // Without gateway checks the route goes in at once, but the probe still finds no address
    // (as IPv6 has a router-advertised route before its address): NONE from our own view is
    // no check result, so the link stays UNKNOWN and its first real result decides.
    let w = world();
    let h = started(&w, config()).await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    w.probe.set("eth0", Verdict::None);
    w.kernel.set_carrier("eth0", true);
    pass(Duration::from_secs(4)).await;
    assert!(
        w.probe.checks("eth0").len() >= 2,
        "checked (a route is there) while the probe finds no address"
    );
    assert_eq!(state_of(&h, "eth0"), Connectivity::Unknown);
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100 + PENALTY));
    w.probe.set("eth0", Verdict::Full);
    let checks = w.probe.checks("eth0").len();
    checks_after(&w, "eth0", checks, 1).await;
    assert_eq!(
        state_of(&h, "eth0"),
        Connectivity::Full,
        "the first real result decided"
    );
    assert_eq!(w.probe.checks("eth0").len(), checks + 1, "one check");
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
}

#[actix::test]
async fn an_address_lost_while_up_is_a_link_coming_back_and_its_return_decides_at_once() {
    let w = dhcp_world();
    let h = started(&w, config()).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    // The lease is lost with the carrier up: the kernel drops the route with the address.
    w.kernel.set_addresses("eth0", vec![]);
    w.probe.set("eth0", Verdict::None);
    settle().await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert_eq!(state_of(&h, "eth0"), Connectivity::Unknown);
    let left: Vec<_> = transitions(&h)
        .into_iter()
        .filter(|e| e.0 == EventKind::DeviceConnectivityChange && e.1 == "eth0")
        .map(|e| (e.2, e.3))
        .collect();
    assert_eq!(left, vec![(Connectivity::Full, Connectivity::Unknown)]);
    let checks = w.probe.checks("eth0").len();
    pass(Duration::from_secs(10)).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Unknown, "no flapping");
    assert_eq!(w.probe.checks("eth0").len(), checks, "nothing to check");
    w.probe.set("eth0", Verdict::Full);
    w.kernel.set_addresses("eth0", vec![eth0_address()]);
    pass(Duration::from_millis(50)).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    assert_eq!(w.probe.checks("eth0").len(), checks + 1);
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
}
