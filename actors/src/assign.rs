//! Which interfaces RouteManager manages: profiles bound by name or MAC first, then by type
//! (or control device), then adoption of other interfaces holding a default route
//! (docs/semantics.md §1.2, §2). Pure: the planner (`plan.rs`) calls it on every reconcile.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{IfaceMatch, IfaceName, LinkInfo, LinkKind, Profile, UplinkType};

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
    // Explicit bindings first (name, then MAC), so type matching only takes what is left.
    bind_explicit(profiles, links, &mut out);
    bind_by_type(profiles, links, &mut out);
    if adopt {
        adopt_holders(profiles, links, holds_default, sticky, &mut out);
    }
    out
}

fn claimed(out: &[Assigned], name: &IfaceName) -> bool {
    out.iter().any(|a| &a.name == name)
}

/// Profiles bound by name (managed even while the interface is absent) or by MAC.
fn bind_explicit(profiles: &[Profile], links: &BTreeMap<u32, LinkInfo>, out: &mut Vec<Assigned>) {
    let by_name = |name: &IfaceName| links.values().find(|l| &l.name == name);
    for (i, p) in profiles.iter().enumerate().filter(|(_, p)| p.managed) {
        let (name, ifindex) = match &p.matches {
            IfaceMatch::Name(n) => (n.clone(), by_name(n).map(|l| l.ifindex)),
            IfaceMatch::Mac(mac) => match links.values().find(|l| l.mac.as_ref() == Some(mac)) {
                Some(l) => (l.name.clone(), Some(l.ifindex)),
                None => continue,
            },
            IfaceMatch::ByType | IfaceMatch::ControlDevice(_) => continue,
        };
        if !claimed(out, &name) {
            out.push(Assigned {
                name,
                ifindex,
                profile: Some(i),
                uplink_type: p.uplink_type,
            });
        }
    }
}

/// Profiles bound by type: the first unclaimed interface (in ifindex order) with a matching name.
fn bind_by_type(profiles: &[Profile], links: &BTreeMap<u32, LinkInfo>, out: &mut Vec<Assigned>) {
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
            .find(|l| l.name.has_prefix(prefixes) && !claimed(out, &l.name))
        {
            out.push(Assigned {
                name: l.name.clone(),
                ifindex: Some(l.ifindex),
                profile: Some(i),
                uplink_type: p.uplink_type,
            });
        }
    }
}

/// Adoption: unclaimed interfaces holding a default route (or adopted before), except
/// loopback, bridges, veths and tunnels.
fn adopt_holders(
    profiles: &[Profile],
    links: &BTreeMap<u32, LinkInfo>,
    holds_default: &BTreeSet<u32>,
    sticky: &BTreeSet<IfaceName>,
    out: &mut Vec<Assigned>,
) {
    // A profile with `autoconnect=false` keeps its interface unmanaged (docs/semantics.md §1.2):
    // never adopt what such a profile names.
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
        if adoptable && wanted && !claimed(out, &l.name) {
            out.push(Assigned {
                name: l.name.clone(),
                ifindex: Some(l.ifindex),
                profile: None,
                uplink_type: UplinkType::guess_from_name(&l.name),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FamilyConfig, Method, Metric};
    use std::path::PathBuf;

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
            metered: crate::model::Metered::guess(t),
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
}
