//! SIGHUP with a broken file (issue 24, items 3 and 4): config.json and each keyfile keep their
//! last good version, so a typo never switches a running device to defaults (LIMITED, scripts)
//! nor drops the route of an uplink managed through its profile. Also the daemon's plain log
//! as the journal stores it (item 6): no escape sequences, values printed as values.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lab::netns::wait_for;
use lab::world::CHECK_ADDR;
use netfailover::engine::model::Connectivity;
use netfailover_lab as lab;
use netfailover_lab::test_setup;

use crate::daemon::{routes, sorted, E2e};

fn all_full(e2e: &E2e) -> bool {
    e2e.status().is_some_and(|s| {
        s.interfaces.len() == 3
            && s.interfaces
                .iter()
                .all(|i| i.connectivity == Connectivity::Full)
    })
}

fn scripts_log(e2e: &E2e) -> String {
    std::fs::read_to_string(e2e.dir.path().join("scripts.log")).unwrap_or_default()
}

/// Sends SIGHUP and waits until the daemon logged that it applied the reload.
fn reload(e2e: &E2e) {
    let count = || e2e.log().matches("SIGHUP: configuration reloaded").count();
    let before = count();
    e2e.signal(nix::sys::signal::Signal::SIGHUP);
    let done = wait_for(Duration::from_secs(15), || (count() > before).then_some(()));
    assert!(done.is_some(), "reload not applied:\n{}", e2e.log());
}

/// Starts a check server on port 8080 of the lab's Internet, points config.json at it (a
/// reload), and waits until every uplink is FULL: the server, config.json's path and its text.
fn checked_and_full(e2e: &E2e) -> (lab::internet::CheckServer, PathBuf, String) {
    let server = lab::internet::CheckServer::start(
        &e2e.world.internet,
        SocketAddr::from((CHECK_ADDR, 8080)),
        None,
    )
    .unwrap();
    let config = e2e.dir.path().join("boot/config.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("/connectivity-check", ":8080/connectivity-check");
    std::fs::write(&config, &text).unwrap();
    reload(e2e);
    let full = wait_for(Duration::from_secs(20), || all_full(e2e).then_some(()));
    assert!(full.is_some(), "{:?}\n{}", e2e.status(), e2e.log());
    (server, config, text)
}

#[test]
fn sighup_with_a_malformed_config_json_keeps_its_last_good_version() {
    test_setup!();
    // Timed by the product: interval 1 s at 1 s timeouts, every uplink FULL for 5 s.
    let _heavy = crate::heavy_test_lock();
    let e2e = E2e::start(1);
    let (_server, config, good) = checked_and_full(&e2e);
    // The scripts of the way up have run (no event left pending) before counting them.
    let delivered = wait_for(Duration::from_secs(20), || {
        (e2e.status()?.pending_events == 0).then_some(())
    });
    assert!(delivered.is_some(), "{:?}\n{}", e2e.status(), e2e.log());
    let scripts_before = scripts_log(&e2e);

    // A JSON syntax error: the defaults (the balena API, 8.8.8.8) would make every uplink
    // LIMITED within two checks and run the connectivity-change scripts.
    std::fs::write(&config, &good[..good.len() / 2]).unwrap();
    reload(&e2e);
    // Interval 1 s, down_count 2: five seconds are several checks.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        assert!(all_full(&e2e), "{:?}\n{}", e2e.status(), e2e.log());
    }
    assert_eq!(scripts_log(&e2e), scripts_before, "scripts ran");
    assert!(e2e.log().contains("keeping its last good version"));
    let problems = e2e.config_problems().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("config.json") && p.contains("error")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("config.json") && p.contains("last good version")),
        "{problems:?}"
    );

    // Fixed again: the problems clear.
    std::fs::write(&config, &good).unwrap();
    reload(&e2e);
    let cleared = wait_for(Duration::from_secs(10), || {
        e2e.config_problems()?.is_empty().then_some(())
    });
    assert!(cleared.is_some(), "{:?}", e2e.config_problems());
    assert!(all_full(&e2e));
}

