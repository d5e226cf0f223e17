//! The source address a check uses on its interface, per family.
//!
//! Every check socket (HTTP and DNS) is bound to the interface's own address, not only to the
//! interface: the kernel's source selection follows the route's preferred source, which may be
//! another interface's address, and an upstream with strict reverse-path filtering drops such
//! packets. A link-local IPv6 address is never used: a check target is global.

use std::net::IpAddr;

use netfailover_actors::model::Family;

/// The interface's address of `family`, if it has one.
pub fn source_for(iface: &str, family: Family) -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter(|a| a.interface_name == iface)
        .filter_map(|a| {
            let addr = a.address?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        // A link-local IPv6 address cannot reach a check target.
        .find(|ip| {
            Family::of(ip) == family && !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_addresses_and_a_missing_interface_none() {
        assert_eq!(
            source_for("lo", Family::V4),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(source_for("nf-missing0", Family::V4), None);
    }
}
