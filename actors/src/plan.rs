//! Pure route planning for RouteManager: which interfaces are managed (profiles, then adoption),
//! unique metrics per family, and the diff between the desired default routes and the kernel's.
//! No actix, no I/O: RouteManager feeds it facts and applies the [`Ops`] it returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{
    Family, IfaceMatch, IfaceName, KernelRoute, LinkInfo, LinkKind, Profile, UplinkType,
};

/// A managed interface: matched by a profile, or adopted.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Assigned {
    pub name: IfaceName,
    /// `None` while a profile's interface does not exist (yet).
    pub ifindex: Option<u32>,
    /// Index into `Config::profiles`; `None` when adopted.
    pub profile: Option<usize>,
    pub uplink_type: UplinkType,
}

/// Decides the managed interfaces (docs/semantics.md §1.2, §2).
///
/// `links` must be keyed by ifindex (so iteration is in ifindex order, which type matching
/// uses). `holds_default` are the ifindexes with any default route in the main table;
/// `sticky` are interfaces adopted before (their foreign route may already be replaced by ours,
/// or gone with the link), which stay adopted.
pub fn assign(
    profiles: &[Profile],
    adopt: bool,
    links: &BTreeMap<u32, LinkInfo>,
    holds_default: &BTreeSet<u32>,
    sticky: &BTreeSet<IfaceName>,
) -> Vec<Assigned> {
    let mut out: Vec<Assigned> = Vec::new();
    let claimed = |out: &Vec<Assigned>, name: &IfaceName| out.iter().any(|a| &a.name == name);
    let by_name = |name: &IfaceName| links.values().find(|l| &l.name == name);

    // Explicit bindings first (name, then MAC), so type matching only takes what is left.
    for (i, p) in profiles.iter().enumerate().filter(|(_, p)| p.managed) {
        let (name, ifindex) = match &p.matches {
            IfaceMatch::Name(n) => (n.clone(), by_name(n).map(|l| l.ifindex)),
            IfaceMatch::Mac(mac) => match links.values().find(|l| l.mac.as_ref() == Some(mac)) {
                Some(l) => (l.name.clone(), Some(l.ifindex)),
                None => continue,
            },
            IfaceMatch::ByType | IfaceMatch::ControlDevice(_) => continue,
        };
        if !claimed(&out, &name) {
            out.push(Assigned {
                name,
                ifindex,
                profile: Some(i),
                uplink_type: p.uplink_type,
            });
        }
    }
    for (i, p) in profiles.iter().enumerate().filter(|(_, p)| p.managed) {
        let prefixes = match &p.matches {
            IfaceMatch::ByType => p.uplink_type.name_prefixes(),
            // A control device whose interface was not found (RouteManager resolves the ones it
            // finds into names): a modem's interface only, never a `usb*` gadget or `ppp*`.
            IfaceMatch::ControlDevice(_) => &["wwan"],
            _ => continue,
        };
        if let Some(l) = links
            .values()
            .find(|l| l.name.has_prefix(prefixes) && !claimed(&out, &l.name))
        {
            out.push(Assigned {
                name: l.name.clone(),
                ifindex: Some(l.ifindex),
                profile: Some(i),
                uplink_type: p.uplink_type,
            });
        }
    }
    if adopt {
        // A profile with `autoconnect=false` keeps its interface unmanaged (docs/semantics.md §1.2): never
        // adopt what such a profile names.
        let disabled: Vec<&IfaceName> = profiles
            .iter()
            .filter(|p| !p.managed)
            .filter_map(|p| match &p.matches {
                IfaceMatch::Name(n) => Some(n),
                _ => None,
            })
            .collect();
        for l in links.values() {
            if disabled.contains(&&l.name) {
                continue;
            }
            let adoptable = !matches!(
                l.kind,
                LinkKind::Loopback | LinkKind::Bridge | LinkKind::Veth | LinkKind::Tunnel
            );
            let wanted = holds_default.contains(&l.ifindex) || sticky.contains(&l.name);
            if adoptable && wanted && !claimed(&out, &l.name) {
                out.push(Assigned {
                    name: l.name.clone(),
                    ifindex: Some(l.ifindex),
                    profile: None,
                    uplink_type: UplinkType::guess_from_name(&l.name),
                });
            }
        }
    }
    out
}

/// One default route RouteManager wants, before metrics are made unique.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RouteWant {
    pub family: Family,
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
    /// Configured metric plus the penalty, if any.
    pub metric: u32,
}

