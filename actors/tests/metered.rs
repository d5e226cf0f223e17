//! Metered uplinks in the whole engine, on fakes, in virtual time (docs/semantics.md §9.11):
//! periodic checks skipped while the interface's own traffic goes both ways — metered uplinks
//! only, never the checks that decide (a failure's confirmations towards a state change,
//! the re-checks of an interface that is not FULL, `check`); a metered standby checked at the
//! standby cadence while the route in use is on a FULL interface, an unmetered one at
//! `interval`; and the standby checked at once when it is about to be needed (the primary
//! became suspect, or left FULL).

use std::time::Duration;

use netfailover_actors::fake::{pass, ProbeBehaviour};
use netfailover_actors::model::{
    CheckConfig, Config, Connectivity, Metered, MeteredConfig, Profile, UplinkType,
};
use netfailover_actors::ports::Verdict;
use netfailover_actors::status::{IfaceStatus, SkipReason};
use netfailover_actors::EngineHandle;

#[path = "support/profiles.rs"]
mod profiles;
#[path = "support/world.rs"]
mod world;
use profiles::{name, profile};
use world::{dhcp_world, started};

/// A profile of `iface` whose keyfile says `metered=1` (or `2`).
fn metered(mut p: Profile, yes: bool) -> Profile {
    p.metered = Metered {
        metered: yes,
        guessed: false,
    };
    p
}

fn config(profiles: Vec<Profile>, interval: u64, standby: u64) -> Config {
    Config {
        profiles,
        adopt: false,
        check: CheckConfig {
            uri: "http://192.0.2.80/check".into(),
            interval: Duration::from_secs(interval),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            recheck_max: Duration::from_secs(60),
            down_count: 2,
            up_count: 2,
            ..CheckConfig::default()
        },
        metered: MeteredConfig {
            standby_interval: Duration::from_secs(standby),
            ..MeteredConfig::default()
        },
        ..Config::default()
    }
}

fn iface(h: &EngineHandle, n: &str) -> IfaceStatus {
    h.status()
        .interfaces
        .into_iter()
        .find(|i| i.name.as_str() == n)
        .unwrap_or_else(|| panic!("{n} listed"))
}

fn skipped(h: &EngineHandle, n: &str) -> u64 {
    iface(h, n)
        .checks
        .skipped
        .get("traffic")
        .copied()
        .unwrap_or(0)
}

/// Steps of 50 ms until `f` holds; the virtual time it took, or `None` past `limit`.
async fn time_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() <= limit {
        if f() {
            return Some(t0.elapsed());
        }
        pass(Duration::from_millis(50)).await;
    }
    None
}

#[actix::test]
async fn two_way_traffic_skips_the_periodic_checks_of_metered_uplinks_only() {
    // eth0 metered (the keyfile says so) and in use, wlan0 not metered; both busy both ways.
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let profiles = vec![
        metered(profile("eth0", UplinkType::Ethernet, 100), true),
        profile("wlan0", UplinkType::Wifi, 600),
    ];
    let h = started(&w, config(profiles, 5, 60)).await;
    w.traffic.busy(2, "eth0");
    w.traffic.busy(3, "wlan0");
    pass(Duration::from_secs(61)).await;

    assert_eq!(
        w.probe.checks("eth0").len(),
        1,
        "the start's check only: every periodic one skipped"
    );
    assert_eq!(skipped(&h, "eth0"), 12, "one skip per interval");
    let eth0 = iface(&h, "eth0");
    let last = eth0.last_check.clone().expect("a last check");
    assert_eq!(last.skipped, Some(SkipReason::Traffic));
    assert_eq!(last.verdict, Verdict::Full);
    assert_eq!(eth0.connectivity, Connectivity::Full);
    // Not metered: checked at `interval` as always, traffic or not.
    assert_eq!(w.probe.checks("wlan0").len(), 13);
    assert_eq!(skipped(&h, "wlan0"), 0);

    // `netfailover check` is never skipped.
    let before = w.probe.checks("eth0").len();
    h.check_now(&name("eth0")).await.expect("checked");
    assert_eq!(w.probe.checks("eth0").len(), before + 1);

    // Traffic stops: the periodic checks come back at `interval` (after one more skip for the
    // traffic seen since the last one).
    w.traffic.remove(2);
    let before = w.probe.checks("eth0").len();
    pass(Duration::from_secs(31)).await;
    let ran = w.probe.checks("eth0").len() - before;
    assert!(
        (5..=6).contains(&ran),
        "{ran} checks in 31 s at interval 5 s"
    );
}

