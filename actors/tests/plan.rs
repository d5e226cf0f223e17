//! The pure planner (`plan.rs`) on its own, without actix: from links, the record and the
//! kernel's default routes to the routes wanted (penalty while not FULL, none while shutting
//! down), the route ops (replace in place, add, sweep), learned gateways, and the kernel settings
//! to apply once (rp_filter, `ra_defrtr_metric`, router-advertised routes of lost links).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use netfailover_actors::model::{
    Config, Connectivity, Family, FamilyConfig, IfaceMatch, IfaceName, KernelRoute, LinkInfo,
    LinkKind, Method, Metric, Profile, UplinkType, DEFAULT_ROUTE_PROTOCOL,
};
use netfailover_actors::plan::{Plan, PlanInput, RTPROT_RA};
use netfailover_actors::ports::{EngineState, IfaceRecord};
use netfailover_actors::ra_solicit::{OwedAdvert, OwedStep};
use tokio::time::Instant;

const OURS: u8 = DEFAULT_ROUTE_PROTOCOL;
const DHCP: u8 = 16;
const PENALTY: u32 = 20_000;

fn name(s: &str) -> IfaceName {
    IfaceName::new(s).expect("valid test name")
}

fn family(metric: u32, manage_default: bool) -> FamilyConfig {
    FamilyConfig {
        manage_default,
        method: Method::Auto,
        metric: Metric::new(metric.into()).expect("valid metric"),
        addresses: vec![],
        gateway: None,
    }
}

/// eth0 (metric 100, IPv4 only) and wlan0 (metric 600, both families).
fn config() -> Config {
    let profile = |iface: &str, t, metric, v6| Profile {
        id: format!("{iface}-profile"),
        uuid: None,
        file: PathBuf::from(format!("{iface}.nmconnection")),
        uplink_type: t,
        matches: IfaceMatch::Name(name(iface)),
        managed: true,
        ipv4: family(metric, true),
        ipv6: family(metric, v6),
        dns: vec![],
        metered: netfailover_actors::model::Metered::guess(t),
    };
    Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100, false),
            profile("wlan0", UplinkType::Wifi, 600, true),
        ],
        adopt: false,
        ..Config::default()
    }
}

fn link(ifindex: u32, n: &str, carrier: bool) -> LinkInfo {
    LinkInfo {
        ifindex,
        name: name(n),
        kind: LinkKind::Other,
        admin_up: true,
        carrier,
        carrier_changes: 0,
        mac: None,
    }
}

fn route(ifindex: u32, gw: &str, metric: u32, protocol: u8) -> KernelRoute {
    let gateway: IpAddr = gw.parse().expect("valid test address");
    KernelRoute {
        family: Family::of(&gateway),
        ifindex,
        gateway: Some(gateway),
        metric,
        protocol,
    }
}

/// eth0 FULL (no fail-back hold configured), wlan0 UNKNOWN; both links up unless `wlan0_up` is
/// false.
fn input(wlan0_up: bool) -> PlanInput {
    let mut record = EngineState::default();
    for (n, connectivity) in [
        ("eth0", Connectivity::Full),
        ("wlan0", Connectivity::Unknown),
    ] {
        let r = IfaceRecord {
            connectivity,
            announced_up: true,
        };
        record.interfaces.insert(name(n), r);
    }
    PlanInput {
        cfg: Arc::new(config()),
        links: [link(2, "eth0", true), link(3, "wlan0", wlan0_up)]
            .into_iter()
            .map(|l| (l.ifindex, l))
            .collect(),
        record,
        full_since: HashMap::new(),
        shutting_down: false,
        rp_filter_done: BTreeSet::new(),
        ra_metric: BTreeMap::new(),
        ra_owed: BTreeMap::new(),
        addresses_done: BTreeSet::new(),
        control_nets: BTreeMap::new(),
    }
}

/// The kernel as DHCP and the router left it.
fn kernel() -> Vec<KernelRoute> {
    vec![
        route(2, "192.0.2.1", 100, DHCP),
        route(3, "198.51.100.1", 600, DHCP),
        route(3, "2001:db8::1", 1024, RTPROT_RA),
    ]
}

fn plan(input: &PlanInput) -> Plan {
    input.plan(&kernel(), Instant::now())
}

