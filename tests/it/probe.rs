//! Integration tests for the probe: the real `HttpProbe` against the fake Internet
//! (`netfailover_lab::internet`) in throw-away namespaces.
//!
//! World: a device namespace with three uplinks (`eth0`, `wwan0`, `wlan0`), each a veth to its
//! own ISP namespace, and an Internet namespace behind the ISPs with the check server on
//! 203.0.113.10 (`check.test`) and DNS responders on 203.0.113.53 and .54. Routing is plain
//! `ip route`; the device's default routes prefer eth0, then wwan0, then wlan0. Every probe
//! call runs on a thread that entered the device namespace.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use netfailover::engine::model::{CheckConfig, Family, IfaceName};
use netfailover::engine::ports::{ProbeReport, ProbeRequest, Verdict};
use netfailover::os::probe::HttpProbe;
use netfailover_lab::internet::{
    Behaviour, CheckServer, DnsMode, DnsResponder, InternetError, TestCa,
};
use netfailover_lab::netns::{require_root, veth, wait_for, Netns};

const UPLINKS: [&str; 3] = ["eth0", "wwan0", "wlan0"];
const SERVER: &str = "203.0.113.10";
const DNS_A: &str = "203.0.113.53";
const DNS_B: &str = "203.0.113.54";
/// Nothing listens here: a dead DNS server.
const DNS_DEAD: &str = "203.0.113.55";
const HOST: &str = "check.test";
const SERVER6: &str = "2001:db8:ffff::10";
const DNS6: &str = "2001:db8:ffff::53";

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The device's address on uplink `k`.
fn dev_addr(k: usize) -> IpAddr {
    ip(&format!("192.0.2.{}", 16 * k + 2))
}

struct World {
    dev: Netns,
    isps: Vec<Netns>,
    inet: Netns,
}

fn quiet(ns: &Netns) {
    // No IPv6 autoconfiguration chatter in the byte counts.
    for key in ["all", "default"] {
        ns.sysctl(&format!("net.ipv6.conf.{key}.disable_ipv6"), "1")
            .expect("sysctl");
    }
}

impl World {
    fn new(tag: &str) -> World {
        let dev = Netns::new(&format!("{tag}d")).expect("dev ns");
        let inet = Netns::new(&format!("{tag}i")).expect("inet ns");
        quiet(&dev);
        quiet(&inet);
        for addr in [SERVER, DNS_A, DNS_B, DNS_DEAD] {
            inet.ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"])
                .expect("inet addr");
        }
        let mut isps = Vec::new();
        for (k, uplink) in UPLINKS.iter().enumerate() {
            let isp = Netns::new(&format!("{tag}{k}")).expect("isp ns");
            quiet(&isp);
            isp.sysctl("net.ipv4.ip_forward", "1").expect("forward");
            veth((&dev, uplink), (&isp, "d0")).expect("veth dev");
            let inet_if = format!("i{k}");
            veth((&isp, "u0"), (&inet, &inet_if)).expect("veth inet");
            let (lan, up) = (16 * k, 16 * k);
            dev.ip(&[
                "addr",
                "add",
                &format!("192.0.2.{}/28", lan + 2),
                "dev",
                uplink,
            ])
            .expect("dev addr");
            isp.ip(&[
                "addr",
                "add",
                &format!("192.0.2.{}/28", lan + 1),
                "dev",
                "d0",
            ])
            .expect("isp addr");
            isp.ip(&[
                "addr",
                "add",
                &format!("198.51.100.{}/28", up + 2),
                "dev",
                "u0",
            ])
            .expect("isp up addr");
            inet.ip(&[
                "addr",
                "add",
                &format!("198.51.100.{}/28", up + 1),
                "dev",
                &inet_if,
            ])
            .expect("inet addr");
            isp.ip(&[
                "route",
                "add",
                "default",
                "via",
                &format!("198.51.100.{}", up + 1),
            ])
            .expect("isp default");
            inet.ip(&[
                "route",
                "add",
                &format!("192.0.2.{lan}/28"),
                "via",
                &format!("198.51.100.{}", up + 2),
            ])
            .expect("inet route");
            dev.ip(&[
                "route",
                "add",
                "default",
                "via",
                &format!("192.0.2.{}", lan + 1),
                "dev",
                uplink,
                "metric",
                &(100 * (k + 1)).to_string(),
            ])
            .expect("dev default");
            isps.push(isp);
        }
        World { dev, isps, inet }
    }

