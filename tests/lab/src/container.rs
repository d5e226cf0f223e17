//! A "container" namespace behind the lab device's bridge side (`ctr0`), masqueraded onto
//! whichever uplink routes its flows (`oifname != "ctr0" masquerade`), as balenaEngine's
//! bridge network is. Its NAT table also turns connection tracking on in the device's
//! namespace, as on every device that runs containers.

use super::netns::{veth, Netns, NetnsError};

/// The device's address on the container bridge, and the container's.
pub const BRIDGE: &str = "192.0.2.65";
pub const CONTAINER: &str = "192.0.2.66/26";

/// How the device NATs the container's flows onto the uplinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat<'a> {
    /// `oifname != "ctr0" masquerade`, as balenaEngine's bridge network does.
    Masquerade,
    /// `oifname IFACE snat to ADDR` for each (interface, its address).
    Snat(&'a [(&'a str, &'a str)]),
}

/// Builds the container namespace `name` behind `dev`, masqueraded (needs `nft`).
pub fn masqueraded_container(dev: &Netns, name: &str) -> Result<Netns, NetnsError> {
    container(dev, name, Nat::Masquerade)
}

/// Builds the container namespace `name` behind `dev` with `nat` (needs `nft`).
pub fn container(dev: &Netns, name: &str, nat: Nat<'_>) -> Result<Netns, NetnsError> {
    let ctr = Netns::new(name)?;
    veth((&ctr, "eth0"), (dev, "ctr0"))?;
    ctr.ip(&["addr", "add", CONTAINER, "dev", "eth0"])?;
    ctr.ip(&["route", "add", "default", "via", BRIDGE])?;
    dev.ip(&["addr", "add", &format!("{BRIDGE}/26"), "dev", "ctr0"])?;
    dev.sysctl("net.ipv4.ip_forward", "1")?;
    let chain = "{ type nat hook postrouting priority 100 ; }";
    dev.exec(&["nft", "add", "table", "ip", "nat"])?;
    dev.exec(&["nft", "add", "chain", "ip", "nat", "post", chain])?;
    let post = ["nft", "add", "rule", "ip", "nat", "post", "oifname"];
    match nat {
        Nat::Masquerade => {
            dev.exec(&[&post[..], &["!=", "ctr0", "masquerade"]].concat())?;
        }
        Nat::Snat(uplinks) => {
            for (iface, addr) in uplinks {
                dev.exec(&[&post[..], &[iface, "snat", "to", addr]].concat())?;
            }
        }
    }
    Ok(ctr)
}
