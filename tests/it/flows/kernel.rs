//! Flow resets on the real kernel (`src/os/flows/`): a device namespace with eth0 and wlan0 and
//! an "Internet" namespace with an echo server; TCP connections through eth0 to the Internet,
//! to a peer on eth0's own subnet, bound to eth0 (SO_BINDTODEVICE) and from wlan0's address.
//! Resetting eth0's IPv4 flows must abort only the first.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use netfailover::lab::netns::{require_root, veth, Netns};
use netfailover::lab::uplinks::run_in_netns;
use netfailover::os::flows::reset_blocking;
use netfailover_actors::model::{Family, IfaceName};
use netfailover_actors::ports::FlowScope;
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
    if !require_root("reset_aborts_only_the_sockets_pinned_to_the_demoted_interface") {
        return;
    }
    let dev = Netns::new("flows-dev").unwrap();
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