#[actix::test]
async fn checks_that_decide_are_never_skipped_and_one_failure_moves_nothing() {
    // Metered eth0 in use, busy both ways; its checks answer slowly (2 s each): traffic goes
    // both ways while one failure is being confirmed.
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600)]);
    let profiles = vec![
        metered(profile("eth0", UplinkType::Ethernet, 100), true),
        profile("wlan0", UplinkType::Wifi, 600),
    ];
    let mut cfg = config(profiles, 5, 60);
    cfg.check.down_count = 3;
    let h = started(&w, cfg).await;
    // Traffic from 4.5 s: the periodic check at 5 s runs (no proof yet) and fails.
    pass(Duration::from_millis(4400)).await;
    w.traffic.busy(2, "eth0");
    let slow = |v| ProbeBehaviour::Answer(v, Duration::from_secs(2));
    w.probe.set_behaviour("eth0", slow(Verdict::Limited));
    let events = h.history().len();
    // The second and third checks follow at once although traffic went both ways meanwhile:
    // they decide (never skipped), and after three failures eth0 leaves FULL.
    time_until(Duration::from_secs(10), || {
        w.kernel.best_iface().as_deref() == Some("wlan0")
    })
    .await
    .expect("three failed checks in a row move the route");
    assert_eq!(w.probe.checks("eth0").len(), 4, "the start's, then three");
    assert_eq!(skipped(&h, "eth0"), 0);
    assert!(h.history().len() > events);

    // Not FULL: its re-checks are never skipped either, so its return is seen (fail-back).
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::ZERO),
    );
    time_until(Duration::from_secs(10), || {
        w.kernel.best_iface().as_deref() == Some("eth0")
    })
    .await
    .expect("eth0 back while its traffic flows");
    assert_eq!(skipped(&h, "eth0"), 0);

    // A single failed check (then passing again) still moves nothing.
    w.traffic.remove(2);
    pass(Duration::from_secs(10)).await;
    let events = h.history().len();
    let before = w.probe.checks("eth0").len();
    w.probe.set_behaviour("eth0", slow(Verdict::Limited));
    time_until(Duration::from_secs(10), || {
        w.probe.checks("eth0").len() > before
    })
    .await
    .expect("a periodic check");
    w.probe.set_behaviour(
        "eth0",
        ProbeBehaviour::Answer(Verdict::Full, Duration::ZERO),
    );
    pass(Duration::from_secs(5)).await;
    assert_eq!(iface(&h, "eth0").connectivity, Connectivity::Full);
    assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));
    assert_eq!(h.history().len(), events, "no event");
}

#[actix::test]
async fn a_metered_standby_is_checked_at_the_standby_cadence() {
    // eth0 primary, wlan0 unmetered standby, wwan0 metered standby (cellular: guessed).
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wlan0", UplinkType::Wifi, 600),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let h = started(&w, config(profiles, 5, 30)).await;
    assert!(iface(&h, "wwan0").metered && iface(&h, "wwan0").metered_guessed);
    pass(Duration::from_secs(120)).await;
    let (eth0, wlan0, wwan0) = (
        w.probe.checks("eth0").len(),
        w.probe.checks("wlan0").len(),
        w.probe.checks("wwan0").len(),
    );
    // Each check takes the fake's answer time: the 25th may fall just past 120 s.
    assert!((24..=25).contains(&eth0), "at interval: {eth0}");
    assert!(
        (24..=25).contains(&wlan0),
        "unmetered standby at interval: {wlan0}"
    );
    // The start's check (and one more if its result came before the route in use was
    // known), then every 30 s.
    assert!((4..=6).contains(&wwan0), "metered standby: {wwan0} checks");
    let gaps: Vec<Duration> = w
        .probe
        .checks("wwan0")
        .windows(2)
        .map(|p| p[1] - p[0])
        .collect();
    assert!(
        gaps.iter()
            .filter(|g| **g < Duration::from_secs(30))
            .count()
            <= 1,
        "{gaps:?}"
    );
}

#[actix::test]
async fn a_standby_interval_below_interval_means_interval() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let _h = started(&w, config(profiles, 5, 2)).await;
    pass(Duration::from_secs(60)).await;
    let n = w.probe.checks("wwan0").len();
    assert!((12..=13).contains(&n), "{n}");
}

#[actix::test]
async fn the_standby_is_checked_at_once_when_the_primary_leaves_full() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let h = started(&w, config(profiles, 5, 3600)).await;
    pass(Duration::from_secs(100)).await;
    let before = w.probe.checks("wwan0").len();
    assert!(before <= 2, "the start's (and one at `interval`): {before}");
    w.probe.set("eth0", Verdict::Limited);
    time_until(Duration::from_secs(10), || {
        iface(&h, "eth0").connectivity == Connectivity::Limited
    })
    .await
    .expect("eth0 leaves FULL");
    let left = tokio::time::Instant::now();
    time_until(Duration::from_secs(1), || {
        w.probe.checks("wwan0").len() > before
    })
    .await
    .expect("wwan0 checked at once");
    let checked = w.probe.checks("wwan0")[before];
    assert!(checked <= left, "checked {:?} after", checked - left);
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
    // In use now: at `interval`.
    pass(Duration::from_secs(30)).await;
    let n = w.probe.checks("wwan0").len() - before;
    assert!((6..=8).contains(&n), "{n} checks in 30 s in use");
}

