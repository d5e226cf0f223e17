//! In-memory fakes of every port (feature `fake`), for deterministic tests and benches in
//! virtual time.
//!
//! [`FakeKernel`] behaves like the parts of Linux the engine relies on: links with carrier and
//! admin state, a main table keyed by (family, metric) that refuses duplicates, IPv4 routes
//! deleted silently on admin down and kept (`linkdown`) on carrier loss, notifications to every
//! subscriber, and sysctls. Tests drive it (pull a cable, delete a route by hand, fail the next
//! writes) and inspect it (the route the kernel would use, gaps without a default route).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::flows::{ConntrackFlow, Pinned, SocketFlow};
use crate::model::{Event, Family, IfaceAddr, IfaceName, KernelRoute, LinkInfo, LinkKind};
use crate::ports::{
    EngineState, FlowFailure, FlowResetReport, FlowScope, FlowTable, Journal, JournalState,
    LinkSource, LinkUpdate, PortError, PortResult, Ports, Probe, ProbeReport, ProbeRequest,
    RouteTable, ScriptOutcome, ScriptResult, ScriptRunner, StateStore, Sysctl, Verdict,
};
use crate::ports::{IfaceTraffic, TcpPhase, TcpSocketSample, TrafficSource};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Test fakes: a poisoned lock still holds usable data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Kernel
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct KernelState {
    links: BTreeMap<u32, LinkInfo>,
    routes: Vec<KernelRoute>,
    addresses: Vec<(u32, IfaceAddr)>,
    sysctls: HashMap<String, String>,
    subscribers: Vec<mpsc::UnboundedSender<LinkUpdate>>,
    next_ifindex: u32,
    fail_writes: u32,
    fail_subscribe: u32,
    writes: u64,
    /// Wall-clock time of the last successful route write (benches).
    last_write: Option<std::time::Instant>,
    /// Wall-clock time a subscriber last took a link update off its stream (benches).
    last_delivery: Arc<Mutex<Option<std::time::Instant>>>,
    /// Route writes after which some family that had a default route had none.
    gaps: u64,
    /// Every successful route write, in order: what each one did, for tests that must see
    /// transient states (a penalty applied and removed between two observations).
    write_log: Vec<RouteWrite>,
    /// How long each route write takes to be acknowledged (a netlink round trip).
    write_delay: Duration,
    /// Router Solicitations sent, by ifindex, in order.
    solicitations: Vec<u32>,
    /// Modem control devices and their network interface (a fake sysfs).
    control_devices: HashMap<String, IfaceName>,
}

/// One route write the fake kernel accepted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RouteWrite {
    Add(KernelRoute),
    Replace(KernelRoute),
    Delete(KernelRoute),
}

impl RouteWrite {
    pub fn route(&self) -> &KernelRoute {
        match self {
            RouteWrite::Add(r) | RouteWrite::Replace(r) | RouteWrite::Delete(r) => r,
        }
    }
}

impl KernelState {
    fn notify(&mut self, update: LinkUpdate) {
        self.subscribers.retain(|s| s.send(update.clone()).is_ok());
    }

    fn has_default(&self, family: Family) -> bool {
        self.routes.iter().any(|r| r.family == family)
    }
}

/// See the module doc. Clones share the same kernel.
#[derive(Clone, Default)]
pub struct FakeKernel {
    state: Arc<Mutex<KernelState>>,
}

impl FakeKernel {
    pub fn new() -> Self {
        let k = Self::default();
        lock(&k.state).next_ifindex = 2;
        k.sysctl_set("net.ipv4.conf.all.rp_filter", "0");
        k
    }

    fn ifindex_of(&self, name: &str) -> u32 {
        lock(&self.state)
            .links
            .values()
            .find(|l| l.name.as_str() == name)
            .map(|l| l.ifindex)
            .unwrap_or_else(|| panic!("fake kernel: no link {name}"))
    }

    /// Adds a link (up, with carrier) and returns its ifindex.
    pub fn add_link(&self, name: &str, kind: LinkKind) -> u32 {
        let mut s = lock(&self.state);
        let ifindex = s.next_ifindex;
        s.next_ifindex += 1;
        let info = LinkInfo {
            ifindex,
            name: IfaceName::new(name).expect("fake kernel: test used a bad interface name"),
            kind,
            admin_up: true,
            carrier: true,
            carrier_changes: 1,
            mac: Some([2, 0, 0, 0, (ifindex >> 8) as u8, ifindex as u8]),
        };
        s.links.insert(ifindex, info.clone());
        s.sysctls
            .insert(format!("net.ipv4.conf.{name}.rp_filter"), "0".into());
        s.notify(LinkUpdate::Link(info));
        ifindex
    }

