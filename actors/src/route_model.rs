//! RouteManager's model of the device and what it shows of it, without actix or I/O.
//!
//! Owns: the links, the managed interfaces, the routes installed by the last reconcile, the
//! interface states (`transition.rs`) and the route in use per family; folding an applied plan
//! into them; and the projections other parts read: dispatcher events (a transition's
//! [`Change`] plus profile, gateway and nameservers), the uplinks ProbeScheduler checks, the
//! route-in-use moves FlowResetter acts on, and RouteManager's part of the status board.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use crate::apply::Applied;
use crate::assign::Assigned;
use crate::iface_parts::IfaceRoute;
use crate::messages::{RouteInUseMoved, Uplink};
use crate::model::{
    Config, Connectivity, Event, Family, IfaceAddr, IfaceName, KernelRoute, LinkInfo, Metered,
    Profile, UplinkType,
};
use crate::plan::{expects_default, family_config, learned, Plan};
use crate::status::{IfaceSource, LinkState};
use crate::transition::{Change, States};

/// Why an interface's IPv6 penalty does nothing (`status`).
pub const IPV6_PENALTY_UNAVAILABLE: &str = "the kernel has no ra_defrtr_metric (Linux 5.12 added it): router-advertised IPv6 routes keep their metric, so IPv6 is not moved off a failing uplink";

/// See the module doc. Rebuilt from the ports on every RouteManager start.
#[derive(Default)]
pub struct RouteModel {
    pub links: BTreeMap<u32, LinkInfo>,
    /// The persisted record and when each interface became FULL (`transition.rs`).
    pub states: States,
    pub managed: Vec<Assigned>,
    /// The plan before the last one (events of interfaces that left it still name their profile).
    pub previous_managed: Vec<Assigned>,
    /// Routes believed installed after the last reconcile, per interface.
    pub installed: BTreeMap<(IfaceName, Family), KernelRoute>,
    /// The router-advertised IPv6 default routes of managed interfaces left in the kernel by
    /// the last reconcile (those it deleted on link loss left out), with their interface. They
    /// compete for the route in use like owned ones.
    pub ra_installed: Vec<(IfaceName, KernelRoute)>,
    /// Interfaces (ifindex) whose `ra_defrtr_metric` the kernel lacks: their router-advertised
    /// routes cannot be demoted (shown in `status`).
    pub ra_unavailable: BTreeSet<u32>,
    /// Each managed interface's addresses as last seen with any (kept when it has none left or
    /// vanished, so its flows can still be reset: a socket keeps its source address).
    pub last_addresses: BTreeMap<IfaceName, Vec<IfaceAddr>>,
    /// Families with a known default route or gateway, per ifindex: a route we want (its
    /// gateway is known) or a router-advertised one.
    pub routed: BTreeMap<u32, BTreeSet<Family>>,
    /// Families of `routed` whose route the kernel refused for a gateway not reachable on the
    /// link yet, per ifindex: the interface waits for its address (a DHCP lease after a carrier
    /// return). Nothing can be checked through them until it arrives.
    pub waiting: BTreeMap<u32, BTreeSet<Family>>,
    /// Per family, the interface whose owned route has the lowest metric (the route in use)
    /// after the last applied reconcile, with its ifindex. Empty after a (re)start, so a restart
    /// never reports a move.
    pub in_use: BTreeMap<Family, (IfaceName, u32)>,
    /// Per family, a move off an interface whose state was still UNKNOWN, held until that
    /// state is known (see [`RouteModel::moves`]).
    pub held_moves: BTreeMap<Family, RouteInUseMoved>,
}

