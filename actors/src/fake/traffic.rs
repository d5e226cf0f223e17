//! [`FakeTraffic`]: the fake of the `TrafficSource` port (passive health), with busy TCP
//! connections computed from virtual time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::ports::{
    FlowProto, FlowSample, IfaceTraffic, PortError, PortResult, TcpPhase, TcpSocketSample,
    TrafficSource,
};

/// What the fake traffic source reports for one interface.
#[derive(Clone, PartialEq, Debug)]
pub enum FakeFlow {
    /// Exactly this sample, every time.
    Fixed(IfaceTraffic),
    /// An application keeping one TCP connection busy (5 segments a second each way), computed
    /// from virtual time: healthy until `stalled_since`, then data outstanding, no ACK, the
    /// retransmission timer firing, tx growing and rx not — a silent upstream blackhole.
    Busy {
        name: String,
        started: tokio::time::Instant,
        stalled_since: Option<tokio::time::Instant>,
        /// The connection is a container's behind the NAT bridge: no local socket, only a
        /// connection-tracking entry with the same packet counts.
        natted: bool,
    },
}

#[derive(Default)]
struct TrafficState {
    flows: BTreeMap<u32, FakeFlow>,
    samples: u64,
    /// Whole samples per ifindex (not counting counters-only reads).
    whole: BTreeMap<u32, u64>,
    fail: u32,
}

/// A traffic source whose per-interface samples the test sets (nothing by default).
#[derive(Clone, Default)]
pub struct FakeTraffic {
    state: Arc<Mutex<TrafficState>>,
}

/// Packets per second each way of [`FakeFlow::Busy`].
const BUSY_PPS: u64 = 5;

impl FakeTraffic {
    pub fn set(&self, ifindex: u32, flow: FakeFlow) {
        lock(&self.state).flows.insert(ifindex, flow);
    }

    /// A busy, healthy TCP connection on `ifindex` from now on.
    pub fn busy(&self, ifindex: u32, name: &str) {
        self.set_busy(ifindex, name, false);
    }

    /// [`FakeTraffic::busy`] for a container's connection: seen through conntrack only.
    pub fn busy_natted(&self, ifindex: u32, name: &str) {
        self.set_busy(ifindex, name, true);
    }

    fn set_busy(&self, ifindex: u32, name: &str, natted: bool) {
        self.set(
            ifindex,
            FakeFlow::Busy {
                name: name.into(),
                started: tokio::time::Instant::now(),
                stalled_since: None,
                natted,
            },
        );
    }

    /// The busy connection on `ifindex` stops getting answers now (`false`: answers again).
    pub fn stall(&self, ifindex: u32, stalled: bool) {
        if let Some(FakeFlow::Busy { stalled_since, .. }) =
            lock(&self.state).flows.get_mut(&ifindex)
        {
            *stalled_since = stalled.then(tokio::time::Instant::now);
        }
    }

    pub fn remove(&self, ifindex: u32) {
        lock(&self.state).flows.remove(&ifindex);
    }

    /// The next `n` samples fail.
    pub fn fail_samples(&self, n: u32) {
        lock(&self.state).fail = n;
    }

    /// Samples taken so far (counters-only reads included).
    pub fn samples(&self) -> u64 {
        lock(&self.state).samples
    }

    /// Whole samples (addresses, sockets, flows) of `ifindex` taken so far.
    pub fn whole_samples(&self, ifindex: u32) -> u64 {
        lock(&self.state).whole.get(&ifindex).copied().unwrap_or(0)
    }

    fn read(&self, ifindexes: &[u32], whole: bool) -> PortResult<Vec<IfaceTraffic>> {
        let mut s = lock(&self.state);
        s.samples += 1;
        if s.fail > 0 {
            s.fail -= 1;
            return Err(PortError::failed("fake traffic", "injected failure"));
        }
        let now = tokio::time::Instant::now();
        let mut out = Vec::new();
        for i in ifindexes {
            let Some(mut t) = s.flows.get(i).map(|f| f.sample(*i, now)) else {
                continue;
            };
            if whole {
                *s.whole.entry(*i).or_default() += 1;
            } else {
                t.tcp.clear();
                t.subnets.clear();
                t.flows = None;
            }
            out.push(t);
        }
        Ok(out)
    }
}

impl FakeFlow {
    fn sample(&self, ifindex: u32, now: tokio::time::Instant) -> IfaceTraffic {
        let (name, started, stalled_since, natted) = match self {
            FakeFlow::Fixed(t) => return t.clone(),
            FakeFlow::Busy {
                name,
                started,
                stalled_since,
                natted,
            } => (name, *started, *stalled_since, *natted),
        };
        let ms = |d: Duration| d.as_millis() as u64;
        let total = ms(now.duration_since(started));
        let healthy = stalled_since.map_or(total, |s| ms(s.duration_since(started)));
        let stalled = total - healthy;
        let sent = total * BUSY_PPS / 1000;
        let answered = healthy * BUSY_PPS / 1000;
        let unacked = if stalled > 0 {
            (sent - answered).max(1) as u32
        } else {
            0
        };
        let last_ack_recv = if stalled > 0 {
            stalled
        } else {
            1000 / BUSY_PPS
        };
        let flow = FlowSample {
            id: u64::from(ifindex),
            proto: FlowProto::Tcp,
            peer: std::net::IpAddr::from([203, 0, 113, 7]),
            orig_packets: sent,
            reply_packets: answered,
        };
        let socket = TcpSocketSample {
            cookie: u64::from(ifindex) << 32 | 1,
            local: std::net::SocketAddr::from(([192, 0, 2, 10], 40000)),
            remote: std::net::SocketAddr::from(([203, 0, 113, 7], 7)),
            phase: TcpPhase::Open,
            unacked,
            // The first retransmission timeout fires 200 ms after the last answer.
            retransmits: u8::from(stalled >= 200),
            total_retrans: (stalled / 200) as u32,
            last_ack_recv: Duration::from_millis(last_ack_recv),
            rtt: Duration::from_millis(20),
            bytes_acked: answered * 100,
            bytes_received: answered * 100,
        };
        IfaceTraffic {
            ifindex,
            name: name.clone(),
            rx_packets: answered,
            tx_packets: sent,
            rx_multicast: 0,
            rx_bytes: answered * 100,
            tx_bytes: sent * 100,
            tcp: if natted { vec![] } else { vec![socket] },
            subnets: vec![(std::net::IpAddr::from([192, 0, 2, 10]), 24)],
            flows: Some(if natted { vec![flow] } else { vec![] }),
        }
    }
}

impl TrafficSource for FakeTraffic {
    fn sample(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>> {
        let out = self.read(&ifindexes, true);
        async move { out }.boxed()
    }

    fn counters(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>> {
        let out = self.read(&ifindexes, false);
        async move { out }.boxed()
    }
}
