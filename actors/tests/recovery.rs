//! The recovery ladder in the whole engine on in-memory ports, in virtual time: rung order and
//! delays, episodes ending on FULL, no rung on a FULL or link-less interface, `episode_repeat`,
//! and the reboot rule (never while an uplink is FULL; rate limit across an engine restart,
//! read back from the persisted reboot times). `docs/recovery.md` describes the ladder.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netfailover_actors::fake::{pass, FakeWorld};
use netfailover_actors::model::{CheckConfig, Config, EventKind, RecoveryConfig, UplinkType};
use netfailover_actors::ports::{ActionOutcome, RecoveryAction, Verdict};
use netfailover_actors::EngineHandle;
use tokio::time::Instant;

#[path = "support/profiles.rs"]
mod profiles;
#[path = "support/world.rs"]
mod world;
use profiles::{checks_every_30s, name, profile};
use world::{again, dhcp_world, started};

const MIN: Duration = Duration::from_secs(60);

/// eth0 and wwan0 (cellular), checks every 30 s, the ladder at its defaults unless changed.
fn config(recovery: RecoveryConfig) -> Config {
    Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100),
            profile("wwan0", UplinkType::Gsm, 700),
        ],
        adopt: false,
        check: checks_every_30s(),
        recovery,
        ..Config::default()
    }
}

/// (action, interface, minutes since `t0` rounded down) of every recorded action.
fn calls(w: &FakeWorld, t0: Instant) -> Vec<(RecoveryAction, String, u64)> {
    w.recovery
        .calls()
        .into_iter()
        .map(|c| {
            let iface = c.iface.map(|i| i.to_string()).unwrap_or_default();
            (c.action, iface, (c.at - t0).as_secs() / 60)
        })
        .collect()
}

/// The `recovery` events produced: (action, rung, interface, result).
fn recovery_events(h: &EngineHandle) -> Vec<(String, u32, String, String)> {
    h.history()
        .into_iter()
        .filter(|r| r.event.kind == EventKind::Recovery)
        .filter_map(|r| {
            let info = r.event.recovery?;
            let iface = r.event.iface.map(|i| i.to_string()).unwrap_or_default();
            Some((info.action, info.rung, iface, info.result))
        })
        .collect()
}

#[actix::test]
async fn the_ladder_takes_each_rung_once_in_order_at_its_delay() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    w.probe.set("wwan0", Verdict::Limited);
    w.recovery.answer(
        RecoveryAction::Reconnect,
        ActionOutcome::Skipped("NetworkManager is not running".into()),
    );
    let t0 = Instant::now();
    let h = started(&w, config(RecoveryConfig::default())).await;
    pass(2 * MIN).await;
    let st = h.status().recovery;
    let wwan0 = st
        .interfaces
        .get(&name("wwan0"))
        .expect("wwan0 in an episode");
    assert_eq!(wwan0.next.as_deref(), Some("relink"));
    assert!(!st.interfaces.contains_key(&name("eth0")), "eth0 is FULL");
    pass(20 * MIN).await;
    use RecoveryAction::*;
    assert_eq!(
        calls(&w, t0),
        vec![
            (Relink, "wwan0".into(), 3),
            (Reconnect, "wwan0".into(), 6),
            (ModemReset, "wwan0".into(), 10),
        ],
        "once each, in order, at 3, 6 and 10 minutes; nothing on the FULL eth0"
    );
    let ev = recovery_events(&h);
    assert_eq!(
        ev,
        vec![
            ("relink".into(), 1, "wwan0".into(), "done".into()),
            (
                "reconnect".into(),
                2,
                "wwan0".into(),
                "skipped: NetworkManager is not running".into()
            ),
            ("modem-reset".into(), 3, "wwan0".into(), "done".into()),
        ]
    );
    let first = h
        .history()
        .into_iter()
        .find(|r| r.event.kind == EventKind::Recovery)
        .and_then(|r| r.event.recovery)
        .expect("a recovery event");
    assert!(
        (180..=181).contains(&first.not_full_seconds),
        "{}",
        first.not_full_seconds
    );
    let st = h.status().recovery;
    assert_eq!(st.actions["relink"]["done"], 1);
    assert_eq!(st.actions["reconnect"]["skipped"], 1);
    assert_eq!(st.interfaces[&name("wwan0")].next, None, "ladder used up");
    assert_eq!(st.reboot, "off");
}

