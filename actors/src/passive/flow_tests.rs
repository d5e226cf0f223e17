//! Rule tests for the flows passive health sees beyond its own sockets: conntrack stalls
//! (NATed TCP, UDP that backs off), LAN peers ignored, the hourly ceiling and the pruning of
//! per-peer state.

use super::*;
use crate::ports::{FlowProto, FlowSample, TcpSocketSample};
use std::net::{Ipv4Addr, SocketAddr};

const NAME: &str = "eth0";
const IN_USE: Context = Context {
    eligible: true,
    in_use: true,
};
/// The uplink's LAN: the device is 192.0.2.10/24, its gateway 192.0.2.1.
const GATEWAY: [u8; 4] = [192, 0, 2, 1];
const REMOTE: [u8; 4] = [203, 0, 113, 5];

fn traffic(rx: u64, tx: u64, tcp: Vec<TcpSocketSample>, flows: Vec<FlowSample>) -> IfaceTraffic {
    IfaceTraffic {
        ifindex: 2,
        name: NAME.into(),
        rx_packets: rx,
        tx_packets: tx,
        rx_multicast: 0,
        rx_bytes: 0,
        tx_bytes: 0,
        tcp,
        subnets: vec![(IpAddr::from([192, 0, 2, 10]), 24)],
        flows: Some(flows),
    }
}

fn flow(id: u64, proto: FlowProto, peer: [u8; 4], orig: u64, reply: u64) -> FlowSample {
    FlowSample {
        id,
        proto,
        peer: IpAddr::from(peer),
        orig_packets: orig,
        reply_packets: reply,
    }
}

/// A busy LAN TCP session (an SSH session to the gateway): progress every second.
fn lan_session(i: u64) -> TcpSocketSample {
    TcpSocketSample {
        cookie: 99,
        local: SocketAddr::from(([192, 0, 2, 10], 50000)),
        remote: SocketAddr::from((GATEWAY, 22)),
        phase: TcpPhase::Open,
        unacked: 1,
        retransmits: 0,
        total_retrans: 0,
        last_ack_recv: Duration::from_millis(1),
        rtt: Duration::from_micros(200),
        bytes_acked: i * 100,
        bytes_received: i * 100,
    }
}

/// Feeds one sample a second from `gen`; returns the seconds at which a trigger fired.
fn run(secs: u64, p: &RuleParams, gen: impl Fn(u64) -> IfaceTraffic) -> Vec<u64> {
    let t0 = Instant::now();
    let mut t = Tracker::default();
    (0..secs)
        .filter(|i| {
            let s = gen(*i);
            t.observe(t0 + Duration::from_secs(*i), NAME, Some(&s), IN_USE, p)
                .is_some()
        })
        .collect()
}

/// Requests sent by second `i` by a UDP client answered until second 10, then backing off
/// (resends after 1, 2, 4, 8 s): (requests, answers).
fn udp_backoff(i: u64) -> (u64, u64) {
    if i <= 10 {
        return (i, i);
    }
    let resends = [11, 12, 14, 18, 26].iter().filter(|t| **t <= i).count() as u64;
    (10 + resends, 10)
}

#[test]
fn udp_client_that_backs_off_is_a_stall_even_beside_a_lan_session() {
    let p = RuleParams::default();
    let fired = run(30, &p, |i| {
        let (orig, reply) = udp_backoff(i);
        let f = flow(1, FlowProto::Udp, REMOTE, orig, reply);
        // Link counters: the LAN session's packets go both ways, so they look two-way.
        traffic(
            100 + i * 10 + reply,
            100 + i * 10 + orig,
            vec![lan_session(i)],
            vec![f],
        )
    });
    // First unanswered request seen at 11, resent by 12: a stall, well within the bound.
    assert_eq!(fired, vec![12]);
}

#[test]
fn healthy_udp_and_a_new_flow_are_no_stall() {
    let p = RuleParams::default();
    // Answered request/response at one exchange every 3 s, and a flow that appears late.
    let fired = run(30, &p, |i| {
        let mut flows = vec![flow(1, FlowProto::Udp, REMOTE, i / 3, i / 3)];
        if i >= 20 {
            flows.push(flow(2, FlowProto::Udp, [198, 51, 100, 7], i - 19, i - 19));
        }
        traffic(i, i, vec![], flows)
    });
    assert!(fired.is_empty(), "{fired:?}");
}

#[test]
fn natted_tcp_flow_that_stops_getting_answers_is_a_stall() {
    let p = RuleParams::default();
    // A container's connection, masqueraded: 5 packets a second each way until second 8,
    // then only the original direction keeps sending (retransmissions).
    let fired = run(20, &p, |i| {
        let reply = i.min(8) * 5;
        traffic(
            reply,
            i * 5,
            vec![],
            vec![flow(7, FlowProto::Tcp, REMOTE, i * 5, reply)],
        )
    });
    // The first sample after the answers stopped.
    assert_eq!(fired, vec![9]);
}

