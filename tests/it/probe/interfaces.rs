//! Where a check leaves: never through another interface, from the interface's own address,
//! not at all without a route in the family; a strict rp_filter drops the standbys' replies.

use super::*;

#[test]
fn a_check_never_leaves_through_another_interface() {
    let world = test_setup!(World::new("pbind"));
    let server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let dns = dns_all(&world);
    let probe = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    // Warm up ARP on every uplink so the counters below see only the checks.
    world.on_device(async || {
        for uplink in UPLINKS {
            probe.run(request(&world, uplink, &[DNS_A])).await;
        }
    });
    let peers_before = server.peers().len();
    let dns_before = dns.peers().len();
    let eth0_before = world.l3_counters("eth0");
    for (k, uplink) in UPLINKS.iter().enumerate().skip(1) {
        let report = world.on_device(async || probe.run(request(&world, uplink, &[DNS_A])).await);
        assert_verdict(&report, Verdict::Full, uplink);
        let seen = server.peers();
        assert_eq!(
            seen.last(),
            Some(&dev_addr(k)),
            "{uplink}: server saw {seen:?}"
        );
    }
    // The primary (lowest metric) carried none of the standbys' packets.
    assert_eq!(world.l3_counters("eth0"), eth0_before);
    assert_eq!(server.peers().len(), peers_before + 2);
    assert!(dns.peers()[dns_before..]
        .iter()
        .all(|p| *p == dev_addr(1) || *p == dev_addr(2)));

    // With eth0's upstream gone, eth0 is LIMITED and the others are still FULL.
    world.blackhole_upstream(0);
    let fresh = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    world.on_device(async || {
        let report = fresh.run(request(&world, "eth0", &[DNS_A])).await;
        assert_verdict(&report, Verdict::Limited, "eth0 blackholed");
        for uplink in &UPLINKS[1..] {
            let report = fresh.run(request(&world, uplink, &[DNS_A])).await;
            assert_verdict(&report, Verdict::Full, uplink);
        }
    });
}

/// The premise of the engine's rp_filter handling: with strict reverse-path filtering a
/// standby's check replies are dropped (the best route back to the server is the primary), and
/// with loose filtering they pass.
#[test]
fn strict_rp_filter_drops_the_standbys_replies() {
    let world = test_setup!(World::new("prpf"));
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let probe = HttpProbe::new(&config(&format!("http://{SERVER}/"))).unwrap();
    for key in ["all", "wwan0"] {
        world
            .dev
            .sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "1")
            .unwrap();
    }
    let strict = world.on_device(async || probe.run(request(&world, "wwan0", &[])).await);
    assert_verdict(&strict, Verdict::Limited, "strict rp_filter");
    world
        .dev
        .sysctl("net.ipv4.conf.wwan0.rp_filter", "2")
        .unwrap();
    let loose = world.on_device(async || probe.run(request(&world, "wwan0", &[])).await);
    assert_verdict(&loose, Verdict::Full, "loose rp_filter");
}

/// Every check socket leaves from the interface's own address, even when the route names
/// another one as preferred source, so an upstream with strict reverse-path filtering passes it.
#[test]
fn checks_leave_from_the_interfaces_own_address() {
    let world = test_setup!(World::new("psrc"));
    let server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let dns = dns_all(&world);
    // wwan0's route prefers eth0's address as source; wwan0's ISP filters strictly.
    world
        .dev
        .ip(&[
            "route",
            "replace",
            "default",
            "via",
            "192.0.2.17",
            "dev",
            "wwan0",
            "metric",
            "200",
            "src",
            "192.0.2.2",
        ])
        .expect("route with a foreign preferred source");
    for key in ["all", "d0"] {
        world.isps[1]
            .sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "1")
            .expect("strict rp_filter upstream");
    }
    let probe = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    let report = world.on_device(async || probe.run(request(&world, "wwan0", &[DNS_A])).await);
    assert_verdict(&report, Verdict::Full, "wwan0 behind a strict upstream");
    assert_eq!(server.peers().last(), Some(&dev_addr(1)), "HTTP source");
    assert_eq!(dns.peers().last(), Some(&dev_addr(1)), "DNS source");
}

/// Without a route in the checked family nothing is sent: through a socket bound to the
/// interface the kernel would take the target as on-link and ARP for it (LIMITED, not NONE).
#[test]
fn no_route_in_the_family_is_none_and_sends_nothing() {
    let world = test_setup!(World::new("pnort"));
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    world
        .dev
        .ip(&["route", "del", "default", "dev", "wwan0"])
        .expect("route del");
    let probe = HttpProbe::new(&config(&format!("http://{SERVER}/"))).unwrap();
    let before = world.l3_counters("wwan0");
    for routed in [vec![], vec![Family::V6]] {
        let req = ProbeRequest {
            routed: routed.clone(),
            ..request(&world, "wwan0", &[])
        };
        let report = world.on_device(async || probe.run(req.clone()).await);
        assert_verdict(&report, Verdict::None, &format!("routed {routed:?}"));
        assert_eq!(report.bytes, 0);
    }
    assert_eq!(world.l3_counters("wwan0"), before, "not one packet");
}