    fn change_link(&self, name: &str, f: impl FnOnce(&mut LinkInfo)) {
        let ifindex = self.ifindex_of(name);
        let mut s = lock(&self.state);
        let Some(link) = s.links.get_mut(&ifindex) else {
            return;
        };
        f(link);
        let info = link.clone();
        s.notify(LinkUpdate::Link(info));
    }

    /// Carrier on/off (the peer pulled the cable): routes stay, like `linkdown` routes.
    pub fn set_carrier(&self, name: &str, carrier: bool) {
        self.change_link(name, |l| {
            if l.carrier != carrier {
                l.carrier = carrier;
                l.carrier_changes += 1;
            }
        });
    }

    /// Carrier change whose notification is lost (as in a netlink overrun).
    pub fn set_carrier_unannounced(&self, name: &str, carrier: bool) {
        let ifindex = self.ifindex_of(name);
        if let Some(l) = lock(&self.state).links.get_mut(&ifindex) {
            l.carrier = carrier;
            l.carrier_changes += 1;
        }
    }

    /// Admin up/down. Like Linux, admin down deletes the link's IPv4 routes without telling
    /// and flushes its IPv6 addresses.
    pub fn set_admin(&self, name: &str, up: bool) {
        let ifindex = self.ifindex_of(name);
        if !up {
            let mut s = lock(&self.state);
            s.routes
                .retain(|r| !(r.ifindex == ifindex && r.family == Family::V4));
            // Linux also flushes the link's IPv6 addresses on admin down.
            s.addresses
                .retain(|(i, a)| !(*i == ifindex && a.addr.is_ipv6()));
        }
        self.change_link(name, |l| l.admin_up = up);
    }

    /// A down/up flap the kernel merged into one message: only the counter moves.
    pub fn merged_flap(&self, name: &str) {
        self.change_link(name, |l| l.carrier_changes += 2);
    }

    pub fn remove_link(&self, name: &str) {
        let ifindex = self.ifindex_of(name);
        let mut s = lock(&self.state);
        s.links.remove(&ifindex);
        s.routes.retain(|r| r.ifindex != ifindex);
        s.notify(LinkUpdate::Removed { ifindex });
    }

    /// A route added by someone else (a DHCP client, an admin).
    pub fn add_route_by_hand(&self, route: KernelRoute) {
        let mut s = lock(&self.state);
        s.routes.push(route);
        s.notify(LinkUpdate::RoutesChanged);
    }

    /// Makes `device` a modem control device whose network interface is `iface`.
    pub fn set_control_device(&self, device: &str, iface: &str) {
        let name = IfaceName::new(iface).expect("fake kernel: bad interface name in test");
        lock(&self.state)
            .control_devices
            .insert(device.to_string(), name);
    }

    /// Router Solicitations the engine sent, by ifindex, in order.
    pub fn solicitations(&self) -> Vec<u32> {
        lock(&self.state).solicitations.clone()
    }

    pub fn delete_route_by_hand(&self, route: &KernelRoute) {
        let mut s = lock(&self.state);
        s.routes.retain(|r| r != route);
        s.notify(LinkUpdate::RoutesChanged);
    }

    /// Signals a lost-notifications overrun to every subscriber.
    pub fn overrun(&self) {
        lock(&self.state).notify(LinkUpdate::Overrun);
    }

    /// Makes the next `n` route writes fail.
    pub fn fail_route_writes(&self, n: u32) {
        lock(&self.state).fail_writes = n;
    }

    /// Makes the next `n` subscriptions fail.
    pub fn fail_subscriptions(&self, n: u32) {
        lock(&self.state).fail_subscribe = n;
    }

    pub fn routes(&self) -> Vec<KernelRoute> {
        let mut r = lock(&self.state).routes.clone();
        r.sort_by_key(|r| (r.family, r.metric));
        r
    }

