//! What a check reports: every classification from a real server, HTTPS with and without the
//! test CA, an upstream answering "unreachable", and the bytes a check costs.

use super::*;

#[test]
fn every_classification_from_a_real_server() {
    let world = test_setup!(World::new("pcls"));
    let server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let _dns = dns_all(&world);
    let plain = HttpProbe::new(&config(&format!("http://{HOST}/connectivity-check"))).unwrap();
    let mut with_body = config(&format!("http://{HOST}/connectivity-check"));
    with_body.response = "OK".into();
    let with_body = HttpProbe::new(&with_body).unwrap();
    let refused = HttpProbe::new(&config(&format!("http://{SERVER}:81/"))).unwrap();
    let eth0 = request(&world, "eth0", &[DNS_A]);

    let cases: Vec<(Behaviour, &HttpProbe, Verdict, &str)> = vec![
        (Behaviour::NoContent, &plain, Verdict::Full, "HTTP 204"),
        (
            Behaviour::Body(String::new()),
            &plain,
            Verdict::Full,
            "empty body",
        ),
        (
            Behaviour::Body("<html>".into()),
            &plain,
            Verdict::Portal,
            "with content",
        ),
        (
            Behaviour::Body("OK fine".into()),
            &with_body,
            Verdict::Full,
            "expected body",
        ),
        (
            Behaviour::Body("NO".into()),
            &with_body,
            Verdict::Portal,
            "unexpected body",
        ),
        (
            Behaviour::NoContent,
            &with_body,
            Verdict::Portal,
            "unexpected body",
        ),
        (
            Behaviour::Redirect("http://portal.test/".into()),
            &plain,
            Verdict::Portal,
            "HTTP 302",
        ),
        (Behaviour::ServerError, &plain, Verdict::Limited, "HTTP 500"),
        (
            Behaviour::OnlineHeader,
            &plain,
            Verdict::Full,
            "X-NetworkManager-Status",
        ),
        (
            Behaviour::EndlessBody,
            &plain,
            Verdict::Portal,
            "with content",
        ),
        (
            Behaviour::EndlessBody,
            &with_body,
            Verdict::Portal,
            "unexpected body",
        ),
        (
            Behaviour::Stall,
            &plain,
            Verdict::Limited,
            "total timeout after 2s",
        ),
    ];
    world.on_device(async || {
        for (behaviour, probe, want, reason) in &cases {
            server.set(behaviour.clone());
            let report = probe.run(eth0.clone()).await;
            assert_verdict(&report, *want, &format!("{behaviour:?}"));
            assert!(report.reason.contains(reason), "{behaviour:?}: {report:?}");
            // An endless body is cut off: the check ends long before its timeout, having
            // read far less than the 64 MiB on offer.
            if *behaviour == Behaviour::EndlessBody {
                assert!(report.elapsed < Duration::from_secs(2), "{report:?}");
                assert!(report.bytes < 300_000, "{report:?}");
            }
        }
        let report = refused.run(eth0.clone()).await;
        assert_verdict(&report, Verdict::Limited, "nothing listens");
        assert!(report.reason.contains("refused"), "{report:?}");
        let report = plain.run(request(&world, "nosuch0", &[DNS_A])).await;
        assert_verdict(&report, Verdict::None, "missing interface");
    });
    // An interface that is down cannot carry the check at all: NONE.
    world.dev.ip(&["link", "set", "wlan0", "down"]).unwrap();
    let direct = HttpProbe::new(&config(&format!("http://{SERVER}/"))).unwrap();
    server.set(Behaviour::NoContent);
    let report = world.on_device(async || direct.run(request(&world, "wlan0", &[])).await);
    assert_verdict(&report, Verdict::None, "wlan0 down");
}

