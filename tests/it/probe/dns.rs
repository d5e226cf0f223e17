//! Name resolution: each uplink's own servers in order, garbage and silent answers, AAAA-only
//! names over IPv6, and a responder that waits for the old socket.

use super::*;

#[test]
fn a_new_responder_waits_for_the_old_socket_to_be_gone() {
    let world = test_setup!(World::new("pdfree"));
    let held_for = Duration::from_millis(300);
    std::thread::scope(|s| {
        // A copy of an old responder's socket, as a child forked at its drop holds it.
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let inet = &world.inet;
        s.spawn(move || {
            inet.enter_current_thread().expect("enter inet ns");
            let old = std::net::UdpSocket::bind(sa(&format!("{DNS_A}:53"))).expect("bind");
            let _ = bound_tx.send(());
            std::thread::sleep(held_for);
            drop(old);
        });
        bound_rx.recv().expect("old socket bound");
        let t0 = std::time::Instant::now();
        let at_once = DnsResponder::start(&world.inet, sa("0.0.0.0:53"), &[], 300);
        assert!(
            matches!(&at_once, Err(InternetError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse),
            "the port is taken while the old socket lives: {:?}",
            at_once.err()
        );
        let _dns = dns_when_free(&world.inet, sa("0.0.0.0:53"), &[(HOST, ip(SERVER))]);
        assert!(
            t0.elapsed() >= held_for / 2,
            "it waited: {:?}",
            t0.elapsed()
        );
    });
}

#[test]
fn dns_goes_through_the_interface_it_serves() {
    let world = test_setup!(World::new("pdns"));
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let dns = dns_all(&world);
    // The primary's upstream is blackholed before anything was resolved (balena issue 3016:
    // the only DNS server is a global one).
    world.blackhole_upstream(0);
    let probe = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    world.on_device(async || {
        let report = probe.run(request(&world, "eth0", &[DNS_A])).await;
        assert_verdict(&report, Verdict::Limited, "eth0 DNS blackholed");
        assert!(report.reason.starts_with("DNS:"), "{report:?}");
        assert!(report.dns_bytes > 0, "the query was sent: {report:?}");
        let report = probe.run(request(&world, "wwan0", &[DNS_A])).await;
        assert_verdict(
            &report,
            Verdict::Full,
            "wwan0 resolves through its own path",
        );
    });
    assert!(
        dns.peers().iter().all(|p| *p == dev_addr(1)),
        "only wwan0's queries arrived: {:?}",
        dns.peers()
    );
}

#[test]
fn dns_servers_are_asked_in_the_given_order() {
    let world = test_setup!(World::new("pord"));
    let server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let first = dns_all(&world);
    // A second server that knows the host under another address, which is not served.
    let second = DnsResponder::start(
        &world.inet,
        sa(&format!("{DNS_B}:53")),
        &[(HOST, ip("203.0.113.11"))],
        300,
    )
    .unwrap();
    let probe = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    world.on_device(async || {
        // `ADDR@wwan0` first: its answer is used.
        let report = probe.run(request(&world, "wwan0", &[DNS_A, DNS_B])).await;
        assert_verdict(&report, Verdict::Full, "first server answers");
        assert_eq!(second.queries(), 0);
        // A new list rebuilds the resolver and asks the new first server.
        let report = probe.run(request(&world, "wwan0", &[DNS_B, DNS_A])).await;
        assert_verdict(&report, Verdict::Limited, "second's address has no server");
        assert!(second.queries() > 0);
        // A dead first server: the next one is asked after it timed out.
        let before = first.queries();
        let report = probe
            .run(request(&world, "wlan0", &[DNS_DEAD, DNS_A]))
            .await;
        assert_verdict(&report, Verdict::Full, "dead first server");
        assert!(first.queries() > before);
        assert!(report.elapsed >= Duration::from_millis(900), "{report:?}");
    });
    assert!(server.requests() >= 2);
}

#[test]
fn garbage_silent_and_wrong_source_dns_answers_fail_cleanly() {
    let world = test_setup!(World::new("pdbad"));
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let probe = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    let eth0 = request(&world, "eth0", &[DNS_A]);
    let dns = dns_all(&world);
    for mode in [DnsMode::Garbage, DnsMode::Silent] {
        dns.set_mode(mode);
        let before = dns.queries();
        let report = world.on_device(async || probe.run(eth0.clone()).await);
        assert_verdict(&report, Verdict::Limited, &format!("{mode:?}"));
        assert!(report.reason.starts_with("DNS:"), "{report:?}");
        assert!(dns.queries() > before, "{mode:?}: the query arrived");
    }
    // A responder on the wildcard address answers from the Internet's interface address, not
    // from the server address the query went to: the resolver ignores it.
    drop(dns);
    let wildcard = dns_when_free(&world.inet, sa("0.0.0.0:53"), &[(HOST, ip(SERVER))]);
    let report = world.on_device(async || probe.run(eth0.clone()).await);
    assert_verdict(&report, Verdict::Limited, "answer from the wrong address");
    assert!(report.reason.starts_with("DNS:"), "{report:?}");
    assert!(wildcard.queries() > 0);
}

#[test]
fn checks_over_ipv6_with_aaaa_only_names() {
    let world = test_setup!(World::new("pv6"));
    world.enable_ipv6();
    let server = CheckServer::start(&world.inet, sa(&format!("[{SERVER6}]:80")), None).unwrap();
    // The name has only an AAAA record: the A query comes back empty, then AAAA is asked.
    let dns = DnsResponder::start(
        &world.inet,
        sa(&format!("[{DNS6}]:53")),
        &[(HOST, ip(SERVER6))],
        300,
    )
    .unwrap();
    let literal = HttpProbe::new(&config(&format!("http://[{SERVER6}]/"))).unwrap();
    let named = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    let wwan0 = ProbeRequest {
        dns: vec![sa(&format!("[{DNS6}]:53"))],
        ..request(&world, "wwan0", &[])
    };
    world.on_device(async || {
        // Neighbour discovery may need a moment on fresh links: the first check may fail.
        let mut report = literal.run(wwan0.clone()).await;
        for _ in 0..5 {
            if report.verdict == Verdict::Full {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            report = literal.run(wwan0.clone()).await;
        }
        assert_verdict(&report, Verdict::Full, "IPv6 literal");
        assert_eq!(report.dns_bytes, 0);
        let report = named.run(wwan0.clone()).await;
        assert_verdict(&report, Verdict::Full, "AAAA-only name");
        assert!(report.dns_bytes > 0, "{report:?}");
    });
    let device_v6 = ip("2001:db8:1::2");
    assert!(
        server.peers().iter().all(|p| *p == device_v6),
        "{:?}",
        server.peers()
    );
    assert!(
        dns.peers().iter().all(|p| *p == device_v6),
        "{:?}",
        dns.peers()
    );
}
