//! Tests of `metrics.rs`: the exposition text, against the golden file.

use super::*;
use netfailover_actors::model::{IfaceName, UplinkType};
use netfailover_actors::ports::Verdict;
use netfailover_actors::status::{CheckCounters, IfaceRoute, IfaceSource, LinkState, PassiveState};

fn iface(
    name: &str,
    link: LinkState,
    c: Connectivity,
    metric: u32,
    eff: Option<u32>,
) -> IfaceStatus {
    let route = IfaceRoute {
        name: IfaceName::new(name).unwrap(),
        ifindex: Some(2),
        link,
        connectivity: c,
        metric,
        effective_metric: eff,
        metric6: metric,
        effective_metric6: None,
        gateway4: None,
        gateway6: None,
        ipv6_penalty_unavailable: None,
        uplink_type: UplinkType::Ethernet,
        source: IfaceSource::Adopted,
        dns: vec![],
        metered: false,
        metered_guessed: true,
    };
    IfaceStatus {
        route,
        last_check: None,
        probe_bytes: 1234,
        probe_dns_bytes: 234,
        checks: CheckCounters::default(),
        passive: Default::default(),
    }
}

fn sample() -> EngineStatus {
    let mut eth0 = iface("eth0", LinkState::Up, Connectivity::Full, 100, Some(100));
    eth0.checks.record(Verdict::Full, 0.003);
    eth0.checks.record(Verdict::Full, 0.2);
    eth0.checks.record(Verdict::Limited, 7.0);
    eth0.checks
        .record_skip(netfailover_actors::status::SkipReason::Traffic);
    eth0.passive.state = PassiveState::Suspect;
    eth0.passive.suspicions = 2;
    eth0.passive.confirmations = 3;
    eth0.passive.confirmations_failed = 1;
    let wlan0 = iface("wlan0", LinkState::Down, Connectivity::None, 600, None);
    EngineStatus {
        connectivity: Connectivity::Full,
        interfaces: vec![eth0, wlan0],
        actors: vec![ActorStatus {
            name: "route-manager".into(),
            running: true,
            restarts: 3,
            kills: 1,
            last_failure: None,
        }],
        events_total: 9,
        script_failures: 2,
        pending_events: 1,
        flows: netfailover_actors::status::FlowCounters {
            resets: 2,
            sockets_destroyed: 5,
            conntrack_deleted: 7,
            failures: 1,
        },
        recovery: netfailover_actors::status::RecoveryStatus {
            actions: [
                ("reboot", vec![("done", 1)]),
                ("relink", vec![("done", 3), ("failed", 1)]),
            ]
            .into_iter()
            .map(|(a, r)| {
                let results = r.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
                (a.to_string(), results)
            })
            .collect(),
            ..Default::default()
        },
        accounting: netfailover_actors::status::AccountingStatus {
            budget_month: 20_000_000,
            interfaces: [(
                IfaceName::new("wwan0").unwrap(),
                netfailover_actors::status::IfaceAccounting {
                    month: "2026-12".into(),
                    metered: true,
                    probe_bytes: 17_520,
                    probe_dns_bytes: 532,
                    checks: 10,
                    rx_bytes: 1_000_000,
                    tx_bytes: 250_000,
                    budget_percent: 0,
                    budget_exhausted: false,
                },
            )]
            .into(),
        },
        ..Default::default()
    }
}

#[test]
fn renders_every_family_from_the_board() {
    let text = render(&sample());
    for line in [
        "# TYPE netfailover_connectivity gauge",
        "netfailover_connectivity{state=\"FULL\"} 1",
        "netfailover_connectivity{state=\"NONE\"} 0",
        "netfailover_interface_link_up{iface=\"eth0\"} 1",
        "netfailover_probe_bytes_month{iface=\"wwan0\"} 17520",
        "netfailover_interface_bytes_month{iface=\"wwan0\",direction=\"rx\"} 1000000",
        "netfailover_interface_bytes_month{iface=\"wwan0\",direction=\"tx\"} 250000",
        "netfailover_interface_link_up{iface=\"wlan0\"} 0",
        "netfailover_interface_connectivity{iface=\"wlan0\",state=\"NONE\"} 1",
        "netfailover_interface_connectivity{iface=\"eth0\",state=\"NONE\"} 0",
        "netfailover_interface_metric{iface=\"wlan0\"} 600",
        "netfailover_interface_effective_metric{iface=\"eth0\"} 100",
        "# TYPE netfailover_checks_total counter",
        "netfailover_checks_total{iface=\"eth0\",result=\"FULL\"} 2",
        "netfailover_checks_total{iface=\"eth0\",result=\"LIMITED\"} 1",
        "# TYPE netfailover_checks_skipped_total counter",
        "netfailover_checks_skipped_total{iface=\"eth0\",reason=\"traffic\"} 1",
        "# TYPE netfailover_check_latency_seconds histogram",
        "netfailover_check_latency_seconds_bucket{iface=\"eth0\",le=\"0.005\"} 1",
        "netfailover_check_latency_seconds_bucket{iface=\"eth0\",le=\"0.25\"} 2",
        "netfailover_check_latency_seconds_bucket{iface=\"eth0\",le=\"5\"} 2",
        "netfailover_check_latency_seconds_bucket{iface=\"eth0\",le=\"20\"} 3",
        "netfailover_check_latency_seconds_bucket{iface=\"eth0\",le=\"+Inf\"} 3",
        "netfailover_check_latency_seconds_count{iface=\"eth0\"} 3",
        "netfailover_probe_bytes_total{iface=\"eth0\"} 1234",
        "netfailover_probe_dns_bytes_total{iface=\"wlan0\"} 234",
        "netfailover_passive_suspect{iface=\"eth0\"} 1",
        "netfailover_passive_suspect{iface=\"wlan0\"} 0",
        "netfailover_passive_suspicions_total{iface=\"eth0\"} 2",
        "netfailover_passive_confirmations_total{iface=\"eth0\",result=\"passed\"} 2",
        "netfailover_passive_confirmations_total{iface=\"eth0\",result=\"failed\"} 1",
        "netfailover_actor_running{actor=\"route-manager\"} 1",
        "netfailover_actor_restarts_total{actor=\"route-manager\"} 3",
        "netfailover_dispatcher_events_total 9",
        "netfailover_dispatcher_script_failures_total 2",
        "netfailover_dispatcher_pending_events 1",
        "netfailover_flow_resets_total 2",
        "netfailover_flow_sockets_destroyed_total 5",
        "netfailover_flow_conntrack_deleted_total 7",
        "netfailover_flow_reset_failures_total 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
    // wlan0 has no route: no effective-metric series rather than a made-up number.
    assert!(!text.contains("netfailover_interface_effective_metric{iface=\"wlan0\"}"));
}

/// The whole exposition of [`sample`], byte for byte: family order, HELP texts, label
/// order and number formatting are part of what dashboards and alerts rely on.
#[test]
fn sample_board_renders_exactly_the_golden_text() {
    let text = render(&sample());
    assert_eq!(text, include_str!("../../tests/data/metrics/sample.prom"));
}

#[test]
fn empty_board_renders() {
    let text = render(&EngineStatus::default());
    assert!(text.contains("netfailover_connectivity{state=\"UNKNOWN\"} 1"));
}