    /// Adds IPv6 to every hop: uplink k is 2001:db8:k::/64, ISP k reaches the Internet over
    /// 2001:db8:10k::/64, and the Internet serves on 2001:db8:ffff::10 (HTTP) and ::53 (DNS).
    fn enable_ipv6(&self) {
        let all = std::iter::once(&self.dev)
            .chain(self.isps.iter())
            .chain(std::iter::once(&self.inet));
        for ns in all {
            for key in ["all", "default"] {
                ns.sysctl(&format!("net.ipv6.conf.{key}.disable_ipv6"), "0")
                    .expect("sysctl");
            }
        }
        for addr in [SERVER6, DNS6] {
            self.inet
                .ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("{addr}/128"),
                    "dev",
                    "lo",
                    "nodad",
                ])
                .expect("inet v6 addr");
        }
        for (k, uplink) in UPLINKS.iter().enumerate() {
            let isp = &self.isps[k];
            isp.sysctl("net.ipv6.conf.all.forwarding", "1")
                .expect("forward");
            let add = |ns: &Netns, addr: String, dev: &str| {
                ns.ip(&["-6", "addr", "add", &addr, "dev", dev, "nodad"])
                    .expect("v6 addr")
            };
            add(&self.dev, format!("2001:db8:{k}::2/64"), uplink);
            add(isp, format!("2001:db8:{k}::1/64"), "d0");
            add(isp, format!("2001:db8:10{k}::2/64"), "u0");
            add(
                &self.inet,
                format!("2001:db8:10{k}::1/64"),
                &format!("i{k}"),
            );
            isp.ip(&[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("2001:db8:10{k}::1"),
            ])
            .expect("isp v6 default");
            self.inet
                .ip(&[
                    "-6",
                    "route",
                    "add",
                    &format!("2001:db8:{k}::/64"),
                    "via",
                    &format!("2001:db8:10{k}::2"),
                ])
                .expect("inet v6 route");
            self.dev
                .ip(&[
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("2001:db8:{k}::1"),
                    "dev",
                    uplink,
                    "metric",
                    &(100 * (k + 1)).to_string(),
                ])
                .expect("dev v6 default");
        }
    }

    /// Runs `f` on a thread inside the device namespace, with its own runtime (every check of
    /// one test shares it: hickory's sockets belong to the runtime that made them).
    fn on_device<T: Send>(&self, f: impl AsyncFnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.dev.enter_current_thread().expect("enter dev ns");
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(f())
            })
            .join()
            .expect("device thread")
        })
    }

    /// Blackholes everything the ISP of uplink `k` would forward to the Internet.
    fn blackhole_upstream(&self, k: usize) {
        self.isps[k]
            .ip(&["route", "add", "blackhole", "203.0.113.0/24"])
            .expect("blackhole");
    }

    /// L3 bytes and packets through a device interface so far (veth counters minus the 14 B
    /// Ethernet header of each frame), read by a process inside the namespace.
    fn l3_counters(&self, iface: &str) -> (u64, u64) {
        let out = self
            .dev
            .ip(&["-s", "-j", "link", "show", "dev", iface])
            .expect("ip -s link");
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip json");
        let stats = &v[0]["stats64"];
        let get = |dir: &str, what: &str| stats[dir][what].as_u64().expect("counter");
        let packets = get("rx", "packets") + get("tx", "packets");
        let bytes = get("rx", "bytes") + get("tx", "bytes");
        (bytes - 14 * packets, packets)
    }
}

