//! The lab: its namespace world (topology and fault primitives, checked with real TCP
//! connections across the namespaces). The `netfailover-lab` binary run to completion is tested
//! beside it, in tests/lab/tests/cli.rs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use netfailover_lab::netns::Netns;
use netfailover_lab::test_setup;
use netfailover_lab::world::{World, CHECK_ADDR, DNS_ADDR};

/// A TCP server on `addr:port` inside `ns` that writes back the peer's address, for `count`
/// connections (bounded) on its own thread.
fn echo_peer_server(ns: &Netns, addr: Ipv4Addr, port: u16) -> std::thread::JoinHandle<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = ns.name().to_string();
    let handle = std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind(SocketAddr::from((addr, port))).unwrap();
        listener.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut s, peer)) => {
                    let _ = s.write_all(peer.ip().to_string().as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    handle
}

/// Connects from inside `ns` and returns what the server wrote (the source address it saw).
fn connect_from(ns: &Netns, addr: Ipv4Addr, port: u16) -> Option<String> {
    let name = ns.name().to_string();
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((addr, port)), Duration::from_secs(1))
                .ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut seen = String::new();
        s.read_to_string(&mut seen).ok()?;
        Some(seen)
    })
    .join()
    .unwrap()
}

#[test]
fn lab_world_routes_each_uplink_and_injects_faults() {
    let world = test_setup!(World::build().unwrap());
    let server = echo_peer_server(&world.internet, CHECK_ADDR, 8080);
    let dns = echo_peer_server(&world.internet, DNS_ADDR, 8053);
    for u in &world.uplinks {
        // Device interfaces must not share their peer's ifindex (kernel link-event batching).
        assert_ne!(
            world.device.ifindex(u.iface).unwrap(),
            u.isp.ifindex("down0").unwrap(),
            "{}",
            u.iface
        );
        world
            .device
            .ip(&[
                "route",
                "replace",
                "203.0.113.0/24",
                "via",
                &u.gateway.to_string(),
                "dev",
                u.iface,
            ])
            .unwrap();
        assert_eq!(
            world.route_to_check_server().as_deref(),
            Some(u.iface),
            "route get"
        );
        // The Internet sees the device's address on that uplink: no NAT, routes back.
        assert_eq!(
            connect_from(&world.device, CHECK_ADDR, 8080),
            Some(u.device_addr.to_string()),
            "via {}",
            u.iface
        );

        world.blackhole_upstream(u.iface).unwrap();
        assert_eq!(connect_from(&world.device, CHECK_ADDR, 8080), None);
        world.restore_upstream(u.iface).unwrap();
        assert!(connect_from(&world.device, CHECK_ADDR, 8080).is_some());

        world.kill_dns(u.iface).unwrap();
        assert_eq!(connect_from(&world.device, DNS_ADDR, 8053), None);
        assert!(connect_from(&world.device, CHECK_ADDR, 8080).is_some());
        world.restore_dns(u.iface).unwrap();
        assert!(connect_from(&world.device, DNS_ADDR, 8053).is_some());

        world.pull_cable(u.iface).unwrap();
        let link = world.device.ip(&["link", "show", u.iface]).unwrap();
        assert!(link.contains("NO-CARRIER"), "{link}");
        world.plug_cable(u.iface).unwrap();
        let carrier = netfailover_lab::netns::wait_for(Duration::from_secs(5), || {
            let link = world.device.ip(&["link", "show", u.iface]).ok()?;
            link.contains("LOWER_UP").then_some(())
        });
        assert!(carrier.is_some(), "{} carrier back", u.iface);
    }
    drop(world);
    // The servers' namespaces are gone; their threads end at their deadline.
    drop((server, dns));
}

#[test]
fn lab_world_is_removed_on_drop() {
    let world = test_setup!(World::build().unwrap());
    let mut names = vec![
        world.device.name().to_string(),
        world.internet.name().to_string(),
    ];
    names.extend(world.uplinks.iter().map(|u| u.isp.name().to_string()));
    drop(world);
    let listed = netfailover_lab::netns::run(&["ip", "netns", "list"]).unwrap();
    for name in names {
        assert!(!listed.contains(&name), "{name} left behind");
    }
}