#[test]
fn sighup_with_a_broken_keyfile_keeps_the_uplink_and_its_route() {
    let e2e = test_setup!(E2e::start(0));
    let expected = routes(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)]);
    let installed = wait_for(Duration::from_secs(20), || {
        (sorted(e2e.default_routes()) == expected).then_some(())
    });
    assert!(installed.is_some(), "{:?}", e2e.default_routes());

    // eth0 (a veth) is managed only through this profile.
    let keyfile = e2e.dir.path().join("boot/system-connections/lab-eth0");
    let good = std::fs::read_to_string(&keyfile).unwrap();
    std::fs::write(&keyfile, "this line is not a keyfile\n[ipv4\n").unwrap();
    reload(&e2e);
    // The routes stay: watched at every moment for 2 s (checks are off, no event ends it).
    let end = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < end {
        assert_eq!(sorted(e2e.default_routes()), expected, "{}", e2e.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(e2e.log().contains("keeping its last good version"));
    let problems = e2e.config_problems().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("lab-eth0") && p.contains("last good version")),
        "{problems:?}"
    );
    let status = e2e.status().unwrap();
    assert!(
        status.interfaces.iter().any(|i| i.name.as_str() == "eth0"),
        "{status:?}"
    );

    // A second reload, still broken: the same good version stays; a change to another file
    // applies meanwhile.
    let wlan = e2e.dir.path().join("boot/system-connections/lab-wlan0");
    let text = std::fs::read_to_string(&wlan).unwrap();
    std::fs::write(&wlan, text.replace("route-metric=600", "route-metric=650")).unwrap();
    reload(&e2e);
    let moved = wait_for(Duration::from_secs(20), || {
        (sorted(e2e.default_routes()) == routes(&[("eth0", 100), ("wlan0", 650), ("wwan0", 700)]))
            .then_some(())
    });
    assert!(moved.is_some(), "{:?}\n{}", e2e.default_routes(), e2e.log());

    // Fixed with a new metric: it applies.
    std::fs::write(
        &keyfile,
        good.replace("route-metric=100", "route-metric=90"),
    )
    .unwrap();
    reload(&e2e);
    let fixed = wait_for(Duration::from_secs(20), || {
        e2e.default_routes()
            .contains(&("eth0".to_string(), 90))
            .then_some(())
    });
    assert!(fixed.is_some(), "{:?}\n{}", e2e.default_routes(), e2e.log());

    // Item 6: the log is a file, not a terminal: no colour codes, values not `Some(..)`.
    let log = e2e.log();
    assert!(
        !log.contains('\u{1b}'),
        "escape sequences in the log:\n{log}"
    );
    assert!(!log.contains("Some("), "Debug values in the log:\n{log}");
    assert!(log.contains("gateway="), "{log}");
}

#[test]
fn a_removed_profile_takes_its_route_along_but_never_the_last_one() {
    // Checks off (interval 0): only the profiles decide. The lab's uplinks are veths, which
    // are never adopted, so an interface without its profile is not managed any more.
    let e2e = test_setup!(E2e::start(0));
    let installed = wait_for(Duration::from_secs(20), || {
        (sorted(e2e.default_routes()) == routes(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)]))
            .then_some(())
    });
    assert!(installed.is_some(), "{:?}", e2e.default_routes());
    let profiles = e2e.dir.path().join("boot/system-connections");

    // wlan0's profile removed: its route goes, as NetworkManager's go with their connection.
    std::fs::remove_file(profiles.join("lab-wlan0")).unwrap();
    reload(&e2e);
    let gone = wait_for(Duration::from_secs(10), || {
        (sorted(e2e.default_routes()) == routes(&[("eth0", 100), ("wwan0", 700)])).then_some(())
    });
    assert!(gone.is_some(), "{:?}\n{}", e2e.default_routes(), e2e.log());

    // Every profile removed: the remaining routes are the device's last ones and stay, watched
    // for 2 s after the reload took effect (the status lists no interface).
    std::fs::remove_file(profiles.join("lab-eth0")).unwrap();
    std::fs::remove_file(profiles.join("lab-wwan0")).unwrap();
    reload(&e2e);
    let unmanaged = wait_for(Duration::from_secs(10), || {
        e2e.status()?.interfaces.is_empty().then_some(())
    });
    assert!(unmanaged.is_some(), "{:?}", e2e.status());
    let end = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < end {
        assert_eq!(
            sorted(e2e.default_routes()),
            routes(&[("eth0", 100), ("wwan0", 700)]),
            "{}",
            e2e.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_restart_with_checks_disabled_does_not_resume_full() {
    test_setup!();
    // Timed by the product: interval 1 s, every uplink FULL, then a restart.
    let _heavy = crate::heavy_test_lock();
    let mut e2e = E2e::start(1);
    let (_server, config, checked) = checked_and_full(&e2e);

    // Stopped, checks turned off (`interval` 0), started again: the saved FULL says nothing
    // any more (docs/semantics.md §2: checks disabled → UNKNOWN, no penalty).
    e2e.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(e2e.wait_exit().success());
    assert!(checked.contains("\"interval\":\"1\""), "{checked}");
    std::fs::write(
        &config,
        checked.replace("\"interval\":\"1\"", "\"interval\":\"0\""),
    )
    .unwrap();
    e2e.spawn();
    let unknown = wait_for(Duration::from_secs(10), || {
        let s = e2e.status()?;
        (s.connectivity == Connectivity::Unknown
            && s.checks_disabled
            && s.interfaces
                .iter()
                .all(|i| i.connectivity == Connectivity::Unknown))
        .then_some(())
    });
    assert!(unknown.is_some(), "{:?}\n{}", e2e.status(), e2e.log());
    assert_eq!(
        sorted(e2e.default_routes()),
        routes(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)])
    );
}
