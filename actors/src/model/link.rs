//! Kernel facts: address families, links ([`LinkInfo`]) and default routes ([`KernelRoute`]).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::IfaceName;
/// Address family of a route.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// What kind of device a link is, as far as adoption cares (docs/semantics.md §2: loopback, bridges, veths
/// and tunnels are never adopted without a profile).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Loopback,
    Bridge,
    Veth,
    Tunnel,
    Other,
}

/// One network interface as the kernel reports it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: IfaceName,
    pub kind: LinkKind,
    /// `IFF_UP`: the administrator enabled it.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the carrier is present.
    pub carrier: bool,
    /// The kernel's carrier-change counter; a jump of two or more with no visible change means
    /// the kernel merged a down/up flap into one message.
    pub carrier_changes: u32,
    pub mac: Option<[u8; 6]>,
}

impl LinkInfo {
    /// The link can carry traffic: administratively up and with carrier.
    pub fn usable(&self) -> bool {
        self.admin_up && self.carrier
    }
}

/// `rtm_protocol` of router-advertised IPv6 routes (RTPROT_RA). The kernel installs them; we
/// never add or adopt one. Their metric follows `ra_defrtr_metric` (set to the effective metric,
/// then a Router Solicitation so the router's answer re-installs the route at it), and on link
/// loss we delete them (the kernel would keep them, `linkdown`); our solicitations when the link
/// is back bring them back (`ra_solicit.rs`). See docs/semantics.md §9.3.
pub const RTPROT_RA: u8 = 9;

/// A default route in the main table, as the kernel has it or as the engine wants it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct KernelRoute {
    pub family: Family,
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
    /// The kernel's metric (IPv6 metric 0 is normalised to 1024 by the adapter).
    pub metric: u32,
    /// `rtm_protocol`: ours is `route.protocol`; anything else is foreign.
    pub protocol: u8,
}
