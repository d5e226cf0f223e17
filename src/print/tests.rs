//! Tests of `print.rs`: what a person reads on the terminal.

use super::*;
use netfailover_actors::model::{Connectivity, Event, EventKind, IfaceName, UplinkType};
use netfailover_actors::ports::{ScriptOutcome, Verdict};
use netfailover_actors::status::{
    ActorStatus, CheckCounters, CheckSummary, IfaceRoute, IfaceSource, IfaceStatus, LinkState,
    PassiveState, Sees,
};
use std::time::Duration;

#[test]
fn times_and_sizes() {
    assert_eq!(utc_time(0), "1970-01-01 00:00:00");
    assert_eq!(utc_time(1_709_251_199_000), "2024-02-29 23:59:59");
    assert_eq!(utc_time(1_709_251_199_999), "2024-02-29 23:59:59");
    assert_eq!(utc_time(253_402_300_799_000), "9999-12-31 23:59:59");
    assert_eq!(
        utc_time(u64::MAX),
        format!("{} ms after the epoch", u64::MAX)
    );
    assert_eq!(human_age(59_999), "59s");
    assert_eq!(human_age(61_000), "1m01s");
    assert_eq!(human_bytes(1000), "1000 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
}

#[test]
fn config_problems_end_the_status_only_when_there_are_some() {
    assert_eq!(format_config_problems(&[]), "");
    let text = format_config_problems(&[
        "/mnt/boot/netfailover.toml:3: error: check.down_count: bad".into(),
    ]);
    assert!(text.contains("configuration problems"), "{text}");
    assert!(
        text.ends_with("  /mnt/boot/netfailover.toml:3: error: check.down_count: bad\n"),
        "{text}"
    );
}

/// One LIMITED, suspected interface and a running dispatcher.
fn sample_status() -> EngineStatus {
    EngineStatus {
        connectivity: Connectivity::Full,
        interfaces: vec![IfaceStatus {
            route: IfaceRoute {
                name: IfaceName::new("eth0").unwrap(),
                ifindex: Some(2),
                link: LinkState::Up,
                connectivity: Connectivity::Limited,
                metric: 100,
                effective_metric: Some(20100),
                metric6: 100,
                effective_metric6: None,
                gateway4: None,
                gateway6: None,
                ipv6_penalty_unavailable: None,
                uplink_type: UplinkType::Ethernet,
                source: IfaceSource::Adopted,
                dns: vec![],
                metered: false,
                metered_guessed: true,
            },
            last_check: Some(CheckSummary {
                at_unix_ms: 10_000,
                verdict: Verdict::Limited,
                reason: "connect timeout".into(),
                latency_ms: 1000.0,
                skipped: None,
            }),
            probe_bytes: 2048,
            probe_dns_bytes: 0,
            checks: CheckCounters::default(),
            passive: netfailover_actors::status::PassiveStatus {
                state: PassiveState::Suspect,
                suspect_since_unix_ms: Some(11_000),
                last_trigger: Some("TCP to 203.0.113.7 stalled".into()),
                last_trigger_unix_ms: Some(12_000),
                suspicions: 1,
                confirmations: 2,
                confirmations_failed: 2,
                sees: Sees::SocketsOnly,
                held_by_ceiling: 3,
            },
        }],
        actors: vec![ActorStatus {
            name: "dispatcher".into(),
            running: true,
            restarts: 2,
            kills: 1,
            last_failure: None,
        }],
        ..Default::default()
    }
}

/// An interface whose kernel lacks `ra_defrtr_metric` gets its own line; others none.
#[test]
fn status_says_when_the_ipv6_penalty_is_unavailable() {
    let status = sample_status();
    let text = format_status(&status, 13_000);
    assert!(
        !text.contains("IPv6 penalty unavailable"),
        "available: no line"
    );
    let mut old_kernel = status;
    old_kernel.interfaces[0].ipv6_penalty_unavailable = Some("no ra_defrtr_metric".into());
    let text = format_status(&old_kernel, 13_000);
    assert!(
        text.contains("eth0: IPv6 penalty unavailable: no ra_defrtr_metric"),
        "{text}"
    );
}

#[test]
fn status_table_reads_at_a_glance() {
    let status = sample_status();
    let text = format_status(&status, 13_000);
    let row = text.lines().nth(1).unwrap();
    for part in [
        "eth0",
        "up",
        "LIMITED",
        "  no (guessed)  ",
        "100 → 20100",
        "3s ago LIMITED (connect timeout)",
        "2.0 KiB",
        "suspect 2s; 1 suspicions, 2 confirmations (2 failed); last 1s ago: TCP to 203.0.113.7 stalled",
        "; 3 held by the hourly ceiling; sees sockets only (no connection tracking)",
    ] {
        assert!(row.contains(part), "{part:?} not in {row:?}");
    }
    assert!(text.lines().next().unwrap().contains("  METERED  "));
    assert!(text.contains("global connectivity: FULL"));
    assert!(!text.contains("checks disabled"), "checks on: no line");
    let off = EngineStatus {
        checks_disabled: true,
        ..status.clone()
    };
    assert!(format_status(&off, 13_000).contains("\nchecks disabled (interval 0"));
    assert!(text
        .lines()
        .any(|l| l.starts_with("dispatcher") && l.contains("running  2")));
    assert!(!text.contains("journal behind"), "not behind: no line");
    let mut behind = status.clone();
    behind.journal = JournalStatus {
        behind: true,
        unsaved_events: 3,
        last_error: Some("state_dir: disk full".into()),
    };
    let text = format_status(&behind, 13_000);
    assert!(
        text.contains(
            "journal behind: 3 event(s) not on disk yet; last write failed: state_dir: disk full"
        ),
        "{text}"
    );
}

/// A periodic check skipped on traffic reads as such, in the table and (additively) the JSON.
#[test]
fn a_skipped_check_says_so() {
    let mut status = sample_status();
    status.interfaces[0].last_check = Some(CheckSummary {
        at_unix_ms: 10_000,
        verdict: Verdict::Full,
        reason: "its own traffic went both ways since the last check".into(),
        latency_ms: 0.0,
        skipped: Some(netfailover_actors::status::SkipReason::Traffic),
    });
    let text = format_status(&status, 13_000);
    let row = text.lines().nth(1).unwrap();
    assert!(row.contains("3s ago skipped (traffic)"), "{row}");
    let json = serde_json::to_value(&status.interfaces[0]).unwrap();
    assert_eq!(json["last_check"]["skipped"], "traffic");
    assert_eq!(json["last_check"]["verdict"], "FULL");
    let ran = serde_json::to_value(&sample_status().interfaces[0]).unwrap();
    assert!(
        ran["last_check"].get("skipped").is_none(),
        "a check that ran has no `skipped`: {ran}"
    );
}

#[test]
fn events_table_has_scripts_and_codes() {
    let record = EventRecord {
        event: Event {
            id: 7,
            kind: EventKind::Down,
            iface: Some(IfaceName::new("eth0").unwrap()),
            state: Connectivity::None,
            previous: Connectivity::Full,
            reason: "carrier lost".into(),
            connection_id: None,
            connection_uuid: None,
            ip4_gateway: None,
            ip4_nameservers: vec![],
            at_unix_ms: 0,
            recovery: None,
            budget: None,
        },
        delivered: true,
        scripts: vec![ScriptOutcome {
            script: "50-log".into(),
            result: ScriptResult::Exited { code: 3 },
            elapsed: Duration::from_millis(5),
        }],
    };
    let reset = FlowResetRecord {
        at_unix_ms: 1,
        family: netfailover_actors::model::Family::V4,
        iface: IfaceName::new("eth0").unwrap(),
        to: IfaceName::new("wlan0").unwrap(),
        failback: false,
        sockets_destroyed: 3,
        conntrack_deleted: 4,
        failures: vec![netfailover_actors::ports::FlowFailure {
            kind: netfailover_actors::ports::FlowFailureKind::Unsupported,
            what: "destroying TCP sockets".into(),
            message: "no CONFIG_INET_DIAG_DESTROY".into(),
        }],
        elapsed_ms: 12.0,
    };
    let entries = [
        HistoryEntry::Event(record),
        HistoryEntry::FlowsReset { flows_reset: reset },
    ];
    let text = format_events(&entries);
    let reset_row = text.lines().nth(2).unwrap();
    for part in [
        "flows-reset",
        "eth0",
        "wlan0",
        "3 TCP sockets destroyed",
        "4 conntrack entries",
        "FAILED destroying TCP sockets: no CONFIG_INET_DIAG_DESTROY",
    ] {
        assert!(reset_row.contains(part), "{part:?} not in {reset_row:?}");
    }
    // The JSON round-trips both kinds of entries.
    let json = serde_json::to_string(&entries).unwrap();
    let back: Vec<HistoryEntry> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, entries);
    let row = text.lines().nth(1).unwrap();
    for part in [
        "7",
        "eth0",
        "down",
        "FULL → NONE",
        "carrier lost",
        "50-log (exit 3)",
    ] {
        assert!(row.contains(part), "{part:?} not in {row:?}");
    }
}

