//! The adapters alone (`NetlinkLinks`, `NetlinkRoutes`, `ProcSysctl`) against the kernel, on a
//! thread that entered the device namespace.

use std::net::IpAddr;
use std::time::Duration;

use futures::stream::{BoxStream, StreamExt};
use netfailover::engine::model::{Family, IfaceAddr, KernelRoute, LinkInfo, LinkKind};
use netfailover::engine::ports::{
    LinkSource, LinkUpdate, PortError, PortErrorKind, RouteTable, Sysctl,
};
use netfailover::os::netlink::{NetlinkLinks, NetlinkRoutes, DEFAULT_RCVBUF};
use netfailover::os::sysctl::ProcSysctl;
use netfailover_lab::netns::Netns;
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::block_on_in_netns;

use super::{add_dhcp_default, default_route, world, DHCP};

/// Generous bound for the kernel to report a change (it takes about a millisecond).
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads updates until one about `iface` satisfies `want`; `None` after [`EVENT_TIMEOUT`].
async fn next_link(
    updates: &mut BoxStream<'static, LinkUpdate>,
    iface: &str,
    want: impl Fn(&LinkInfo) -> bool,
) -> Option<LinkInfo> {
    let search = async {
        while let Some(update) = updates.next().await {
            if let LinkUpdate::Link(info) = update {
                if info.name.as_str() == iface && want(&info) {
                    return Some(info);
                }
            }
        }
        None
    };
    tokio::time::timeout(EVENT_TIMEOUT, search)
        .await
        .ok()
        .flatten()
}

/// Runs `count` MTU changes of `u0` in one `ip -batch` process: a burst of RTM_NEWLINK.
fn mtu_storm(ns: &Netns, count: usize) {
    let storm: String = (0..count)
        .map(|i| format!("link set dev u0 mtu {}\n", 1400 + (i % 2) * 100))
        .collect();
    let batch = std::env::temp_dir().join(format!("{}-storm.txt", ns.name()));
    std::fs::write(&batch, storm).unwrap();
    let result = ns.ip(&["-batch", batch.to_str().unwrap()]);
    let _ = std::fs::remove_file(&batch);
    result.unwrap();
}

async fn dumped(links: &NetlinkLinks, iface: &str) -> LinkInfo {
    links
        .dump()
        .await
        .expect("link dump")
        .into_iter()
        .find(|l| l.name.as_str() == iface)
        .unwrap_or_else(|| panic!("{iface} missing from the dump"))
}

#[test]
fn subscription_sees_peer_carrier_loss_and_device_admin_changes() {
    let w = test_setup!(world("nlsub", 1));
    let up = &w.uplinks[0];
    block_on_in_netns(&w.dev, || async {
        let links = NetlinkLinks::default();
        let mut updates = links.subscribe().await.expect("subscribe");
        let before = dumped(&links, "u0").await;
        assert!(before.admin_up && before.carrier, "{before:?}");

        up.isp.ip(&["link", "set", "p0", "down"]).unwrap();
        let lost = next_link(&mut updates, "u0", |l| !l.carrier)
            .await
            .expect("carrier loss reported when the peer goes down");
        assert!(lost.admin_up, "peer down leaves u0 administratively up");
        assert!(lost.carrier_changes > before.carrier_changes);
        assert_eq!(lost.ifindex, up.ifindex);

        up.isp.ip(&["link", "set", "p0", "up"]).unwrap();
        let back = next_link(&mut updates, "u0", |l| l.carrier)
            .await
            .expect("carrier back reported");
        assert!(back.usable() && back.carrier_changes > lost.carrier_changes);

        w.dev.ip(&["link", "set", "u0", "down"]).unwrap();
        let down = next_link(&mut updates, "u0", |l| !l.admin_up)
            .await
            .expect("admin down reported");
        assert!(!down.usable());

        w.dev.ip(&["link", "set", "u0", "up"]).unwrap();
        let again = next_link(&mut updates, "u0", |l| l.admin_up && l.carrier)
            .await
            .expect("admin up with carrier reported");
        assert!(again.usable());
    })
    .unwrap();
}