/// Turns wants into routes with unique metrics per family: in (metric, ifindex) order, a metric
/// already taken (by an earlier want or by a `reserved` foreign route on an unmanaged
/// interface) is bumped by one until free, so the later interface gets +1 (docs/semantics.md §2).
pub fn unique_routes(
    mut wants: Vec<RouteWant>,
    reserved: &BTreeSet<(Family, u32)>,
    protocol: u8,
) -> Vec<KernelRoute> {
    wants.sort_by_key(|w| (w.family, w.metric, w.ifindex));
    let mut used = reserved.clone();
    wants
        .into_iter()
        .map(|w| {
            let mut metric = w.metric;
            while used.contains(&(w.family, metric)) {
                metric = metric.saturating_add(1);
            }
            used.insert((w.family, metric));
            KernelRoute {
                family: w.family,
                ifindex: w.ifindex,
                gateway: w.gateway,
                metric,
                protocol,
            }
        })
        .collect()
}

/// Route changes, applied in field order: replacements and additions first, then deletions,
/// so a working default route is never removed before its successor exists.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Ops {
    pub replace: Vec<KernelRoute>,
    pub add: Vec<KernelRoute>,
    pub delete: Vec<KernelRoute>,
}

impl Ops {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.add.is_empty() && self.delete.is_empty()
    }
}

