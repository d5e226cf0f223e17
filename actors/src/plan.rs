//! Pure route planning for RouteManager: which interfaces are managed (profiles, then adoption),
//! the default route each wants (configured metric, penalty, gateway), unique metrics per
//! family, the diff between the desired default routes and the kernel's, and the kernel settings
//! to apply first (rp_filter, `ra_defrtr_metric`, manual addresses). No actix, no I/O, no clock:
//! RouteManager feeds it a [`PlanInput`] and the route listing, and `apply.rs` applies the
//! [`Plan`] it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::time::Instant;

use crate::assign::{assign, Assigned};
use crate::health::penalized;
use crate::model::{
    Config, Connectivity, Family, FamilyConfig, IfaceAddr, IfaceMatch, IfaceName, KernelRoute,
    LinkInfo, Method, Profile, RpFilterPolicy, UplinkType,
};
use crate::ports::EngineState;
use crate::ra_solicit::{OwedAdvert, OwedStep};

pub use crate::model::RTPROT_RA;

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
/// - Our routes on interfaces not in `managed` (a profile removed, the daemon started with other
///   files) are deleted as NetworkManager removes a connection's routes with its profile, except
///   when they are the last default routes of their family: those are left as they are rather
///   than leave the device without a route (docs/semantics.md §9.1).
pub fn diff(
    desired: &[KernelRoute],
    kernel: &[KernelRoute],
    protocol: u8,
    sweep: &BTreeSet<(Family, u32)>,
    managed: &BTreeSet<u32>,
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
    let released = |k: &KernelRoute| {
        k.protocol == protocol
            && !managed.contains(&k.ifindex)
            && !sweep.contains(&(k.family, k.ifindex))
    };
    let routeless: BTreeSet<Family> = [Family::V4, Family::V6]
        .into_iter()
        .filter(|&family| {
            !desired.iter().any(|d| d.family == family)
                && kernel
                    .iter()
                    .filter(|k| k.family == family && !released(k))
                    .all(|k| ops.delete.contains(k))
        })
        .collect();
    ops.delete
        .retain(|k| !(released(k) && routeless.contains(&k.family)));
    ops
}

/// Settings of an adopted interface: the per-type default metric, gateway learned.
pub fn adopted_family(t: UplinkType) -> FamilyConfig {
    FamilyConfig {
        manage_default: true,
        method: Method::Auto,
        metric: t.default_metric(),
        addresses: Vec::new(),
        gateway: None,
    }
}

/// Whether `a`'s settings expect a default route through it (`Uplink::expects_default`): a
/// managed IPv4 default from DHCP (`auto`) or with a manual gateway, or a manual IPv6 gateway.
/// Router advertisements are not counted: a LAN port's IPv6 is `auto` by default.
pub fn expects_default(cfg: &Config, a: &Assigned) -> bool {
    [Family::V4, Family::V6].into_iter().any(|family| {
        let fc = family_config(cfg, a, family);
        fc.manage_default
            && match fc.method {
                Method::Manual => fc.gateway.is_some_and(|g| Family::of(&g) == family),
                Method::Auto => family == Family::V4,
            }
    })
}

/// The settings of one family of a managed interface: its profile's, or an adopted one's.
pub fn family_config(cfg: &Config, a: &Assigned, family: Family) -> FamilyConfig {
    match a.profile.and_then(|i| cfg.profiles.get(i)) {
        Some(p) => match family {
            Family::V4 => p.ipv4.clone(),
            Family::V6 => p.ipv6.clone(),
        },
        None => adopted_family(a.uplink_type),
    }
}

/// The gateway of `family` learned for `name` from a foreign default route we replaced.
pub fn learned(record: &EngineState, name: &IfaceName, family: Family) -> Option<IpAddr> {
    record
        .learned_gateways
        .get(name)?
        .iter()
        .find(|g| Family::of(g) == family)
        .copied()
}

/// A consistent copy of what planning needs, so the plan is computed inside the reconcile
/// future against the route listing it just made.
pub struct PlanInput {
    pub cfg: Arc<Config>,
    pub links: BTreeMap<u32, LinkInfo>,
    pub record: EngineState,
    pub full_since: HashMap<IfaceName, Instant>,
    pub shutting_down: bool,
    pub rp_filter_done: BTreeSet<u32>,
    pub ra_metric: BTreeMap<u32, u32>,
    /// Advertisements waited for (`ra_solicit.rs`).
    pub ra_owed: BTreeMap<u32, OwedAdvert>,
    pub addresses_done: BTreeSet<(u32, IfaceAddr)>,
    /// Control devices of profiles and the network interface each has now.
    pub control_nets: BTreeMap<String, IfaceName>,
}