#[test]
fn dump_reports_links_with_their_kinds() {
    let w = test_setup!(world("nldump", 1));
    w.dev.ip(&["link", "add", "br7", "type", "bridge"]).unwrap();
    w.dev
        .ip(&[
            "link", "add", "vx7", "type", "vxlan", "id", "7", "dstport", "4789",
        ])
        .unwrap();
    w.dev
        .ip(&["tuntap", "add", "mode", "tun", "name", "tun7"])
        .unwrap();
    let links = block_on_in_netns(&w.dev, || async {
        NetlinkLinks::default().dump().await.expect("dump")
    })
    .unwrap();
    let kind = |name: &str| {
        links
            .iter()
            .find(|l| l.name.as_str() == name)
            .map(|l| l.kind)
            .unwrap_or_else(|| panic!("{name} missing from {links:?}"))
    };
    assert_eq!(kind("lo"), LinkKind::Loopback);
    assert_eq!(kind("u0"), LinkKind::Veth);
    assert_eq!(kind("br7"), LinkKind::Bridge);
    assert_eq!(kind("vx7"), LinkKind::Tunnel);
    assert_eq!(kind("tun7"), LinkKind::Tunnel);
    let u0 = links.iter().find(|l| l.name.as_str() == "u0").unwrap();
    assert_eq!(u0.ifindex, w.uplinks[0].ifindex);
    assert!(u0.usable());
    assert!(u0.mac.is_some_and(|mac| mac != [0; 6]));
    // Only this namespace's links: the ISP side is not visible.
    assert!(links.iter().all(|l| l.name.as_str() != "p0"));
}

#[test]
fn routes_add_replace_delete_and_list_in_both_families() {
    let w = test_setup!(world("nlroute", 2));
    let (a, b) = (&w.uplinks[0], &w.uplinks[1]);
    // Foreign routes (a DHCP client's, say) that must stay untouched.
    add_dhcp_default(&w.dev, "198.51.100.1", "u1", 600);
    add_dhcp_default(&w.dev, "2001:db8:1::1", "u1", 600);
    let foreign = [
        KernelRoute {
            protocol: DHCP,
            ..default_route(Family::V4, b.ifindex, b.gateway_v4.into(), 600)
        },
        KernelRoute {
            protocol: DHCP,
            ..default_route(Family::V6, b.ifindex, b.gateway_v6.into(), 600)
        },
    ];

    block_on_in_netns(&w.dev, || async {
        let routes = NetlinkRoutes::new().expect("route socket");
        let listed = routes.list_defaults().await.unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        for f in &foreign {
            assert!(listed.contains(f), "{f:?} not in {listed:?}");
        }

        for (family, gateway, other_gateway) in [
            (
                Family::V4,
                IpAddr::from(a.gateway_v4),
                IpAddr::from([192, 0, 2, 3]),
            ),
            (
                Family::V6,
                IpAddr::from(a.gateway_v6),
                "2001:db8::3".parse().unwrap(),
            ),
        ] {
            let ours = default_route(family, a.ifindex, gateway, 100);
            routes.add(ours.clone()).await.expect("add");
            assert!(routes.list_defaults().await.unwrap().contains(&ours));

            // Same key (family, metric) through another interface: the kernel says EEXIST.
            let clash = KernelRoute {
                ifindex: b.ifindex,
                gateway: Some(match family {
                    Family::V4 => b.gateway_v4.into(),
                    Family::V6 => b.gateway_v6.into(),
                }),
                ..ours.clone()
            };
            assert!(
                matches!(
                    routes.add(clash).await,
                    Err(PortError {
                        kind: PortErrorKind::Exists,
                        ..
                    })
                ),
                "{family:?}: same-metric add must be refused"
            );

            // Replace swaps the gateway in place (same metric).
            let swapped = KernelRoute {
                gateway: Some(other_gateway),
                ..ours.clone()
            };
            routes.replace(swapped.clone()).await.expect("replace");
            let listed = routes.list_defaults().await.unwrap();
            assert!(
                listed.contains(&swapped) && !listed.contains(&ours),
                "{listed:?}"
            );

            // Metric change the engine's way: add the new one, then delete the old one.
            let moved = KernelRoute {
                metric: 150,
                ..swapped.clone()
            };
            routes.add(moved.clone()).await.expect("add at new metric");
            routes.delete(swapped.clone()).await.expect("delete old");
            let listed = routes.list_defaults().await.unwrap();
            assert!(
                listed.contains(&moved) && !listed.contains(&swapped),
                "{listed:?}"
            );
            assert!(
                matches!(
                    routes.delete(swapped).await,
                    Err(PortError {
                        kind: PortErrorKind::NotFound,
                        ..
                    })
                ),
                "deleting a deleted route is NotFound"
            );
            routes.delete(moved).await.expect("delete");
        }

        let listed = routes.list_defaults().await.unwrap();
        assert_eq!(
            listed.len(),
            2,
            "only the foreign routes remain: {listed:?}"
        );
        for f in &foreign {
            assert!(listed.contains(f), "{f:?} was touched: {listed:?}");
        }
    })
    .unwrap();

    // The kernel's own words, read by a process in the namespace.
    let v4 = w.dev.ip(&["route", "show", "default"]).unwrap();
    assert!(
        v4.contains("default via 198.51.100.1 dev u1 proto dhcp metric 600"),
        "{v4}"
    );
    assert!(!v4.contains("u0"), "{v4}");
}

