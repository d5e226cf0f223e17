//! Which flows are pinned to a demoted interface: the pure selection rules shared by the OS
//! adapter (`src/os/flows/`) and the fake (`fake/flows.rs`), so both reset exactly the same flows.
//!
//! A flow is pinned to an interface when it can only work through it: a local TCP socket whose
//! source address is one of the interface's addresses, or a conntrack entry whose reply
//! direction is addressed to one (the masquerade address of a NATed flow, or a local flow's
//! source). After the route in use moved away, such a flow's packets leave through the new
//! uplink with the old source address and are dropped upstream, so it hangs until TCP gives up
//! or the entry times out. Resetting it makes the application reconnect at once.
//!
//! Never pinned (docs/semantics.md §9.8): listening sockets; sockets bound to a device
//! (SO_BINDTODEVICE, like our own checks: they chose their interface); peers on the interface's
//! own subnets (LAN sessions keep working while the uplink is demoted); loopback and link-local
//! addresses; flows of another family or with another interface's addresses.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{Family, IfaceAddr};

/// One local TCP socket, as sock_diag reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SocketFlow {
    pub local: IpAddr,
    pub remote: IpAddr,
    /// In the LISTEN state.
    pub listening: bool,
    /// The device the socket is bound to (SO_BINDTODEVICE; inet_diag's `idiag_if`), 0 if none.
    pub bound_ifindex: u32,
}

/// One conntrack entry's reply direction (source = the peer as seen on the wire, destination =
/// the address the reply is sent to: ours, or the masquerade address of a NATed flow).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConntrackFlow {
    pub reply_src: IpAddr,
    pub reply_dst: IpAddr,
}