fn config(uri: &str) -> CheckConfig {
    CheckConfig {
        uri: uri.into(),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        ..CheckConfig::default()
    }
}

fn request(world: &World, iface: &str, dns: &[&str]) -> ProbeRequest {
    ProbeRequest {
        iface: IfaceName::new(iface).expect("iface"),
        ifindex: world.dev.ifindex(iface).unwrap_or(0),
        dns: dns.iter().map(|d| sa(&format!("{d}:53"))).collect(),
        // The world gives every uplink a default route in both families.
        routed: vec![Family::V4, Family::V6],
    }
}

fn assert_verdict(report: &ProbeReport, want: Verdict, what: &str) {
    assert_eq!(report.verdict, want, "{what}: {report:?}");
}

fn dns_all(world: &World) -> DnsResponder {
    DnsResponder::start(
        &world.inet,
        sa(&format!("{DNS_A}:53")),
        &[(HOST, ip(SERVER))],
        300,
    )
    .expect("dns")
}

/// Starts a DNS responder on `addr` once no earlier socket holds its port. Dropping a responder
/// closes its socket, but a process that another test forks at that moment (an `ip` command)
/// holds a copy of it until it execs (close-on-exec), so binding the port again at once may fail
/// with `AddrInUse`: wait, up to 10 s, for the old responder to be gone.
fn dns_when_free(ns: &Netns, addr: SocketAddr, records: &[(&str, IpAddr)]) -> DnsResponder {
    let started = wait_for(Duration::from_secs(10), || {
        match DnsResponder::start(ns, addr, records, 300) {
            Ok(dns) => Some(dns),
            Err(InternetError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                None
            }
            Err(e) => panic!("DNS responder on {addr}: {e}"),
        }
    });
    started.unwrap_or_else(|| panic!("the port of {addr} was still in use after 10 s"))
}