#[actix::test]
async fn an_episode_ends_on_full_and_a_new_one_starts_the_ladder_again() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    w.probe.set("eth0", Verdict::Limited);
    let t0 = Instant::now();
    let h = started(&w, config(RecoveryConfig::default())).await;
    pass(4 * MIN).await;
    // The relink "fixed" it: FULL after up_count good checks; no reconnect follows.
    w.probe.set("eth0", Verdict::Full);
    pass(10 * MIN).await;
    assert_eq!(
        calls(&w, t0),
        vec![(RecoveryAction::Relink, "eth0".into(), 3)]
    );
    assert!(h.status().recovery.interfaces.is_empty());
    // Wedged again at 14 min: a new episode, relink again 3 min later (not at once).
    w.probe.set("eth0", Verdict::Limited);
    pass(4 * MIN).await;
    let c = calls(&w, t0);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[1].0, RecoveryAction::Relink);
    assert!((17..=18).contains(&c[1].2), "{c:?}");
}

#[actix::test]
async fn no_rung_on_a_full_or_link_less_interface() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let h = started(&w, config(RecoveryConfig::default())).await;
    // wwan0 without carrier for 20 minutes: NONE, but no link, no rung.
    w.kernel.set_carrier("wwan0", false);
    pass(20 * MIN).await;
    assert_eq!(w.recovery.calls(), vec![], "eth0 FULL, wwan0 without link");
    // Link back and its checks fail: the clock starts now, not 20 minutes ago.
    w.probe.set("wwan0", Verdict::Limited);
    let t1 = Instant::now();
    w.kernel.set_carrier("wwan0", true);
    pass(2 * MIN).await;
    assert_eq!(
        w.recovery.calls(),
        vec![],
        "time without link does not count"
    );
    pass(2 * MIN).await;
    assert_eq!(
        calls(&w, t1),
        vec![(RecoveryAction::Relink, "wwan0".into(), 3)]
    );
    // The relink's own link bounce keeps the episode (reconnect follows, not another relink).
    w.kernel.set_carrier("wwan0", false);
    pass(Duration::from_millis(50)).await;
    w.kernel.set_carrier("wwan0", true);
    pass(3 * MIN).await;
    let c = calls(&w, t1);
    assert_eq!(c[1].0, RecoveryAction::Reconnect, "{c:?}");
    drop(h);
}

#[actix::test]
async fn a_long_outage_is_retried_after_episode_repeat_not_hammered() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    w.probe.set("eth0", Verdict::Limited);
    let cfg = RecoveryConfig {
        episode_repeat: 15 * MIN,
        ..RecoveryConfig::default()
    };
    let t0 = Instant::now();
    let _h = started(&w, config(cfg)).await;
    pass(32 * MIN).await;
    use RecoveryAction::*;
    assert_eq!(
        calls(&w, t0),
        vec![
            (Relink, "eth0".into(), 3),
            (Reconnect, "eth0".into(), 6),
            (Relink, "eth0".into(), 18),
            (Reconnect, "eth0".into(), 21),
        ],
        "no modem-reset on ethernet; the ladder again after 15 minutes"
    );
}

#[actix::test]
async fn recovery_off_or_checks_off_takes_no_rung() {
    tokio::time::pause();
    for cfg in [
        config(RecoveryConfig {
            enabled: false,
            reboot_after: MIN,
            ..RecoveryConfig::default()
        }),
        Config {
            check: CheckConfig {
                interval: Duration::ZERO,
                ..CheckConfig::default()
            },
            ..config(RecoveryConfig::default())
        },
    ] {
        let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
        w.probe.set("eth0", Verdict::Limited);
        w.probe.set("wwan0", Verdict::Limited);
        let h = again(&w, cfg).await;
        pass(30 * MIN).await;
        assert_eq!(w.recovery.calls(), vec![]);
        h.shutdown().await.unwrap();
    }
}

fn reboot_cfg() -> RecoveryConfig {
    RecoveryConfig {
        reboot_after: 10 * MIN,
        reboot_min_interval: 60 * MIN,
        reboot_command: vec!["/bin/true".into()],
        relink_after: 100 * MIN,
        reconnect_after: 100 * MIN,
        modem_reset_after: 100 * MIN,
        ..RecoveryConfig::default()
    }
}

#[actix::test]
async fn never_a_reboot_while_an_uplink_is_full() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    w.probe.set("wwan0", Verdict::Limited);
    let h = started(&w, config(reboot_cfg())).await;
    pass(60 * MIN).await;
    assert_eq!(w.recovery.calls(), vec![]);
    assert_eq!(h.status().recovery.reboot, "uplink FULL");
}

