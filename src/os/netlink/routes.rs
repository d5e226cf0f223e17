//! [`NetlinkRoutes`]: the `RouteTable` port on one netlink request socket.
//!
//! Thin and exact: the engine's RouteManager decides which routes exist; this adapter lists the
//! main table's default routes and adds, replaces and deletes exactly the route it is given.
//!
//! - **List**: unicast routes with destination prefix length 0 in the main table (254), both
//!   families. Without `NETLINK_GET_STRICT_CHK` the kernel ignores dump filters, so the table is
//!   filtered here (`RTA_TABLE` if present, else the header's table). Multipath default routes
//!   (one metric, several devices) have no single interface and are not listed.
//! - **Metric**: the kernel stores an IPv6 metric 0 as 1024, so 0 is normalised to 1024 both
//!   ways; an IPv4 route without `RTA_PRIORITY` has metric 0.
//! - **Add** uses `NLM_F_CREATE|NLM_F_EXCL` (EEXIST → `PortErrorKind::Exists`), **replace**
//!   `NLM_F_CREATE|NLM_F_REPLACE`. The kernel keys default routes by (table, metric), so replace
//!   only swaps a route of the same metric; a different metric is a second route.
//! - **Delete** names family, interface, gateway, metric and protocol (ESRCH/ENOENT →
//!   `PortErrorKind::NotFound`). The kernel treats a zero/absent field of a delete request as a
//!   wildcard (no gateway, IPv4 metric 0, protocol 0, ifindex 0) and would delete the first
//!   route that matches the rest; for such a route the adapter first checks that exactly this
//!   route exists, so it never deletes a different one.
//! - **Addresses**: `ensure_address` adds with `NLM_F_EXCL` and treats EEXIST as success;
//!   `list_addresses` dumps every interface's addresses (IFA_LOCAL, else IFA_ADDRESS).
//! - **Router solicitation**: one RS on the interface (`crate::os::ndisc`), opened and sent on
//!   the calling thread so it leaves in that thread's namespace.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::future::{BoxFuture, FutureExt};
use futures::stream::TryStreamExt;
use netfailover_actors::model::{Family, IfaceAddr, IfaceName, KernelRoute};
use netfailover_actors::ports::{PortError, PortErrorKind, PortResult, RouteTable};
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::{open_request_connection, port_error, AbortOnDrop, NetlinkError};

/// IPv6 metric the kernel stores when asked for 0 (`IP6_RT_PRIO_USER`).
const IPV6_DEFAULT_METRIC: u32 = 1024;

/// The route table on netlink. Owns one request socket, opened by [`NetlinkRoutes::new`] in the
/// calling thread's namespace; dropping the adapter closes it.
#[derive(Debug)]
pub struct NetlinkRoutes {
    handle: rtnetlink::Handle,
    _connection: AbortOnDrop,
}

impl NetlinkRoutes {
    /// Opens the socket. Must be called inside a tokio runtime, which then drives it (in an
    /// actix System, construct the adapter inside `block_on`).
    pub fn new() -> Result<Self, NetlinkError> {
        let (handle, connection) = open_request_connection("netlink route table")?;
        Ok(Self {
            handle,
            _connection: connection,
        })
    }
}