#[test]
fn a_new_responder_waits_for_the_old_socket_to_be_gone() {
    if !require_root("a_new_responder_waits_for_the_old_socket_to_be_gone") {
        return;
    }
    let world = World::new("pdfree");
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
fn every_classification_from_a_real_server() {
    if !require_root("every_classification_from_a_real_server") {
        return;
    }
    let world = World::new("pcls");
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
    if !require_root("https_is_full_with_the_test_ca_and_limited_without") {
        return;
    }
    let world = World::new("ptls");
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
fn a_check_never_leaves_through_another_interface() {
    if !require_root("a_check_never_leaves_through_another_interface") {
        return;
    }
    let world = World::new("pbind");
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

#[test]
fn dns_goes_through_the_interface_it_serves() {
    if !require_root("dns_goes_through_the_interface_it_serves") {
        return;
    }
    let world = World::new("pdns");
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
    if !require_root("dns_servers_are_asked_in_the_given_order") {
        return;
    }
    let world = World::new("pord");
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
fn bytes_per_check_over_http_and_https() {
    if !require_root("bytes_per_check_over_http_and_https") {
        return;
    }
    let world = World::new("pbyte");
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

    for (name, probe, budget_without_dns) in [("HTTP", &http, 700), ("HTTPS", &https, 6000)] {
        let (bytes0, _) = world.l3_counters("eth0");
        let queries0 = dns.queries();
        let reports: Vec<ProbeReport> = world.on_device(async || {
            let mut reports = Vec::new();
            for _ in 0..CHECKS {
                reports.push(probe.run(eth0.clone()).await);
            }
            reports
        });
        // Let the last FIN/ACKs cross before reading the counters.
        std::thread::sleep(Duration::from_millis(300));
        let (bytes1, _) = world.l3_counters("eth0");
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
            assert!(measured <= 650.0, "HTTP average incl. DNS: {measured:.0} B");
            assert!(first.dns_bytes > 0 && first.dns_bytes == dns_total);
        } else {
            assert!(measured < 6000.0, "HTTPS average: {measured:.0} B");
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn garbage_silent_and_wrong_source_dns_answers_fail_cleanly() {
    if !require_root("garbage_silent_and_wrong_source_dns_answers_fail_cleanly") {
        return;
    }
    let world = World::new("pdbad");
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
    // from the server address the query went to: hickory ignores it.
    drop(dns);
    let wildcard = dns_when_free(&world.inet, sa("0.0.0.0:53"), &[(HOST, ip(SERVER))]);
    let report = world.on_device(async || probe.run(eth0.clone()).await);
    assert_verdict(&report, Verdict::Limited, "answer from the wrong address");
    assert!(report.reason.starts_with("DNS:"), "{report:?}");
    assert!(wildcard.queries() > 0);
}

#[test]
fn checks_over_ipv6_with_aaaa_only_names() {
    if !require_root("checks_over_ipv6_with_aaaa_only_names") {
        return;
    }
    let world = World::new("pv6");
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

/// The premise of the engine's rp_filter handling: with strict reverse-path filtering a
/// standby's check replies are dropped (the best route back to the server is the primary), and
/// with loose filtering they pass.
#[test]
fn strict_rp_filter_drops_the_standbys_replies() {
    if !require_root("strict_rp_filter_drops_the_standbys_replies") {
        return;
    }
    let world = World::new("prpf");
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
    if !require_root("checks_leave_from_the_interfaces_own_address") {
        return;
    }
    let world = World::new("psrc");
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
    if !require_root("no_route_in_the_family_is_none_and_sends_nothing") {
        return;
    }
    let world = World::new("pnort");
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

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

// ---------------------------------------------------------------------------------------------
// Phase 2: the engine with the real probe. Links and routes come from the engine's in-memory
// fake kernel (named like the real veths); checks are real, in the device namespace; sysctls
// are written to the device namespace's /proc/sys by `ProcSysctl`.
// ---------------------------------------------------------------------------------------------

mod engine_level {
    use super::*;
    use futures::future::BoxFuture;
    use netfailover::engine::fake::FakeWorld;
    use netfailover::engine::model::{
        Config, Connectivity, FamilyConfig, IfaceMatch, KernelRoute, LinkKind, Method, Metric,
        Profile, UplinkType,
    };
    use netfailover::engine::ports::{PortError, PortResult, Sysctl};
    use std::sync::Arc;
    use std::time::Instant;

    /// Sysctls of the namespace of the thread that runs the future: /proc/sys/net resolves
    /// through the calling thread's namespace (the engine's arbiters inherit the device's).
    struct ProcSysctl;

    fn path(key: &str) -> String {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }

    impl Sysctl for ProcSysctl {
        fn read(&self, key: String) -> BoxFuture<'static, PortResult<String>> {
            let r = std::fs::read_to_string(path(&key))
                .map(|s| s.trim().to_string())
                .map_err(|e| PortError::failed(key, e));
            Box::pin(async move { r })
        }
        fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>> {
            let r = std::fs::write(path(&key), value).map_err(|e| PortError::failed(key, e));
            Box::pin(async move { r })
        }
    }

    const PENALTY: u32 = 20_000;
    const INTERVAL: Duration = Duration::from_secs(2);
    const TIMEOUT: Duration = Duration::from_secs(2);
    const RECHECK_MAX: Duration = Duration::from_secs(2);
    /// Generous slack on top of the contract's (docs/semantics.md) bounds for a loaded 2-vCPU machine.
    const SLACK: Duration = Duration::from_secs(4);

    fn profile(iface: &str, t: UplinkType, metric: u32, dns: Vec<IpAddr>) -> Profile {
        let family = |manage| FamilyConfig {
            manage_default: manage,
            method: Method::Auto,
            metric: Metric::new(metric.into()).unwrap(),
            addresses: vec![],
            gateway: None,
        };
        Profile {
            id: iface.into(),
            uuid: None,
            file: PathBuf::from(format!("{iface}.nmconnection")),
            uplink_type: t,
            matches: IfaceMatch::Name(IfaceName::new(iface).unwrap()),
            managed: true,
            ipv4: family(true),
            ipv6: family(false),
            dns,
        }
    }

    fn engine_config(bound_wwan0: bool) -> Config {
        let mut config = Config {
            profiles: vec![
                profile("eth0", UplinkType::Ethernet, 100, vec![]),
                profile("wwan0", UplinkType::Gsm, 700, vec![]),
            ],
            adopt: false,
            check: CheckConfig {
                uri: format!("http://{HOST}/connectivity-check"),
                interval: INTERVAL,
                connect_timeout: Duration::from_secs(1),
                timeout: TIMEOUT,
                recheck_max: RECHECK_MAX,
                ..CheckConfig::default()
            },
            ..Config::default()
        };
        // balenaOS 3016: only a global server (optionally `ADDR@wwan0` too).
        config.dns.global = vec![sa(&format!("{DNS_A}:53"))];
        if bound_wwan0 {
            config.dns.bound.insert(
                IfaceName::new("wwan0").unwrap(),
                vec![sa(&format!("{DNS_A}:53"))],
            );
        }
        config
    }

    fn fake_links() -> FakeWorld {
        let fake = FakeWorld::new();
        for (k, (uplink, metric)) in [("eth0", 100), ("wwan0", 700)].into_iter().enumerate() {
            let ifindex = fake.kernel.add_link(uplink, LinkKind::Other);
            fake.kernel.add_route_by_hand(KernelRoute {
                family: Family::V4,
                ifindex,
                gateway: Some(ip(&format!("192.0.2.{}", 16 * k + 1))),
                metric,
                protocol: 16,
            });
        }
        fake
    }

    fn state(h: &netfailover::engine::EngineHandle, iface: &str) -> (Connectivity, Option<u32>) {
        h.status()
            .interfaces
            .iter()
            .find(|i| i.name.as_str() == iface)
            .map(|i| (i.connectivity, i.effective_metric))
            .unwrap_or((Connectivity::Unknown, None))
    }

    async fn wait_state(
        h: &netfailover::engine::EngineHandle,
        iface: &str,
        want: (Connectivity, Option<u32>),
        within: Duration,
    ) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() <= within {
            if state(h, iface) == want {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn run_loop(tag: &str, bound_wwan0: bool) {
        let world = World::new(tag);
        let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
        let _dns = dns_all(&world);
        // Strict reverse-path filtering as many Yocto images set it: the engine relaxes it.
        for key in ["all", "eth0", "wwan0"] {
            world
                .dev
                .sysctl(&format!("net.ipv4.conf.{key}.rp_filter"), "1")
                .unwrap();
        }
        let fake = fake_links();
        let mut ports = fake.ports();
        ports.probe = Arc::new(HttpProbe::new(&engine_config(bound_wwan0).check).unwrap());
        ports.sysctl = Arc::new(ProcSysctl);
        let config = engine_config(bound_wwan0);

        std::thread::scope(|s| {
            s.spawn(|| {
                world.dev.enter_current_thread().unwrap();
                actix_rt::System::new().block_on(async {
                    let h = netfailover::engine::start(config, ports);
                    let up = Duration::from_secs(15);
                    // Both FULL: the standby's replies pass because rp_filter was relaxed.
                    assert!(
                        wait_state(&h, "eth0", (Connectivity::Full, Some(100)), up)
                            .await
                            .is_some(),
                        "eth0: {:?}",
                        h.status()
                    );
                    assert!(
                        wait_state(&h, "wwan0", (Connectivity::Full, Some(700)), up)
                            .await
                            .is_some(),
                        "wwan0 (strict rp_filter must have been relaxed): {:?}",
                        h.status()
                    );

                    // The primary's upstream dies: penalty within interval + 2×timeout + 1 s.
                    world.blackhole_upstream(0);
                    let bound = INTERVAL + 2 * TIMEOUT + Duration::from_secs(1);
                    let took = wait_state(
                        &h,
                        "eth0",
                        (Connectivity::Limited, Some(100 + PENALTY)),
                        bound + SLACK,
                    )
                    .await;
                    eprintln!("{tag}: penalty after {took:?} (bound {bound:?})");
                    assert!(took.is_some(), "eth0 not penalised: {:?}", h.status());
                    assert_eq!(state(&h, "wwan0"), (Connectivity::Full, Some(700)));

                    // Back: penalty removed within recheck_max + 2×timeout + 1 s.
                    world.isps[0]
                        .ip(&["route", "del", "blackhole", "203.0.113.0/24"])
                        .unwrap();
                    let bound = RECHECK_MAX + 2 * TIMEOUT + Duration::from_secs(1);
                    let took =
                        wait_state(&h, "eth0", (Connectivity::Full, Some(100)), bound + SLACK)
                            .await;
                    eprintln!("{tag}: penalty removed after {took:?} (bound {bound:?})");
                    assert!(took.is_some(), "eth0 not restored: {:?}", h.status());
                    h.shutdown().await.unwrap();
                });
            });
        });
        let rp = world
            .dev
            .exec(&["sysctl", "-n", "net.ipv4.conf.wwan0.rp_filter"])
            .unwrap();
        assert_eq!(rp.trim(), "2", "the engine set loose rp_filter");
    }

    /// A managed interface without a default route or gateway is NONE and never checked (a
    /// check would ARP for the target on-link and come back LIMITED).
    #[test]
    fn engine_does_not_check_an_interface_without_a_route() {
        if !require_root("engine_does_not_check_an_interface_without_a_route") {
            return;
        }
        let world = World::new("pengn");
        let _server = CheckServer::start(&world.inet, sa(&format!("{SERVER}:80")), None).unwrap();
        let _dns = dns_all(&world);
        world
            .dev
            .ip(&["route", "del", "default", "dev", "wwan0"])
            .expect("route del");
        let fake = fake_links();
        let wwan0 = fake.kernel.link("wwan0").ifindex;
        for r in fake
            .kernel
            .routes()
            .into_iter()
            .filter(|r| r.ifindex == wwan0)
        {
            fake.kernel.delete_route_by_hand(&r);
        }
        let config = engine_config(false);
        let mut ports = fake.ports();
        ports.probe = Arc::new(HttpProbe::new(&config.check).unwrap());
        ports.sysctl = Arc::new(ProcSysctl);
        let before = world.l3_counters("wwan0");
        std::thread::scope(|s| {
            s.spawn(|| {
                world.dev.enter_current_thread().unwrap();
                actix_rt::System::new().block_on(async {
                    let h = netfailover::engine::start(config, ports);
                    let up = Duration::from_secs(15);
                    assert!(
                        wait_state(&h, "eth0", (Connectivity::Full, Some(100)), up)
                            .await
                            .is_some(),
                        "eth0: {:?}",
                        h.status()
                    );
                    // Two check intervals and more: wwan0 stays NONE, unchecked.
                    tokio::time::sleep(2 * INTERVAL + TIMEOUT).await;
                    assert_eq!(state(&h, "wwan0"), (Connectivity::None, None));
                    h.shutdown().await.unwrap();
                });
            });
        });
        assert_eq!(world.l3_counters("wwan0"), before, "nothing sent on wwan0");
    }

    #[test]
    fn engine_penalises_a_blackholed_primary_and_restores_it() {
        if !require_root("engine_penalises_a_blackholed_primary_and_restores_it") {
            return;
        }
        run_loop("peng", false);
    }

    #[test]
    fn engine_with_a_bound_dns_server_for_the_backup() {
        if !require_root("engine_with_a_bound_dns_server_for_the_backup") {
            return;
        }
        run_loop("pengb", true);
    }
}

/// A noisy upstream loss: the ISP answers ICMP "unreachable" at once (no route of its own, or
/// an `unreachable` route). The device still has its link and its route, so the check is
/// LIMITED, never NONE: NONE is for a local absence only.
#[test]
fn an_upstream_answering_unreachable_is_limited() {
    if !require_root("an_upstream_answering_unreachable_is_limited") {
        return;
    }
    let world = World::new("punr");
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
