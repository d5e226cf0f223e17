//! A wedged uplink, the way the field has them (a modem registered with its bearer up that
//! passes no data, an ISP box that needs its link bounced): the ISP silently drops everything
//! from the device towards the Internet (a blackhole route, no ICMP back) while the link stays
//! up, and forwards again only after it has seen the carrier of its end of the veth (`down0`)
//! go away and come back. A watcher thread polls that interface's `carrier_changes` counter in
//! the ISP namespace (read through `ip netns exec`, which mounts the namespace's own sysfs);
//! dropping the [`Wedge`] stops it and leaves the ISP forwarding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::run as cmd;
use super::world::{LabError, World};

/// How often the watcher reads the counter: a relink keeps the link down for 500 ms.
const POLL: Duration = Duration::from_millis(100);

/// See the module doc.
pub struct Wedge {
    stop: Arc<AtomicBool>,
    cured: Arc<Mutex<Option<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

fn carrier_changes(isp: &str) -> Option<u64> {
    let out = cmd(&[
        "ip",
        "netns",
        "exec",
        isp,
        "cat",
        "/sys/class/net/down0/carrier_changes",
    ])
    .ok()?;
    out.trim().parse().ok()
}

impl Wedge {
    /// Wedges `iface`'s ISP now; it forwards again after the next carrier bounce on its end.
    pub fn start(world: &World, iface: &str) -> Result<Self, LabError> {
        let isp = world.uplink(iface)?.isp.name().to_string();
        let before = carrier_changes(&isp).unwrap_or(0);
        world.blackhole_upstream(iface)?;
        let stop = Arc::new(AtomicBool::new(false));
        let cured = Arc::new(Mutex::new(None));
        let (s, c) = (stop.clone(), cured.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if carrier_changes(&isp).is_some_and(|n| n > before) {
                    // The bounce is seen: forward again (as the ISP's box does once its port
                    // renegotiates).
                    let _ = cmd(&[
                        "ip",
                        "-n",
                        &isp,
                        "route",
                        "del",
                        "blackhole",
                        "203.0.113.0/24",
                    ]);
                    *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    return;
                }
                std::thread::sleep(POLL);
            }
            let _ = cmd(&[
                "ip",
                "-n",
                &isp,
                "route",
                "del",
                "blackhole",
                "203.0.113.0/24",
            ]);
        });
        Ok(Self {
            stop,
            cured,
            thread: Some(thread),
        })
    }

    /// When the ISP saw the bounce and forwarded again, if it did.
    pub fn cured_at(&self) -> Option<Instant> {
        *self.cured.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Wedge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The scenario's name for `--scenario`.
pub const SCENARIO: &str = "wedged";

/// Lab settings for the scenario: the fast checks, and the ladder's first rung after 10 s
/// instead of 3 min (the later rungs stay out of reach: the relink must do it).
fn settings(persist_dir: &std::path::Path) -> String {
    format!(
        "persist_dir = \"{}\"\n{}\n[recovery]\nrelink_after = 10\nreconnect_after = 120\n\
         modem_reset_after = 240\n",
        persist_dir.display(),
        super::world::FAST_SETTINGS
    )
}

/// `eth0`'s connectivity and whether the check server is routed through it.
fn eth0_full_and_routed(
    world: &World,
    runtime: &tokio::runtime::Runtime,
    socket: &std::path::Path,
) -> Option<bool> {
    let status = super::daemon::query_status(runtime, socket)?;
    let eth0 = status
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == "eth0")?;
    let full = eth0.connectivity == netfailover::engine::model::Connectivity::Full;
    Some(full && world.route_to_check_server().as_deref() == Some("eth0"))
}

/// `netfailover-lab --scenario wedged`: eth0's ISP silently drops everything until it sees the
/// link bounce; the daemon fails over to wlan0, the ladder relinks eth0, the ISP forwards
/// again, eth0 is FULL and first again. The summary names the rung that fixed it and the times.
pub fn run() -> Result<bool, LabError> {
    use super::daemon::{DaemonProcess, WorkDir};
    use super::netns::wait_for;
    use super::timeline::STEP_TIMEOUT;
    super::daemon::watch_interrupts();
    println!("netfailover-lab {SCENARIO}: building the world (device, 3 ISPs, Internet)…");
    let mut world = World::build()?;
    world.start_servers()?;
    let work = WorkDir::new()?;
    let (boot, socket) = (work.path().join("boot"), work.path().join("sock"));
    let daemon_log = work.path().join("daemon.log");
    let settings = settings(&work.path().join("persist"));
    let script_log = work.path().join("scripts.log");
    world.write_boot_dir(&boot, &settings, &work.path().join("state"), &script_log)?;
    let exe = std::env::current_exe().map_err(|error| LabError::Daemon { error })?;
    let daemon = DaemonProcess::start(&exe, &world, &boot, &socket, &daemon_log, &[])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| LabError::Daemon { error })?;
    let ready = wait_for(STEP_TIMEOUT, || {
        eth0_full_and_routed(&world, &runtime, &socket)?.then_some(())
    });
    println!(
        "all up, eth0 first: {}",
        if ready.is_some() { "yes" } else { "no" }
    );
    let t0 = Instant::now();
    let wedge = Wedge::start(&world, "eth0")?;
    println!("eth0's ISP wedged: drops everything until it sees the link bounce");
    let failover = wait_for(STEP_TIMEOUT, || {
        (world.route_to_check_server()? != "eth0").then(|| t0.elapsed())
    });
    let bounce = wait_for(Duration::from_secs(60), || wedge.cured_at());
    let back = wait_for(STEP_TIMEOUT + Duration::from_secs(60), || {
        eth0_full_and_routed(&world, &runtime, &socket)?.then(|| t0.elapsed())
    });
    let times = [failover, bounce.map(|b| b - t0), back];
    let fixed_by = report(super::daemon::query_status(&runtime, &socket), times);
    let passed = ready.is_some() && failover.is_some() && back.is_some() && fixed_by.is_some();
    if !passed {
        println!(
            "the daemon's log:\n{}",
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
    }
    println!("{}", if passed { "wedged ok" } else { "wedged FAILED" });
    drop(wedge);
    drop(daemon);
    drop(world);
    println!("namespaces removed");
    Ok(passed)
}

/// Prints the rungs taken and the summary line; returns the rung that fixed it.
fn report(
    status: Option<netfailover::engine::status::EngineStatus>,
    [failover, bounce, back]: [Option<Duration>; 3],
) -> Option<&'static str> {
    let rungs: Vec<String> = status
        .as_ref()
        .map(|s| {
            s.recovery
                .actions
                .iter()
                .flat_map(|(a, r)| r.iter().map(move |(res, n)| format!("{a} {res} ×{n}")))
                .collect()
        })
        .unwrap_or_default();
    let fixed_by = status
        .as_ref()
        .and_then(|s| s.recovery.actions.get("relink")?.get("done"))
        .map(|_| "relink");
    let secs =
        |d: Option<Duration>| d.map_or("never".into(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "rungs taken: {}",
        if rungs.is_empty() {
            "none".into()
        } else {
            rungs.join(", ")
        }
    );
    println!(
        "summary: wedged eth0 → failover to the backup after {}, ISP saw the bounce after {}, \
         eth0 FULL and first again after {}, fixed by {} (relink_after 10 s in the lab, 3 min by default)",
        secs(failover),
        secs(bounce),
        secs(back),
        fixed_by.unwrap_or("nothing"),
    );
    fixed_by
}
