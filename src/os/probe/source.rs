//! The interface as a check sees it before sending anything, read once per check: present, up
//! with a carrier, and the source address it uses per family.
//!
//! Every check socket (HTTP and DNS) is bound to the interface's own address, not only to the
//! interface: the kernel's source selection follows the route's preferred source, which may be
//! another interface's address, and an upstream with strict reverse-path filtering drops such
//! packets. A link-local IPv6 address is never used: a check target is global.
//!
//! One netlink socket per check, in the calling thread's network namespace: the link by name
//! (`RTM_GETLINK`, one message) and that link's addresses (`RTM_GETADDR`, filtered by the
//! kernel where it supports strict checking, else here). `getifaddrs` would dump every link
//! with all its attributes and every address, and the check needed it three to four times
//! (carrier, DNS, HTTP).

use std::net::IpAddr;

use netfailover_actors::model::{Family, IfaceName};
use netlink_sys::protocols::NETLINK_ROUTE;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::CheckFailure;
use crate::os::flows::wire::Conn;
use crate::os::netlink::address_of;

/// Receive buffer: one link message (a few KB) or one datagram of a dump (the kernel fills up
/// to 32 KiB when the reader's buffer allows it).
const BUF_LEN: usize = 32 * 1024;

/// The source address of each family a check uses on its interface (`None`: it has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sources {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
}

impl Sources {
    /// The interface's address of `family`, if it has one.
    pub fn get(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }

    /// The first usable address of each family in the kernel's order (a link-local IPv6
    /// address cannot reach a check target).
    fn from_addresses(addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut out = Sources::default();
        for ip in addrs {
            match ip {
                IpAddr::V4(_) => {
                    out.v4.get_or_insert(ip);
                }
                IpAddr::V6(v6) if !v6.is_unicast_link_local() => {
                    out.v6.get_or_insert(ip);
                }
                IpAddr::V6(_) => {}
            }
        }
        out
    }
}

/// Our own view of the kernel for one check: the interface exists, is up and has a carrier
/// (`IFF_UP` and `IFF_RUNNING`), and its source addresses. When netlink cannot be read, the
/// interface's existence alone counts as usable (the check itself will tell), with no address.
pub fn read(iface: &IfaceName) -> Result<Sources, CheckFailure> {
    match query(iface.as_str()) {
        Ok(Some((flags, sources))) => {
            if flags.contains(LinkFlags::Up | LinkFlags::Running) {
                Ok(sources)
            } else {
                Err(CheckFailure::LinkDown {
                    iface: iface.clone(),
                })
            }
        }
        Ok(None) => Err(CheckFailure::Missing {
            iface: iface.clone(),
        }),
        Err(e) => {
            tracing::debug!(%iface, error = %e, "reading the interface failed");
            match nix::net::if_::if_nametoindex(iface.as_str()) {
                Ok(_) => Ok(Sources::default()),
                Err(_) => Err(CheckFailure::Missing {
                    iface: iface.clone(),
                }),
            }
        }
    }
}

/// The link's flags and sources; `Ok(None)` when there is no such link.
fn query(name: &str) -> Result<Option<(LinkFlags, Sources)>, crate::os::flows::wire::WireError> {
    use crate::os::flows::wire::WireError;
    let mut conn = Conn::open_with(NETLINK_ROUTE, BUF_LEN)?;
    // Kernels before 4.20 refuse the option and filter nothing: the filter below still applies.
    let _ = conn.socket().set_netlink_get_strict_chk(true);
    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    let link = match conn.get(RouteNetlinkMessage::GetLink(request)) {
        Ok(RouteNetlinkMessage::NewLink(link)) => link,
        Ok(other) => {
            return Err(WireError::Decode(format!(
                "unexpected answer to a link request: {other:?}"
            )))
        }
        Err(WireError::Errno(libc::ENODEV)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let ifindex = link.header.index;
    let mut request = AddressMessage::default();
    request.header.index = ifindex;
    let mut addrs = Vec::new();
    conn.dump(RouteNetlinkMessage::GetAddress(request), |msg| {
        if let RouteNetlinkMessage::NewAddress(a) = msg {
            if let Some((ip, index)) = address_of(&a) {
                if index == ifindex {
                    addrs.push(ip);
                }
            }
        }
    })?;
    Ok(Some((link.header.flags, Sources::from_addresses(addrs))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_up_with_its_address_and_a_missing_interface_is_missing() {
        let lo = IfaceName::new("lo").expect("name");
        let sources = read(&lo).expect("lo is up");
        assert_eq!(sources.get(Family::V4), Some(IpAddr::from([127, 0, 0, 1])));
        let missing = IfaceName::new("nf-missing0").expect("name");
        assert!(matches!(read(&missing), Err(CheckFailure::Missing { .. })));
    }

    #[test]
    fn link_local_ipv6_is_never_a_source() {
        let ll: IpAddr = "fe80::1".parse().expect("address");
        let global: IpAddr = "2001:db8::2".parse().expect("address");
        let v4: IpAddr = "192.0.2.2".parse().expect("address");
        let s = Sources::from_addresses([ll, v4, global, "192.0.2.3".parse().expect("address")]);
        assert_eq!(s.get(Family::V6), Some(global));
        assert_eq!(s.get(Family::V4), Some(v4));
        assert_eq!(Sources::from_addresses([ll]).get(Family::V6), None);
    }
}
