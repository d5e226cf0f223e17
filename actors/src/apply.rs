//! The applier: turns a [`Plan`] into kernel writes through the `RouteTable` and `Sysctl`
//! ports, in the order that never leaves the device without a default route (settings and
//! addresses, then replacements and additions, then deletions), plus the rp_filter policy
//! (strict → loose, or a warning with `route.rp_filter = "keep"`). It keeps going after a
//! failure and reports what it did; RouteManager folds that into its caches and retries.
//! A route the kernel refuses because its gateway is not reachable on the link yet
//! (`PortErrorKind::Unreachable`: no address on the gateway's subnet, a DHCP lease not back
//! yet) is not a failure: it is reported as *waiting*, and the address's own notification
//! brings the next try (docs/semantics.md §9.2).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{IfaceAddr, IfaceName, KernelRoute, RpFilterPolicy};
use crate::plan::{Plan, RTPROT_RA};
use crate::ports::{PortError, PortErrorKind, RouteTable, Sysctl};
use crate::ra_solicit::{OwedAdvert, OwedStep, SOLICITATIONS};
use tokio::time::Instant;
use tracing::Instrument;

/// What applying a plan did.
#[derive(Default)]
pub struct Applied {
    pub failures: Vec<PortError>,
    pub failed_routes: Vec<KernelRoute>,
    /// Routes the kernel refused for a gateway not reachable on the link yet (see the module
    /// doc): not installed, not failures.
    pub waiting: Vec<KernelRoute>,
    pub rp_filter_done: Vec<u32>,
    pub ra_metric: Vec<(u32, u32)>,
    /// Interfaces whose `ra_defrtr_metric` does not exist (kernels before 5.12): their
    /// router-advertised routes cannot be demoted (also in `ra_metric`, so not retried).
    pub ra_unavailable: Vec<u32>,
    pub ra_deleted: Vec<u32>,
    /// Interfaces solicited (sent or failed alike: the back-off paces both).
    pub resolicited: Vec<u32>,
    /// (ifindex, metric) whose route must move to a new `ra_defrtr_metric`: solicited once.
    pub ra_moving: Vec<(u32, u32)>,
    pub addresses_done: Vec<(u32, IfaceAddr)>,
}

impl Applied {
    /// Files the outcome of adding or replacing `r`.
    fn route_written(&mut self, r: &KernelRoute, result: Result<(), PortError>) {
        match result {
            Ok(()) => {}
            Err(e) if e.is(PortErrorKind::Unreachable) => {
                tracing::debug!(ifindex = r.ifindex, error = %e, "route waits for the interface's address");
                self.waiting.push(r.clone());
            }
            Err(e) => {
                self.failures.push(e);
                self.failed_routes.push(r.clone());
            }
        }
    }
}

/// Applies a plan: addresses and sysctls, then replacements and additions, then deletions.
/// Keeps going after a failure and reports every one (the next reconcile retries).
pub async fn apply(routes: &dyn RouteTable, sysctl: &dyn Sysctl, plan: &Plan) -> Applied {
    let mut out = Applied::default();
    apply_settings(routes, sysctl, plan, &mut out).await;
    apply_routes(routes, plan, &mut out).await;
    out
}

