//! Flow resets on the real kernel (`src/os/flows/`): a device namespace with eth0 and wlan0 and
//! an "Internet" namespace with an echo server; TCP connections through eth0 to the Internet,
//! to a peer on eth0's own subnet, bound to eth0 (SO_BINDTODEVICE) and from wlan0's address.
//! Resetting eth0's IPv4 flows must abort only the first. The same for IPv6, with conntrack
//! entries created through ctnetlink: only the one pinned to eth0's IPv6 address goes.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use netfailover::os::flows::reset_blocking;
use netfailover_actors::model::{Family, IfaceName};
use netfailover_actors::ports::FlowScope;
use netfailover_lab::netns::{veth, Netns};
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::run_in_netns;
use nix::sys::socket::{
    connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

const SERVER: &str = "192.0.2.10:7000";
const LAN_PEER: &str = "198.51.100.1:7000";

fn echo_once(s: &mut TcpStream) -> std::io::Result<()> {
    s.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf)?;
    Ok(())
}

#[test]
fn reset_aborts_only_the_sockets_pinned_to_the_demoted_interface() {
    let dev = test_setup!(Netns::new("flows-dev").unwrap());
    let net = Netns::new("flows-net").unwrap();
    veth((&dev, "eth0"), (&net, "e0")).unwrap();
    veth((&dev, "wlan0"), (&net, "w0")).unwrap();
    for (ns, cmds) in [
        (
            &dev,
            vec![
                vec!["addr", "add", "198.51.100.2/24", "dev", "eth0"],
                vec!["addr", "add", "203.0.113.2/24", "dev", "wlan0"],
                vec!["link", "set", "eth0", "up"],
                vec!["link", "set", "wlan0", "up"],
                vec![
                    "route",
                    "add",
                    "default",
                    "via",
                    "198.51.100.1",
                    "dev",
                    "eth0",
                ],
            ],
        ),
        (
            &net,
            vec![
                vec!["addr", "add", "198.51.100.1/24", "dev", "e0"],
                vec!["addr", "add", "203.0.113.1/24", "dev", "w0"],
                vec!["addr", "add", "192.0.2.10/32", "dev", "lo"],
                vec!["link", "set", "e0", "up"],
                vec!["link", "set", "w0", "up"],
            ],
        ),
    ] {
        for c in cmds {
            ns.ip(&c).unwrap();
        }
    }
    // The echo server: bounded in time, one thread per connection.
    let listener = run_in_netns(&net, || TcpListener::bind("0.0.0.0:7000"))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64];
                        while let Ok(n) = c.read(&mut buf) {
                            if n == 0 || c.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let eth0 = dev.ifindex("eth0").unwrap();
    let (report, mut pinned, mut others) = run_in_netns(&dev, || {
        let server: SocketAddr = SERVER.parse().unwrap();
        let mut pinned = TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap();
        let lan =
            TcpStream::connect_timeout(&LAN_PEER.parse().unwrap(), Duration::from_secs(5)).unwrap();
        // Bound to eth0 like our own checks.
        let fd: OwnedFd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        setsockopt(
            &fd,
            sockopt::BindToDevice,
            &std::ffi::OsString::from("eth0"),
        )
        .unwrap();
        let SocketAddr::V4(v4) = server else {
            unreachable!("SERVER is IPv4")
        };
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(v4)).unwrap();
        let bound = TcpStream::from(fd);
        // From the backup's address.
        let backup_fd: OwnedFd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        let src: std::net::SocketAddrV4 = "203.0.113.2:0".parse().unwrap();
        nix::sys::socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&backup_fd),
            &SockaddrIn::from(src),
        )
        .unwrap();
        connect(
            std::os::fd::AsRawFd::as_raw_fd(&backup_fd),
            &SockaddrIn::from(v4),
        )
        .unwrap();
        let backup = TcpStream::from(backup_fd);
        let mut others = vec![lan, bound, backup];
        echo_once(&mut pinned).unwrap();
        for s in &mut others {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            echo_once(s).unwrap();
        }
        let report = reset_blocking(&FlowScope {
            iface: IfaceName::new("eth0").unwrap(),
            ifindex: eth0,
            family: Family::V4,
            last_addresses: Vec::new(),
        });
        (report, pinned, others)
    })
    .unwrap();
    assert_eq!(report.sockets_destroyed, 1, "{report:?}");
    assert!(
        report
            .addresses
            .iter()
            .any(|a| a.addr == "198.51.100.2".parse::<IpAddr>().unwrap()),
        "{report:?}"
    );
    assert!(
        report.failures.iter().all(|f| !f.what.contains("TCP")),
        "{report:?}"
    );
    pinned
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let t0 = Instant::now();
    assert!(
        echo_once(&mut pinned).is_err(),
        "the pinned socket was aborted"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "the error comes at once"
    );
    for (i, s) in others.iter_mut().enumerate() {
        echo_once(s).unwrap_or_else(|e| panic!("socket {i} must be untouched: {e}"));
    }
}