    /// The default route the kernel would use for `family`: the lowest metric, `linkdown`
    /// routes included (as Linux does unless ignore_routes_with_linkdown is set).
    pub fn best_route(&self, family: Family) -> Option<KernelRoute> {
        lock(&self.state)
            .routes
            .iter()
            .filter(|r| r.family == family)
            .min_by_key(|r| r.metric)
            .cloned()
    }

    /// The interface the kernel would use for IPv4 traffic.
    pub fn best_iface(&self) -> Option<String> {
        self.best_iface_of(Family::V4)
    }

    /// The interface the kernel would use for `family`'s traffic.
    pub fn best_iface_of(&self, family: Family) -> Option<String> {
        let r = self.best_route(family)?;
        lock(&self.state)
            .links
            .get(&r.ifindex)
            .map(|l| l.name.to_string())
    }

    pub fn link(&self, name: &str) -> LinkInfo {
        let ifindex = self.ifindex_of(name);
        lock(&self.state).links[&ifindex].clone()
    }

    pub fn addresses(&self) -> Vec<(u32, IfaceAddr)> {
        lock(&self.state).addresses.clone()
    }

    pub fn sysctl_set(&self, key: &str, value: &str) {
        lock(&self.state).sysctls.insert(key.into(), value.into());
    }

    pub fn sysctl_get(&self, key: &str) -> Option<String> {
        lock(&self.state).sysctls.get(key).cloned()
    }

    /// Route writes so far.
    pub fn writes(&self) -> u64 {
        lock(&self.state).writes
    }

    /// Makes every route write take `d` of (virtual) time before it is acknowledged, so other
    /// messages queue up behind a reconcile as they do on a real, busy system.
    pub fn set_write_delay(&self, d: Duration) {
        lock(&self.state).write_delay = d;
    }

    /// Acknowledges a write after the configured delay.
    fn acked(&self, r: PortResult<()>) -> BoxFuture<'static, PortResult<()>> {
        let delay = lock(&self.state).write_delay;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            r
        }
        .boxed()
    }

    /// Every successful route write so far, in order.
    pub fn write_log(&self) -> Vec<RouteWrite> {
        lock(&self.state).write_log.clone()
    }

    /// Wall-clock time a subscriber last took a link update off its stream.
    pub fn last_delivery_at(&self) -> Option<std::time::Instant> {
        *lock(&lock(&self.state).last_delivery)
    }

    /// Wall-clock time of the last successful route write.
    pub fn last_write_at(&self) -> Option<std::time::Instant> {
        lock(&self.state).last_write
    }

    /// Route writes that left a family without any default route it had before.
    pub fn gaps(&self) -> u64 {
        lock(&self.state).gaps
    }

    fn write(
        &self,
        what: RouteWrite,
        op: impl FnOnce(&mut KernelState) -> PortResult<()>,
    ) -> PortResult<()> {
        let mut s = lock(&self.state);
        if s.fail_writes > 0 {
            s.fail_writes -= 1;
            return Err(PortError::failed(format!("{what:?}"), "injected failure"));
        }
        s.writes += 1;
        s.last_write = Some(std::time::Instant::now());
        let before = [s.has_default(Family::V4), s.has_default(Family::V6)];
        op(&mut s)?;
        s.write_log.push(what);
        let after = [s.has_default(Family::V4), s.has_default(Family::V6)];
        let any_link_usable = s.links.values().any(LinkInfo::usable);
        if any_link_usable && before.iter().zip(after).any(|(b, a)| *b && !a) {
            s.gaps += 1;
        }
        s.notify(LinkUpdate::RoutesChanged);
        Ok(())
    }
}

impl LinkSource for FakeKernel {
    fn subscribe(&self) -> BoxFuture<'static, PortResult<BoxStream<'static, LinkUpdate>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut s = lock(&self.state);
        let result = if s.fail_subscribe > 0 {
            s.fail_subscribe -= 1;
            Err(PortError::failed("subscribe", "injected failure"))
        } else {
            s.subscribers.push(tx);
            Ok(tokio_stream_from(rx, s.last_delivery.clone()))
        };
        async move { result }.boxed()
    }

    fn dump(&self) -> BoxFuture<'static, PortResult<Vec<LinkInfo>>> {
        let links = lock(&self.state).links.values().cloned().collect();
        async move { Ok(links) }.boxed()
    }

    fn control_device_net(&self, device: &str) -> Option<IfaceName> {
        lock(&self.state).control_devices.get(device).cloned()
    }
}