/// rp_filter, `ra_defrtr_metric` (with a solicitation when a router-advertised route must
/// move), manual addresses.
async fn apply_settings(
    routes: &dyn RouteTable,
    sysctl: &dyn Sysctl,
    plan: &Plan,
    out: &mut Applied,
) {
    for (ifindex, name) in &plan.rp_filter {
        match relax_rp_filter(sysctl, name, plan.rp_policy).await {
            Ok(()) => out.rp_filter_done.push(*ifindex),
            Err(e) => out.failures.push(e),
        }
    }
    for (ifindex, name, metric) in &plan.ra_metric {
        let key = format!("net.ipv6.conf.{name}.ra_defrtr_metric");
        match sysctl.write(key, metric.to_string()).await {
            Ok(()) => {
                out.ra_metric.push((*ifindex, *metric));
                // The setting applies to the next advertisement; ask for one now, so a route
                // already there moves to the new metric (the kernel updates it in place; adding
                // it ourselves would lose its lifetime and duplicate it on the next RA).
                if plan
                    .ra_routes
                    .iter()
                    .any(|r| r.ifindex == *ifindex && r.metric != *metric)
                {
                    tracing::info!(iface = %name, metric, "router-advertised route: metric changed, soliciting a new advertisement");
                    if let Err(e) = routes.solicit_router(*ifindex, name.clone()).await {
                        tracing::warn!(iface = %name, error = %e, "router solicitation failed; asking again shortly");
                    }
                    // Owed until the route shows the metric (`ra_solicit.rs`).
                    out.ra_moving.push((*ifindex, *metric));
                }
            }
            // Kernels before 5.12 have no ra_defrtr_metric: nothing to retry, but said loudly
            // (log and `status`), since the IPv6 penalty then does nothing.
            Err(PortError {
                kind: PortErrorKind::NotFound,
                ..
            }) => {
                tracing::warn!(iface = %name, metric, "IPv6 penalty unavailable: this kernel has no ra_defrtr_metric (Linux 5.12 added it); router-advertised IPv6 routes keep their metric, so IPv6 traffic is not moved off a failing uplink");
                out.ra_metric.push((*ifindex, *metric));
                out.ra_unavailable.push(*ifindex);
            }
            Err(e) => out.failures.push(e),
        }
    }
    for (ifindex, addr) in &plan.addresses {
        match routes.ensure_address(*ifindex, *addr).await {
            Ok(()) => out.addresses_done.push((*ifindex, *addr)),
            Err(e) => out.failures.push(e),
        }
    }
}

/// The span of one route write: the fixed field names of every actor span (docs/architecture.md,
/// "Adding an actor"), so a slow or failed write is found by interface index and metric.
fn write_span(r: &KernelRoute) -> tracing::Span {
    tracing::info_span!("route_write", ifindex = r.ifindex, metric = r.metric)
}

/// Replacements and additions, then deletions, then solicitations of links back.
async fn apply_routes(routes: &dyn RouteTable, plan: &Plan, out: &mut Applied) {
    for r in &plan.ops.replace {
        tracing::info!(
            ifindex = r.ifindex,
            metric = r.metric,
            gateway = r.gateway.map(tracing::field::display),
            "replacing default route"
        );
        let result = routes.replace(r.clone()).instrument(write_span(r)).await;
        out.route_written(r, result);
    }
    for r in &plan.ops.add {
        tracing::info!(
            ifindex = r.ifindex,
            metric = r.metric,
            gateway = r.gateway.map(tracing::field::display),
            "adding default route"
        );
        let result = routes.add(r.clone()).instrument(write_span(r)).await;
        out.route_written(r, result);
    }
    for r in plan.ops.delete.iter().chain(&plan.ra_delete) {
        tracing::info!(
            ifindex = r.ifindex,
            metric = r.metric,
            protocol = r.protocol,
            gateway = r.gateway.map(tracing::field::display),
            "deleting default route"
        );
        match routes.delete(r.clone()).instrument(write_span(r)).await {
            Ok(())
            | Err(PortError {
                kind: PortErrorKind::NotFound,
                ..
            }) => {
                if r.protocol == RTPROT_RA {
                    out.ra_deleted.push(r.ifindex);
                }
            }
            Err(e) => out.failures.push(e),
        }
    }
    for (ifindex, name) in &plan.ra_resolicit {
        tracing::info!(iface = %name, "soliciting the router-advertised route");
        if let Err(e) = routes.solicit_router(*ifindex, name.clone()).await {
            // Asked again on the back-off (no link-local address yet, ...).
            tracing::warn!(iface = %name, error = %e, "router solicitation failed");
        }
        out.resolicited.push(*ifindex);
    }
}

