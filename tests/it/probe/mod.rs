//! Integration tests for the probe: the real `HttpProbe` against the fake Internet
//! (`netfailover_lab::internet`) in throw-away namespaces.
//!
//! World: a device namespace with three uplinks (`eth0`, `wwan0`, `wlan0`), each a veth to its
//! own ISP namespace, and an Internet namespace behind the ISPs with the check server on
//! 203.0.113.10 (`check.test`) and DNS responders on 203.0.113.53 and .54. Routing is plain
//! `ip route`; the device's default routes prefer eth0, then wwan0, then wlan0. Every probe
//! call runs on a thread that entered the device namespace.

mod classify;
mod dns;
mod engine_level;
mod interfaces;
mod resumption;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use netfailover::engine::model::{CheckConfig, Family, IfaceName};
use netfailover::engine::ports::{ProbeReport, ProbeRequest, Verdict};
use netfailover::os::probe::HttpProbe;
use netfailover_lab::internet::{
    Behaviour, CheckServer, DnsMode, DnsResponder, InternetError, TestCa,
};
use netfailover_lab::netns::{veth, wait_for, Netns};
use netfailover_lab::test_setup;

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
    /// one test shares it, as the daemon's checks share the daemon's).
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

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nf-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
