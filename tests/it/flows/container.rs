//! A "container" namespace behind the device whose flows are NATed (nftables) onto whichever
//! uplink routes them, as a container engine's bridge network is. After carrier loss on eth0:
//!
//! - with per-uplink SNAT (`oifname "eth0" snat to 192.0.2.2`, …) the conntrack entry pins the
//!   container's UDP flow to eth0's address: the daemon deletes it, so the flow's next datagram
//!   leaves through wlan0 with wlan0's address within a second; without flow resets the flow
//!   stays pinned (the backup's ISP drops the foreign source) for the whole window;
//! - with `masquerade` the kernel itself drops an entry whose output interface changed
//!   (`nf_nat_oif_changed`, docs/kernel-facts.md), so the flow moves with or without us;
//! - either way the container's flow through wwan0 keeps its entry (its packet counter keeps
//!   counting).
//!
//! IPv4 only: the container network is IPv4 (IPv6 flow resets: `ipv6.rs`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use netfailover::os::flows::conntrack::Conntrack;
use netfailover_actors::model::Family;
use netfailover_actors::status::FlowResetRecord;
use netfailover_lab::apps::{UdpSender, UdpSink};
use netfailover_lab::container;
use netfailover_lab::netns::{wait_for, Netns};
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::run_in_netns;
use netlink_packet_core::{DefaultNla, Nla, NlasIterator, Parseable};
use netlink_packet_netfilter::conntrack::ConntrackAttribute;

use super::daemon::{lab, route_leaves, WITHIN, WLAN0};
use crate::daemon::TempDir;

/// The container's UDP peers in the Internet namespace: one reached through the route in use,
/// one through wwan0 (a static route on the device).
const PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 60);
const PEER_VIA_WWAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 61);
const ETH0: Ipv4Addr = super::daemon::ETH0;
const WWAN0: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The container's send rate.
const GAP: Duration = Duration::from_millis(20);
/// How long a pinned flow is watched without flow resets.
const WINDOW: Duration = Duration::from_secs(5);

/// How the device NATs the container's flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nat {
    /// `oifname "ethX" snat to <ethX's address>` per uplink.
    Snat,
    /// `oifname != "ctr0" masquerade`.
    Masquerade,
}

/// `CTA_COUNTERS_ORIG` and its `CTA_COUNTERS_PACKETS` (linux/netfilter/nfnetlink_conntrack.h).
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_PACKETS: u16 = 1;

/// Packets counted in the original direction of the device's conntrack entry whose reply
/// comes from `peer` (`None`: no such entry).
fn packets_from(dev: &Netns, peer: Ipv4Addr) -> Option<u64> {
    let entries = run_in_netns(dev, || Conntrack::open().ok()?.dump(Family::V4).ok())
        .ok()
        .flatten()?;
    let entry = entries
        .iter()
        .find(|e| e.flow().is_some_and(|f| f.reply_src == IpAddr::V4(peer)))?;
    entry.attributes().iter().find_map(|a| match a {
        ConntrackAttribute::Other(nla) if nla.kind() & 0x3fff == CTA_COUNTERS_ORIG => {
            let mut value = vec![0u8; nla.value_len()];
            nla.emit_value(&mut value);
            NlasIterator::new(&value[..]).flatten().find_map(|b| {
                let inner = DefaultNla::parse(&b).ok()?;
                let mut bytes = [0u8; 8];
                (inner.kind() & 0x3fff == CTA_COUNTERS_PACKETS && inner.value_len() == 8).then(
                    || {
                        inner.emit_value(&mut bytes);
                        u64::from_be_bytes(bytes)
                    },
                )
            })
        }
        _ => None,
    })
}

fn from_ip(sink: &UdpSink, ip: Ipv4Addr, since: Instant) -> Option<Instant> {
    sink.sources()
        .into_iter()
        .find(|(at, from)| *at >= since && from.ip() == IpAddr::V4(ip))
        .map(|(at, _)| at)
}