fn tokio_stream_from(
    mut rx: mpsc::UnboundedReceiver<LinkUpdate>,
    delivered: Arc<Mutex<Option<std::time::Instant>>>,
) -> BoxStream<'static, LinkUpdate> {
    futures::stream::poll_fn(move |cx| {
        let next = rx.poll_recv(cx);
        if let std::task::Poll::Ready(Some(LinkUpdate::Link(_))) = &next {
            *lock(&delivered) = Some(std::time::Instant::now());
        }
        next
    })
    .boxed()
}

impl RouteTable for FakeKernel {
    fn list_defaults(&self) -> BoxFuture<'static, PortResult<Vec<KernelRoute>>> {
        let routes = lock(&self.state).routes.clone();
        async move { Ok(routes) }.boxed()
    }

    fn add(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let r = self.write(RouteWrite::Add(route.clone()), |s| {
            if s.routes
                .iter()
                .any(|k| k.family == route.family && k.metric == route.metric)
            {
                return Err(PortError::Exists {
                    what: format!("route metric {}", route.metric),
                });
            }
            s.routes.push(route);
            Ok(())
        });
        self.acked(r)
    }

    fn replace(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let r = self.write(RouteWrite::Replace(route.clone()), |s| {
            s.routes
                .retain(|k| !(k.family == route.family && k.metric == route.metric));
            s.routes.push(route);
            Ok(())
        });
        self.acked(r)
    }

    fn delete(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let r = self.write(RouteWrite::Delete(route.clone()), |s| {
            let before = s.routes.len();
            s.routes.retain(|k| k != &route);
            if s.routes.len() == before {
                return Err(PortError::NotFound {
                    what: format!("route metric {}", route.metric),
                });
            }
            Ok(())
        });
        self.acked(r)
    }

    fn solicit_router(&self, ifindex: u32, _: IfaceName) -> BoxFuture<'static, PortResult<()>> {
        lock(&self.state).solicitations.push(ifindex);
        async { Ok(()) }.boxed()
    }

    fn ensure_address(&self, ifindex: u32, addr: IfaceAddr) -> BoxFuture<'static, PortResult<()>> {
        let mut s = lock(&self.state);
        if !s.addresses.contains(&(ifindex, addr)) {
            s.addresses.push((ifindex, addr));
        }
        async move { Ok(()) }.boxed()
    }
}

impl Sysctl for FakeKernel {
    fn read(&self, key: String) -> BoxFuture<'static, PortResult<String>> {
        let v = lock(&self.state)
            .sysctls
            .get(&key)
            .cloned()
            .ok_or(PortError::NotFound { what: key });
        async move { v }.boxed()
    }

    fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>> {
        lock(&self.state).sysctls.insert(key, value);
        async move { Ok(()) }.boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// Probe
// ---------------------------------------------------------------------------------------------

/// What the fake probe answers for one interface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProbeBehaviour {
    /// Answer this verdict after the delay.
    Answer(Verdict, Duration),
    /// Never finish (a hung check).
    Hang,
}

#[derive(Default)]
struct ProbeState {
    behaviour: HashMap<IfaceName, ProbeBehaviour>,
    checks: Vec<(IfaceName, tokio::time::Instant)>,
    last_request: HashMap<IfaceName, ProbeRequest>,
}

/// A probe whose answers the test sets per interface (FULL after 10 ms by default).
#[derive(Clone, Default)]
pub struct FakeProbe {
    state: Arc<Mutex<ProbeState>>,
}

impl FakeProbe {
    pub fn set(&self, iface: &str, verdict: Verdict) {
        self.set_behaviour(
            iface,
            ProbeBehaviour::Answer(verdict, Duration::from_millis(10)),
        );
    }

    pub fn set_behaviour(&self, iface: &str, b: ProbeBehaviour) {
        let name = IfaceName::new(iface).expect("fake probe: bad interface name in test");
        lock(&self.state).behaviour.insert(name, b);
    }

    /// The last request checked on `iface`.
    pub fn last_request(&self, iface: &str) -> Option<ProbeRequest> {
        lock(&self.state)
            .last_request
            .iter()
            .find(|(n, _)| n.as_str() == iface)
            .map(|(_, r)| r.clone())
    }

    /// Times of the checks started on `iface`.
    pub fn checks(&self, iface: &str) -> Vec<tokio::time::Instant> {
        lock(&self.state)
            .checks
            .iter()
            .filter(|(n, _)| n.as_str() == iface)
            .map(|(_, t)| *t)
            .collect()
    }
}