impl RouteModel {
    pub fn profile_of<'c>(&self, cfg: &'c Config, name: &IfaceName) -> Option<&'c Profile> {
        // The previous plan names the profile of an interface that just left management.
        let a = self
            .managed
            .iter()
            .chain(&self.previous_managed)
            .find(|a| &a.name == name)?;
        cfg.profiles.get(a.profile?)
    }

    pub fn dns_for(&self, cfg: &Config, name: &IfaceName) -> Vec<SocketAddr> {
        let profile_dns = self
            .profile_of(cfg, name)
            .map(|p| p.dns.clone())
            .unwrap_or_default();
        cfg.dns.servers_for(name, &profile_dns)
    }

    /// Families with a known default route or gateway on `a` whose route is not waiting for
    /// the interface's address: checks go only there.
    pub fn routed(&self, a: &Assigned) -> Vec<Family> {
        let Some(ifindex) = a.ifindex else {
            return Vec::new();
        };
        let waiting = self.waiting.get(&ifindex);
        self.routed
            .get(&ifindex)
            .map(|f| {
                f.iter()
                    .filter(|f| !waiting.is_some_and(|w| w.contains(f)))
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `name` has a known gateway but every route it has waits for its address (see
    /// [`RouteModel::waiting`]).
    pub fn waiting_for_address(&self, name: &IfaceName) -> bool {
        self.managed
            .iter()
            .find(|a| &a.name == name)
            .and_then(|a| a.ifindex)
            .is_some_and(|i| {
                self.waiting.contains_key(&i) && self.routed.get(&i) == self.waiting.get(&i)
            })
    }

    pub fn usable(&self, a: &Assigned) -> bool {
        a.ifindex
            .and_then(|i| self.links.get(&i))
            .is_some_and(LinkInfo::usable)
    }

    /// The managed interface `name`, if it is managed and its link usable.
    pub fn usable_managed(&self, name: &IfaceName) -> bool {
        self.managed
            .iter()
            .find(|a| &a.name == name)
            .is_some_and(|a| self.usable(a))
    }

    pub fn connectivity(&self, name: &IfaceName) -> Connectivity {
        self.states.connectivity(name)
    }

    /// Folds an applied plan in: managed interfaces, routes installed (only those whose write
    /// succeeded), families routed, learned gateways.
    pub fn absorb(&mut self, plan: Plan, applied: &Applied) {
        self.routed = BTreeMap::new();
        for r in plan.desired.iter().chain(&plan.ra_routes) {
            self.routed.entry(r.ifindex).or_default().insert(r.family);
        }
        let waiting_before = std::mem::take(&mut self.waiting);
        for r in &applied.waiting {
            self.waiting.entry(r.ifindex).or_default().insert(r.family);
        }
        // Once per change, not per try: a lease takes a moment, and every notification until
        // it is back brings another try.
        for r in applied.waiting.iter().filter(|r| {
            !waiting_before
                .get(&r.ifindex)
                .is_some_and(|f| f.contains(&r.family))
        }) {
            tracing::info!(ifindex = r.ifindex, family = ?r.family, gateway = r.gateway.map(tracing::field::display), "default route waits for the interface's address (gateway not reachable on the link yet)");
        }
        self.previous_managed = std::mem::replace(&mut self.managed, plan.managed);
        let managed = &self.managed;
        let name_of = |ifindex: u32| {
            managed
                .iter()
                .find(|a| a.ifindex == Some(ifindex))
                .map(|a| a.name.clone())
        };
        self.ra_installed = plan
            .ra_routes
            .iter()
            .filter(|r| !plan.ra_delete.contains(r) && !applied.ra_deleted.contains(&r.ifindex))
            .filter_map(|r| Some((name_of(r.ifindex)?, r.clone())))
            .collect();
        self.installed = plan
            .desired
            .iter()
            .filter(|r| !applied.failed_routes.contains(r) && !applied.waiting.contains(r))
            .filter_map(|r| {
                let a = managed.iter().find(|a| a.ifindex == Some(r.ifindex))?;
                Some(((a.name.clone(), r.family), r.clone()))
            })
            .collect();
        for (ifindex, _) in &applied.ra_metric {
            if applied.ra_unavailable.contains(ifindex) {
                self.ra_unavailable.insert(*ifindex);
            } else {
                self.ra_unavailable.remove(ifindex);
            }
        }
        let links = &self.links;
        self.ra_unavailable.retain(|i| links.contains_key(i));
        for (name, gws) in plan.learned {
            self.states.record.learned_gateways.insert(name, gws);
        }
    }

    /// Folds an address listing in: each managed interface with addresses now gets them
    /// remembered; one with none (vanished, lease released) keeps its last ones. Interfaces
    /// neither managed nor in use are forgotten, so the memory stays bounded.
    pub fn remember_addresses(&mut self, listing: &[(u32, IfaceAddr)]) {
        for a in &self.managed {
            let Some(ifindex) = a.ifindex else { continue };
            let now: Vec<IfaceAddr> = listing
                .iter()
                .filter(|(i, _)| *i == ifindex)
                .map(|(_, addr)| *addr)
                .collect();
            if !now.is_empty() {
                self.last_addresses.insert(a.name.clone(), now);
            }
        }
        let (managed, in_use) = (&self.managed, &self.in_use);
        self.last_addresses.retain(|name, _| {
            managed.iter().any(|a| &a.name == name) || in_use.values().any(|(n, _)| n == name)
        });
    }

    /// The interface of the route in use of `family`: the lowest metric among the owned routes
    /// and, for IPv6, the router-advertised ones of managed interfaces.
    fn route_in_use(&self, family: Family) -> Option<(IfaceName, u32)> {
        let owned = self
            .installed
            .iter()
            .filter(|((_, f), _)| *f == family)
            .map(|((name, _), r)| (name, r));
        let ra = self
            .ra_installed
            .iter()
            .filter(|(_, r)| r.family == family)
            .map(|(name, r)| (name, r));
        owned
            .chain(ra)
            .min_by_key(|(_, r)| (r.metric, r.ifindex))
            .map(|(name, r)| (name.clone(), r.ifindex))
    }

    /// Per family, the move of the route in use to another interface since the last call, if
    /// any (`at`: when the routes were applied).
    ///
    /// A move off an interface still UNKNOWN while checks are on (its first check after a
    /// start or a reset is running: it is penalised for not being FULL yet, not failing) is
    /// held: when the route comes back to it before its state is known, nothing moved for its
    /// flows (a start-up blip, the backup checked first); when its state becomes known first,
    /// the move is reported then.
    pub fn moves(&mut self, cfg: &Config, at: Instant) -> Vec<RouteInUseMoved> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            let now = self.route_in_use(family);
            out.extend(self.release_held(family, now.as_ref().map(|n| &n.0), at));
            let before = match &now {
                Some(n) => self.in_use.insert(family, n.clone()),
                // No route at all: nothing moved *to* another interface; keep the last one so
                // the move is reported when a route comes back elsewhere.
                None => continue,
            };
            let (Some((from, from_ifindex)), Some((to, _))) = (before, now) else {
                continue;
            };
            if from == to {
                continue;
            }
            let metric_of = |name: &IfaceName| {
                self.managed
                    .iter()
                    .find(|a| &a.name == name)
                    .map(|a| family_config(cfg, a, family).metric.get())
            };
            let failback =
                matches!((metric_of(&to), metric_of(&from)), (Some(t), Some(f)) if t < f);
            let from_cellular = self
                .managed
                .iter()
                .chain(&self.previous_managed)
                .find(|a| a.name == from)
                .is_some_and(|a| matches!(a.uplink_type, UplinkType::Gsm | UplinkType::Cdma));
            let moved = RouteInUseMoved {
                family,
                from_addresses: self.last_addresses.get(&from).cloned().unwrap_or_default(),
                from,
                from_ifindex,
                from_cellular,
                to,
                failback,
                at,
            };
            // An interface waiting for its address is not being checked: nothing to wait for.
            if cfg.check.enabled()
                && self.connectivity(&moved.from) == Connectivity::Unknown
                && !self.waiting_for_address(&moved.from)
            {
                tracing::debug!(family = ?family, from = %moved.from, to = %moved.to, "route in use left an interface not checked yet; held until its state is known");
                self.held_moves.insert(family, moved);
            } else {
                out.push(moved);
            }
        }
        out
    }

    /// The held move of `family`, once its interface's state is known and the route in use
    /// (`now`) has not come back to it; dropped when it has, the route in use then being its
    /// interface again as if it never left.
    fn release_held(
        &mut self,
        family: Family,
        now: Option<&IfaceName>,
        at: Instant,
    ) -> Option<RouteInUseMoved> {
        let held = self.held_moves.get(&family)?;
        if now == Some(&held.from) {
            // The route never left `from` for its flows: the return onto it is no move either
            // (else a fail-back would be reported, and reset with `on_failback`, for a blip).
            let back = (held.from.clone(), held.from_ifindex);
            self.held_moves.remove(&family);
            self.in_use.insert(family, back);
            return None;
        }
        if self.connectivity(&held.from) == Connectivity::Unknown
            && !self.waiting_for_address(&held.from)
        {
            return None;
        }
        let mut moved = self.held_moves.remove(&family)?;
        moved.at = at;
        Some(moved)
    }

    /// Turns a transition's change into a dispatcher event: what scripts read about the
    /// interface (profile, gateway, nameservers) as it is now.
    pub fn event(&self, cfg: &Config, c: Change, at_unix_ms: u64) -> Event {
        let iface = c.iface.as_ref();
        let profile = iface.and_then(|n| self.profile_of(cfg, n));
        let ip4_gateway = iface.and_then(|n| {
            self.installed
                .get(&(n.clone(), Family::V4))
                .and_then(|r| r.gateway)
                .or_else(|| learned(&self.states.record, n, Family::V4))
        });
        let ip4_nameservers = iface
            .map(|n| {
                self.dns_for(cfg, n)
                    .into_iter()
                    .map(|s| s.ip())
                    .filter(IpAddr::is_ipv4)
                    .collect()
            })
            .unwrap_or_default();
        Event {
            id: 0,
            kind: c.kind,
            iface: c.iface.clone(),
            state: c.state,
            previous: c.previous,
            reason: c.reason,
            connection_id: profile.map(|p| p.id.clone()),
            connection_uuid: profile.and_then(|p| p.uuid.clone()),
            ip4_gateway,
            ip4_nameservers,
            at_unix_ms,
            recovery: None,
            budget: None,
        }
    }

    /// The managed interfaces with a link, as ProbeScheduler checks them.
    pub fn uplinks(&self, cfg: &Config) -> Vec<Uplink> {
        self.managed
            .iter()
            .filter_map(|a| {
                Some(Uplink {
                    name: a.name.clone(),
                    ifindex: a.ifindex?,
                    usable: self.usable(a),
                    dns: self.dns_for(cfg, &a.name),
                    routed: self.routed(a),
                    expects_default: expects_default(cfg, a),
                    connectivity: self.connectivity(&a.name),
                    metric: family_config(cfg, a, Family::V4).metric.get(),
                    cellular: matches!(a.uplink_type, UplinkType::Gsm | UplinkType::Cdma),
                    metered: a
                        .profile
                        .and_then(|i| cfg.profiles.get(i))
                        .map_or_else(|| Metered::guess(a.uplink_type), |p| p.metered)
                        .metered,
                    in_use: self.in_use.values().any(|(n, _)| n == &a.name),
                })
            })
            .collect()
    }

    /// RouteManager's part of one managed interface's status.
    pub fn iface_status(&self, cfg: &Config, a: &Assigned) -> IfaceRoute {
        let link = a.ifindex.and_then(|i| self.links.get(&i));
        let r4 = self.installed.get(&(a.name.clone(), Family::V4));
        let r6 = self.installed.get(&(a.name.clone(), Family::V6));
        let profile = a.profile.and_then(|i| cfg.profiles.get(i));
        let metered = profile.map_or_else(|| Metered::guess(a.uplink_type), |p| p.metered);
        IfaceRoute {
            name: a.name.clone(),
            ifindex: a.ifindex,
            link: match link {
                None => LinkState::Absent,
                Some(l) if l.usable() => LinkState::Up,
                Some(_) => LinkState::Down,
            },
            connectivity: self.connectivity(&a.name),
            metric: family_config(cfg, a, Family::V4).metric.get(),
            effective_metric: r4.map(|r| r.metric),
            metric6: family_config(cfg, a, Family::V6).metric.get(),
            effective_metric6: r6.map(|r| r.metric),
            gateway4: r4.and_then(|r| r.gateway),
            gateway6: r6.and_then(|r| r.gateway),
            ipv6_penalty_unavailable: a
                .ifindex
                .filter(|i| self.ra_unavailable.contains(i))
                .map(|_| IPV6_PENALTY_UNAVAILABLE.to_string()),
            uplink_type: a.uplink_type,
            source: match profile {
                Some(p) => IfaceSource::Profile {
                    id: p.id.clone(),
                    file: p.file.clone(),
                },
                None => IfaceSource::Adopted,
            },
            dns: self.dns_for(cfg, &a.name),
            metered: metered.metered,
            metered_guessed: metered.guessed,
        }
    }

    /// RouteManager's part of the status: every managed interface, in plan order.
    pub fn interfaces(&self, cfg: &Config) -> Vec<IfaceRoute> {
        self.managed
            .iter()
            .map(|a| self.iface_status(cfg, a))
            .collect()
    }
}