/// IPv6, and conntrack on the real kernel: resetting eth0's IPv6 flows aborts the socket
/// pinned to eth0's address and deletes the conntrack entry whose reply goes to it, and keeps
/// the entries of wlan0's address, of eth0's LAN peer and of the other family.
#[test]
fn ipv6_reset_aborts_the_pinned_socket_and_deletes_only_the_pinned_conntrack_entry() {
    use netfailover::os::flows::conntrack::Conntrack;
    use netfailover_lab::apps::EchoServer;

    let dev = test_setup!(Netns::new("flows6-dev").unwrap());
    let net = Netns::new("flows6-net").unwrap();
    veth((&dev, "eth0"), (&net, "e0")).unwrap();
    veth((&dev, "wlan0"), (&net, "w0")).unwrap();
    for (ns, addr, iface) in [
        (&dev, "2001:db8:1::2/64", "eth0"),
        (&dev, "2001:db8:2::2/64", "wlan0"),
        (&dev, "198.51.100.2/24", "eth0"),
        (&net, "2001:db8:1::1/64", "e0"),
        (&net, "2001:db8:2::1/64", "w0"),
        (&net, "2001:db8:9::10/128", "lo"),
    ] {
        // No duplicate address detection: the addresses are usable at once.
        let mut args = vec!["addr", "add", addr, "dev", iface];
        if addr.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args).unwrap();
    }
    dev.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:1::1",
        "dev",
        "eth0",
    ])
    .unwrap();
    let server = "[2001:db8:9::10]:7000".parse::<SocketAddr>().unwrap();
    let lan_peer = "[2001:db8:1::1]:7000".parse::<SocketAddr>().unwrap();
    let _servers = (
        EchoServer::start(&net, server).unwrap(),
        EchoServer::start(&net, lan_peer).unwrap(),
    );
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let sa = |a: &str, port| SocketAddr::new(ip(a), port);
    let eth0 = dev.ifindex("eth0").unwrap();
    let (report, mut pinned, mut lan, left) = run_in_netns(&dev, || {
        let mut pinned = TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap();
        let mut lan = TcpStream::connect_timeout(&lan_peer, Duration::from_secs(5)).unwrap();
        for s in [&mut pinned, &mut lan] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            echo_once(s).unwrap();
        }
        let mut ct = Conntrack::open().unwrap();
        let peer = sa("2001:db8:9::10", 53);
        // (source, reply destination): pinned to eth0, wlan0's, to eth0's LAN peer.
        for (src, reply_src) in [
            (sa("2001:db8:1::2", 5001), peer),
            (sa("2001:db8:2::2", 5002), peer),
            (sa("2001:db8:1::2", 5003), sa("2001:db8:1::1", 53)),
        ] {
            ct.create_udp((src, reply_src), (reply_src, src), 600)
                .unwrap();
        }
        let v4 = (sa("198.51.100.2", 5004), sa("192.0.2.53", 53));
        ct.create_udp(v4, (v4.1, v4.0), 600).unwrap();
        let report = reset_blocking(&FlowScope {
            iface: IfaceName::new("eth0").unwrap(),
            ifindex: eth0,
            family: Family::V6,
            last_addresses: Vec::new(),
        });
        let left: Vec<_> = [Family::V6, Family::V4]
            .into_iter()
            .flat_map(|f| ct.dump(f).unwrap())
            .filter_map(|e| e.flow())
            .collect();
        (report, pinned, lan, left)
    })
    .unwrap();
    // At least the created entry (the TCP connections have entries too if conntrack hooks are
    // active in the namespace; the pinned one's is deleted then as well).
    assert!(
        report.sockets_destroyed == 1 && report.conntrack_deleted >= 1,
        "{report:?}"
    );
    assert!(report.failures.is_empty(), "{report:?}");
    let reply_dsts: Vec<IpAddr> = left.iter().map(|f| f.reply_dst).collect();
    for kept in ["2001:db8:2::2", "198.51.100.2"] {
        assert!(reply_dsts.contains(&ip(kept)), "{kept} kept: {left:?}");
    }
    assert!(
        left.iter()
            .any(|f| f.reply_src == ip("2001:db8:1::1") && f.reply_dst == ip("2001:db8:1::2")),
        "the LAN peer's entry kept: {left:?}"
    );
    assert!(
        !left
            .iter()
            .any(|f| f.reply_src == ip("2001:db8:9::10") && f.reply_dst == ip("2001:db8:1::2")),
        "the pinned entry deleted: {left:?}"
    );
    assert!(
        echo_once(&mut pinned).is_err(),
        "the pinned socket was aborted"
    );
    echo_once(&mut lan).expect("the LAN socket is untouched");
}