/// The container's flows through eth0 (to [`PEER`]) and wwan0 (to [`PEER_VIA_WWAN`]) under
/// `nat`, the daemon with `settings`; carrier loss on eth0. Asserts the wwan0 flow kept its
/// entry; returns when the eth0 flow first arrived from wlan0's address after the route
/// change (`None`: not within [`WINDOW`]) and the lab's flow resets of moves since the fault.
fn container_flow(tag: &str, nat: Nat, settings: &str) -> (Option<Duration>, Vec<FlowResetRecord>) {
    let dir = TempDir::new(tag);
    let lab = lab(&dir, settings);
    let (dev, inet) = (&lab.world.device, &lab.world.internet);
    for peer in [PEER, PEER_VIA_WWAN] {
        inet.ip(&["addr", "add", &format!("{peer}/32"), "dev", "lo"])
            .unwrap();
    }
    let sink = UdpSink::start(inet, SocketAddr::from((PEER, 9))).unwrap();
    let sink_wwan = UdpSink::start(inet, SocketAddr::from((PEER_VIA_WWAN, 9))).unwrap();

    // The container behind the device's bridge side.
    let uplinks = [
        ("eth0", "192.0.2.2"),
        ("wlan0", "192.0.2.6"),
        ("wwan0", "192.0.2.10"),
    ];
    let nat = match nat {
        Nat::Snat => container::Nat::Snat(&uplinks),
        Nat::Masquerade => container::Nat::Masquerade,
    };
    let ctr = container::container(dev, "flows-ctr", nat).unwrap();
    // Packet counters on conntrack entries (this namespace only), to tell a kept entry from
    // a deleted and re-created one.
    dev.sysctl("net.netfilter.nf_conntrack_acct", "1").unwrap();
    dev.ip(&[
        "route",
        "add",
        &format!("{PEER_VIA_WWAN}/32"),
        "via",
        "192.0.2.9",
        "dev",
        "wwan0",
    ])
    .unwrap();

    let start = Instant::now();
    let _flow = UdpSender::start(&ctr, SocketAddr::from((PEER, 9)), GAP).unwrap();
    let _flow_wwan = UdpSender::start(&ctr, SocketAddr::from((PEER_VIA_WWAN, 9)), GAP).unwrap();
    let warm = wait_for(Duration::from_secs(10), || {
        (from_ip(&sink, ETH0, start).is_some() && from_ip(&sink_wwan, WWAN0, start).is_some())
            .then_some(())
    });
    assert!(
        warm.is_some(),
        "the container's flows leave through eth0 and wwan0, NATed"
    );
    std::thread::sleep(Duration::from_secs(3));
    let before = packets_from(dev, PEER_VIA_WWAN).expect("the wwan0 flow's entry");

    let fault = SystemTime::now();
    lab.world.pull_cable("eth0").unwrap();
    let moved = route_leaves(&lab, PEER, "eth0");
    let first = wait_for(WINDOW, || from_ip(&sink, WLAN0, moved));
    let took = first.map(|at| at.saturating_duration_since(moved));
    println!("{nat:?}, settings {settings:?}: route change → the container's UDP flow arrives from the backup's address: {took:?}");

    // The flow through wwan0 kept its entry: its counter went on from where it was.
    std::thread::sleep((moved + Duration::from_secs(1)).saturating_duration_since(Instant::now()));
    let after = packets_from(dev, PEER_VIA_WWAN).expect("the wwan0 flow's entry");
    assert!(
        after > before,
        "wwan0's entry was re-created: {before} → {after} packets"
    );
    assert!(from_ip(&sink_wwan, WWAN0, moved + Duration::from_millis(500)).is_some());
    (took, lab.flow_resets_since(fault))
}

/// Per-uplink SNAT: only the daemon's conntrack deletion moves the flow.
#[test]
fn a_snat_container_udp_flow_moves_to_the_backup_within_a_second_and_stays_pinned_without_resets() {
    test_setup!();
    // Measured: the flow arrives from the backup's address within WITHIN.
    let _serial = crate::heavy_test_lock();
    let (took, resets) = container_flow("flows-snat", Nat::Snat, "");
    let took = took.unwrap_or_else(|| panic!("never arrived from wlan0's address: {resets:?}"));
    assert!(took < WITHIN, "took {took:?}");
    let r = resets.first().expect("a flows-reset record");
    assert_eq!(r.iface.as_str(), "eth0");
    assert!(r.conntrack_deleted >= 1 && r.failures.is_empty(), "{r:?}");

    let (took, resets) = container_flow("flows-snat-off", Nat::Snat, "[flows]\nenabled = false\n");
    assert_eq!(
        took, None,
        "without flow resets the flow stays pinned to eth0's address"
    );
    assert!(resets.is_empty(), "{resets:?}");
}

/// Masquerade: the kernel moves the flow by itself (the first datagram through the new
/// interface kills the entry); the daemon's reset finds nothing left to delete there and
/// keeps the wwan0 flow's entry.
#[test]
fn a_masqueraded_container_udp_flow_moves_to_the_backup_within_a_second() {
    test_setup!();
    // Measured: the flow arrives from the backup's address within WITHIN.
    let _serial = crate::heavy_test_lock();
    for (tag, settings) in [
        ("flows-masq", ""),
        ("flows-masq-off", "[flows]\nenabled = false\n"),
    ] {
        let (took, _) = container_flow(tag, Nat::Masquerade, settings);
        let took =
            took.unwrap_or_else(|| panic!("{settings:?}: never arrived from wlan0's address"));
        assert!(took < WITHIN, "{settings:?}: took {took:?}");
    }
}
