//! Table tests of the suspicion rule: generated traffic patterns over virtual seconds, and
//! the back-off of repeated evidence.

use super::*;
use crate::ports::TcpSocketSample;
use std::net::SocketAddr;

const NAME: &str = "eth0";
const IN_USE: Context = Context {
    eligible: true,
    in_use: true,
};

fn sock(cookie: u64, peer: [u8; 4]) -> TcpSocketSample {
    TcpSocketSample {
        cookie,
        local: SocketAddr::from(([192, 0, 2, 10], 40000 + cookie as u16)),
        remote: SocketAddr::from((peer, 443)),
        phase: TcpPhase::Open,
        unacked: 0,
        retransmits: 0,
        total_retrans: 0,
        last_ack_recv: Duration::from_millis(50),
        rtt: Duration::from_millis(30),
        bytes_acked: 0,
        bytes_received: 0,
    }
}

fn traffic(rx: u64, tx: u64, tcp: Vec<TcpSocketSample>) -> IfaceTraffic {
    IfaceTraffic {
        ifindex: 2,
        name: NAME.into(),
        rx_packets: rx,
        tx_packets: tx,
        rx_multicast: 0,
        rx_bytes: 0,
        tx_bytes: 0,
        tcp,
        subnets: vec![],
        flows: None,
    }
}

/// Sample `i` of a sequence, one per second.
type Gen = fn(u64) -> Option<IfaceTraffic>;

/// Feeds `secs` samples a second apart; returns the seconds at which a trigger fired.
fn run(gen: Gen, ctx: Context, secs: u64) -> Vec<u64> {
    let p = RuleParams::default();
    let t0 = Instant::now();
    let mut t = Tracker::default();
    (0..secs)
        .filter(|i| {
            let s = gen(*i);
            t.observe(t0 + Duration::from_secs(*i), NAME, s.as_ref(), ctx, &p)
                .is_some()
        })
        .collect()
}

fn bulk_download(i: u64) -> Option<IfaceTraffic> {
    let mut s = sock(1, [203, 0, 113, 5]);
    s.bytes_received = i * 1_000_000;
    s.bytes_acked = 300;
    Some(traffic(i * 700, i * 350, vec![s]))
}

/// A slow request/response application: 2 exchanges a second, tx twice rx (its ACKs).
fn slow_echo(i: u64) -> Option<IfaceTraffic> {
    let mut s = sock(1, [203, 0, 113, 5]);
    s.bytes_acked = i * 64;
    s.bytes_received = i * 64;
    Some(traffic(i * 2, i * 4, vec![s]))
}

fn idle(_: u64) -> Option<IfaceTraffic> {
    let mut s = sock(1, [203, 0, 113, 5]);
    s.last_ack_recv = Duration::from_secs(600);
    Some(traffic(40, 40, vec![s]))
}

fn one_way_udp(i: u64) -> Option<IfaceTraffic> {
    Some(traffic(10, 10 + i * 50, vec![]))
}

/// IPv6 DAD, router solicitations and MLD reports at link up, unanswered, then silence.
fn link_up_burst(i: u64) -> Option<IfaceTraffic> {
    Some(traffic(0, [0, 4, 5, 6, 6][i.min(4) as usize], vec![]))
}

/// Busy until second 5, then nothing comes back.
fn tcp_stall(i: u64) -> Option<IfaceTraffic> {
    let healthy = i.min(5);
    let mut s = sock(1, [203, 0, 113, 5]);
    s.bytes_acked = healthy * 500;
    s.bytes_received = healthy * 500;
    if i > 5 {
        s.unacked = 3;
        s.retransmits = 1;
        s.last_ack_recv = Duration::from_secs(i - 5);
    }
    Some(traffic(healthy * 5, i * 5, vec![s]))
}

/// Only ARP replies and multicast come in while the device keeps sending.
fn arp_only_rx(i: u64) -> Option<IfaceTraffic> {
    let mut t = traffic(100 + i * 12, 100 + i * 10, vec![]);
    t.rx_multicast = i * 11; // 11 of the 12 a second are multicast, 1 an ARP reply
    Some(t)
}

/// Healthy two-way traffic whose 32-bit counters wrap at second 3.
fn wrapping(i: u64) -> Option<IfaceTraffic> {
    let base = u64::from(u32::MAX) - 250;
    let at = |n: u64| (base + n) % (1 << 32);
    Some(traffic(at(i * 100), at(i * 100), vec![]))
}

/// One-way until second 4, then the interface is renamed.
fn renamed(i: u64) -> Option<IfaceTraffic> {
    let mut t = traffic(10, 10 + i * 50, vec![]);
    if i >= 1 {
        t.name = "eth9".into();
    }
    Some(t)
}

/// One-way, but the interface vanishes before a window is complete.
fn removed(i: u64) -> Option<IfaceTraffic> {
    (i == 0).then(|| traffic(10, 10, vec![]))
}

/// A SYN that never gets an answer.
fn syn_unanswered(i: u64) -> Option<IfaceTraffic> {
    let mut s = sock(1, [198, 51, 100, 9]);
    s.phase = TcpPhase::SynSent;
    s.retransmits = u8::from(i >= 1);
    Some(traffic(20, 20 + i, vec![s]))
}