/// The outcome of planning: route ops plus kernel settings to apply first.
pub struct Plan {
    pub managed: Vec<Assigned>,
    pub desired: Vec<KernelRoute>,
    pub ops: Ops,
    pub learned: Vec<(IfaceName, Vec<IpAddr>)>,
    /// (ifindex, name) whose rp_filter must be checked.
    pub rp_filter: Vec<(u32, IfaceName)>,
    /// (ifindex, name, metric) for `ra_defrtr_metric`.
    pub ra_metric: Vec<(u32, IfaceName, u32)>,
    pub addresses: Vec<(u32, IfaceAddr)>,
    pub rp_policy: RpFilterPolicy,
    /// The kernel's router-advertised IPv6 default routes.
    pub ra_routes: Vec<KernelRoute>,
    /// Router-advertised routes of interfaces whose link is lost: deleted.
    pub ra_delete: Vec<KernelRoute>,
    /// (ifindex, name) to solicit a router advertisement on (`ra_solicit.rs`).
    pub ra_resolicit: Vec<(u32, IfaceName)>,
    /// Interfaces whose owed advertisement arrived, or was given up on.
    pub ra_settled: Vec<(u32, OwedStep)>,
}

/// What planning gathers interface by interface, before metrics are made unique.
#[derive(Default)]
struct Draft {
    wants: Vec<RouteWant>,
    /// (family, ifindex) pairs whose foreign default routes are deleted.
    sweep: BTreeSet<(Family, u32)>,
    learned: Vec<(IfaceName, Vec<IpAddr>)>,
    rp_filter: Vec<(u32, IfaceName)>,
    ra_metric: Vec<(u32, IfaceName, u32)>,
    addresses: Vec<(u32, IfaceAddr)>,
    ra_delete: Vec<KernelRoute>,
    ra_resolicit: Vec<(u32, IfaceName)>,
    ra_settled: Vec<(u32, OwedStep)>,
}

/// One family of one managed interface with a link, as planning sees it.
struct Target<'a> {
    name: &'a IfaceName,
    ifindex: u32,
    family: Family,
    usable: bool,
    fc: FamilyConfig,
    /// Configured metric plus the penalty, before uniqueness.
    effective: u32,
}

impl PlanInput {
    /// The plan against `kernel` (every default route in the main table) at `now`.
    pub fn plan(&self, kernel: &[KernelRoute], now: Instant) -> Plan {
        let protocol = self.cfg.route.protocol;
        // Router-advertised IPv6 routes belong to the kernel: never adopted or swept.
        let visible: Vec<KernelRoute> = kernel
            .iter()
            .filter(|r| r.protocol != RTPROT_RA)
            .cloned()
            .collect();
        let managed = self.managed(&visible);
        let mut draft = Draft::default();
        for a in &managed {
            self.plan_iface(a, kernel, &visible, now, &mut draft);
        }
        // Metrics held by routes we neither own nor sweep must not be reused.
        let reserved: BTreeSet<(Family, u32)> = kernel
            .iter()
            .filter(|r| r.protocol != protocol && !draft.sweep.contains(&(r.family, r.ifindex)))
            .map(|r| (r.family, r.metric))
            .collect();
        let desired = unique_routes(draft.wants, &reserved, protocol);
        let managed_ifindexes: BTreeSet<u32> = managed.iter().filter_map(|a| a.ifindex).collect();
        let ops = diff(
            &desired,
            &visible,
            protocol,
            &draft.sweep,
            &managed_ifindexes,
        );
        Plan {
            managed,
            desired,
            ops,
            learned: draft.learned,
            rp_filter: draft.rp_filter,
            ra_metric: draft.ra_metric,
            addresses: draft.addresses,
            rp_policy: self.cfg.route.rp_filter,
            ra_routes: kernel
                .iter()
                .filter(|r| r.protocol == RTPROT_RA)
                .cloned()
                .collect(),
            ra_delete: draft.ra_delete,
            ra_resolicit: draft.ra_resolicit,
            ra_settled: draft.ra_settled,
        }
    }

