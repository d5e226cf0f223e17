//! [`FakeKernel`]: the fake of the kernel ports (`LinkSource`, `RouteTable`, `Sysctl`).
//!
//! It behaves like the parts of Linux the engine relies on: links with carrier and admin
//! state, a main table keyed by (family, metric) that refuses duplicates, IPv4 routes deleted
//! silently on admin down and kept (`linkdown`) on carrier loss, notifications to every
//! subscriber, and sysctls. Tests drive it (pull a cable, delete a route by hand, fail the next
//! writes) and inspect it (the route the kernel would use, gaps without a default route).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use super::lock;
use crate::model::{Family, IfaceAddr, IfaceName, KernelRoute, LinkInfo, LinkKind};
use crate::ports::{LinkSource, LinkUpdate, PortError, PortResult, RouteTable, Sysctl};

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
    /// Sysctl keys ending so do not exist (an older kernel): writes are `NotFound`.
    missing_sysctls: Vec<String>,
    /// Links (ifindex) that check gateways as Linux does ([`FakeKernel::check_gateways`]).
    gateway_checked: Vec<u32>,
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

    /// Linux's ENETUNREACH on a gateway-checked link: the gateway is on none of its subnets.
    fn check_gateway(&self, route: &KernelRoute) -> PortResult<()> {
        let Some(gw) = route.gateway else {
            return Ok(());
        };
        let link_local = matches!(gw, std::net::IpAddr::V6(v6) if v6.is_unicast_link_local());
        let reachable = !self.gateway_checked.contains(&route.ifindex)
            || link_local
            || self
                .addresses
                .iter()
                .any(|(i, a)| *i == route.ifindex && crate::flows::on_link(a, gw));
        if reachable {
            return Ok(());
        }
        let what = format!("route via {gw} metric {}", route.metric);
        let cause = std::io::Error::from_raw_os_error(101); // ENETUNREACH on Linux
        Err(PortError::new(
            crate::ports::PortErrorKind::Unreachable,
            what,
            Some(Arc::new(cause)),
        ))
    }
}

/// See the module doc. Clones share the same kernel.
#[derive(Clone, Default)]
pub struct FakeKernel {
    state: Arc<Mutex<KernelState>>,
    /// Set by [`FakeKernel::panic_next`]: the next update a subscription delivers panics.
    panic_next: Arc<std::sync::atomic::AtomicBool>,
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

    /// The next update a link subscription delivers panics in the subscriber's task, as a bug
    /// in the netlink adapter would: the LinkWatcher fails and is restarted. (A route
    /// notification is sent to wake the subscription.)
    pub fn panic_next(&self) {
        self.panic_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
        lock(&self.state).notify(LinkUpdate::RoutesChanged);
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
        s.addresses.retain(|(i, _)| *i != ifindex);
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

    /// Sets interface `name`'s addresses (a DHCP client or SLAAC did), announced like the
    /// kernel's address notifications. On a gateway-checked link ([`FakeKernel::check_gateways`])
    /// losing its last IPv4 address drops its IPv4 routes, as Linux does.
    pub fn set_addresses(&self, name: &str, addresses: Vec<IfaceAddr>) {
        let ifindex = self.ifindex_of(name);
        let mut s = lock(&self.state);
        s.addresses.retain(|(i, _)| *i != ifindex);
        s.addresses
            .extend(addresses.into_iter().map(|a| (ifindex, a)));
        let has_v4 = s
            .addresses
            .iter()
            .any(|(i, a)| *i == ifindex && a.addr.is_ipv4());
        if s.gateway_checked.contains(&ifindex) && !has_v4 {
            s.routes
                .retain(|r| !(r.ifindex == ifindex && r.family == Family::V4));
        }
        s.notify(LinkUpdate::RoutesChanged);
    }

    /// From now on link `name` checks route gateways as Linux does: adding or replacing a route
    /// via a gateway on none of its subnets fails with ENETUNREACH
    /// (`PortErrorKind::Unreachable`; IPv6 link-local gateways always pass). Links are not
    /// checked by default, so worlds need no addresses.
    pub fn check_gateways(&self, name: &str) {
        let ifindex = self.ifindex_of(name);
        lock(&self.state).gateway_checked.push(ifindex);
    }

    /// Sysctl keys ending with `suffix` do not exist from now on (`ra_defrtr_metric` on a
    /// kernel before 5.12): writes fail with `NotFound`.
    pub fn sysctl_missing(&self, suffix: &str) {
        lock(&self.state).missing_sysctls.push(suffix.into());
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
            Ok(tokio_stream_from(
                rx,
                s.last_delivery.clone(),
                self.panic_next.clone(),
            ))
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
    panic_next: Arc<std::sync::atomic::AtomicBool>,
) -> BoxStream<'static, LinkUpdate> {
    futures::stream::poll_fn(move |cx| {
        let next = rx.poll_recv(cx);
        if next.is_ready() {
            let panics = panic_next.swap(false, std::sync::atomic::Ordering::SeqCst);
            assert!(!panics, "fake kernel: panic requested by the test");
        }
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
            s.check_gateway(&route)?;
            if s.routes
                .iter()
                .any(|k| k.family == route.family && k.metric == route.metric)
            {
                return Err(PortError::exists(format!("route metric {}", route.metric)));
            }
            s.routes.push(route);
            Ok(())
        });
        self.acked(r)
    }

    fn replace(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let r = self.write(RouteWrite::Replace(route.clone()), |s| {
            s.check_gateway(&route)?;
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
                return Err(PortError::not_found(format!(
                    "route metric {}",
                    route.metric
                )));
            }
            Ok(())
        });
        self.acked(r)
    }

    fn solicit_router(&self, ifindex: u32, _: IfaceName) -> BoxFuture<'static, PortResult<()>> {
        lock(&self.state).solicitations.push(ifindex);
        async { Ok(()) }.boxed()
    }

    fn list_addresses(&self) -> BoxFuture<'static, PortResult<Vec<(u32, IfaceAddr)>>> {
        let addresses = lock(&self.state).addresses.clone();
        async move { Ok(addresses) }.boxed()
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
            .ok_or(PortError::not_found(key));
        async move { v }.boxed()
    }

    fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>> {
        let mut s = lock(&self.state);
        if s.missing_sysctls.iter().any(|m| key.ends_with(m.as_str())) {
            return async move { Err(PortError::not_found(key)) }.boxed();
        }
        s.sysctls.insert(key, value);
        async move { Ok(()) }.boxed()
    }
}