#[actix::test]
async fn a_reboot_after_reboot_after_announced_first_and_rate_limited_across_a_restart() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    w.probe.set("eth0", Verdict::Limited);
    w.probe.set("wwan0", Verdict::Limited);
    w.scripts.set_duration(Duration::from_secs(5));
    let t0 = Instant::now();
    let h = started(&w, config(reboot_cfg())).await;
    pass(9 * MIN).await;
    assert_eq!(w.recovery.calls(), vec![]);
    assert!(
        h.status().recovery.reboot.starts_with("in "),
        "{:?}",
        h.status().recovery
    );
    pass(2 * MIN).await;
    let c = w.recovery.calls();
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].action, RecoveryAction::Reboot);
    assert_eq!(c[0].command, vec!["/bin/true".to_string()]);
    // Announced first: the event's scripts (5 s each here) ran before the request.
    let waited = c[0].at - t0;
    assert!(waited >= 10 * MIN + Duration::from_secs(5), "{waited:?}");
    let reboot_event = w
        .scripts
        .finished()
        .into_iter()
        .find(|e| e.kind == EventKind::Recovery)
        .expect("the reboot event was delivered");
    let info = reboot_event.recovery.expect("recovery info");
    assert_eq!((info.action.as_str(), info.rung), ("reboot", 4));
    assert_eq!(info.result, "requested");
    assert!(info.not_full_seconds >= 600);
    assert_eq!(
        w.recovery.reboots().len(),
        1,
        "persisted before the request"
    );
    pass(30 * MIN).await;
    assert_eq!(w.recovery.calls().len(), 1, "once");
    h.shutdown().await.unwrap();

    // The device "rebooted" (the reboot times are what persist_dir kept): within
    // reboot_min_interval of the last one, none again.
    let h = again(&w, config(reboot_cfg())).await;
    pass(30 * MIN).await;
    assert_eq!(
        w.recovery.calls().len(),
        1,
        "rate-limited across the restart"
    );
    assert!(h.status().recovery.reboot.starts_with("rate-limited"));
    h.shutdown().await.unwrap();

    // A last reboot longer ago than reboot_min_interval: allowed again.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    w.recovery.set_reboots(vec![now_ms - 2 * 3_600_000]);
    let _h = again(&w, config(reboot_cfg())).await;
    pass(11 * MIN).await;
    assert_eq!(w.recovery.calls().len(), 2);
    assert_eq!(w.recovery.reboots().len(), 2);
}

#[actix::test]
async fn a_reload_that_turns_the_ladder_on_starts_the_episodes_from_then() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    w.probe.set("eth0", Verdict::Limited);
    let off = RecoveryConfig {
        enabled: false,
        ..RecoveryConfig::default()
    };
    let t0 = Instant::now();
    let h = started(&w, config(off)).await;
    pass(10 * MIN).await;
    assert_eq!(w.recovery.calls(), vec![]);
    assert!(h.status().recovery.interfaces.is_empty());
    h.reload(config(RecoveryConfig::default()));
    pass(2 * MIN).await;
    assert_eq!(w.recovery.calls(), vec![], "3 minutes from the reload");
    pass(2 * MIN).await;
    assert_eq!(
        calls(&w, t0),
        vec![(RecoveryAction::Relink, "eth0".into(), 13)]
    );
}

#[actix::test]
async fn an_interface_that_expects_no_default_route_is_no_uplink_to_recover() {
    // lan0: a LAN port (`never-default=true`, IPv6 left to advertisements that never come);
    // lan1: an uplink whose DHCP lease never came (it expects a default route). Neither has
    // one, so neither is FULL; only lan1 is a wedge the ladder may try to fix.
    let w = dhcp_world(&[("eth0", 100)]);
    w.kernel
        .add_link("lan0", netfailover_actors::model::LinkKind::Other);
    w.kernel
        .add_link("lan1", netfailover_actors::model::LinkKind::Other);
    let mut lan0 = profile("lan0", UplinkType::Ethernet, 300);
    lan0.ipv4.manage_default = false;
    let cfg = Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100),
            lan0,
            profile("lan1", UplinkType::Ethernet, 400),
        ],
        ..config(RecoveryConfig::default())
    };
    let t0 = Instant::now();
    let h = started(&w, cfg).await;
    pass(20 * MIN).await;
    let status = h.status();
    let state = |n: &str| {
        status
            .interfaces
            .iter()
            .find(|i| i.name == name(n))
            .map(|i| i.connectivity)
    };
    assert_ne!(
        state("lan0"),
        Some(netfailover_actors::model::Connectivity::Full)
    );
    assert_ne!(
        state("lan1"),
        Some(netfailover_actors::model::Connectivity::Full)
    );
    let touched: Vec<String> = calls(&w, t0).into_iter().map(|(_, i, _)| i).collect();
    assert!(!touched.contains(&"lan0".to_string()), "{touched:?}");
    assert!(touched.contains(&"lan1".to_string()), "{touched:?}");
    assert!(!status.recovery.interfaces.contains_key(&name("lan0")));
}