#[test]
fn lan_sockets_and_flows_never_speak_for_the_uplink() {
    let p = RuleParams::default();
    // A stalled SSH session to the gateway and a stalled flow to a LAN peer: nothing.
    let fired = run(30, &p, |i| {
        let mut s = lan_session(0);
        s.retransmits = 1;
        s.last_ack_recv = Duration::from_secs(i + 5);
        let f = flow(1, FlowProto::Udp, [192, 0, 2, 77], i * 3, 0);
        traffic(100 + i * 10, 100 + i * 10, vec![s], vec![f])
    });
    assert!(fired.is_empty(), "{fired:?}");
    // And a progressing LAN session (one interactive segment each way a second) does not
    // switch the counter rule off: one-way UDP to the Internet (no conntrack here) beside it
    // is still suspected. (Its packets still count in the link counters: a LAN session
    // busier than `rx_noise` makes them two-way; with conntrack the UDP flow speaks itself.)
    let fired = run(30, &p, |i| {
        let mut t = traffic(100 + i, 100 + i * 51, vec![lan_session(i)], vec![]);
        t.flows = None;
        t
    });
    assert_eq!(fired, vec![2]);
}

#[test]
fn ceiling_holds_a_churn_of_dead_peers_and_memory_stays_flat() {
    let p = RuleParams::default();
    let t0 = Instant::now();
    let mut t = Tracker::default();
    let mut fired = 0;
    let mut most_charged = 0;
    // An application tries a new unreachable peer every 5 s for two hours (SYNs that get
    // no answer), while its other traffic is healthy.
    for i in 0..7200u64 {
        let k = i / 5;
        let mut syn = TcpSocketSample {
            cookie: 1000 + k,
            local: SocketAddr::from(([192, 0, 2, 10], 40000)),
            remote: SocketAddr::from((
                Ipv4Addr::from(0xCB00_7100 + (k % 250) as u32 + 0x10000 * (k / 250) as u32),
                443,
            )),
            ..lan_session(0)
        };
        syn.phase = TcpPhase::SynSent;
        syn.retransmits = 1;
        let s = traffic(i * 10, i * 10, vec![syn], vec![]);
        if t.observe(t0 + Duration::from_secs(i), NAME, Some(&s), IN_USE, &p)
            .is_some()
        {
            fired += 1;
        }
        most_charged = most_charged.max(t.charged());
    }
    // Without the ceiling: one per `min_gap` (720 in two hours).
    assert_eq!(fired, 2 * p.max_per_hour as usize);
    assert!(t.capped());
    // Each dead peer is forgotten once its back-off passed: about backoff_min / 5 s.
    assert!(most_charged <= 16, "{most_charged} peers remembered");

    // With the ceiling spent, a working flow that stops (a blackhole) is still confirmed.
    let mut blackhole_at = None;
    for i in 7200..7220u64 {
        let reply = i.min(7205) * 5;
        let f = flow(1, FlowProto::Udp, REMOTE, i * 5, reply);
        let s = traffic(i * 10, i * 10, vec![], vec![f]);
        if t.observe(t0 + Duration::from_secs(i), NAME, Some(&s), IN_USE, &p)
            .is_some()
        {
            blackhole_at.get_or_insert(i);
        }
    }
    assert_eq!(blackhole_at, Some(7206));
}

#[test]
fn slow_request_response_with_late_answers_is_no_stall() {
    let p = RuleParams::default();
    // One request a second whose answer (RTT 600 ms) lands after the next sample half the
    // time: each sample sees at most one unanswered request.
    let fired = run(60, &p, |i| {
        let (orig, reply) = if i % 2 == 0 { (i, i) } else { (i, i - 1) };
        traffic(
            reply,
            orig,
            vec![],
            vec![flow(3, FlowProto::Udp, REMOTE, orig, reply)],
        )
    });
    assert!(fired.is_empty(), "{fired:?}");
}

#[test]
fn answered_since_counts_uplink_answers_only() {
    let p = RuleParams::default();
    let t0 = Instant::now();
    let wan = |acked: u64| TcpSocketSample {
        cookie: 7,
        remote: SocketAddr::from((REMOTE, 443)),
        bytes_acked: acked,
        ..lan_session(0)
    };
    let sample = |i: u64, acked: u64, orig: u64, reply: u64| {
        let f = flow(1, FlowProto::Udp, REMOTE, orig, reply);
        traffic(10, 10, vec![lan_session(i), wan(acked)], vec![f])
    };
    let mut t = Tracker::default();
    t.observe(t0, NAME, Some(&sample(0, 100, 10, 5)), IN_USE, &p);
    let since = t0 + Duration::from_millis(1);
    // Only the LAN session progressed, the flow kept sending unanswered: no answer.
    assert!(!t.answered_since(since, &sample(5, 100, 14, 5)));
    // The flow's counters restarted (a new entry under the same id): nothing to compare.
    assert!(!t.answered_since(since, &sample(0, 100, 2, 1)));
    // The uplink's socket got an ACK, or the flow a reply: answered.
    assert!(t.answered_since(since, &sample(0, 200, 10, 5)));
    assert!(t.answered_since(since, &sample(0, 100, 12, 6)));
    // Progress seen in a sample fed at or after `since` counts without a fresh one.
    let t1 = t0 + Duration::from_secs(1);
    t.observe(t1, NAME, Some(&sample(1, 200, 12, 6)), IN_USE, &p);
    let same = sample(1, 200, 12, 6);
    assert!(t.answered_since(t1, &same));
    assert!(!t.answered_since(t1 + Duration::from_millis(1), &same));
}