    /// The managed interfaces: control devices found now map to their interface; the rest fall
    /// back ([`assign`]).
    fn managed(&self, visible: &[KernelRoute]) -> Vec<Assigned> {
        let holds: BTreeSet<u32> = visible.iter().map(|r| r.ifindex).collect();
        let sticky: BTreeSet<IfaceName> = self.record.learned_gateways.keys().cloned().collect();
        let profiles: Vec<Profile> = self
            .cfg
            .profiles
            .iter()
            .map(|p| match &p.matches {
                IfaceMatch::ControlDevice(dev) => match self.control_nets.get(dev) {
                    Some(name) => Profile {
                        matches: IfaceMatch::Name(name.clone()),
                        ..p.clone()
                    },
                    None => p.clone(),
                },
                _ => p.clone(),
            })
            .collect();
        assign(&profiles, self.cfg.adopt, &self.links, &holds, &sticky)
    }

    /// The penalty added to `name`'s metrics now (none while shutting down).
    fn penalty(&self, name: &IfaceName, now: Instant) -> u32 {
        let state = self
            .record
            .interfaces
            .get(name)
            .map(|r| r.connectivity)
            .unwrap_or(Connectivity::None);
        let penalize = !self.shutting_down
            && penalized(
                self.cfg.check.enabled(),
                state,
                self.full_since.get(name).copied(),
                self.cfg.check.failback_hold,
                now,
            );
        if penalize {
            self.cfg.route.penalty
        } else {
            0
        }
    }

    /// Plans both families of one managed interface whose link exists.
    fn plan_iface(
        &self,
        a: &Assigned,
        kernel: &[KernelRoute],
        visible: &[KernelRoute],
        now: Instant,
        draft: &mut Draft,
    ) {
        let Some(ifindex) = a.ifindex else { return };
        let Some(link) = self.links.get(&ifindex) else {
            return;
        };
        let usable = link.usable();
        let penalty = self.penalty(&a.name, now);
        let mut gws_learned = Vec::new();
        for family in [Family::V4, Family::V6] {
            let fc = family_config(&self.cfg, a, family);
            if !fc.manage_default {
                continue;
            }
            let mut metric = fc.metric.get();
            if family == Family::V6 && metric == 0 {
                metric = 1024; // the kernel stores IPv6 metric 0 as 1024
            }
            let gateway = self.gateway(a, ifindex, family, &fc, visible);
            if let (Some(Some(gw)), Method::Auto) = (gateway, fc.method) {
                gws_learned.push(gw);
            }
            let t = Target {
                name: &a.name,
                ifindex,
                family,
                usable,
                fc,
                effective: metric.saturating_add(penalty),
            };
            self.plan_family(&t, gateway, kernel, now, draft);
        }
        if !gws_learned.is_empty() {
            draft.learned.push((a.name.clone(), gws_learned));
        }
        if usable && !self.rp_filter_done.contains(&ifindex) {
            draft.rp_filter.push((ifindex, a.name.clone()));
        }
    }

    /// The gateway of one family: `None` when unknown (no route then), `Some(None)` for a route
    /// without gateway. Manual: the configured one; auto: the best foreign route's, else the
    /// learned one, else our own route's.
    fn gateway(
        &self,
        a: &Assigned,
        ifindex: u32,
        family: Family,
        fc: &FamilyConfig,
        visible: &[KernelRoute],
    ) -> Option<Option<IpAddr>> {
        let protocol = self.cfg.route.protocol;
        let mut foreign: Vec<&KernelRoute> = visible
            .iter()
            .filter(|r| r.ifindex == ifindex && r.family == family && r.protocol != protocol)
            .collect();
        foreign.sort_by_key(|r| r.metric);
        let owned = visible
            .iter()
            .find(|r| r.ifindex == ifindex && r.family == family && r.protocol == protocol);
        match fc.method {
            Method::Manual => fc.gateway.filter(|g| Family::of(g) == family).map(Some),
            Method::Auto => foreign
                .first()
                .map(|r| r.gateway)
                .or_else(|| learned(&self.record, &a.name, family).map(Some))
                .or_else(|| owned.map(|r| r.gateway)),
        }
    }