/// The selection for one interface and family.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pinned {
    family: Family,
    /// The interface's addresses of that family (with their on-link prefix), loopback and
    /// link-local ones left out.
    addresses: Vec<IfaceAddr>,
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.2`, from dual-stack sockets) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn special(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified(),
    }
}

/// `ip` is inside `net`'s prefix.
pub(crate) fn on_link(net: &IfaceAddr, ip: IpAddr) -> bool {
    match (net.addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(net.prefix_len.min(32));
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(net.prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Adds to `now` (an interface's addresses when the reset runs) the `remembered` ones it lacks:
/// a reset matches both, since a vanished interface has none left while its sockets still hold
/// them (used by the OS adapter and the fake alike).
pub fn merge_addresses(now: &mut Vec<IfaceAddr>, remembered: &[IfaceAddr]) {
    for a in remembered {
        if !now.contains(a) {
            now.push(*a);
        }
    }
}

impl Pinned {
    /// The flows pinned to an interface with `addresses`, for `family`.
    pub fn new(family: Family, addresses: &[IfaceAddr]) -> Self {
        let addresses = addresses
            .iter()
            .map(|a| IfaceAddr {
                addr: canonical(a.addr),
                prefix_len: a.prefix_len,
            })
            .filter(|a| Family::of(&a.addr) == family && !special(a.addr))
            .collect();
        Self { family, addresses }
    }

    /// The interface's usable addresses of the family; empty means nothing can be pinned.
    pub fn addresses(&self) -> &[IfaceAddr] {
        &self.addresses
    }

    fn is_ours(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.addr == ip)
    }

    /// A peer worth resetting for: of the family, not special, not on the interface's subnets.
    fn is_remote(&self, ip: IpAddr) -> bool {
        Family::of(&ip) == self.family
            && !special(ip)
            && !self.addresses.iter().any(|a| on_link(a, ip))
    }

    /// This socket is pinned to the interface and must be destroyed.
    pub fn socket(&self, s: &SocketFlow) -> bool {
        let (local, remote) = (canonical(s.local), canonical(s.remote));
        !s.listening && s.bound_ifindex == 0 && self.is_ours(local) && self.is_remote(remote)
    }

    /// This conntrack entry is pinned to the interface and must be deleted.
    pub fn conntrack(&self, c: &ConntrackFlow) -> bool {
        let (src, dst) = (canonical(c.reply_src), canonical(c.reply_dst));
        self.is_ours(dst) && self.is_remote(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pinned(family: Family) -> Pinned {
        let a = |s: &str, p| IfaceAddr {
            addr: ip(s),
            prefix_len: p,
        };
        Pinned::new(
            family,
            &[
                a("192.0.2.2", 24),
                a("2001:db8:1::2", 64),
                a("fe80::1", 64),
                a("127.0.0.5", 8),
            ],
        )
    }

    fn sock(local: &str, remote: &str) -> SocketFlow {
        SocketFlow {
            local: ip(local),
            remote: ip(remote),
            listening: false,
            bound_ifindex: 0,
        }
    }

    #[test]
    fn sockets_table() {
        let v4 = pinned(Family::V4);
        let v6 = pinned(Family::V6);
        let bound = SocketFlow {
            bound_ifindex: 3,
            ..sock("192.0.2.2", "203.0.113.10")
        };
        let listening = SocketFlow {
            listening: true,
            ..sock("192.0.2.2", "0.0.0.0")
        };
        // (socket, pinned for v4, pinned for v6)
        let table = [
            (sock("192.0.2.2", "203.0.113.10"), true, false),
            (sock("::ffff:192.0.2.2", "::ffff:203.0.113.10"), true, false),
            (sock("2001:db8:1::2", "2001:db8:9::1"), false, true),
            // A peer on the interface's own subnet (a PLC on the LAN).
            (sock("192.0.2.2", "192.0.2.77"), false, false),
            (sock("2001:db8:1::2", "2001:db8:1::99"), false, false),
            // Another interface's address.
            (sock("198.51.100.2", "203.0.113.10"), false, false),
            // Loopback and link-local.
            (sock("127.0.0.5", "127.0.0.1"), false, false),
            (sock("fe80::1", "fe80::2"), false, false),
            (sock("192.0.2.2", "169.254.1.1"), false, false),
            (bound, false, false),
            (listening, false, false),
        ];
        for (s, want4, want6) in table {
            assert_eq!(v4.socket(&s), want4, "v4 {s:?}");
            assert_eq!(v6.socket(&s), want6, "v6 {s:?}");
        }
    }

    #[test]
    fn conntrack_table() {
        let v4 = pinned(Family::V4);
        let ct = |src: &str, dst: &str| ConntrackFlow {
            reply_src: ip(src),
            reply_dst: ip(dst),
        };
        // A masqueraded container flow and a local flow: the reply comes back to our address.
        assert!(v4.conntrack(&ct("203.0.113.10", "192.0.2.2")));
        // Inbound connection to us: the reply goes to the remote peer.
        assert!(!v4.conntrack(&ct("192.0.2.2", "203.0.113.10")));
        // A LAN peer, another interface's flow, loopback.
        assert!(!v4.conntrack(&ct("192.0.2.77", "192.0.2.2")));
        assert!(!v4.conntrack(&ct("203.0.113.10", "198.51.100.2")));
        assert!(!v4.conntrack(&ct("127.0.0.1", "127.0.0.5")));
    }

    #[test]
    fn no_usable_address_pins_nothing() {
        let p = Pinned::new(
            Family::V4,
            &[IfaceAddr {
                addr: ip("169.254.3.3"),
                prefix_len: 16,
            }],
        );
        assert!(p.addresses().is_empty());
        assert!(!p.socket(&sock("169.254.3.3", "203.0.113.10")));
    }

    #[test]
    fn prefix_edges() {
        let net = IfaceAddr {
            addr: ip("192.0.2.2"),
            prefix_len: 30,
        };
        assert!(on_link(&net, ip("192.0.2.1")));
        assert!(!on_link(&net, ip("192.0.2.4")));
        let all = IfaceAddr {
            addr: ip("192.0.2.2"),
            prefix_len: 0,
        };
        assert!(on_link(&all, ip("203.0.113.1")));
        let host = IfaceAddr {
            addr: ip("2001:db8::1"),
            prefix_len: 128,
        };
        assert!(!on_link(&host, ip("2001:db8::2")));
    }
}