impl Probe for FakeProbe {
    fn check(&self, request: ProbeRequest) -> BoxFuture<'static, ProbeReport> {
        let mut s = lock(&self.state);
        s.last_request
            .insert(request.iface.clone(), request.clone());
        s.checks
            .push((request.iface.clone(), tokio::time::Instant::now()));
        let b = s
            .behaviour
            .get(&request.iface)
            .copied()
            .unwrap_or(ProbeBehaviour::Answer(
                Verdict::Full,
                Duration::from_millis(10),
            ));
        async move {
            match b {
                ProbeBehaviour::Answer(verdict, delay) => {
                    tokio::time::sleep(delay).await;
                    ProbeReport {
                        verdict,
                        reason: format!("fake {verdict:?}"),
                        bytes: 600,
                        dns_bytes: 0,
                        elapsed: delay,
                    }
                }
                ProbeBehaviour::Hang => futures::future::pending().await,
            }
        }
        .boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic (passive health)
// ---------------------------------------------------------------------------------------------

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
    },
}

#[derive(Default)]
struct TrafficState {
    flows: BTreeMap<u32, FakeFlow>,
    samples: u64,
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
        self.set(
            ifindex,
            FakeFlow::Busy {
                name: name.into(),
                started: tokio::time::Instant::now(),
                stalled_since: None,
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

    /// Samples taken so far.
    pub fn samples(&self) -> u64 {
        lock(&self.state).samples
    }
}

impl FakeFlow {
    fn sample(&self, ifindex: u32, now: tokio::time::Instant) -> IfaceTraffic {
        let (name, started, stalled_since) = match self {
            FakeFlow::Fixed(t) => return t.clone(),
            FakeFlow::Busy {
                name,
                started,
                stalled_since,
            } => (name, *started, *stalled_since),
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
        IfaceTraffic {
            ifindex,
            name: name.clone(),
            rx_packets: answered,
            tx_packets: sent,
            rx_multicast: 0,
            tcp: vec![TcpSocketSample {
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
            }],
        }
    }
}

impl TrafficSource for FakeTraffic {
    fn sample(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>> {
        let mut s = lock(&self.state);
        s.samples += 1;
        if s.fail > 0 {
            s.fail -= 1;
            return async { Err(PortError::failed("fake traffic", "injected failure")) }.boxed();
        }
        let now = tokio::time::Instant::now();
        let out: Vec<IfaceTraffic> = ifindexes
            .iter()
            .filter_map(|i| s.flows.get(i).map(|f| f.sample(*i, now)))
            .collect();
        async move { Ok(out) }.boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts and persistence
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct ScriptState {
    started: Vec<Event>,
    finished: Vec<Event>,
    duration: Duration,
    running: usize,
}

/// Records the events it "runs"; each run takes `duration` of (virtual) time.
#[derive(Clone, Default)]
pub struct FakeScripts {
    state: Arc<Mutex<ScriptState>>,
}

/// Decrements the running count even when the run is dropped (the Dispatcher was killed).
struct RunningGuard(Arc<Mutex<ScriptState>>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        lock(&self.0).running -= 1;
    }
}

impl FakeScripts {
    pub fn set_duration(&self, d: Duration) {
        lock(&self.state).duration = d;
    }

    /// Events whose scripts ran to the end, in order.
    pub fn finished(&self) -> Vec<Event> {
        lock(&self.state).finished.clone()
    }

    /// Events whose scripts were started (a killed run appears here twice).
    pub fn started(&self) -> Vec<Event> {
        lock(&self.state).started.clone()
    }

    /// Script runs in progress (0 after a kill: the run was stopped with its Dispatcher).
    pub fn running(&self) -> usize {
        lock(&self.state).running
    }
}

impl ScriptRunner for FakeScripts {
    fn run(&self, event: Event) -> BoxFuture<'static, Vec<ScriptOutcome>> {
        let state = self.state.clone();
        let duration = {
            let mut s = lock(&state);
            s.started.push(event.clone());
            s.running += 1;
            s.duration
        };
        async move {
            let _guard = RunningGuard(state.clone());
            tokio::time::sleep(duration).await;
            lock(&state).finished.push(event);
            vec![ScriptOutcome {
                script: "fake".into(),
                result: ScriptResult::Exited { code: 0 },
                elapsed: duration,
            }]
        }
        .boxed()
    }
}

/// In-memory journal; clones share it (a "daemon restart" is a new engine on the same one).
#[derive(Clone, Default)]
pub struct MemJournal {
    state: Arc<Mutex<JournalState>>,
    saves: Arc<Mutex<VecDeque<usize>>>,
    stalled: Arc<Mutex<bool>>,
    id_floor: Arc<Mutex<u64>>,
    corrupt: Arc<Mutex<bool>>,
}

impl MemJournal {
    pub fn get(&self) -> JournalState {
        lock(&self.state).clone()
    }

    /// The id floor the journal reports (a boot-time clock in production).
    pub fn set_id_floor(&self, floor: u64) {
        *lock(&self.id_floor) = floor;
    }

    /// While corrupt, loads fail (an unreadable journal file).
    pub fn set_corrupt(&self, corrupt: bool) {
        *lock(&self.corrupt) = corrupt;
    }

    /// While stalled, saves never finish (a stuck disk).
    pub fn set_stalled(&self, stalled: bool) {
        *lock(&self.stalled) = stalled;
    }
}

impl Journal for MemJournal {
    fn load(&self) -> BoxFuture<'static, PortResult<JournalState>> {
        if *lock(&self.corrupt) {
            let e = PortError::failed("journal", "not valid JSON");
            return async move { Err(e) }.boxed();
        }
        let s = lock(&self.state).clone();
        async move { Ok(s) }.boxed()
    }

    fn id_floor(&self) -> u64 {
        *lock(&self.id_floor)
    }

    fn save(&self, state: JournalState) -> BoxFuture<'static, PortResult<()>> {
        if *lock(&self.stalled) {
            return futures::future::pending().boxed();
        }
        lock(&self.saves).push_back(state.pending.len());
        *lock(&self.state) = state;
        async move { Ok(()) }.boxed()
    }
}

/// In-memory state store; clones share it.
#[derive(Clone, Default)]
pub struct MemStateStore {
    state: Arc<Mutex<EngineState>>,
}

impl MemStateStore {
    pub fn get(&self) -> EngineState {
        lock(&self.state).clone()
    }
}

impl StateStore for MemStateStore {
    fn load(&self) -> BoxFuture<'static, PortResult<EngineState>> {
        let s = lock(&self.state).clone();
        async move { Ok(s) }.boxed()
    }

    fn save(&self, state: EngineState) -> BoxFuture<'static, PortResult<()>> {
        *lock(&self.state) = state;
        async move { Ok(()) }.boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct FlowsState {
    addresses: BTreeMap<u32, Vec<IfaceAddr>>,
    sockets: Vec<SocketFlow>,
    conntrack: Vec<ConntrackFlow>,
    resets: Vec<FakeReset>,
    failure: Option<FlowFailure>,
    delay: Duration,
    /// The kernel whose route in use each reset records.
    kernel: Option<FakeKernel>,
}

/// One reset the engine asked for.
#[derive(Clone, Debug)]
pub struct FakeReset {
    pub scope: FlowScope,
    /// Virtual time it started.
    pub at: tokio::time::Instant,
    /// The interface of the kernel's route in use for the scope's family when it started
    /// (the routes must have moved already).
    pub route_in_use: Option<String>,
}

/// Local sockets and conntrack entries in memory; a reset removes what [`Pinned`] selects,
/// exactly as the OS adapter does. Clones share the same tables.
#[derive(Clone, Default)]
pub struct FakeFlows {
    inner: Arc<Mutex<FlowsState>>,
}

impl FakeFlows {
    /// Flows whose resets record `kernel`'s route in use at the moment they start.
    pub fn watching(kernel: FakeKernel) -> Self {
        let flows = Self::default();
        lock(&flows.inner).kernel = Some(kernel);
        flows
    }

    /// The addresses of interface `ifindex` (the adapter reads them from the kernel).
    pub fn set_addresses(&self, ifindex: u32, addresses: Vec<IfaceAddr>) {
        lock(&self.inner).addresses.insert(ifindex, addresses);
    }

    pub fn add_socket(&self, s: SocketFlow) {
        lock(&self.inner).sockets.push(s);
    }

    pub fn add_conntrack(&self, c: ConntrackFlow) {
        lock(&self.inner).conntrack.push(c);
    }

    pub fn sockets(&self) -> Vec<SocketFlow> {
        lock(&self.inner).sockets.clone()
    }

    pub fn conntrack(&self) -> Vec<ConntrackFlow> {
        lock(&self.inner).conntrack.clone()
    }

    /// Every reset asked for, oldest first.
    pub fn resets(&self) -> Vec<FakeReset> {
        lock(&self.inner).resets.clone()
    }

    /// Every later reset also reports this failure (and still removes what it can).
    pub fn set_failure(&self, failure: Option<FlowFailure>) {
        lock(&self.inner).failure = failure;
    }

    /// Every later reset takes this long.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.inner).delay = delay;
    }
}

impl FlowTable for FakeFlows {
    fn reset(&self, scope: FlowScope) -> BoxFuture<'static, FlowResetReport> {
        let inner = self.inner.clone();
        let delay = {
            let mut st = lock(&inner);
            let route_in_use = st
                .kernel
                .as_ref()
                .and_then(|k| k.best_iface_of(scope.family));
            st.resets.push(FakeReset {
                scope: scope.clone(),
                at: tokio::time::Instant::now(),
                route_in_use,
            });
            st.delay
        };
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut st = lock(&inner);
            let addresses = st
                .addresses
                .get(&scope.ifindex)
                .cloned()
                .unwrap_or_default();
            let pinned = Pinned::new(scope.family, &addresses);
            let (sockets, conntrack) = (st.sockets.len(), st.conntrack.len());
            st.sockets.retain(|s| !pinned.socket(s));
            st.conntrack.retain(|c| !pinned.conntrack(c));
            FlowResetReport {
                addresses: pinned.addresses().to_vec(),
                sockets_destroyed: (sockets - st.sockets.len()) as u64,
                conntrack_deleted: (conntrack - st.conntrack.len()) as u64,
                failures: st.failure.clone().into_iter().collect(),
            }
        }
        .boxed()
    }
}

