//! Tests of `run.rs`: script output lines, arguments and environment.

use super::*;
use netfailover_actors::model::{Connectivity, IfaceName};

#[test]
fn lines_are_split_trimmed_and_capped() {
    let mut s = LineSplitter::new(4);
    assert_eq!(s.push(b"ab\r\ncd"), vec!["ab"]);
    assert_eq!(s.push(b"e\nabcdefg"), vec!["cde", "abcd"]);
    assert_eq!(s.finish().as_deref(), Some("efg"));
    assert_eq!(s.finish(), None);
    assert_eq!(s.push(&[0xff, b'\n']), vec!["\u{fffd}"]);
}

#[test]
fn environment_is_complete_with_empty_strings_for_absent_values() {
    let event = Event {
        id: 7,
        kind: EventKind::ConnectivityChange,
        iface: None,
        state: Connectivity::Limited,
        previous: Connectivity::Full,
        reason: "test".into(),
        connection_id: None,
        connection_uuid: None,
        ip4_gateway: None,
        ip4_nameservers: vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
        at_unix_ms: 0,
        recovery: None,
        budget: None,
    };
    let env = script_environment(&event);
    let names: Vec<_> = env.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        [
            "PATH",
            "DEVICE_IFACE",
            "DEVICE_IP_IFACE",
            "CONNECTION_ID",
            "CONNECTION_UUID",
            "CONNECTIVITY_STATE",
            "IP4_GATEWAY",
            "IP4_NAMESERVERS",
            "NETFAILOVER_EVENT_ID",
            "NETFAILOVER_PREVIOUS_STATE"
        ]
    );
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    assert_eq!(get("DEVICE_IFACE"), "");
    assert_eq!(get("IP4_NAMESERVERS"), "192.0.2.1 192.0.2.2");
    assert_eq!(get("CONNECTIVITY_STATE"), "LIMITED");
    assert_eq!(get("NETFAILOVER_PREVIOUS_STATE"), "FULL");
    assert_eq!(first_argument(&event), "");
    let up = Event {
        kind: EventKind::Up,
        iface: Some(IfaceName::new("eth0").unwrap()),
        ..event
    };
    assert_eq!(first_argument(&up), "eth0");
}

#[test]
fn a_recovery_event_adds_its_rung_to_the_environment() {
    let event = Event {
        id: 9,
        kind: EventKind::Recovery,
        iface: Some(IfaceName::new("wwan0").unwrap()),
        state: Connectivity::Limited,
        previous: Connectivity::Limited,
        reason: "relink after 181 s not FULL: done".into(),
        connection_id: None,
        connection_uuid: None,
        ip4_gateway: None,
        ip4_nameservers: vec![],
        at_unix_ms: 0,
        recovery: Some(Box::new(netfailover_actors::model::RecoveryInfo {
            action: "relink".into(),
            rung: 1,
            not_full_seconds: 181,
            result: "done".into(),
        })),
        budget: None,
    };
    let env = script_environment(&event);
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get("NETFAILOVER_RECOVERY_ACTION").as_deref(),
        Some("relink")
    );
    assert_eq!(get("NETFAILOVER_RECOVERY_RUNG").as_deref(), Some("1"));
    assert_eq!(get("NETFAILOVER_NOT_FULL_SECONDS").as_deref(), Some("181"));
    assert_eq!(first_argument(&event), "wwan0");
    assert_eq!(
        first_argument(&Event {
            recovery: None,
            budget: None,
            ..event
        }),
        "wwan0"
    );
}

#[test]
fn a_budget_event_adds_its_threshold_to_the_environment() {
    let event = Event {
        id: 12,
        kind: EventKind::Budget,
        iface: Some(IfaceName::new("wwan0").unwrap()),
        state: Connectivity::Full,
        previous: Connectivity::Full,
        reason: "checks spent 7600 of the 10000-byte budget for 2026-12 (75 %)".into(),
        connection_id: None,
        connection_uuid: None,
        ip4_gateway: None,
        ip4_nameservers: vec![],
        at_unix_ms: 0,
        recovery: None,
        budget: Some(Box::new(netfailover_actors::model::BudgetInfo {
            percent: 75,
            budget_bytes: 10_000,
            probe_bytes: 7_600,
            month: "2026-12".into(),
        })),
    };
    let env = script_environment(&event);
    let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
    assert_eq!(get("NETFAILOVER_BUDGET_PERCENT").as_deref(), Some("75"));
    assert_eq!(get("NETFAILOVER_BUDGET_BYTES").as_deref(), Some("10000"));
    assert_eq!(get("NETFAILOVER_PROBE_BYTES").as_deref(), Some("7600"));
    assert_eq!(first_argument(&event), "wwan0");
    // Other events do not carry them.
    let plain = script_environment(&Event {
        budget: None,
        ..event
    });
    assert!(plain
        .iter()
        .all(|(k, _)| !k.starts_with("NETFAILOVER_BUDGET")));
}
