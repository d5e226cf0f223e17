//! Integration tests for the netlink area, each in namespaces it creates (a device namespace
//! wired to "ISP" namespaces by veth pairs, `netfailover::lab::uplinks`), on documentation
//! addresses only: the adapters alone (`adapters`), then the real engine on them (`engine`).

mod adapters;
mod engine;

use std::net::IpAddr;

use netfailover::engine::model::{Family, KernelRoute};
use netfailover::lab::uplinks::UplinkWorld;

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