#[test]
fn ipv6_metric_zero_is_1024_and_wildcard_deletes_stay_exact() {
    let w = test_setup!(world("nlmetric", 1));
    let a = &w.uplinks[0];
    block_on_in_netns(&w.dev, || async {
        let routes = NetlinkRoutes::new().expect("route socket");
        let zero = default_route(Family::V6, a.ifindex, a.gateway_v6.into(), 0);
        routes.add(zero.clone()).await.expect("add v6 metric 0");
        let listed = routes.list_defaults().await.unwrap();
        assert_eq!(
            listed,
            vec![KernelRoute {
                metric: 1024,
                ..zero.clone()
            }]
        );
        let shown = w.dev.ip(&["-6", "route", "show", "default"]).unwrap();
        assert!(shown.contains("proto 78 metric 1024"), "{shown}");

        // IPv4 metric 0 is a real metric; deleting a metric-0 route that is not there must not
        // delete the metric-100 one (the kernel reads metric 0 as "any").
        let v4 = default_route(Family::V4, a.ifindex, a.gateway_v4.into(), 100);
        routes.add(v4.clone()).await.unwrap();
        let v4_zero = KernelRoute {
            metric: 0,
            ..v4.clone()
        };
        assert!(matches!(
            routes.delete(v4_zero).await,
            Err(PortError {
                kind: PortErrorKind::NotFound,
                ..
            })
        ));
        let no_gateway = KernelRoute {
            gateway: None,
            ..v4.clone()
        };
        assert!(matches!(
            routes.delete(no_gateway).await,
            Err(PortError {
                kind: PortErrorKind::NotFound,
                ..
            })
        ));
        assert!(routes.list_defaults().await.unwrap().contains(&v4));

        // Deleting with metric 0 removes the 1024 one.
        routes.delete(zero).await.expect("delete v6 metric 0");
        let listed = routes.list_defaults().await.unwrap();
        assert_eq!(listed, vec![v4]);
    })
    .unwrap();
}

/// `ensure_address` twice is one address; `list_addresses` reports both families with their
/// prefix lengths on the right interface.
#[test]
fn ensure_address_is_idempotent() {
    let w = test_setup!(world("nladdr", 1));
    let ifindex = w.uplinks[0].ifindex;
    block_on_in_netns(&w.dev, || async {
        let routes = NetlinkRoutes::new().expect("route socket");
        for addr in ["192.0.2.77", "2001:db8::77"] {
            let addr = IfaceAddr {
                addr: addr.parse().unwrap(),
                prefix_len: if addr.contains(':') { 64 } else { 24 },
            };
            routes.ensure_address(ifindex, addr).await.expect("first");
            routes.ensure_address(ifindex, addr).await.expect("again");
        }
        let missing = IfaceAddr {
            addr: "192.0.2.78".parse().unwrap(),
            prefix_len: 24,
        };
        assert!(routes.ensure_address(9999, missing).await.is_err());
        let listed = routes.list_addresses().await.expect("address dump");
        for (addr, prefix_len) in [("192.0.2.77", 24), ("2001:db8::77", 64)] {
            let want = IfaceAddr {
                addr: addr.parse().unwrap(),
                prefix_len,
            };
            assert!(listed.contains(&(ifindex, want)), "{want} in {listed:?}");
        }
        assert!(!listed
            .iter()
            .any(|(i, a)| *i != ifindex
                && a.addr == "192.0.2.77".parse::<std::net::IpAddr>().unwrap()));
    })
    .unwrap();
    let shown = w.dev.ip(&["addr", "show", "dev", "u0"]).unwrap();
    assert!(
        shown.contains("192.0.2.77/24") && shown.contains("2001:db8::77/64"),
        "{shown}"
    );
    assert_eq!(shown.matches("192.0.2.77/24").count(), 1);
}