/// A socket that sends after a long idle pause: ACK timer old, but the data is fresh and
/// answered within the window.
fn idle_then_send(i: u64) -> Option<IfaceTraffic> {
    let mut s = sock(1, [203, 0, 113, 5]);
    s.bytes_acked = 1000;
    s.last_ack_recv = Duration::from_secs(600 + i);
    if i == 3 {
        s.unacked = 1; // sent just now
    }
    if i >= 4 {
        s.bytes_acked = 2000;
        s.last_ack_recv = Duration::from_millis(100);
    }
    Some(traffic(40 + i, 40 + i, vec![s]))
}

#[test]
fn table() {
    let standby = Context {
        eligible: true,
        in_use: false,
    };
    let not_full = Context {
        eligible: false,
        in_use: true,
    };
    let cases: &[(&str, Gen, Context, &[u64])] = &[
        ("healthy bulk download", bulk_download, IN_USE, &[]),
        ("idle link", idle, IN_USE, &[]),
        (
            "slow request/response (tx twice rx)",
            slow_echo,
            IN_USE,
            &[],
        ),
        ("one-way UDP: one confirmation", one_way_udp, IN_USE, &[2]),
        ("link-up burst, then idle", link_up_burst, IN_USE, &[]),
        ("one-way UDP on a standby", one_way_udp, standby, &[]),
        ("TCP stalled with data outstanding", tcp_stall, IN_USE, &[6]),
        ("TCP stalled, interface not FULL", tcp_stall, not_full, &[]),
        ("TCP stalled on a standby", tcp_stall, standby, &[6]),
        ("ARP-only rx counts as no rx", arp_only_rx, IN_USE, &[2]),
        ("counters wrapping", wrapping, IN_USE, &[]),
        ("interface renamed", renamed, IN_USE, &[]),
        ("interface removed", removed, IN_USE, &[]),
        ("SYN unanswered", syn_unanswered, standby, &[1]),
        ("idle, then one answered send", idle_then_send, IN_USE, &[]),
    ];
    for (what, gen, ctx, want) in cases {
        assert_eq!(run(*gen, *ctx, 30), *want, "{what}");
    }
}

#[test]
fn same_evidence_backs_off_doubling_up_to_the_interval() {
    let p = RuleParams {
        backoff_max: Duration::from_secs(300),
        // The back-off alone (the hourly ceiling is tested in `flow_tests.rs`).
        max_per_hour: 1000,
        ..RuleParams::default()
    };
    let t0 = Instant::now();
    let mut t = Tracker::default();
    let mut fired = Vec::new();
    for i in 0..1200u64 {
        let s = one_way_udp(i);
        if t.observe(t0 + Duration::from_secs(i), NAME, s.as_ref(), IN_USE, &p)
            .is_some()
        {
            fired.push(i);
        }
    }
    // 60 s, then 120, 240, then capped at 300.
    assert_eq!(fired, vec![2, 62, 182, 422, 722, 1022]);
}

#[test]
fn new_evidence_at_once_but_one_per_min_gap() {
    let p = RuleParams::default();
    let t0 = Instant::now();
    let mut t = Tracker::default();
    // Peers stall one after another, each a new piece of evidence: every socket gets a
    // new peer address from second `k` on.
    let mut fired = Vec::new();
    for i in 0..40u64 {
        let socks: Vec<TcpSocketSample> = (0..=(i / 3))
            .map(|k| {
                let mut s = sock(k + 1, [203, 0, 113, (k + 1) as u8]);
                s.phase = TcpPhase::SynSent;
                s.retransmits = 1;
                s
            })
            .collect();
        let s = traffic(100 + i * 10, 100 + i * 10, socks);
        if t.observe(t0 + Duration::from_secs(i), NAME, Some(&s), IN_USE, &p)
            .is_some()
        {
            fired.push(i);
        }
    }
    assert_eq!(fired, vec![0, 10, 20, 30]);
}

#[test]
fn a_stall_that_clears_is_new_evidence_next_time() {
    let p = RuleParams::default();
    let t0 = Instant::now();
    let mut t = Tracker::default();
    let peer = [203, 0, 113, 5];
    let mut acked = 0;
    let mut fired = Vec::new();
    for i in 0..40u64 {
        let stalled = (2..5).contains(&i) || (20..25).contains(&i);
        let mut s = sock(1, peer);
        if stalled {
            s.unacked = 2;
            s.retransmits = 1;
            s.last_ack_recv = Duration::from_secs(2);
        } else {
            acked += 100;
        }
        s.bytes_acked = acked;
        let tr = traffic(i * 10, i * 10, vec![s]);
        if t.observe(t0 + Duration::from_secs(i), NAME, Some(&tr), IN_USE, &p)
            .is_some()
        {
            fired.push(i);
        }
    }
    // The second stall is new evidence (progress in between), not held by the 60 s back-off.
    assert_eq!(fired, vec![2, 20]);
    assert!(t.suspect_since().is_none());
}

#[test]
fn counter_deltas() {
    assert_eq!(delta(5, 9), Some(4));
    assert_eq!(delta(u64::from(u32::MAX) - 1, 3), Some(5));
    assert_eq!(delta(1 << 40, 3), None);
}
