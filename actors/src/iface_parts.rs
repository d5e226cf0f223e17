//! The per-interface parts of the status board, one owner each: RouteManager's [`IfaceRoute`]
//! (link, metrics, routes, connectivity, source, DNS), ProbeScheduler's [`CheckPart`] (checks,
//! counters, passive-health confirmations) and TrafficWatcher's [`PassivePart`]. Each actor
//! writes only its own part through the board (`status.rs`), which joins them into the
//! [`IfaceStatus`] that `status`, the metrics endpoint and observers read.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::model::{Connectivity, IfaceName, UplinkType};
use crate::status::{CheckCounters, CheckSummary, IfaceStatus, PassiveStatus};

/// RouteManager's part of one interface's status: everything but checks and passive health.
#[derive(Clone, PartialEq, Debug)]
pub struct IfaceRoute {
    pub name: IfaceName,
    pub ifindex: Option<u32>,
    pub link: String,
    pub connectivity: Connectivity,
    pub metric: u32,
    pub effective_metric: Option<u32>,
    pub metric6: u32,
    pub effective_metric6: Option<u32>,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    pub uplink_type: UplinkType,
    pub source: String,
    pub dns: Vec<SocketAddr>,
}

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
    pub state: String,
    pub suspect_since_unix_ms: Option<u64>,
    pub last_trigger: Option<String>,
    pub last_trigger_unix_ms: Option<u64>,
    pub suspicions: u64,
}

/// The per-interface parts, one owner each, which `BoardData::status` (`status.rs`) joins into
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
            name: r.name.clone(),
            ifindex: r.ifindex,
            link: r.link.clone(),
            connectivity: r.connectivity,
            metric: r.metric,
            effective_metric: r.effective_metric,
            metric6: r.metric6,
            effective_metric6: r.effective_metric6,
            gateway4: r.gateway4,
            gateway6: r.gateway6,
            uplink_type: r.uplink_type,
            source: r.source.clone(),
            dns: r.dns.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::EngineEvent;
    use crate::status::Board;

    fn route(name: &str, connectivity: Connectivity) -> IfaceRoute {
        IfaceRoute {
            name: IfaceName::new(name).expect("valid test name"),
            ifindex: Some(2),
            link: "up".into(),
            connectivity,
            metric: 100,
            effective_metric: Some(100),
            metric6: 100,
            effective_metric6: None,
            gateway4: Some([192, 0, 2, 1].into()),
            gateway6: None,
            uplink_type: UplinkType::Ethernet,
            source: "adopted".into(),
            dns: vec![],
        }
    }

    #[test]
    fn each_owner_writes_its_part_and_status_joins_them() {
        let shared = Board::default();
        let (_, mut events) = shared.observe();
        let mut board = shared.lock();
        let eth0 = IfaceName::new("eth0").expect("valid test name");
        let wlan0 = IfaceName::new("wlan0").expect("valid test name");
        assert!(board.checks_mut(&eth0).is_none(), "not listed: no part");
        board.set_routes(
            vec![
                route("eth0", Connectivity::Full),
                route("wlan0", Connectivity::Unknown),
            ],
            Connectivity::Full,
        );
        let added = events.try_recv().expect("an InterfaceAdded event");
        assert!(matches!(added, EngineEvent::InterfaceAdded { .. }));
        let checks = board.checks_mut(&eth0).expect("listed");
        checks.probe_bytes = 42;
        checks.confirmations = 3;
        for (name, p) in board.passive_mut() {
            p.state = if name == &eth0 { "suspect" } else { "quiet" }.into();
            p.suspicions = 1;
        }
        let status = board.status();
        assert_eq!(status.connectivity, Connectivity::Full);
        let e = &status.interfaces[0];
        assert_eq!((e.name.as_str(), e.probe_bytes), ("eth0", 42));
        assert_eq!(
            (e.passive.state.as_str(), e.passive.confirmations),
            ("suspect", 3)
        );
        assert_eq!(
            e.effective_metric,
            Some(100),
            "RouteManager's fields come through"
        );
        assert_eq!(status.interfaces[1].passive.state, "quiet");
        assert!(
            board.status.interfaces.is_empty(),
            "the join is never stored"
        );

        // eth0 leaves the list: its parts go with it; it comes back with empty counters.
        board.set_routes(
            vec![route("wlan0", Connectivity::Unknown)],
            Connectivity::Unknown,
        );
        board.set_routes(
            vec![
                route("eth0", Connectivity::Unknown),
                route("wlan0", Connectivity::Unknown),
            ],
            Connectivity::Unknown,
        );
        let status = board.status();
        assert_eq!(status.interfaces[0].probe_bytes, 0);
        assert_eq!(status.interfaces[0].passive, PassiveStatus::default());
        assert_eq!(
            status.interfaces[1].passive.state, "quiet",
            "wlan0 kept its part"
        );
        assert_eq!(status.interfaces[1].name, wlan0);
    }
}