/// docs/kernel-facts.md §3, seen through the adapters: on carrier loss the default routes stay
/// (`linkdown`), on admin down the kernel deletes the IPv4 one (and IPv6 with its addresses)
/// and does not bring them back on admin up.
#[test]
fn kernel_keeps_linkdown_routes_and_flushes_them_on_admin_down() {
    let w = test_setup!(world("nlfacts", 1));
    let a = &w.uplinks[0];
    block_on_in_netns(&w.dev, || async {
        let routes = NetlinkRoutes::new().expect("route socket");
        let links = NetlinkLinks::default();
        let mut updates = links.subscribe().await.expect("subscribe");
        let v4 = default_route(Family::V4, a.ifindex, a.gateway_v4.into(), 100);
        let v6 = default_route(Family::V6, a.ifindex, a.gateway_v6.into(), 100);
        routes.add(v4.clone()).await.unwrap();
        routes.add(v6.clone()).await.unwrap();

        a.isp.ip(&["link", "set", "p0", "down"]).unwrap();
        next_link(&mut updates, "u0", |l| !l.carrier)
            .await
            .expect("carrier loss");
        let listed = routes.list_defaults().await.unwrap();
        assert!(listed.contains(&v4) && listed.contains(&v6), "{listed:?}");
        let shown = w.dev.ip(&["route", "show", "default"]).unwrap();
        assert!(shown.contains("linkdown"), "{shown}");

        a.isp.ip(&["link", "set", "p0", "up"]).unwrap();
        next_link(&mut updates, "u0", |l| l.carrier)
            .await
            .expect("carrier back");
        w.dev.ip(&["link", "set", "u0", "down"]).unwrap();
        next_link(&mut updates, "u0", |l| !l.admin_up)
            .await
            .expect("admin down");
        let listed = routes.list_defaults().await.unwrap();
        assert!(!listed.contains(&v4) && !listed.contains(&v6), "{listed:?}");

        w.dev.ip(&["link", "set", "u0", "up"]).unwrap();
        next_link(&mut updates, "u0", |l| l.usable())
            .await
            .expect("admin up");
        let listed = routes.list_defaults().await.unwrap();
        assert!(
            listed.is_empty(),
            "flushed routes do not come back: {listed:?}"
        );
        // IPv6 addresses went with the admin down too (keep_addr_on_down=0): a manual IPv6
        // address has to be applied again after link up.
        let shown = w.dev.ip(&["-6", "addr", "show", "dev", "u0"]).unwrap();
        assert!(!shown.contains("2001:db8::2"), "{shown}");
    })
    .unwrap();
}