#[test]
fn https_is_full_with_the_test_ca_and_limited_without() {
    let world = test_setup!(World::new("ptls"));
    let ca = TestCa::new(&[HOST, SERVER]).unwrap();
    let _server = CheckServer::start(
        &world.inet,
        sa(&format!("{SERVER}:80")),
        Some((sa(&format!("{SERVER}:443")), &ca)),
    )
    .unwrap();
    let _dns = dns_all(&world);
    let dir = tempdir("ptls");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();

    let uri = format!("https://{HOST}/connectivity-check");
    let untrusting = HttpProbe::new(&config(&uri)).unwrap();
    let mut trusting = config(&uri);
    trusting.ca_file = Some(ca_file.clone());
    let trusting = HttpProbe::new(&trusting).unwrap();
    let mut by_ip = config(&format!("https://{SERVER}/"));
    by_ip.ca_file = Some(ca_file);
    let by_ip = HttpProbe::new(&by_ip).unwrap();
    let wwan0 = request(&world, "wwan0", &[DNS_A]);
    world.on_device(async || {
        let report = untrusting.run(wwan0.clone()).await;
        assert_verdict(&report, Verdict::Limited, "unknown CA");
        assert!(
            report.reason.starts_with("TLS: invalid certificate"),
            "{report:?}"
        );
        let report = trusting.run(wwan0.clone()).await;
        assert_verdict(&report, Verdict::Full, "test CA in ca_file");
        assert_verdict(&by_ip.run(wwan0.clone()).await, Verdict::Full, "IP SAN");
    });
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bytes_per_check_over_http_and_https() {
    let world = test_setup!(World::new("pbyte"));
    let ca = TestCa::new(&[HOST]).unwrap();
    let _server = CheckServer::start(
        &world.inet,
        sa(&format!("{SERVER}:80")),
        Some((sa(&format!("{SERVER}:443")), &ca)),
    )
    .unwrap();
    // A short TTL would defeat the cache; 300 s is what most check endpoints publish.
    let dns = dns_all(&world);
    let dir = tempdir("pbyte");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let http = HttpProbe::new(&config(&format!("http://{HOST}/connectivity-check"))).unwrap();
    let mut https = config(&format!("https://{HOST}/connectivity-check"));
    https.ca_file = Some(ca_file);
    let https = HttpProbe::new(&https).unwrap();
    let eth0 = request(&world, "eth0", &[DNS_A]);
    const CHECKS: u64 = 10;

    // Warm ARP so the first measured check is like any other.
    let direct = HttpProbe::new(&config(&format!("http://{SERVER}/"))).unwrap();
    world.on_device(async || direct.run(eth0.clone()).await);

    // The HTTP bound is the probe's estimate of a later check (446 B, 2026-12-08) with slack.
    for (name, probe, budget_without_dns) in [("HTTP", &http, 500), ("HTTPS", &https, 6000)] {
        let (bytes0, _) = world.l3_counters("eth0");
        let queries0 = dns.queries();
        let reports: Vec<ProbeReport> = world.on_device(async || {
            let mut reports = Vec::new();
            for _ in 0..CHECKS {
                reports.push(probe.run(eth0.clone()).await);
            }
            reports
        });
        // The last FIN/ACKs crossed: the counters stopped moving (two reads 100 ms apart agree).
        let mut last = world.l3_counters("eth0");
        let (bytes1, _) = wait_for(Duration::from_secs(5), || {
            std::thread::sleep(Duration::from_millis(100));
            let now = world.l3_counters("eth0");
            let still = now == last;
            last = now;
            still.then_some(now)
        })
        .expect("the counters keep moving");
        for r in &reports {
            assert_verdict(r, Verdict::Full, name);
        }
        let measured = (bytes1 - bytes0) as f64 / CHECKS as f64;
        let estimated: u64 = reports.iter().map(|r| r.bytes).sum();
        let dns_total: u64 = reports.iter().map(|r| r.dns_bytes).sum();
        let first = &reports[0];
        let steady = &reports[CHECKS as usize - 1];
        eprintln!(
            "{name}: measured {measured:.0} B/check at L3 on the veth (average of {CHECKS}); \
             estimate {:.0} B/check; first check {} B ({} B DNS); later checks {} B (DNS {} B); \
             DNS queries {}",
            estimated as f64 / CHECKS as f64,
            first.bytes,
            first.dns_bytes,
            steady.bytes,
            steady.dns_bytes,
            dns.queries() - queries0,
        );
        // The answer is cached within its TTL: one lookup for the whole run at most.
        assert!(dns.queries() - queries0 <= 1, "DNS re-queried");
        assert_eq!(steady.dns_bytes, 0);
        assert!(
            steady.bytes <= budget_without_dns,
            "{name}: {} B without DNS",
            steady.bytes
        );
        // The estimate follows the kernel's own count within 20 %.
        let ratio = (estimated as f64 / CHECKS as f64) / measured;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{name}: estimate/measured = {ratio:.2}"
        );
        if name == "HTTP" {
            // 459 B measured 2026-12-08 (446 B a check, 128 B DNS once).
            assert!(measured <= 500.0, "HTTP average incl. DNS: {measured:.0} B");
            assert!(first.dns_bytes > 0 && first.dns_bytes == dns_total);
        } else {
            assert!(measured < 6000.0, "HTTPS average: {measured:.0} B");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

/// A noisy upstream loss: the ISP answers ICMP "unreachable" at once (no route of its own, or
/// an `unreachable` route). The device still has its link and its route, so the check is
/// LIMITED, never NONE: NONE is for a local absence only.
#[test]
fn an_upstream_answering_unreachable_is_limited() {
    let world = test_setup!(World::new("punr"));
    let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
    let _dns = dns_all(&world);
    let literal = HttpProbe::new(&config(&format!("http://{SERVER}/"))).unwrap();
    let named = HttpProbe::new(&config(&format!("http://{HOST}/"))).unwrap();
    let eth0 = request(&world, "eth0", &[DNS_A]);
    let report = world.on_device(async || literal.run(eth0.clone()).await);
    assert_verdict(&report, Verdict::Full, "before the fault");
    // ICMP net unreachable (ENETUNREACH at the device): the ISP has no route at all.
    world.isps[0].ip(&["route", "del", "default"]).expect("isp");
    let reports = world.on_device(async || {
        (
            literal.run(eth0.clone()).await,
            named.run(eth0.clone()).await,
        )
    });
    // DNS goes over unconnected UDP sockets, which never see the ICMP answer: a timeout.
    assert_verdict(&reports.1, Verdict::Limited, "net unreachable, named");
    assert_verdict(&reports.0, Verdict::Limited, "net unreachable, literal");
    assert!(
        reports.0.reason.contains("unreachable") && reports.0.elapsed < Duration::from_secs(1),
        "the ISP answered at once (not a timeout): {:?}",
        reports.0
    );
    // ICMP host unreachable (EHOSTUNREACH): an `unreachable` route in the ISP.
    world.isps[0]
        .ip(&["route", "add", "unreachable", "203.0.113.0/24"])
        .expect("isp");
    let report = world.on_device(async || literal.run(eth0.clone()).await);
    assert_verdict(&report, Verdict::Limited, "host unreachable");
}
