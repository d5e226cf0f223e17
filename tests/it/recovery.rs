//! The recovery ladder on the real kernel (`docs/recovery.md`): a wedged uplink (its ISP
//! forwards again only after it sees the carrier bounce on its end of the link,
//! `netfailover_lab::wedge`) is cured by `relink`, FULL again with the route back on it; and
//! the reboot rung with `reboot_command` set to a harmless recorder: called once after
//! `reboot_after`, announced to the scripts first, and not again after a daemon restart within
//! `reboot_min_interval` (the time persisted in `persist_dir`).

use std::path::Path;
use std::time::{Duration, Instant};

use netfailover::control::Request;
use netfailover::engine::model::{Connectivity, EventKind};
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
use netfailover_lab::wedge::Wedge;
use netfailover_lab::world::FAST_SETTINGS;

use crate::daemon::{ask, dispatcher_events, E2e};

/// Writes `boot/netfailover.toml`: the lab's fast checks, `persist_dir` beside the boot
/// directory, and `recovery`.
fn settings(boot: &Path, recovery: &str) {
    let dir = boot.parent().expect("the boot directory has a parent");
    let text = format!(
        "state_dir = \"{}\"\npersist_dir = \"{}\"\n{FAST_SETTINGS}\n[recovery]\n{recovery}",
        dir.join("state").display(),
        dir.join("persist").display()
    );
    std::fs::write(boot.join("netfailover.toml"), text).expect("writing netfailover.toml");
}

fn connectivity(e2e: &E2e, iface: &str) -> Option<Connectivity> {
    let s = e2e.status()?;
    s.interfaces
        .iter()
        .find(|i| i.name.as_str() == iface)
        .map(|i| i.connectivity)
}

/// The `recovery` events so far: (action, interface, result).
fn recovery_events(e2e: &E2e) -> Vec<(String, String, String)> {
    let json = ask(&e2e.socket(), Request::Events).expect("events");
    dispatcher_events(json.to_string().as_bytes())
        .into_iter()
        .filter(|r| r.event.kind == EventKind::Recovery)
        .filter_map(|r| {
            let info = r.event.recovery?;
            let iface = r.event.iface.map(|i| i.to_string()).unwrap_or_default();
            Some((info.action, iface, info.result))
        })
        .collect()
}

#[test]
fn a_wedged_uplink_is_cured_by_relink_and_the_route_comes_back() {
    test_setup!();
    let e2e = E2e::start_prepared(2, Vec::new(), |world, boot| {
        world.start_servers().expect("starting the lab servers");
        settings(
            boot,
            "relink_after = 5\nreconnect_after = 600\nmodem_reset_after = 600\n",
        );
    });
    let full = wait_for(Duration::from_secs(30), || {
        (connectivity(&e2e, "eth0")? == Connectivity::Full).then_some(())
    });
    assert!(full.is_some(), "eth0 never FULL; log:\n{}", e2e.log());
    assert_eq!(e2e.world.route_to_check_server().as_deref(), Some("eth0"));

    let t0 = Instant::now();
    let wedge = Wedge::start(&e2e.world, "eth0").expect("wedging eth0");
    let left = wait_for(Duration::from_secs(30), || {
        (connectivity(&e2e, "eth0")? != Connectivity::Full).then_some(())
    });
    assert!(left.is_some(), "eth0 stayed FULL; log:\n{}", e2e.log());
    // Failed over while wedged; then relinked (5 s of not FULL), and the ISP forwards again.
    let cured = wait_for(Duration::from_secs(60), || wedge.cured_at());
    assert!(
        cured.is_some(),
        "no carrier bounce seen by the ISP; log:\n{}",
        e2e.log()
    );
    let back = wait_for(Duration::from_secs(30), || {
        let full = connectivity(&e2e, "eth0")? == Connectivity::Full;
        let route = e2e.world.route_to_check_server()? == "eth0";
        (full && route).then_some(())
    });
    assert!(
        back.is_some(),
        "eth0 not FULL with the route again; log:\n{}",
        e2e.log()
    );
    eprintln!("wedged → FULL again through relink in {:?}", t0.elapsed());
    assert_eq!(
        recovery_events(&e2e),
        vec![("relink".into(), "eth0".into(), "done".into())],
        "one rung, the first; log:\n{}",
        e2e.log()
    );
    let status = e2e.status().expect("status");
    assert_eq!(status.recovery.actions["relink"]["done"], 1);
    assert!(status.recovery.interfaces.is_empty(), "the episode ended");
}

/// Lines of the recorder's file (one per reboot requested).
fn recorded(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_reboot_rung_runs_reboot_command_once_and_not_again_after_a_restart() {
    test_setup!();
    let mut recorder = None;
    // No check server: every uplink is LIMITED from the start.
    let mut e2e = E2e::start_prepared(2, Vec::new(), |_, boot| {
        let dir = boot.parent().expect("a parent");
        let file = dir.join("reboots");
        let script = format!("date +%s.%N >> '{}'", file.display());
        recorder = Some(file);
        settings(
            boot,
            &format!(
                "relink_after = 600\nreconnect_after = 600\nmodem_reset_after = 600\n\
                 reboot_after = 4\nreboot_min_interval = \"1h\"\n\
                 reboot_command = [\"/bin/sh\", \"-c\", {script:?}]\n"
            ),
        );
    });
    let recorder = recorder.expect("the recorder's path");
    let once = wait_for(Duration::from_secs(30), || {
        (!recorded(&recorder).is_empty()).then_some(())
    });
    assert!(once.is_some(), "no reboot requested; log:\n{}", e2e.log());
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(recorded(&recorder).len(), 1, "once");
    // Announced first: the `recovery` event reached the scripts before the command ran.
    let log = std::fs::read_to_string(e2e.dir.path().join("scripts.log")).unwrap_or_default();
    let announced: f64 = log
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some("recovery"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no recovery event in the script log:\n{log}"));
    let requested: f64 = recorded(&recorder)[0].parse().expect("a time");
    assert!(announced <= requested, "{announced} > {requested}");
    let persisted = std::fs::read_to_string(e2e.dir.path().join("persist/recovery.json"))
        .expect("the reboot time in persist_dir");
    assert!(persisted.contains("reboots_unix_ms"), "{persisted}");

    // A daemon restart (as after the reboot) within reboot_min_interval: no second reboot.
    e2e.signal(nix::sys::signal::Signal::SIGTERM);
    e2e.wait_exit();
    e2e.spawn();
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        recorded(&recorder).len(),
        1,
        "rate-limited across the restart"
    );
    let status = e2e.status().expect("status");
    assert!(
        status.recovery.reboot.starts_with("rate-limited"),
        "{:?}",
        status.recovery
    );
}