/// Compares desired routes with the kernel's default routes.
///
/// - A desired route already present (same family, interface, gateway, metric, our protocol)
///   is left alone.
/// - A desired route whose key (family, metric) is held by another route is swapped in place
///   with replace (the kernel keys routes by metric; docs/semantics.md §2 "adopting ... uses replace").
/// - Otherwise it is added.
/// - Our routes that are not desired are deleted (stale metrics, dead links, duplicates).
/// - Foreign default routes on `sweep` (family, ifindex) pairs are deleted: interfaces we
///   manage whose route we now own, or whose link is down.
pub fn diff(
    desired: &[KernelRoute],
    kernel: &[KernelRoute],
    protocol: u8,
    sweep: &BTreeSet<(Family, u32)>,
) -> Ops {
    let mut ops = Ops::default();
    let key = |r: &KernelRoute| (r.family, r.metric);
    let mut replaced: BTreeSet<(Family, u32)> = BTreeSet::new();
    for d in desired {
        if kernel.contains(d) {
            continue;
        }
        if kernel.iter().any(|k| key(k) == key(d)) {
            replaced.insert(key(d));
            ops.replace.push(d.clone());
        } else {
            ops.add.push(d.clone());
        }
    }
    for k in kernel {
        if desired.contains(k) || replaced.contains(&key(k)) {
            continue;
        }
        let ours = k.protocol == protocol;
        if ours || sweep.contains(&(k.family, k.ifindex)) {
            ops.delete.push(k.clone());
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FamilyConfig, Method, Metric};
    use std::path::PathBuf;

    const OURS: u8 = 78;
    const DHCP: u8 = 16;

    fn name(s: &str) -> IfaceName {
        IfaceName::new(s).unwrap()
    }

    fn link(ifindex: u32, n: &str, kind: LinkKind) -> LinkInfo {
        LinkInfo {
            ifindex,
            name: name(n),
            kind,
            admin_up: true,
            carrier: true,
            carrier_changes: 0,
            mac: Some([2, 0, 0, 0, 0, ifindex as u8]),
        }
    }

    fn family(metric: u32) -> FamilyConfig {
        FamilyConfig {
            manage_default: true,
            method: Method::Auto,
            metric: Metric::new(metric.into()).unwrap(),
            addresses: vec![],
            gateway: None,
        }
    }

    fn profile(id: &str, t: UplinkType, m: IfaceMatch) -> Profile {
        Profile {
            id: id.into(),
            uuid: None,
            file: PathBuf::from(format!("{id}.nmconnection")),
            uplink_type: t,
            matches: m,
            managed: true,
            ipv4: family(t.default_metric().get()),
            ipv6: family(t.default_metric().get()),
            dns: vec![],
        }
    }

    fn route(ifindex: u32, gw: &str, metric: u32, protocol: u8) -> KernelRoute {
        let gateway: IpAddr = gw.parse().unwrap();
        KernelRoute {
            family: Family::of(&gateway),
            ifindex,
            gateway: Some(gateway),
            metric,
            protocol,
        }
    }

    #[test]
    fn assignment_rules() {
        let links: BTreeMap<u32, LinkInfo> = [
            link(1, "lo", LinkKind::Loopback),
            link(2, "eth0", LinkKind::Other),
            link(3, "eth1", LinkKind::Other),
            link(4, "wlan0", LinkKind::Other),
            link(5, "usb0", LinkKind::Other),
            link(6, "veth9", LinkKind::Veth),
            link(7, "br0", LinkKind::Bridge),
        ]
        .into_iter()
        .map(|l| (l.ifindex, l))
        .collect();
        let mut not_managed = profile("off", UplinkType::Other, IfaceMatch::Name(name("br0")));
        not_managed.managed = false;
        let profiles = vec![
            profile("by-type", UplinkType::Ethernet, IfaceMatch::ByType),
            profile(
                "named",
                UplinkType::Ethernet,
                IfaceMatch::Name(name("eth0")),
            ),
            profile("absent", UplinkType::Gsm, IfaceMatch::Name(name("wwan0"))),
            profile(
                "mac",
                UplinkType::Other,
                IfaceMatch::Mac([2, 0, 0, 0, 0, 5]),
            ),
            not_managed,
        ];
        let holds: BTreeSet<u32> = [1, 4, 6, 7].into();
        let mut eth1_off = profile("off1", UplinkType::Ethernet, IfaceMatch::Name(name("eth1")));
        eth1_off.managed = false;
        let got = assign(&profiles, true, &links, &holds, &BTreeSet::new());
        let summary: Vec<(String, Option<u32>, Option<usize>)> = got
            .iter()
            .map(|a| (a.name.to_string(), a.ifindex, a.profile))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("eth0".into(), Some(2), Some(1)),
                ("wwan0".into(), None, Some(2)),
                ("usb0".into(), Some(5), Some(3)),
                // Type matching skips eth0, already claimed by name.
                ("eth1".into(), Some(3), Some(0)),
                // Adopted: holds a default route and is not lo/veth/bridge.
                ("wlan0".into(), Some(4), None),
            ]
        );
        assert_eq!(got[4].uplink_type, UplinkType::Wifi);
        let none = assign(&profiles[..0], false, &links, &holds, &BTreeSet::new());
        assert!(
            none.is_empty(),
            "adopt=false manages nothing without profiles"
        );
        let sticky = assign(&[], true, &links, &BTreeSet::new(), &[name("eth1")].into());
        assert_eq!(sticky.len(), 1, "a once-adopted interface stays adopted");
        let off = assign(&[eth1_off], true, &links, &[3].into(), &BTreeSet::new());
        assert!(off.is_empty(), "autoconnect=false: never adopted");
    }

    #[test]
    fn equal_metrics_become_unique_in_ifindex_order() {
        let w = |ifindex, metric| RouteWant {
            family: Family::V4,
            ifindex,
            gateway: Some("192.0.2.1".parse().unwrap()),
            metric,
        };
        let reserved: BTreeSet<(Family, u32)> = [(Family::V4, 101)].into();
        let got = unique_routes(vec![w(3, 100), w(2, 100), w(4, 600)], &reserved, OURS);
        let metrics: Vec<(u32, u32)> = got.iter().map(|r| (r.ifindex, r.metric)).collect();
        assert_eq!(metrics, vec![(2, 100), (3, 102), (4, 600)]);
    }

    #[test]
    fn diff_keeps_replaces_adds_and_deletes() {
        let desired = vec![
            route(2, "192.0.2.1", 100, OURS),
            route(3, "198.51.100.1", 600, OURS),
            route(4, "203.0.113.1", 700, OURS),
            route(2, "2001:db8::1", 100, OURS),
        ];
        let kernel = vec![
            route(2, "192.0.2.1", 100, OURS),      // kept
            route(3, "198.51.100.1", 600, DHCP),   // same key: replaced in place
            route(3, "198.51.100.1", 20600, OURS), // stale penalty metric: deleted
            route(5, "192.0.2.129", 50, DHCP),     // unmanaged: untouched
            route(4, "203.0.113.1", 300, DHCP),    // foreign on managed iface: swept
            route(2, "2001:db8::1", 1024, DHCP),   // foreign v6 on managed iface: swept
        ];
        let sweep: BTreeSet<(Family, u32)> =
            [(Family::V4, 3), (Family::V4, 4), (Family::V6, 2)].into();
        let ops = diff(&desired, &kernel, OURS, &sweep);
        assert_eq!(ops.replace, vec![route(3, "198.51.100.1", 600, OURS)]);
        assert_eq!(
            ops.add,
            vec![
                route(4, "203.0.113.1", 700, OURS),
                route(2, "2001:db8::1", 100, OURS)
            ]
        );
        assert_eq!(
            ops.delete,
            vec![
                route(3, "198.51.100.1", 20600, OURS),
                route(4, "203.0.113.1", 300, DHCP),
                route(2, "2001:db8::1", 1024, DHCP)
            ]
        );
        assert!(diff(&desired[..1], &kernel[..1], OURS, &sweep).is_empty());
    }
}
