//! Integration tests for the netlink area, each in namespaces it creates (a device namespace
//! wired to "ISP" namespaces by veth pairs, `netfailover_lab::uplinks`), on documentation
//! addresses only: the adapters alone (`adapters`), then the real engine on them (`engine`).

mod adapters;
mod engine;

use std::net::IpAddr;

use netfailover::engine::model::{Family, KernelRoute};
use netfailover_lab::netns::Netns;
use netfailover_lab::uplinks::UplinkWorld;

/// Our route protocol (`route.protocol` default).
pub const OURS: u8 = netfailover::engine::model::DEFAULT_ROUTE_PROTOCOL;
/// `RTPROT_DHCP`, as a DHCP client tags its default route.
pub const DHCP: u8 = 16;

pub fn world(tag: &str, uplinks: usize) -> UplinkWorld {
    UplinkWorld::new(tag, uplinks).expect("building the namespace world")
}

/// One of our default routes.
pub fn default_route(family: Family, ifindex: u32, gateway: IpAddr, metric: u32) -> KernelRoute {
    KernelRoute {
        family,
        ifindex,
        gateway: Some(gateway),
        metric,
        protocol: OURS,
    }
}

/// Adds a default route the way a DHCP client would (`proto dhcp`), in `ns`.
pub fn add_dhcp_default(ns: &Netns, via: &str, dev: &str, metric: u32) {
    let family = if via.contains(':') { "-6" } else { "-4" };
    let metric = metric.to_string();
    ns.ip(&[
        family, "route", "add", "default", "via", via, "dev", dev, "metric", &metric, "proto",
        "dhcp",
    ])
    .expect("adding a DHCP-style default route");
}