#[test]
fn the_month_table_shows_checks_the_budget_share_and_link_bytes() {
    use netfailover_actors::status::{AccountingStatus, IfaceAccounting};
    assert_eq!(format_accounting(&AccountingStatus::default()), "");
    let month = |metered, probe_bytes, exhausted| IfaceAccounting {
        month: "2026-12".into(),
        metered,
        probe_bytes,
        probe_dns_bytes: 0,
        checks: 6,
        rx_bytes: 3 << 20,
        tx_bytes: 1536,
        budget_percent: if exhausted { 100 } else { 0 },
        budget_exhausted: exhausted,
    };
    let accounts = AccountingStatus {
        budget_month: 4_000,
        interfaces: [
            (IfaceName::new("eth0").unwrap(), month(false, 3_648, false)),
            (IfaceName::new("wwan0").unwrap(), month(true, 3_648, true)),
        ]
        .into(),
    };
    let text = format_accounting(&accounts);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "this month (UTC), budget 3.9 KiB per metered uplink:"
    );
    assert!(lines[1].starts_with("INTERFACE  MONTH    METERED  CHECKS  CHECK BYTES"));
    assert!(
        lines[2].starts_with("eth0       2026-12  no       6       3.6 KiB      -  "),
        "{text}"
    );
    assert!(lines[2].ends_with("3.0 MiB  1.5 KiB"), "{text}");
    assert!(
        lines[3].contains("yes      6       3.6 KiB      91 %, periodic checks stopped"),
        "{text}"
    );
    // Without a budget a metered uplink has no share.
    let uncapped = format_accounting(&AccountingStatus {
        budget_month: 0,
        ..accounts
    });
    assert!(uncapped.starts_with("this month (UTC), no budget:"));
    assert!(uncapped.contains("no cap"), "{uncapped}");
}
