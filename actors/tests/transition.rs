//! Table tests of the pure interface-state transition (`transition.rs`), without actix: which
//! events a record plus link facts, connectivity and installed routes produce, and in which
//! order (docs/semantics.md §5): per interface `down` → `device-connectivity-change`, `up`
//! before any connectivity event of that interface, the global `connectivity-change` last;
//! `device-connectivity-change` only on leaving FULL unless `device_events = "all"`; `up` again
//! for every live uplink on a first start, never repeated after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use netfailover_actors::assign::Assigned;
use netfailover_actors::model::{
    Connectivity, DeviceEvents, EventKind, Family, IfaceName, KernelRoute, LinkInfo, LinkKind,
    UplinkType,
};
use netfailover_actors::ports::{EngineState, IfaceRecord};
use netfailover_actors::transition::{self, Change, Facts, States};
use tokio::time::Instant;

use Connectivity::{Full, Limited, None as NoneC, Unknown};
use DeviceEvents::{All, LeaveFull};
use EventKind::{ConnectivityChange as Global, DeviceConnectivityChange as Device, Down, Up};

fn name(s: &str) -> IfaceName {
    IfaceName::new(s).expect("test names are valid")
}

/// One interface of the world a pass sees.
#[derive(Clone, Copy)]
struct Iface {
    name: &'static str,
    ifindex: u32,
    /// Link exists (`false`: gone).
    present: bool,
    carrier: bool,
    /// An IPv4 default route is installed (and so the interface is routed).
    route: bool,
    /// Its IPv4 gateway is known but the kernel refused the route: no address yet.
    waiting: bool,
}

const fn up(name: &'static str, ifindex: u32) -> Iface {
    Iface {
        name,
        ifindex,
        present: true,
        carrier: true,
        route: true,
        waiting: false,
    }
}

const fn lost(name: &'static str, ifindex: u32) -> Iface {
    Iface {
        name,
        ifindex,
        present: true,
        carrier: false,
        route: false,
        waiting: false,
    }
}

const fn unrouted(name: &'static str, ifindex: u32) -> Iface {
    Iface {
        name,
        ifindex,
        present: true,
        carrier: true,
        route: false,
        waiting: false,
    }
}

/// Link up, gateway known, route refused by the kernel until the address (DHCP) is back.
const fn waiting(name: &'static str, ifindex: u32) -> Iface {
    Iface {
        name,
        ifindex,
        present: true,
        carrier: true,
        route: false,
        waiting: true,
    }
}

/// The facts of one pass, owned (a [`Facts`] borrows them).
struct World {
    managed: Vec<Assigned>,
    links: BTreeMap<u32, LinkInfo>,
    installed: BTreeMap<(IfaceName, Family), KernelRoute>,
    routed: BTreeMap<u32, BTreeSet<Family>>,
    waiting: BTreeMap<u32, BTreeSet<Family>>,
    bounced: BTreeSet<IfaceName>,
}

impl World {
    /// `managed` are managed in this order; `unmanaged` links only exist.
    fn new(managed: &[Iface], unmanaged: &[Iface]) -> Self {
        let mut w = World {
            managed: Vec::new(),
            links: BTreeMap::new(),
            installed: BTreeMap::new(),
            routed: BTreeMap::new(),
            waiting: BTreeMap::new(),
            bounced: BTreeSet::new(),
        };
        for i in managed.iter().chain(unmanaged) {
            if i.present {
                w.links.insert(
                    i.ifindex,
                    LinkInfo {
                        ifindex: i.ifindex,
                        name: name(i.name),
                        kind: LinkKind::Other,
                        admin_up: true,
                        carrier: i.carrier,
                        carrier_changes: 0,
                        mac: None,
                    },
                );
            }
        }
        for i in managed {
            w.managed.push(Assigned {
                name: name(i.name),
                ifindex: Some(i.ifindex),
                profile: None,
                uplink_type: UplinkType::Ethernet,
            });
            if i.route {
                let route = KernelRoute {
                    family: Family::V4,
                    ifindex: i.ifindex,
                    gateway: Some([192, 0, 2, 1].into()),
                    metric: 100 + i.ifindex,
                    protocol: 78,
                };
                w.installed.insert((name(i.name), Family::V4), route);
                w.routed.entry(i.ifindex).or_default().insert(Family::V4);
            }
            if i.waiting {
                w.routed.entry(i.ifindex).or_default().insert(Family::V4);
                w.waiting.entry(i.ifindex).or_default().insert(Family::V4);
            }
        }
        w
    }

    fn facts(&self, device_events: DeviceEvents) -> Facts<'_> {
        Facts {
            managed: &self.managed,
            links: &self.links,
            installed: &self.installed,
            routed: &self.routed,
            waiting: &self.waiting,
            bounced: &self.bounced,
            checks_enabled: true,
            device_events,
            now: Instant::now(),
        }
    }
}