#[test]
fn tiny_receive_buffer_and_a_storm_yield_an_overrun_then_only_newer_updates() {
    let w = test_setup!(world("nlovr", 1));
    block_on_in_netns(&w.dev, || async {
        let links = NetlinkLinks::new(4096);
        let mut updates = links.subscribe().await.expect("subscribe");
        // The storm runs while this (the runtime's only) thread is blocked in the command, so
        // the connection task cannot drain the 4 KiB buffer.
        mtu_storm(&w.dev, 300);
        let mut kept = 0;
        let overrun = tokio::time::timeout(EVENT_TIMEOUT, async {
            while let Some(update) = updates.next().await {
                match update {
                    LinkUpdate::Overrun => return true,
                    _ => kept += 1,
                }
            }
            false
        })
        .await;
        assert_eq!(overrun, Ok(true), "no overrun after {kept} updates");
        assert!(kept < 300, "a 4 KiB buffer cannot hold 300 link messages");

        // The kernel reports ENOBUFS before the notifications it kept, which are older than
        // the ones it dropped. Delivered after the overrun, they would be applied after the
        // engine's resync dump and leave it with a stale link state; so nothing queued before
        // the overrun may follow it.
        let mut stale = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(300), async {
            while let Some(update) = updates.next().await {
                stale.push(update);
            }
        })
        .await;
        assert!(
            !stale.iter().any(|u| matches!(u, LinkUpdate::Link(_))),
            "link updates from before the overrun delivered after it: {stale:?}"
        );

        // The subscription goes on (on its fresh socket): a later change arrives. One MTU
        // change is one message, which the 4 KiB buffer holds.
        w.dev
            .ip(&["link", "set", "dev", "u0", "mtu", "1300"])
            .unwrap();
        assert!(next_link(&mut updates, "u0", |_| true).await.is_some());
    })
    .unwrap();
}

#[test]
fn default_receive_buffer_holds_a_burst() {
    let w = test_setup!(world("nlrcv", 1));
    let arrived = block_on_in_netns(&w.dev, || async {
        let links = NetlinkLinks::new(DEFAULT_RCVBUF);
        let mut updates = links.subscribe().await.expect("subscribe");
        // 300 link messages fit in 4 MiB (the kernel's default 208 KiB holds about 90): no
        // overrun although nobody drains the socket meanwhile.
        mtu_storm(&w.dev, 300);
        let mut seen = 0;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(update) = updates.next().await {
                match update {
                    LinkUpdate::Overrun => return,
                    LinkUpdate::Link(_) => {
                        seen += 1;
                        if seen == 300 {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        })
        .await;
        seen
    })
    .unwrap();
    assert!(arrived >= 300, "only {arrived} of 300 link updates arrived");
}

/// `/proc/sys/net` follows the namespace of the thread that opens it: a thread in the device
/// namespace reads and writes that namespace's values, the test thread its own.
#[test]
fn sysctl_follows_the_calling_threads_namespace() {
    let dev = test_setup!(Netns::new("nlsysctl").unwrap());
    // A name with a dot, as a VLAN's would be.
    dev.ip(&["link", "add", "up.7", "type", "veth", "peer", "name", "pp7"])
        .unwrap();
    let host = ProcSysctl::new();
    let host_lo = host.read_now("net.ipv4.conf.lo.rp_filter").unwrap();
    let other = if host_lo == "2" { "1" } else { "2" };
    dev.sysctl("net.ipv4.conf.lo.rp_filter", other).unwrap();

    let (inside_lo, inside_dotted) = block_on_in_netns(&dev, || async {
        let sysctl = ProcSysctl::new();
        sysctl
            .write("net.ipv4.conf.up.7.rp_filter".into(), "2".into())
            .await
            .expect("write in the namespace");
        (
            sysctl
                .read("net.ipv4.conf.lo.rp_filter".into())
                .await
                .unwrap(),
            sysctl
                .read("net.ipv4.conf.up.7.rp_filter".into())
                .await
                .unwrap(),
        )
    })
    .unwrap();
    assert_eq!(inside_lo, other, "the thread read the namespace's value");
    assert_eq!(inside_dotted, "2");
    let seen = dev
        .exec(&["sysctl", "-n", "net/ipv4/conf/up.7/rp_filter"])
        .unwrap();
    assert_eq!(seen.trim(), "2", "the write landed in the namespace");
    assert_eq!(
        host.read_now("net.ipv4.conf.lo.rp_filter").unwrap(),
        host_lo
    );
    // The interface exists only in the namespace: the test thread does not see it.
    let outside: PortError = host
        .read_now("net.ipv4.conf.up.7.rp_filter")
        .unwrap_err()
        .into();
    assert!(
        matches!(
            outside,
            PortError {
                kind: PortErrorKind::NotFound,
                ..
            }
        ),
        "{outside:?}"
    );
}
