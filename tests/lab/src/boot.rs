//! `netfailover-lab --scenario boot-3053`: meta-balena issue 3053 at boot. Ethernet has carrier
//! but its upstream is dead, Wi-Fi is not connected, cellular works. The daemon starts, and
//! `wait-online` (the library call behind `netfailover wait-online`, with its default timeout)
//! runs from the same instant, as systemd would start `netfailover-wait-online.service` beside
//! it. It must return 0 through cellular — where a "routable" wait would have released
//! `network-online.target` on Ethernet — and the lab prints the time from the daemon's start.

use std::time::{Duration, Instant};

use netfailover::wait_online::{self, Outcome, Want};

use super::daemon::{self, DaemonProcess, WorkDir};
use super::netns::wait_for;
use super::timeline;
use super::world::{LabError, World, FAST_SETTINGS};

/// The scenario's name for `--scenario`.
pub const SCENARIO: &str = "boot-3053";

/// Longest the kernel may take to route the check server through cellular once wait-online
/// returned (the penalty on eth0 follows its first failed checks).
const ROUTE_WAIT: Duration = timeline::STEP_TIMEOUT;

/// Plays the scenario; `Ok(true)` when wait-online returned 0 through `wwan0` and the device
/// routes through it.
pub fn run() -> Result<bool, LabError> {
    daemon::watch_interrupts();
    println!("netfailover-lab {SCENARIO}: building the world (device, 3 ISPs, Internet)…");
    let mut world = World::build()?;
    world.start_servers()?;
    let work = WorkDir::new()?;
    let boot = work.path().join("boot");
    let socket = work.path().join("sock");
    let daemon_log = work.path().join("daemon.log");
    world.write_boot_dir(
        &boot,
        FAST_SETTINGS,
        &work.path().join("state"),
        &work.path().join("scripts.log"),
    )?;
    world.blackhole_upstream("eth0")?;
    world.pull_cable("wlan0")?;
    println!("at boot: eth0 has carrier but a dead upstream, wlan0 is not connected, wwan0 works");
    let exe = std::env::current_exe().map_err(|error| LabError::Daemon { error })?;
    let started = Instant::now();
    let daemon = DaemonProcess::start(&exe, &world, &boot, &socket, &daemon_log, &[])?;
    println!("daemon started (pid {}); wait-online started", daemon.id());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| LabError::Daemon { error })?;
    let deadline = tokio::time::Instant::now() + wait_online::DEFAULT_TIMEOUT;
    let outcome = runtime.block_on(wait_online::wait(&socket, &Want::default(), Some(deadline)));
    let took = started.elapsed();
    let through = match &outcome {
        Outcome::Online(full) => full.join(", "),
        Outcome::TimedOut(lines) => lines.join("; "),
        Outcome::NoDaemon(why) => why.clone(),
    };
    println!(
        "wait-online: exit {} after {:.2} s from the daemon's start ({through})",
        outcome.exit_code(),
        took.as_secs_f64()
    );
    let route = wait_for(ROUTE_WAIT, || {
        world.route_to_check_server().filter(|dev| dev == "wwan0")
    });
    println!(
        "route to the check server: {}",
        route.as_deref().unwrap_or("not through wwan0")
    );
    let passed = outcome == Outcome::Online(vec!["wwan0".to_string()]) && route.is_some();
    if !passed {
        let log = std::fs::read_to_string(&daemon_log).unwrap_or_default();
        println!("the daemon's log:\n{log}");
    }
    println!(
        "{}",
        if passed {
            "boot-3053 ok"
        } else {
            "boot-3053 FAILED"
        }
    );
    drop(daemon);
    drop(world);
    println!("namespaces removed");
    Ok(passed)
}