#[test]
fn foreign_routes_are_taken_over_with_the_penalty_until_full() {
    let p = plan(&input(true));
    let names: Vec<&str> = p.managed.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["eth0", "wlan0"]);
    assert_eq!(
        p.desired,
        vec![
            route(2, "192.0.2.1", 100, OURS),
            route(3, "198.51.100.1", 600 + PENALTY, OURS),
        ],
        "FULL keeps its metric; UNKNOWN carries the penalty; IPv6 of wlan0 has no gateway"
    );
    // eth0's route takes the DHCP route's key in place; wlan0's is added, then its DHCP
    // route swept; the router-advertised route stays the kernel's.
    assert_eq!(p.ops.replace, vec![route(2, "192.0.2.1", 100, OURS)]);
    assert_eq!(
        p.ops.add,
        vec![route(3, "198.51.100.1", 600 + PENALTY, OURS)]
    );
    assert_eq!(p.ops.delete, vec![route(3, "198.51.100.1", 600, DHCP)]);
    let learned: Vec<(&str, Vec<IpAddr>)> = p
        .learned
        .iter()
        .map(|(n, g)| (n.as_str(), g.clone()))
        .collect();
    assert_eq!(
        learned,
        vec![
            ("eth0", vec!["192.0.2.1".parse().expect("address")]),
            ("wlan0", vec!["198.51.100.1".parse().expect("address")]),
        ]
    );
    assert_eq!(p.rp_filter, vec![(2, name("eth0")), (3, name("wlan0"))]);
    assert_eq!(
        p.ra_metric,
        vec![(3, name("wlan0"), 600 + PENALTY)],
        "the router-advertised route follows the effective metric"
    );
    assert!(p.ra_delete.is_empty() && p.ra_resolicit.is_empty());
}

#[test]
fn shutting_down_drops_every_penalty() {
    let mut i = input(true);
    i.shutting_down = true;
    let p = plan(&i);
    assert_eq!(
        p.desired,
        vec![
            route(2, "192.0.2.1", 100, OURS),
            route(3, "198.51.100.1", 600, OURS),
        ]
    );
    assert_eq!(
        p.ops.replace,
        vec![
            route(2, "192.0.2.1", 100, OURS),
            route(3, "198.51.100.1", 600, OURS)
        ],
        "both take their DHCP route's metric in place"
    );
    assert!(p.ops.add.is_empty() && p.ops.delete.is_empty());
}

#[test]
fn a_lost_link_is_swept_and_its_advertised_route_deleted_then_solicited_again() {
    let p = plan(&input(false));
    assert_eq!(p.desired, vec![route(2, "192.0.2.1", 100, OURS)]);
    assert_eq!(p.ops.delete, vec![route(3, "198.51.100.1", 600, DHCP)]);
    assert_eq!(p.ra_delete, vec![route(3, "2001:db8::1", 1024, RTPROT_RA)]);
    assert_eq!(
        p.rp_filter,
        vec![(2, name("eth0"))],
        "no settings for a lost link"
    );
    assert!(p.ra_metric.is_empty());

    // The link is back after we deleted its advertised route: solicit it again, until the
    // route is there (`ra_solicit.rs` has the back-off).
    let now = Instant::now();
    let mut back = input(true);
    back.ra_owed.insert(3, OwedAdvert::after_link_loss(now));
    let without_ra: Vec<KernelRoute> = kernel()
        .into_iter()
        .filter(|r| r.protocol != RTPROT_RA)
        .collect();
    let p = back.plan(&without_ra, now);
    assert_eq!(p.ra_resolicit, vec![(3, name("wlan0"))]);
    assert!(p.ra_settled.is_empty());
    let p = back.plan(&kernel(), now);
    assert!(p.ra_resolicit.is_empty(), "the advertisement came");
    assert_eq!(p.ra_settled, vec![(3, OwedStep::Arrived)]);
}

#[test]
fn settings_already_applied_are_not_planned_again() {
    let mut i = input(true);
    i.rp_filter_done = [2, 3].into();
    i.ra_metric.insert(3, 600 + PENALTY);
    let p = plan(&i);
    assert!(p.rp_filter.is_empty());
    assert!(p.ra_metric.is_empty());
    // FULL now: the effective metric changes, so `ra_defrtr_metric` is written again.
    i.record
        .interfaces
        .get_mut(&name("wlan0"))
        .expect("recorded")
        .connectivity = Connectivity::Full;
    assert_eq!(plan(&i).ra_metric, vec![(3, name("wlan0"), 600)]);
}

#[test]
fn which_settings_expect_a_default_route() {
    use netfailover_actors::assign::Assigned;
    use netfailover_actors::plan::expects_default;
    let mut cfg = config();
    let eth0 = Assigned {
        name: name("eth0"),
        ifindex: Some(2),
        profile: Some(0),
        uplink_type: UplinkType::Ethernet,
    };
    let gw4: IpAddr = "192.0.2.1".parse().expect("literal");
    let gw6: IpAddr = "2001:db8::1".parse().expect("literal");
    let mut expects = |v4: FamilyConfig, v6: FamilyConfig| {
        cfg.profiles[0].ipv4 = v4;
        cfg.profiles[0].ipv6 = v6;
        expects_default(&cfg, &eth0)
    };
    let manual = |gateway| FamilyConfig {
        method: Method::Manual,
        gateway,
        ..family(100, true)
    };
    // DHCP for IPv4: yes; IPv6 left to advertisements alone: no.
    assert!(expects(family(100, true), family(100, true)));
    assert!(!expects(family(100, false), family(100, true)));
    // A manual address with a gateway: yes; without one (a LAN port): no.
    assert!(expects(manual(Some(gw4)), family(100, false)));
    assert!(!expects(manual(None), family(100, true)));
    // `never-default` on IPv4 but a manual IPv6 gateway: yes.
    assert!(expects(family(100, false), manual(Some(gw6))));
}