/// A record: per interface (name, connectivity, `up` announced), and the global state.
fn record(ifaces: &[(&str, Connectivity, bool)], global: Option<Connectivity>) -> States {
    let mut record = EngineState {
        global,
        ..EngineState::default()
    };
    for (n, connectivity, announced_up) in ifaces {
        let r = IfaceRecord {
            connectivity: *connectivity,
            announced_up: *announced_up,
        };
        record.interfaces.insert(name(n), r);
    }
    States {
        record,
        ..States::default()
    }
}

/// (kind, iface, state, previous) of each change: what the order rules are about.
type Row = (EventKind, &'static str, Connectivity, Connectivity);

fn rows(changes: &[Change]) -> Vec<(EventKind, String, Connectivity, Connectivity)> {
    changes
        .iter()
        .map(|c| {
            let iface = c.iface.as_ref().map(|n| n.to_string()).unwrap_or_default();
            (c.kind, iface, c.state, c.previous)
        })
        .collect()
}

fn expect(rows: &[Row]) -> Vec<(EventKind, String, Connectivity, Connectivity)> {
    rows.iter()
        .map(|(k, i, s, p)| (*k, i.to_string(), *s, *p))
        .collect()
}

struct Case {
    what: &'static str,
    before: States,
    world: World,
    device_events: DeviceEvents,
    want: &'static [Row],
}

#[test]
fn reconcile_pass_event_order_table() {
    let mut bounced = World::new(&[up("eth0", 2)], &[]);
    bounced.bounced.insert(name("eth0"));
    let cases = [
        Case {
            what: "first up: `up` before its device event, the global change last",
            before: States::default(),
            world: World::new(&[up("eth0", 2)], &[]),
            device_events: All,
            want: &[
                (Up, "eth0", Unknown, NoneC),
                (Device, "eth0", Unknown, NoneC),
                (Global, "", Unknown, NoneC),
            ],
        },
        Case {
            what: "first up, leave-full: no device event for NONE -> UNKNOWN",
            before: States::default(),
            world: World::new(&[up("eth0", 2)], &[]),
            device_events: LeaveFull,
            want: &[(Up, "eth0", Unknown, NoneC), (Global, "", Unknown, NoneC)],
        },
        Case {
            what: "lost link: down -> device-connectivity-change -> connectivity-change",
            before: record(&[("eth0", Full, true)], Some(Full)),
            world: World::new(&[lost("eth0", 2)], &[]),
            device_events: LeaveFull,
            want: &[
                (Down, "eth0", NoneC, Full),
                (Device, "eth0", NoneC, Full),
                (Global, "", NoneC, Full),
            ],
        },
        Case {
            what: "lost LIMITED link, leave-full: down, no device event",
            before: record(&[("eth0", Limited, true)], Some(Limited)),
            world: World::new(&[lost("eth0", 2)], &[]),
            device_events: LeaveFull,
            want: &[(Down, "eth0", NoneC, Limited), (Global, "", NoneC, Limited)],
        },
        Case {
            what: "lost LIMITED link, all: down, then its device event",
            before: record(&[("eth0", Limited, true)], Some(Limited)),
            world: World::new(&[lost("eth0", 2)], &[]),
            device_events: All,
            want: &[
                (Down, "eth0", NoneC, Limited),
                (Device, "eth0", NoneC, Limited),
                (Global, "", NoneC, Limited),
            ],
        },
        Case {
            what: "failover in one pass: each interface in plan order, one global change",
            before: record(&[("eth0", Full, true), ("wlan0", NoneC, false)], Some(Full)),
            world: World::new(&[lost("eth0", 2), up("wlan0", 3)], &[]),
            device_events: All,
            want: &[
                (Down, "eth0", NoneC, Full),
                (Device, "eth0", NoneC, Full),
                (Up, "wlan0", Unknown, NoneC),
                (Device, "wlan0", Unknown, NoneC),
                (Global, "", Unknown, Full),
            ],
        },
        Case {
            what: "merged flap: down and NONE, then up again as UNKNOWN",
            before: record(&[("eth0", Full, true)], Some(Full)),
            world: bounced,
            device_events: All,
            want: &[
                (Down, "eth0", NoneC, Full),
                (Device, "eth0", NoneC, Full),
                (Up, "eth0", Unknown, NoneC),
                (Device, "eth0", Unknown, NoneC),
                (Global, "", Unknown, Full),
            ],
        },
        Case {
            what: "no longer managed (link still there): down like a lost link",
            before: record(&[("usb0", Full, true)], Some(Full)),
            world: World::new(&[], &[up("usb0", 4)]),
            device_events: LeaveFull,
            want: &[
                (Down, "usb0", NoneC, Full),
                (Device, "usb0", NoneC, Full),
                (Global, "", NoneC, Full),
            ],
        },
        Case {
            what: "usable link without a route: NONE, no `up`",
            before: record(&[("eth0", Unknown, false)], Some(Unknown)),
            world: World::new(&[unrouted("eth0", 2)], &[]),
            device_events: All,
            want: &[
                (Device, "eth0", NoneC, Unknown),
                (Global, "", NoneC, Unknown),
            ],
        },
        Case {
            what: "carrier back, waiting for the address: UNKNOWN at once, no `up` (no route yet)",
            before: record(&[("eth0", NoneC, false)], Some(NoneC)),
            world: World::new(&[waiting("eth0", 2)], &[]),
            device_events: LeaveFull,
            want: &[(Global, "", Unknown, NoneC)],
        },
        Case {
            what: "address lost while FULL: a link that just came back (UNKNOWN), left FULL",
            before: record(&[("eth0", Full, true)], Some(Full)),
            world: World::new(&[waiting("eth0", 2)], &[]),
            device_events: LeaveFull,
            want: &[(Device, "eth0", Unknown, Full), (Global, "", Unknown, Full)],
        },
        Case {
            what: "still waiting: no event",
            before: record(&[("eth0", Unknown, false)], Some(Unknown)),
            world: World::new(&[waiting("eth0", 2)], &[]),
            device_events: All,
            want: &[],
        },
        Case {
            what: "nothing changed: no event",
            before: record(&[("eth0", Full, true)], Some(Full)),
            world: World::new(&[up("eth0", 2)], &[]),
            device_events: All,
            want: &[],
        },
    ];
    for case in cases {
        let out = transition::reconcile(case.before, &case.world.facts(case.device_events));
        assert_eq!(rows(&out.changes), expect(case.want), "{}", case.what);
    }
}

#[test]
fn reconcile_pass_updates_the_record() {
    let before = record(&[("eth0", Full, true), ("usb0", Full, true)], Some(Full));
    let mut world = World::new(&[up("eth0", 2)], &[]);
    world.bounced.insert(name("eth0"));
    let out = transition::reconcile(before, &world.facts(LeaveFull));
    let eth0 = &out.states.record.interfaces[&name("eth0")];
    assert_eq!((eth0.connectivity, eth0.announced_up), (Unknown, true));
    assert!(
        !out.states.record.interfaces.contains_key(&name("usb0")),
        "a departed interface's record is dropped after its `down`"
    );
    assert_eq!(out.states.record.global, Some(Unknown));
    assert_eq!(
        out.reset_checks,
        vec![name("eth0")],
        "a bounced link's checks start over"
    );
}

#[test]
fn none_from_checks_stays_none_and_is_announced_as_such() {
    let mut before = record(&[("eth0", NoneC, false)], Some(NoneC));
    before.record.none_from_checks.insert(name("eth0"));
    let world = World::new(&[up("eth0", 2)], &[]);
    let out = transition::reconcile(before, &world.facts(All));
    assert_eq!(rows(&out.changes), expect(&[(Up, "eth0", NoneC, NoneC)]));
    assert_eq!(out.states.connectivity(&name("eth0")), NoneC);
}

#[test]
fn with_checks_disabled_a_state_from_checks_becomes_unknown() {
    // Saved by a run with checks (or held before a reload turned them off): FULL, LIMITED and a
    // NONE from checks all say nothing once checks are off. Announced, restarted: no `up` again.
    let mut before = record(
        &[
            ("eth0", Full, true),
            ("wlan0", Limited, true),
            ("usb0", NoneC, true),
        ],
        Some(Full),
    );
    before.record.none_from_checks.insert(name("usb0"));
    let world = World::new(&[up("eth0", 2), up("wlan0", 3), up("usb0", 4)], &[]);
    let mut facts = world.facts(LeaveFull);
    facts.checks_enabled = false;
    let out = transition::reconcile(before, &facts);
    assert_eq!(
        rows(&out.changes),
        expect(&[(Device, "eth0", Unknown, Full), (Global, "", Unknown, Full),])
    );
    for iface in ["eth0", "wlan0", "usb0"] {
        assert_eq!(out.states.connectivity(&name(iface)), Unknown, "{iface}");
    }
    assert!(out.states.record.none_from_checks.is_empty());
    // Checks on: the same record keeps its states (the first check then confirms them).
    let again = record(
        &[("eth0", Full, true), ("wlan0", Limited, true)],
        Some(Full),
    );
    let world = World::new(&[up("eth0", 2), up("wlan0", 3)], &[]);
    let out = transition::reconcile(again, &world.facts(LeaveFull));
    assert!(out.changes.is_empty(), "{:?}", rows(&out.changes));
}

#[test]
fn waiting_for_the_address_clears_a_none_from_checks_so_the_link_returns_as_fresh() {
    let mut before = record(&[("eth0", NoneC, false)], Some(NoneC));
    before.record.none_from_checks.insert(name("eth0"));
    let out = transition::reconcile(before, &World::new(&[waiting("eth0", 2)], &[]).facts(All));
    assert_eq!(out.states.connectivity(&name("eth0")), Unknown);
    assert!(
        !out.states.record.none_from_checks.contains(&name("eth0")),
        "a NONE from before the wait says nothing about the link once its address is back"
    );
    // The address is back and the route installed: `up` as UNKNOWN, the first check decides.
    let out = transition::reconcile(out.states, &World::new(&[up("eth0", 2)], &[]).facts(All));
    assert_eq!(
        rows(&out.changes),
        expect(&[(Up, "eth0", Unknown, Unknown)])
    );
}

#[test]
fn check_verdicts_leave_full_vs_all() {
    let eth0 = name("eth0");
    let now = Instant::now();
    // (device_events, from, to, device event expected)
    let table = [
        (LeaveFull, Unknown, Full, false),
        (All, Unknown, Full, true),
        (LeaveFull, Full, Limited, true),
        (All, Full, Limited, true),
        (LeaveFull, Limited, Unknown, false),
        (All, Limited, Limited, false),
    ];
    for (mode, from, to, fires) in table {
        let before = record(&[("eth0", from, true)], Some(from));
        let (after, changes) = transition::checked(before, &eth0, to, "checked", mode, now);
        let want: Vec<Row> = if fires {
            vec![(Device, "eth0", to, from)]
        } else {
            vec![]
        };
        assert_eq!(rows(&changes), expect(&want), "{mode:?}: {from} -> {to}");
        assert_eq!(after.connectivity(&eth0), to);
        assert_eq!(
            after.full_since.contains_key(&eth0),
            to == Full && from != Full,
            "{mode:?}: {from} -> {to}: the fail-back hold starts on entering FULL"
        );
        assert!(
            !after.record.none_from_checks.contains(&eth0),
            "only a NONE verdict is kept as NONE from checks"
        );
    }
    let before = record(&[("eth0", Full, true)], Some(Full));
    let (after, _) = transition::checked(before, &eth0, NoneC, "no reply", LeaveFull, now);
    assert!(after.record.none_from_checks.contains(&eth0));
}

#[test]
fn first_start_announces_up_again_a_restart_does_not() {
    let saved = record(&[("eth0", Full, true)], Some(Full)).record;
    let world = World::new(&[up("eth0", 2)], &[]);
    let hold = Duration::from_secs(30);
    let now = Instant::now();
    let (first, _) = transition::resume(saved.clone(), true, hold, now);
    let out = transition::reconcile(first, &world.facts(LeaveFull));
    assert_eq!(
        rows(&out.changes),
        expect(&[(Up, "eth0", Full, Full)]),
        "first start: `up` for every live uplink, in its resumed state; the global state is unchanged"
    );
    let (resumed, _) = transition::resume(saved, false, hold, now);
    let out = transition::reconcile(resumed, &world.facts(LeaveFull));
    assert_eq!(rows(&out.changes), expect(&[]), "restart: nothing repeated");
}

#[test]
fn resumed_state_keeps_what_was_left_of_the_fail_back_hold() {
    let hold = Duration::from_secs(30);
    let mut saved = record(
        &[
            ("eth0", Full, true),
            ("wlan0", Full, true),
            ("usb0", Limited, true),
        ],
        Some(Full),
    )
    .record;
    saved.failback_hold_ms.insert(name("eth0"), 5_000);
    // More than the hold (a shorter hold configured since): capped at the hold.
    saved.failback_hold_ms.insert(name("usb0"), 90_000);
    // Start late enough that the clock can go back a whole hold.
    let now = Instant::now() + hold;
    let (mut states, holds) = transition::resume(saved, false, hold, now);
    assert_eq!(
        holds,
        vec![Duration::from_secs(5)],
        "only eth0's hold runs on"
    );
    assert_eq!(
        states.full_since[&name("eth0")],
        now - Duration::from_secs(25)
    );
    assert_eq!(
        states.full_since[&name("wlan0")],
        now - hold,
        "FULL without a saved hold: proven already, no new hold"
    );
    assert!(
        !states.full_since.contains_key(&name("usb0")),
        "not FULL: no hold"
    );
    transition::record_holds(&mut states, hold, now + Duration::from_secs(2));
    let left: Vec<(String, u64)> = states
        .record
        .failback_hold_ms
        .iter()
        .map(|(n, ms)| (n.to_string(), *ms))
        .collect();
    assert_eq!(left, vec![("eth0".to_string(), 3_000)]);
}