#[actix::test]
async fn the_standby_is_checked_at_once_when_the_primary_becomes_suspect() {
    // balenaOS's interval (3600 s): the primary's stall is noticed by passive health.
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let mut cfg = config(profiles, 3600, 6 * 3600);
    cfg.check.timeout = Duration::from_secs(20);
    let h = started(&w, cfg).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(120)).await;
    let before = w.probe.checks("wwan0").len();
    assert_eq!(before, 1);
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.traffic.stall(2, true);
    let took = time_until(Duration::from_secs(5), || {
        w.probe.checks("wwan0").len() > before
    })
    .await
    .expect("the standby that would take over is checked at once");
    // window 1 s + one sampling period, and a period of slack.
    assert!(took <= Duration::from_secs(3), "{took:?}");
    time_until(Duration::from_secs(10), || {
        w.kernel.best_iface().as_deref() == Some("wwan0")
    })
    .await
    .expect("failover to the verified standby");
    assert_eq!(iface(&h, "eth0").connectivity, Connectivity::Limited);
}

#[actix::test]
async fn a_metered_standby_behind_a_healthy_unmetered_one_stays_on_its_cadence() {
    // wlan0 (unmetered, FULL) would take over from a failing eth0 before wwan0: the primary's
    // failure does not make the metered wwan0 needed, so it is not checked.
    let w = dhcp_world(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wlan0", UplinkType::Wifi, 600),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let mut cfg = config(profiles, 3600, 6 * 3600);
    cfg.check.timeout = Duration::from_secs(20);
    let _h = started(&w, cfg).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(120)).await;
    let before = w.probe.checks("wwan0").len();
    assert_eq!(before, 1);
    w.probe.set_behaviour("eth0", ProbeBehaviour::Hang);
    w.traffic.stall(2, true);
    time_until(Duration::from_secs(10), || {
        w.kernel.best_iface().as_deref() == Some("wlan0")
    })
    .await
    .expect("failover to wlan0");
    pass(Duration::from_secs(60)).await;
    assert_eq!(
        w.probe.checks("wwan0").len(),
        before,
        "wwan0 is not about to be needed while wlan0 is healthy"
    );
}

#[actix::test]
async fn a_failed_metered_standby_is_rechecked_at_the_standby_cadence_until_needed() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let h = started(&w, config(profiles, 5, 100)).await;
    pass(Duration::from_secs(10)).await;
    w.probe.set("wwan0", Verdict::Limited);
    time_until(Duration::from_secs(120), || {
        iface(&h, "wwan0").connectivity == Connectivity::Limited
    })
    .await
    .expect("wwan0 fails at its next check");
    let before = w.probe.checks("wwan0").len();
    pass(Duration::from_secs(250)).await;
    let n = w.probe.checks("wwan0").len() - before;
    // Not the 1 s doubling back-off (about 60 checks capped at 5 s): one per 100 s.
    assert!((2..=3).contains(&n), "{n} re-checks in 250 s");

    // The primary leaves FULL: the failed standby is needed, checked at once and then at the
    // health back-off.
    let before = w.probe.checks("wwan0").len();
    w.probe.set("eth0", Verdict::Limited);
    time_until(Duration::from_secs(10), || {
        iface(&h, "eth0").connectivity == Connectivity::Limited
    })
    .await
    .expect("eth0 leaves FULL");
    pass(Duration::from_millis(100)).await;
    assert_eq!(w.probe.checks("wwan0").len(), before + 1, "at once");
    pass(Duration::from_secs(20)).await;
    assert!(w.probe.checks("wwan0").len() >= before + 5, "back-off");
}

#[actix::test]
async fn the_standby_is_checked_at_once_when_the_primary_loses_its_link() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let profiles = vec![
        profile("eth0", UplinkType::Ethernet, 100),
        profile("wwan0", UplinkType::Gsm, 700),
    ];
    let _h = started(&w, config(profiles, 5, 3600)).await;
    pass(Duration::from_secs(100)).await;
    let before = w.probe.checks("wwan0").len();
    w.kernel.set_carrier("eth0", false);
    time_until(Duration::from_secs(1), || {
        w.probe.checks("wwan0").len() > before
    })
    .await
    .expect("the route moved onto wwan0: checked at once, not at its 3600 s cadence");
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wwan0"));
}