    /// Plans one family: router-advertised route work, then the wanted route (or the sweep of a
    /// lost link's routes).
    fn plan_family(
        &self,
        t: &Target<'_>,
        gateway: Option<Option<IpAddr>>,
        kernel: &[KernelRoute],
        now: Instant,
        draft: &mut Draft,
    ) {
        let (ifindex, family) = (t.ifindex, t.family);
        if family == Family::V6 && t.usable {
            if self.ra_metric.get(&ifindex) != Some(&t.effective) {
                draft.ra_metric.push((ifindex, t.name.clone(), t.effective));
            }
            if let Some(owed) = self.ra_owed.get(&ifindex) {
                match owed.step(ifindex, kernel, now) {
                    OwedStep::Solicit => draft.ra_resolicit.push((ifindex, t.name.clone())),
                    OwedStep::Wait => {}
                    settled => draft.ra_settled.push((ifindex, settled)),
                }
            }
        }
        if !t.usable {
            draft.sweep.insert((family, ifindex));
            if family == Family::V6 {
                draft.ra_delete.extend(
                    kernel
                        .iter()
                        .filter(|r| r.protocol == RTPROT_RA && r.ifindex == ifindex)
                        .cloned(),
                );
            }
            return;
        }
        let Some(gateway) = gateway else { return };
        if t.fc.method == Method::Manual {
            for addr in
                t.fc.addresses
                    .iter()
                    .filter(|ad| Family::of(&ad.addr) == family)
            {
                if !self.addresses_done.contains(&(ifindex, *addr)) {
                    draft.addresses.push((ifindex, *addr));
                }
            }
        }
        draft.wants.push(RouteWant {
            family,
            ifindex,
            gateway,
            metric: t.effective,
        });
        draft.sweep.insert((family, ifindex));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: u8 = 78;
    const DHCP: u8 = 16;

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
        let managed: BTreeSet<u32> = [2, 3, 4].into();
        let ops = diff(&desired, &kernel, OURS, &sweep, &managed);
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
        assert!(diff(&desired[..1], &kernel[..1], OURS, &sweep, &managed).is_empty());
    }

    #[test]
    fn our_routes_on_interfaces_no_longer_managed_go_unless_they_are_the_last() {
        let sweep = BTreeSet::new();
        let orphan_v4 = route(7, "192.0.2.65", 100, OURS);
        let orphan_v6 = route(7, "2001:db8::65", 100, OURS);
        let kernel = vec![orphan_v4.clone(), orphan_v6.clone()];
        // Nothing managed and nothing else routed: the device keeps its routes.
        let nothing = diff(&[], &kernel, OURS, &sweep, &BTreeSet::new());
        assert!(nothing.is_empty(), "{nothing:?}");
        // Another interface's route of ours is wanted in IPv4: the IPv4 orphan goes (after the
        // add), the IPv6 one, the last of its family, stays.
        let wanted = vec![route(2, "192.0.2.1", 600, OURS)];
        let ops = diff(&wanted, &kernel, OURS, &sweep, &[2].into());
        assert_eq!(ops.add, wanted);
        assert_eq!(ops.delete, vec![orphan_v4.clone()]);
        // With the orphan's metric, the wanted route takes its place in one replace.
        let wanted = vec![route(2, "192.0.2.1", 100, OURS)];
        let ops = diff(&wanted, &kernel, OURS, &sweep, &[2].into());
        assert_eq!((ops.replace, ops.delete), (wanted, vec![]));
        // A foreign route that stays (an unmanaged interface's DHCP route) is a route too.
        let mut with_foreign = kernel.clone();
        with_foreign.push(route(5, "2001:db8::129", 1024, DHCP));
        let ops = diff(&[], &with_foreign, OURS, &sweep, &BTreeSet::new());
        assert_eq!(ops.delete, vec![orphan_v6.clone()]);
        // A foreign route about to be swept is not: the orphan stays.
        let swept: BTreeSet<(Family, u32)> = [(Family::V6, 5)].into();
        let ops = diff(&[], &with_foreign, OURS, &swept, &[5].into());
        assert_eq!(ops.delete, vec![route(5, "2001:db8::129", 1024, DHCP)]);
        // On a managed interface our undesired routes always go (stale metric, lost link).
        let ops = diff(&[], &kernel, OURS, &sweep, &[7].into());
        assert_eq!(ops.delete, kernel);
    }
}
