//! The per-interface parts of the status board, one owner each: RouteManager's [`IfaceRoute`]
//! (link, metrics, routes, connectivity, source, DNS), ProbeScheduler's [`CheckPart`] (checks,
//! counters, passive-health confirmations) and TrafficWatcher's [`PassivePart`]. Each actor
//! writes only its own part through the board (`board.rs`), which joins them into the
//! [`IfaceStatus`] that `status`, the metrics endpoint and observers read.

use std::collections::BTreeMap;

use crate::model::IfaceName;
pub use crate::status::IfaceRoute;
use crate::status::{CheckCounters, CheckSummary, IfaceStatus, PassiveState, PassiveStatus, Sees};

/// ProbeScheduler's part of one interface's status: its checks, and the confirmations it ran
/// for passive health.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct CheckPart {
    pub last_check: Option<CheckSummary>,
    pub probe_bytes: u64,
    pub probe_dns_bytes: u64,
    pub checks: CheckCounters,
    pub confirmations: u64,
    pub confirmations_failed: u64,
}

/// TrafficWatcher's part of one interface's status: passive health as it samples it (see
/// [`PassiveStatus`] for the fields).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PassivePart {
    pub state: PassiveState,
    pub suspect_since_unix_ms: Option<u64>,
    pub last_trigger: Option<String>,
    pub last_trigger_unix_ms: Option<u64>,
    pub suspicions: u64,
    pub sees: Sees,
    pub held_by_ceiling: u64,
}

/// The per-interface parts, one owner each, which `BoardData::status` (`board.rs`) joins into
/// [`IfaceStatus`]. The interfaces are RouteManager's list: a part lives as long as its
/// interface is listed (an interface that leaves and comes back starts with empty counters).
#[derive(Default)]
pub struct IfaceParts {
    pub(crate) routes: Vec<IfaceRoute>,
    pub(crate) checks: BTreeMap<IfaceName, CheckPart>,
    pub(crate) passive: BTreeMap<IfaceName, PassivePart>,
}

impl IfaceParts {
    pub(crate) fn join(&self, r: &IfaceRoute) -> IfaceStatus {
        let c = self.checks.get(&r.name).cloned().unwrap_or_default();
        let p = self.passive.get(&r.name).cloned().unwrap_or_default();
        IfaceStatus {
            route: r.clone(),
            last_check: c.last_check,
            probe_bytes: c.probe_bytes,
            probe_dns_bytes: c.probe_dns_bytes,
            checks: c.checks,
            passive: PassiveStatus {
                state: p.state,
                suspect_since_unix_ms: p.suspect_since_unix_ms,
                last_trigger: p.last_trigger,
                last_trigger_unix_ms: p.last_trigger_unix_ms,
                suspicions: p.suspicions,
                confirmations: c.confirmations,
                confirmations_failed: c.confirmations_failed,
                sees: p.sees,
                held_by_ceiling: p.held_by_ceiling,
            },
        }
    }

    pub(crate) fn interfaces(&self) -> Vec<IfaceStatus> {
        self.routes.iter().map(|r| self.join(r)).collect()
    }

    pub(crate) fn listed(&self, name: &IfaceName) -> bool {
        self.routes.iter().any(|r| &r.name == name)
    }
}