impl RouteTable for NetlinkRoutes {
    fn list_defaults(&self) -> BoxFuture<'static, PortResult<Vec<KernelRoute>>> {
        let handle = self.handle.clone();
        async move { list_defaults(&handle).await }.boxed()
    }

    fn add(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let handle = self.handle.clone();
        async move {
            let message = route_message(&route)?;
            let result = handle.route().add(message).execute().await;
            log_change("added", &route, &result);
            result.map_err(|e| port_error(describe("add", &route), e))
        }
        .boxed()
    }

    fn replace(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let handle = self.handle.clone();
        async move {
            let message = route_message(&route)?;
            let result = handle.route().add(message).replace().execute().await;
            log_change("replaced", &route, &result);
            result.map_err(|e| port_error(describe("replace", &route), e))
        }
        .boxed()
    }

    fn delete(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        let handle = self.handle.clone();
        async move {
            let route = normalised(route);
            if kernel_would_wildcard(&route) && !list_defaults(&handle).await?.contains(&route) {
                return Err(PortError::not_found(describe("delete", &route)));
            }
            let mut message = route_message(&route)?;
            // RT_SCOPE_NOWHERE matches any scope, as `ip route del` does.
            message.header.scope = RouteScope::NoWhere;
            let result = handle.route().del(message).execute().await;
            log_change("deleted", &route, &result);
            result.map_err(|e| port_error(describe("delete", &route), e))
        }
        .boxed()
    }

    fn solicit_router(&self, ifindex: u32, name: IfaceName) -> BoxFuture<'static, PortResult<()>> {
        // Now, on the calling thread: the raw socket belongs to its namespace.
        let result = crate::os::ndisc::solicit_router(name.as_str(), ifindex)
            .map_err(|e| PortError::failed(format!("router solicitation on {name}"), e));
        futures::future::ready(result).boxed()
    }

    fn list_addresses(&self) -> BoxFuture<'static, PortResult<Vec<(u32, IfaceAddr)>>> {
        let handle = self.handle.clone();
        async move {
            let messages: Vec<AddressMessage> = handle
                .address()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| port_error("list addresses".into(), e))?;
            Ok(messages
                .iter()
                .filter_map(|m| {
                    let (addr, ifindex) = super::address_of(m)?;
                    let prefix_len = m.header.prefix_len;
                    Some((ifindex, IfaceAddr { addr, prefix_len }))
                })
                .collect())
        }
        .boxed()
    }

    fn ensure_address(&self, ifindex: u32, addr: IfaceAddr) -> BoxFuture<'static, PortResult<()>> {
        let handle = self.handle.clone();
        async move {
            let result = handle
                .address()
                .add(ifindex, addr.addr, addr.prefix_len)
                .execute()
                .await;
            match result.map_err(|e| port_error(format!("add address {addr} dev #{ifindex}"), e)) {
                Ok(()) => {
                    tracing::info!(ifindex, address = %addr, "address added");
                    Ok(())
                }
                Err(PortError {
                    kind: PortErrorKind::Exists,
                    ..
                }) => Ok(()),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }
}

/// Both families' default routes of the main table.
async fn list_defaults(handle: &rtnetlink::Handle) -> PortResult<Vec<KernelRoute>> {
    let mut routes = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        // A bare header: without strict checking the kernel ignores dump filters anyway, and
        // a zeroed header cannot filter anything by accident should strict checking be on.
        let mut request = RouteMessage::default();
        request.header.address_family = family;
        let messages: Vec<RouteMessage> = handle
            .route()
            .get(request)
            .execute()
            .try_collect()
            .await
            .map_err(|e| port_error(format!("dump {family:?} routes"), e))?;
        routes.extend(messages.iter().filter_map(kernel_route));
    }
    Ok(routes)
}

