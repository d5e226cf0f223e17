//! IPv6 from router advertisements (the normal case: `[ipv6] method=auto`) in the lab world
//! with one router per ISP (`World::add_ipv6`), the daemon at `interval` 3600 with every other
//! setting at its default: the router-advertised default routes count for the route in use, so
//! a carrier loss on eth0 moves the IPv6 route in use to wlan0 and resets eth0's IPv6 flows;
//! an application's IPv6 TCP connection gets an error and talks through wlan0. Without the
//! reset it would hang: its packets leave through wlan0 with eth0's address, and the Internet
//! routes the answers back through eth0's ISP.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use netfailover_actors::model::Family;
use netfailover_lab::apps::{AppLab, BusyClient, EchoServer, Pin};
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
use netfailover_lab::world::{World, ECHO6};

use super::daemon::{ROUTE_LIMIT, WITHIN};
use crate::daemon::TempDir;

/// The device's IPv6 addresses on eth0 and wlan0 (`World::add_ipv6`).
const ETH0_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const WLAN0_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const GAP: Duration = Duration::from_millis(100);

/// The device's interface for IPv6 traffic to `to` (`ip -6 route get`).
fn route_dev6(lab: &AppLab, to: Ipv6Addr) -> Option<String> {
    let out = lab
        .world
        .device
        .ip(&["-6", "route", "get", &to.to_string()])
        .ok()?;
    let mut words = out.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next().map(str::to_string)
}

/// The first echo at or after `since` from local address `ip`.
fn first_from(app: &BusyClient, ip: Ipv6Addr, since: Instant) -> Option<Instant> {
    app.round_trips()
        .into_iter()
        .find(|t| t.at >= since && t.local.ip() == IpAddr::V6(ip))
        .map(|t| t.at)
}

#[test]
fn router_advertised_ipv6_follows_a_carrier_loss_and_its_flows_are_reset() {
    test_setup!();
    // Measured: echoing over wlan0 within WITHIN of the route change.
    let _serial = crate::heavy_test_lock();
    let dir = TempDir::new("flows-ipv6");
    let mut world = World::build().unwrap();
    world.add_ipv6().unwrap();
    let lab = AppLab::start_in(
        world,
        Path::new(env!("CARGO_BIN_EXE_netfailover")),
        dir.path(),
        3600,
        "",
    )
    .unwrap();
    let _echo = EchoServer::start(&lab.world.internet, SocketAddr::from((ECHO6, 7))).unwrap();
    wait_for(ROUTE_LIMIT, || {
        (route_dev6(&lab, ECHO6).as_deref() == Some("eth0")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "IPv6 never in use through eth0: {:?}; log:\n{}",
            lab.world.device.ip(&["-6", "route"]),
            lab.log()
        )
    });
    // The backup must be ready too before the fault: each router answers the kernel's own
    // router solicitations (sent at random within its first seconds of link), so wlan0's
    // advertised route can arrive after eth0's. Until it is there at wlan0's configured metric,
    // the daemon rightly moves IPv6 to wwan0 instead, which is not what this test is about.
    wait_for(ROUTE_LIMIT, || {
        let routes = lab
            .world
            .device
            .ip(&["-6", "route", "show", "default", "dev", "wlan0"])
            .ok()?;
        routes.contains("metric 600 ").then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "wlan0 never had its advertised IPv6 route at metric 600: {:?}; log:\n{}",
            lab.world.device.ip(&["-6", "route"]),
            lab.log()
        )
    });
    let app = BusyClient::sticky(
        &lab.world.device,
        SocketAddr::from((ECHO6, 7)),
        GAP,
        Pin::Route,
    )
    .unwrap();
    let start = Instant::now();
    wait_for(Duration::from_secs(10), || first_from(&app, ETH0_V6, start))
        .expect("the IPv6 app talks through eth0");

    let fault = (Instant::now(), SystemTime::now());
    lab.world.pull_cable("eth0").unwrap();
    let moved = wait_for(ROUTE_LIMIT, || {
        matches!(route_dev6(&lab, ECHO6), Some(d) if d != "eth0").then(Instant::now)
    })
    .unwrap_or_else(|| panic!("the IPv6 route never left eth0; log:\n{}", lab.log()));
    let first = wait_for(WITHIN + Duration::from_secs(1), || {
        first_from(&app, WLAN0_V6, moved)
    })
    .unwrap_or_else(|| {
        panic!(
            "the IPv6 app never talked through wlan0: {:?}; resets {:?}; log:\n{}",
            app.errors(),
            lab.flow_resets(),
            lab.log()
        )
    });
    let took = first.saturating_duration_since(moved);
    println!(
        "IPv6 from RAs, carrier loss: route change → application echoing over wlan0: {took:?}"
    );
    assert!(took < WITHIN, "took {took:?}");
    assert!(
        app.errors().iter().any(|(at, _)| *at >= fault.0),
        "the app saw its connection reset: {:?}",
        app.errors()
    );
    // The record is written when the reset is complete, which can be after the application
    // has already reconnected (its socket is destroyed first): wait for it, bounded.
    let r = wait_for(ROUTE_LIMIT, || {
        lab.flow_resets_since(fault.1)
            .into_iter()
            .find(|r| r.family == Family::V6)
    })
    .unwrap_or_else(|| {
        panic!(
            "no IPv6 flows-reset: {:?}; log:\n{}",
            lab.flow_resets_since(fault.1),
            lab.log()
        )
    });
    assert_eq!((r.iface.as_str(), r.to.as_str()), ("eth0", "wlan0"));
    assert!(r.sockets_destroyed >= 1, "{r:?}");
}