/// Strict reverse-path filtering drops the replies of every standby's checks (docs/semantics.md §3).
async fn relax_rp_filter(
    sysctl: &dyn Sysctl,
    name: &IfaceName,
    policy: RpFilterPolicy,
) -> Result<(), PortError> {
    let read = |k: String| async move {
        sysctl
            .read(k)
            .await
            .map(|v| v.trim().parse::<u8>().unwrap_or(0))
    };
    let all = read("net.ipv4.conf.all.rp_filter".into()).await?;
    let own_key = format!("net.ipv4.conf.{name}.rp_filter");
    let own = read(own_key.clone()).await?;
    // The kernel uses the larger of `all` and the interface's value; 2 (loose) beats 1.
    if all.max(own) != 1 {
        return Ok(());
    }
    match policy {
        RpFilterPolicy::Loose => {
            sysctl.write(own_key, "2".into()).await?;
            tracing::info!(iface = %name, "rp_filter was strict (1): set to loose (2) so standby checks get their replies");
        }
        RpFilterPolicy::Keep => {
            tracing::warn!(iface = %name, "rp_filter is strict (1): standby checks will likely fail (route.rp_filter = \"keep\")");
        }
    }
    Ok(())
}

/// Kernel settings already applied, so each is done once per link appearance: planning skips
/// them (`PlanInput`), and all are forgotten with the link ([`Done::forget_link`]).
#[derive(Default)]
pub struct Done {
    /// rp_filter checked (per ifindex).
    pub rp_filter: BTreeSet<u32>,
    /// `ra_defrtr_metric` written (per ifindex); cleared on reload (metrics may change).
    pub ra_metric: BTreeMap<u32, u32>,
    /// Router advertisements waited for, per ifindex: after we deleted an interface's
    /// advertised routes on link loss, or moved them to a new metric (`ra_solicit.rs`).
    pub ra_owed: BTreeMap<u32, OwedAdvert>,
    /// Manual addresses ensured; also forgotten when the link becomes unusable (admin down
    /// flushes IPv6 addresses, and a link may come back without the IPv4 ones).
    pub addresses: BTreeSet<(u32, IfaceAddr)>,
}

impl Done {
    pub fn forget_link(&mut self, ifindex: u32) {
        self.rp_filter.remove(&ifindex);
        self.ra_metric.remove(&ifindex);
        self.ra_owed.remove(&ifindex);
        self.forget_addresses(ifindex);
    }

    pub fn forget_addresses(&mut self, ifindex: u32) {
        self.addresses.retain(|(i, _)| *i != ifindex);
    }

    /// Folds in what the plan found and the apply did at `now`.
    pub fn absorb(&mut self, plan: &Plan, applied: &Applied, now: Instant) {
        self.rp_filter.extend(&applied.rp_filter_done);
        self.ra_metric.extend(applied.ra_metric.iter().copied());
        for (ifindex, step) in &plan.ra_settled {
            if *step == OwedStep::GiveUp {
                tracing::info!(ifindex, solicitations = SOLICITATIONS, "no router advertisement came; the router's own periodic ones will bring the route");
            }
            self.ra_owed.remove(ifindex);
        }
        for i in &applied.ra_deleted {
            self.ra_owed.insert(*i, OwedAdvert::after_link_loss(now));
        }
        for (i, metric) in &applied.ra_moving {
            self.ra_owed
                .insert(*i, OwedAdvert::after_metric_change(*metric, now));
        }
        for i in &applied.resolicited {
            if let Some(owed) = self.ra_owed.get_mut(i) {
                *owed = owed.solicited(now);
            }
        }
        self.addresses.extend(&applied.addresses_done);
    }

    /// When the next owed solicitation is due, if one is due after `now` (one due already waits
    /// for its link to be usable, which a link event announces).
    pub fn next_solicitation(&self, now: Instant) -> Option<Instant> {
        self.ra_owed
            .values()
            .map(|o| o.next)
            .filter(|next| *next > now)
            .min()
    }
}