/// The engine's view of a route message, if it is a single-path unicast default route of the
/// main table.
pub(crate) fn kernel_route(message: &RouteMessage) -> Option<KernelRoute> {
    let header = &message.header;
    let family = match header.address_family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    if header.destination_prefix_length != 0 || header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(header.table);
    let mut ifindex = None;
    let mut gateway = None;
    let mut metric = 0;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(IpAddr::V4(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => gateway = Some(IpAddr::V6(*ip)),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let Some(ifindex) = ifindex else {
        tracing::debug!(?family, metric, "multipath default route: not listed");
        return None;
    };
    Some(normalised(KernelRoute {
        family,
        ifindex,
        gateway,
        metric,
        protocol: u8::from(header.protocol),
    }))
}

/// IPv6 metric 0 → 1024, as the kernel stores it.
fn normalised(mut route: KernelRoute) -> KernelRoute {
    if route.family == Family::V6 && route.metric == 0 {
        route.metric = IPV6_DEFAULT_METRIC;
    }
    route
}

/// True if a delete request for `route` has a field the kernel reads as "any".
fn kernel_would_wildcard(route: &KernelRoute) -> bool {
    route.gateway.is_none() || route.metric == 0 || route.protocol == 0 || route.ifindex == 0
}

/// The netlink message for a default route in the main table.
pub(crate) fn route_message(route: &KernelRoute) -> PortResult<RouteMessage> {
    let route = normalised(route.clone());
    let mismatch = || {
        PortError::failed(
            describe("build", &route),
            "gateway is not of the route's family",
        )
    };
    let protocol = RouteProtocol::from(route.protocol);
    let message = match route.family {
        Family::V4 => {
            let builder = RouteMessageBuilder::<Ipv4Addr>::new()
                .output_interface(route.ifindex)
                .priority(route.metric)
                .protocol(protocol);
            match route.gateway {
                Some(IpAddr::V4(gateway)) => builder.gateway(gateway).build(),
                Some(IpAddr::V6(_)) => return Err(mismatch()),
                // A device route (point-to-point links): link scope, as `ip route` gives it.
                None => builder.scope(RouteScope::Link).build(),
            }
        }
        Family::V6 => {
            let builder = RouteMessageBuilder::<Ipv6Addr>::new()
                .output_interface(route.ifindex)
                .priority(route.metric)
                .protocol(protocol);
            match route.gateway {
                Some(IpAddr::V6(gateway)) => builder.gateway(gateway).build(),
                Some(IpAddr::V4(_)) => return Err(mismatch()),
                None => builder.build(),
            }
        }
    };
    Ok(message)
}

/// `"add default via 192.0.2.1 dev #3 metric 100 proto 78"`, for errors and logs.
fn describe(verb: &str, route: &KernelRoute) -> String {
    let via = route
        .gateway
        .map(|gateway| format!(" via {gateway}"))
        .unwrap_or_default();
    format!(
        "{verb} {:?} default{via} dev #{} metric {} proto {}",
        route.family, route.ifindex, route.metric, route.protocol
    )
}

fn log_change(verb: &str, route: &KernelRoute, result: &Result<(), rtnetlink::Error>) {
    if result.is_ok() {
        tracing::info!(
            ifindex = route.ifindex,
            metric = route.metric,
            family = ?route.family,
            gateway = route.gateway.map(tracing::field::display),
            "default route {verb}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(family: Family, gateway: Option<&str>, metric: u32) -> KernelRoute {
        KernelRoute {
            family,
            ifindex: 4,
            gateway: gateway.map(|g| g.parse().unwrap()),
            metric,
            protocol: 78,
        }
    }

    #[test]
    fn messages_round_trip_through_the_parser() {
        for r in [
            route(Family::V4, Some("192.0.2.1"), 100),
            route(Family::V4, None, 700),
            route(Family::V6, Some("2001:db8::1"), 100),
        ] {
            assert_eq!(kernel_route(&route_message(&r).unwrap()), Some(r));
        }
    }

    #[test]
    fn ipv6_metric_zero_is_1024_both_ways() {
        let zero = route(Family::V6, Some("2001:db8::1"), 0);
        let message = route_message(&zero).unwrap();
        assert!(message
            .attributes
            .contains(&RouteAttribute::Priority(IPV6_DEFAULT_METRIC)));
        assert_eq!(kernel_route(&message).unwrap().metric, IPV6_DEFAULT_METRIC);
        // IPv4 metric 0 is a real metric.
        let v4 = route(Family::V4, Some("192.0.2.1"), 0);
        assert_eq!(
            kernel_route(&route_message(&v4).unwrap()).unwrap().metric,
            0
        );
    }

    #[test]
    fn other_tables_prefixes_types_and_multipath_are_not_listed() {
        let base = route_message(&route(Family::V4, Some("192.0.2.1"), 100)).unwrap();

        let mut local = base.clone();
        local.header.table = 255;
        assert_eq!(kernel_route(&local), None);

        let mut big_table = base.clone();
        big_table.header.table = 0;
        big_table.attributes.push(RouteAttribute::Table(1000));
        assert_eq!(kernel_route(&big_table), None);

        let mut main_by_attribute = base.clone();
        main_by_attribute.header.table = 0;
        main_by_attribute
            .attributes
            .push(RouteAttribute::Table(254));
        assert!(kernel_route(&main_by_attribute).is_some());

        let mut subnet = base.clone();
        subnet.header.destination_prefix_length = 24;
        assert_eq!(kernel_route(&subnet), None);

        let mut blackhole = base.clone();
        blackhole.header.kind = RouteType::BlackHole;
        assert_eq!(kernel_route(&blackhole), None);

        let mut multipath = base;
        multipath
            .attributes
            .retain(|a| !matches!(a, RouteAttribute::Oif(_)));
        assert_eq!(kernel_route(&multipath), None);
    }

    #[test]
    fn family_mismatch_is_an_error() {
        let mut bad = route(Family::V4, Some("2001:db8::1"), 100);
        assert!(matches!(
            route_message(&bad),
            Err(PortError {
                kind: PortErrorKind::Failed,
                ..
            })
        ));
        bad.family = Family::V6;
        bad.gateway = Some("192.0.2.1".parse().unwrap());
        assert!(matches!(
            route_message(&bad),
            Err(PortError {
                kind: PortErrorKind::Failed,
                ..
            })
        ));
    }

    #[test]
    fn wildcard_fields_are_detected() {
        assert!(!kernel_would_wildcard(&route(
            Family::V4,
            Some("192.0.2.1"),
            100
        )));
        assert!(kernel_would_wildcard(&route(Family::V4, None, 100)));
        assert!(kernel_would_wildcard(&route(
            Family::V4,
            Some("192.0.2.1"),
            0
        )));
        let mut unspec = route(Family::V4, Some("192.0.2.1"), 100);
        unspec.protocol = 0;
        assert!(kernel_would_wildcard(&unspec));
    }
}