/// Every fake, and the `Ports` bundle over them.
#[derive(Clone, Default)]
pub struct FakeWorld {
    pub kernel: FakeKernel,
    pub probe: FakeProbe,
    pub scripts: FakeScripts,
    pub journal: MemJournal,
    pub state: MemStateStore,
    pub flows: FakeFlows,
    pub traffic: FakeTraffic,
}

impl FakeWorld {
    pub fn new() -> Self {
        let kernel = FakeKernel::new();
        Self {
            flows: FakeFlows::watching(kernel.clone()),
            kernel,
            ..Self::default()
        }
    }

    pub fn ports(&self) -> Ports {
        Ports {
            links: Arc::new(self.kernel.clone()),
            routes: Arc::new(self.kernel.clone()),
            sysctl: Arc::new(self.kernel.clone()),
            probe: Arc::new(self.probe.clone()),
            scripts: Arc::new(self.scripts.clone()),
            journal: Arc::new(self.journal.clone()),
            state: Arc::new(self.state.clone()),
            flows: Arc::new(self.flows.clone()),
            traffic: Arc::new(self.traffic.clone()),
        }
    }
}

/// A profile binding `iface` by name with a manual IPv4 gateway (IPv6 unmanaged), as a
/// NetworkManager keyfile would give: what examples and doctests configure a fake device with.
pub fn manual_profile(
    iface: &str,
    uplink_type: crate::model::UplinkType,
    metric: u32,
    gateway: std::net::IpAddr,
) -> Result<crate::model::Profile, crate::model::IfaceNameError> {
    use crate::model::{FamilyConfig, IfaceMatch, Method, Metric, Profile};
    let family = |manage_default, gateway| FamilyConfig {
        manage_default,
        method: Method::Manual,
        // Out of range (past the kernel's limit): the type's default instead.
        metric: Metric::new(i64::from(metric)).unwrap_or_else(|_| uplink_type.default_metric()),
        addresses: Vec::new(),
        gateway,
    };
    Ok(Profile {
        id: format!("fake-{iface}"),
        uuid: None,
        file: std::path::PathBuf::from(format!("system-connections/{iface}.nmconnection")),
        uplink_type,
        matches: IfaceMatch::Name(IfaceName::new(iface)?),
        managed: true,
        ipv4: family(true, Some(gateway)),
        ipv6: family(false, None),
        dns: Vec::new(),
    })
}
