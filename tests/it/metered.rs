//! Metered uplinks against the real kernel, in the lab world (eth0 ethernet, wlan0 Wi-Fi, wwan0
//! cellular: metered by NetworkManager's guess), with application traffic and the checks
//! counted per uplink at the test's check server (docs/semantics.md §9.11): the unmetered
//! uplinks are checked at `interval`, the metered standby at `metered.standby_interval`; and
//! a metered uplink carrying the route in use with traffic going both ways is not checked at
//! all after its first check (`status`: `skipped (traffic)`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use netfailover::engine::model::Connectivity;
use netfailover::engine::status::SkipReason;
use netfailover_lab::apps::{AppLab, BusyClient, ECHO};
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;

use crate::daemon::TempDir;

const INTERVAL: u64 = 2;
const STANDBY: u64 = 8;
const GAP: Duration = Duration::from_millis(250);
const PATIENCE: Duration = Duration::from_secs(1);

/// Check requests per uplink so far, by the device's address on it.
fn per_uplink(lab: &AppLab) -> impl Fn(&str) -> usize + '_ {
    let peers = lab
        .world
        .servers
        .as_ref()
        .map(|s| s.check.peers())
        .unwrap_or_default();
    move |iface: &str| {
        let addr = lab
            .world
            .uplink(iface)
            .ok()
            .map(|u| IpAddr::V4(u.device_addr));
        peers.iter().filter(|p| Some(**p) == addr).count()
    }
}

fn counts(lab: &AppLab) -> [usize; 3] {
    let of = per_uplink(lab);
    [of("eth0"), of("wlan0"), of("wwan0")]
}

#[test]
fn a_metered_standby_is_checked_at_standby_interval_and_skipped_under_traffic() {
    test_setup!();
    // Timed: counts per second of wall clock.
    let _serial = crate::heavy_test_lock();
    let dir = TempDir::new("metered");
    let settings = format!("[metered]\nstandby_interval = {STANDBY}\n");
    let lab = AppLab::start_with(
        Path::new(env!("CARGO_BIN_EXE_netfailover")),
        dir.path(),
        INTERVAL as u32,
        &settings,
    )
    .unwrap();
    let status = lab.status().unwrap();
    let metered: Vec<(&str, bool)> = (status.interfaces.iter())
        .map(|i| (i.name.as_str(), i.metered))
        .collect();
    assert_eq!(
        metered,
        [("eth0", false), ("wlan0", false), ("wwan0", true)],
        "cellular is guessed metered"
    );

    // Application traffic over the primary (unmetered: checked as always).
    let app = BusyClient::start(
        &lab.world.device,
        SocketAddr::from((ECHO, 7)),
        GAP,
        PATIENCE,
    )
    .unwrap();
    // Let the first cadences settle (the standby's first timer may be `interval`).
    std::thread::sleep(Duration::from_secs(STANDBY));
    let before = counts(&lab);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(48));
    let secs = t0.elapsed().as_secs_f64();
    let after = counts(&lab);
    let ran: Vec<usize> = (0..3).map(|i| after[i] - before[i]).collect();
    eprintln!("checks in {secs:.1} s (eth0, wlan0, wwan0): {ran:?}");
    let at = |every: u64| secs / every as f64;
    // Generous bounds: a loaded machine delays checks, never adds them.
    for (i, iface) in ["eth0", "wlan0"].iter().enumerate() {
        let n = ran[i] as f64;
        assert!(
            n >= at(INTERVAL) * 0.6 && n <= at(INTERVAL) + 2.0,
            "{iface}: {n} checks in {secs:.1} s at interval {INTERVAL} s; log:\n{}",
            lab.log()
        );
    }
    let n = ran[2] as f64;
    assert!(
        n >= at(STANDBY) - 2.0 && n <= at(STANDBY) + 2.0,
        "wwan0 (metered standby): {n} checks in {secs:.1} s at standby_interval {STANDBY} s; \
         log:\n{}",
        lab.log()
    );
    drop(app);

    // Now the metered uplink carries the route in use (the others' cables pulled) and the
    // application's traffic: after its first check(s) it is not checked while traffic flows.
    lab.world.pull_cable("eth0").unwrap();
    lab.world.pull_cable("wlan0").unwrap();
    let moved = wait_for(Duration::from_secs(15), || {
        (lab.route_dev(ECHO).as_deref() == Some("wwan0")).then_some(())
    });
    assert!(moved.is_some(), "route on wwan0; log:\n{}", lab.log());
    let app = BusyClient::start(
        &lab.world.device,
        SocketAddr::from((ECHO, 7)),
        GAP,
        PATIENCE,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let before = counts(&lab)[2];
    std::thread::sleep(Duration::from_secs(20));
    let spent = counts(&lab)[2] - before;
    eprintln!("wwan0 in use with traffic: {spent} checks in 20 s");
    assert!(
        spent <= 2,
        "{spent} checks of wwan0 in 20 s at interval {INTERVAL} s with traffic; log:\n{}",
        lab.log()
    );
    assert!(
        app.round_trips().len() > 40,
        "the application's traffic flowed"
    );
    let wwan0 = (lab.status().unwrap().interfaces.into_iter())
        .find(|i| i.name.as_str() == "wwan0")
        .unwrap();
    assert_eq!(wwan0.connectivity, Connectivity::Full);
    assert_eq!(
        wwan0.last_check.as_ref().and_then(|c| c.skipped),
        Some(SkipReason::Traffic),
        "{:?}",
        wwan0.last_check
    );
    let skipped = wwan0.checks.skipped.get("traffic").copied().unwrap_or(0);
    assert!(skipped >= 8, "{skipped} skips in 20 s");
    drop(app);
}
