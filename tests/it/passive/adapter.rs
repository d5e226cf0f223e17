//! `NetlinkTraffic` on a real TCP connection between two namespaces: counters grow (in the
//! whole sample and in the stats dump read alone), the socket
//! is attributed to its interface by source address, and a silent blackhole on the far side
//! shows as data outstanding with no ACK and the retransmission timer firing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use netfailover::engine::ports::{IfaceTraffic, TcpPhase, TrafficSource};
use netfailover::os::traffic::NetlinkTraffic;
use netfailover_lab::netns::{veth, wait_for, Netns};
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::{block_on_in_netns, run_in_netns};

fn sample(ns: &Netns, ifindex: u32) -> IfaceTraffic {
    block_on_in_netns(ns, || async move {
        let source = NetlinkTraffic::new().expect("traffic sockets");
        source.sample(vec![ifindex]).await.expect("sample")
    })
    .expect("entering the namespace")
    .pop()
    .expect("the interface is sampled")
}

#[test]
fn sampling_sees_progress_then_a_silent_stall() {
    let dev = test_setup!(Netns::new("pa-dev").expect("device namespace"));
    let far = Netns::new("pa-far").expect("far namespace");
    veth((&dev, "up0"), (&far, "isp0")).expect("veth");
    dev.ip(&["addr", "add", "192.0.2.2/24", "dev", "up0"])
        .expect("addr");
    far.ip(&["addr", "add", "192.0.2.1/24", "dev", "isp0"])
        .expect("addr");
    let ifindex = dev.ifindex("up0").expect("ifindex");

    let listener = run_in_netns(&far, || TcpListener::bind("192.0.2.1:7000"))
        .expect("entering")
        .expect("listen");
    let server = std::thread::spawn(move || {
        // A sink: reads until the client goes away (bounded by the read timeout).
        let (mut conn, _) = listener.accept().expect("accept");
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let mut buf = [0u8; 4096];
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut client = run_in_netns(&dev, || TcpStream::connect("192.0.2.1:7000"))
        .expect("entering")
        .expect("connect");
    for _ in 0..5 {
        client.write_all(&[7u8; 1000]).expect("write");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Until the five writes are acknowledged (the sample that shows it), not a pause.
    let before = wait_for(Duration::from_secs(10), || {
        let s = sample(&dev, ifindex);
        let acked = s
            .tcp
            .iter()
            .any(|t| t.remote.port() == 7000 && t.unacked == 0 && t.bytes_acked >= 5000);
        (acked && s.tx_packets >= 5 && s.rx_packets >= 5).then_some(s)
    })
    .unwrap_or_else(|| panic!("the writes never acknowledged: {:?}", sample(&dev, ifindex)));
    assert_eq!(before.name, "up0");
    let sock = before
        .tcp
        .iter()
        .find(|s| s.remote.port() == 7000)
        .unwrap_or_else(|| panic!("our socket is attributed to up0: {before:?}"));
    assert_eq!(sock.phase, TcpPhase::Open);
    assert_eq!(sock.unacked, 0, "{sock:?}");
    assert!(sock.bytes_acked >= 5000, "{sock:?}");
    assert!(
        before.tx_packets >= 5 && before.rx_packets >= 5,
        "{before:?}"
    );
    // The counters alone (the stats dump read every period) agree with the whole sample.
    let counters = block_on_in_netns(&dev, || async move {
        let source = NetlinkTraffic::new().expect("traffic sockets");
        source.counters(vec![ifindex]).await.expect("counters")
    })
    .expect("entering the namespace");
    assert_eq!(counters.len(), 1, "{counters:?}");
    assert_eq!(counters[0].ifindex, ifindex);
    assert!(
        counters[0].tx_packets >= before.tx_packets && counters[0].rx_packets >= before.rx_packets,
        "{counters:?} after {before:?}"
    );

    // Silent blackhole on the far side: replies to the device vanish, no ICMP.
    far.ip(&["route", "add", "blackhole", "192.0.2.2/32"])
        .expect("blackhole");
    client.write_all(&[7u8; 1000]).expect("write");
    // Until the stall shows: data outstanding, retransmitted, no ACK for a second.
    let after = wait_for(Duration::from_secs(10), || {
        let s = sample(&dev, ifindex);
        let stalled = s.tcp.iter().any(|t| {
            t.cookie == sock.cookie
                && t.unacked > 0
                && t.retransmits > 0
                && t.last_ack_recv >= Duration::from_secs(1)
        });
        stalled.then_some(s)
    })
    .unwrap_or_else(|| panic!("no stall seen: {:?}", sample(&dev, ifindex)));
    let stalled = after
        .tcp
        .iter()
        .find(|s| s.cookie == sock.cookie)
        .unwrap_or_else(|| panic!("same socket, same cookie: {after:?}"));
    assert!(stalled.unacked > 0, "{stalled:?}");
    assert!(stalled.retransmits > 0, "{stalled:?}");
    assert!(
        stalled.last_ack_recv >= Duration::from_secs(1),
        "{stalled:?}"
    );
    assert_eq!(stalled.bytes_acked, sock.bytes_acked, "{stalled:?}");
    assert!(after.tx_packets > before.tx_packets, "{after:?}");
    far.ip(&["route", "del", "blackhole", "192.0.2.2/32"]).ok();
    drop(client);
    server.join().ok();
}
