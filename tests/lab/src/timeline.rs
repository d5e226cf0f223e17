//! `netfailover-lab`: builds the [`World`], writes its boot directory, runs the daemon inside
//! the device namespace as a child process, plays a fault timeline, prints each step live
//! (what it did, what the daemon decided, how long it took, which scripts ran) and ends with a
//! summary table. Every namespace is removed on exit, Ctrl-C included.
//!
//! Each step waits until the kernel's route to the check server (`ip route get` in the device
//! namespace) goes through the expected uplink *and* the daemon's `status` (read over the
//! control socket, as `netfailover status --json` would) shows the expected states.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use netfailover_actors::model::Connectivity;
use netfailover_actors::status::EngineStatus;

use super::daemon::{interrupted, query_status, watch_interrupts, DaemonProcess, WorkDir};
use super::world::{LabError, World, FAST_SETTINGS};
use crate::LabArgs;

/// Longest a step may take before it counts as failed: well above the docs/semantics.md §3 bounds with the
/// lab's settings (5 s to leave FULL, 5 s to return), for a busy 2-core machine.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to start and see every uplink FULL.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait after a step for the daemon to deliver its events to the scripts.
const SCRIPTS_TIMEOUT: Duration = Duration::from_secs(5);
/// Interval between observations of the kernel and the daemon.
const POLL: Duration = Duration::from_millis(100);

/// One thing the timeline does to the world.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Nothing: observe the start.
    Start,
    PullCable(&'static str),
    PlugCable(&'static str),
    Blackhole(&'static str),
    RestoreUpstream(&'static str),
    Portal(&'static str),
    ClearPortal(&'static str),
    KillDns(&'static str),
    RestoreDns(&'static str),
    AllDown,
    AllUp,
}

impl Action {
    fn describe(self) -> String {
        match self {
            Action::Start => "start the daemon, all uplinks up".into(),
            Action::PullCable(i) => format!("pull {i}'s cable"),
            Action::PlugCable(i) => format!("plug {i}'s cable back"),
            Action::Blackhole(i) => format!("blackhole {i}'s upstream"),
            Action::RestoreUpstream(i) => format!("restore {i}'s upstream"),
            Action::Portal(i) => format!("put {i} behind a captive portal"),
            Action::ClearPortal(i) => format!("lift {i}'s captive portal"),
            Action::KillDns(i) => format!("make DNS unreachable through {i} (balena 3016)"),
            Action::RestoreDns(i) => format!("restore DNS through {i}"),
            Action::AllDown => "pull every cable".into(),
            Action::AllUp => "plug every cable back".into(),
        }
    }

    fn apply(self, world: &World) -> Result<(), LabError> {
        match self {
            Action::Start => Ok(()),
            Action::PullCable(i) => world.pull_cable(i),
            Action::PlugCable(i) => world.plug_cable(i),
            Action::Blackhole(i) => world.blackhole_upstream(i),
            Action::RestoreUpstream(i) => world.restore_upstream(i),
            Action::Portal(i) => world.portal_on(i),
            Action::ClearPortal(i) => world.portal_off(i),
            Action::KillDns(i) => world.kill_dns(i),
            Action::RestoreDns(i) => world.restore_dns(i),
            Action::AllDown => world
                .uplinks
                .iter()
                .try_for_each(|u| world.pull_cable(u.iface)),
            Action::AllUp => world
                .uplinks
                .iter()
                .try_for_each(|u| world.plug_cable(u.iface)),
        }
    }
}

/// One step: an action and the state it must lead to.
#[derive(Clone, Debug)]
pub struct Step {
    pub action: Action,
    /// The interface the kernel must route the check server through (`None`: no route).
    pub primary: Option<&'static str>,
    /// Interface states the daemon must report.
    pub states: Vec<(&'static str, Connectivity)>,
    pub global: Connectivity,
}

fn step(
    action: Action,
    primary: Option<&'static str>,
    states: &[(&'static str, Connectivity)],
    global: Connectivity,
) -> Step {
    Step {
        action,
        primary,
        states: states.to_vec(),
        global,
    }
}

/// The scenarios `--scenario` knows, in the order `list` prints them.
pub const SCENARIOS: [&str; 7] = [
    "default", "cable", "upstream", "portal", "dns", "outage", "passive",
];

/// The `passive` scenario: balenaOS's `interval` 3600 with every setting at its default and an
/// application keeping a TCP connection busy; its blackhole step shows passive health noticing
/// the loss in seconds (without it, up to an hour).
const PASSIVE: &str = "passive";
/// Step limit of the `passive` scenario: returning needs the default re-check back-off (up to
/// `recheck_max` = 60 s) and 5 s connect timeouts.
const PASSIVE_STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// The steps of a scenario (each starts from all uplinks up and FULL).
pub fn scenario(name: &str) -> Result<Vec<Step>, LabError> {
    use Connectivity::{Full, Limited, None as NoLink, Portal};
    let all_full = [("eth0", Full), ("wlan0", Full), ("wwan0", Full)];
    let start = step(Action::Start, Some("eth0"), &all_full, Full);
    let cable = [
        step(
            Action::PullCable("eth0"),
            Some("wlan0"),
            &[("eth0", NoLink), ("wlan0", Full)],
            Full,
        ),
        step(Action::PlugCable("eth0"), Some("eth0"), &all_full, Full),
    ];
    let upstream = [
        step(
            Action::Blackhole("eth0"),
            Some("wlan0"),
            &[("eth0", Limited), ("wlan0", Full)],
            Full,
        ),
        step(
            Action::RestoreUpstream("eth0"),
            Some("eth0"),
            &all_full,
            Full,
        ),
    ];
    let portal = [
        step(
            Action::Portal("wlan0"),
            Some("eth0"),
            &[("eth0", Full), ("wlan0", Portal), ("wwan0", Full)],
            Full,
        ),
        step(Action::ClearPortal("wlan0"), Some("eth0"), &all_full, Full),
    ];
    let dns = [
        step(
            Action::KillDns("eth0"),
            Some("wlan0"),
            &[("eth0", Limited), ("wlan0", Full), ("wwan0", Full)],
            Full,
        ),
        step(Action::RestoreDns("eth0"), Some("eth0"), &all_full, Full),
    ];
    let outage = [
        step(
            Action::AllDown,
            None,
            &[("eth0", NoLink), ("wlan0", NoLink), ("wwan0", NoLink)],
            NoLink,
        ),
        step(Action::AllUp, Some("eth0"), &all_full, Full),
    ];
    let mut steps = vec![start];
    match name {
        "default" => {
            for part in [&cable[..], &upstream, &portal, &dns, &outage] {
                steps.extend_from_slice(part);
            }
        }
        "cable" => steps.extend_from_slice(&cable),
        "upstream" => steps.extend_from_slice(&upstream),
        "portal" => steps.extend_from_slice(&portal),
        "dns" => steps.extend_from_slice(&dns),
        "outage" => steps.extend_from_slice(&outage),
        PASSIVE => steps.extend_from_slice(&upstream),
        _ => {
            return Err(LabError::UnknownScenario {
                name: name.to_string(),
                known: SCENARIOS.join(", "),
            })
        }
    }
    Ok(steps)
}

/// What happened in one step.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub what: String,
    pub expected_primary: Option<&'static str>,
    pub observed_primary: Option<String>,
    /// Until the kernel's route matched.
    pub route_time: Option<Duration>,
    /// Until route and daemon status both matched.
    pub settled_time: Option<Duration>,
    pub ok: bool,
}

/// Does the status show what the step expects?
fn status_matches(step: &Step, status: &EngineStatus) -> bool {
    status.connectivity == step.global
        && step.states.iter().all(|(iface, want)| {
            status
                .interfaces
                .iter()
                .any(|i| i.name.as_str() == *iface && i.connectivity == *want)
        })
}

/// `eth0 FULL 100, wlan0 FULL 600, wwan0 NONE -` and the global state.
fn describe_status(status: &EngineStatus) -> String {
    let ifaces: Vec<String> = status
        .interfaces
        .iter()
        .map(|i| {
            let metric = i
                .effective_metric
                .map_or_else(|| "no route".to_string(), |m| format!("metric {m}"));
            format!("{} {} ({metric})", i.name, i.connectivity)
        })
        .collect();
    format!("{}; global {}", ifaces.join(", "), status.connectivity)
}

/// Lines the dispatcher script appended since `from` bytes, as `event iface state`.
fn new_script_lines(log: &Path, from: &mut usize) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    let lines = text
        .get(*from..)
        .unwrap_or("")
        .lines()
        .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
        .collect();
    *from = text.len();
    lines
}

/// Plays `steps` against a running daemon; prints each step as it goes.
pub(crate) fn play(
    steps: &[Step],
    step_timeout: Duration,
    world: &World,
    daemon: &mut DaemonProcess,
    socket: &Path,
    script_log: &Path,
) -> Result<Vec<Outcome>, LabError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| LabError::Daemon { error })?;
    let mut log_pos = 0;
    let mut outcomes = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        interrupted()?;
        let what = step.action.describe();
        println!("\n[{}/{}] {what}", n + 1, steps.len());
        let _ = std::io::stdout().flush();
        step.action.apply(world)?;
        let started = Instant::now();
        let limit = if matches!(step.action, Action::Start) {
            START_TIMEOUT
        } else {
            step_timeout
        };
        let mut route_time = None;
        let mut settled_time = None;
        let mut last_status = None;
        let mut observed = None;
        while started.elapsed() < limit {
            interrupted()?;
            if let Some(status) = daemon.exited() {
                println!("      the daemon exited ({status}); see its log");
                break;
            }
            observed = world.route_to_check_server();
            if observed.as_deref() == step.primary {
                route_time.get_or_insert(started.elapsed());
            }
            let status = query_status(&runtime, socket);
            let matched = route_time.is_some()
                && observed.as_deref() == step.primary
                && status.as_ref().is_some_and(|s| status_matches(step, s));
            last_status = status.or(last_status);
            if matched {
                settled_time = Some(started.elapsed());
                break;
            }
            std::thread::sleep(POLL);
        }
        let ok = settled_time.is_some();
        if let Some(status) = &last_status {
            println!("      daemon: {}", describe_status(status));
        }
        println!(
            "      route to the check server: via {} (expected {}){}",
            observed.as_deref().unwrap_or("nothing"),
            step.primary.unwrap_or("nothing"),
            route_time.map_or(String::new(), |t| format!(" after {} ms", t.as_millis()))
        );
        // Scripts run after the routes change: wait (bounded) until the daemon has delivered
        // every event so far, so a busy machine does not push this step's scripts into the next.
        let drained = Instant::now();
        while drained.elapsed() < SCRIPTS_TIMEOUT
            && query_status(&runtime, socket).is_none_or(|s| s.pending_events > 0)
        {
            std::thread::sleep(POLL);
        }
        let scripts = new_script_lines(script_log, &mut log_pos);
        if !scripts.is_empty() {
            println!("      scripts: {}", scripts.join("; "));
        }
        println!(
            "      {} {}",
            if ok { "ok" } else { "FAILED" },
            settled_time.map_or_else(
                || format!("(not reached within {} s)", limit.as_secs()),
                |t| format!("settled in {} ms", t.as_millis())
            )
        );
        outcomes.push(Outcome {
            what,
            expected_primary: step.primary,
            observed_primary: observed,
            route_time,
            settled_time,
            ok,
        });
    }
    Ok(outcomes)
}

/// The summary table printed at the end.
pub fn summary(outcomes: &[Outcome]) -> String {
    let ms = |d: Option<Duration>| {
        d.map_or_else(|| "-".to_string(), |d| format!("{} ms", d.as_millis()))
    };
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .enumerate()
        .map(|(n, o)| {
            vec![
                format!("{} {}", n + 1, o.what),
                o.expected_primary.unwrap_or("none").to_string(),
                o.observed_primary.clone().unwrap_or_else(|| "none".into()),
                ms(o.route_time),
                ms(o.settled_time),
                if o.ok { "ok" } else { "FAILED" }.to_string(),
            ]
        })
        .collect();
    let mut out = netfailover::print::table(
        &[
            "STEP",
            "EXPECTED ROUTE",
            "OBSERVED",
            "ROUTE AFTER",
            "SETTLED AFTER",
            "RESULT",
        ],
        &rows,
    );
    let passed = outcomes.iter().filter(|o| o.ok).count();
    out.push_str(&format!("{passed}/{} steps ok\n", outcomes.len()));
    out
}

/// A timeline scenario (`SCENARIOS`) against the daemon: returns whether every step passed.
pub fn run(args: &LabArgs) -> Result<bool, LabError> {
    let steps = scenario(&args.scenario)?;
    watch_interrupts();
    println!("netfailover-lab: building the world (device, 3 ISPs, Internet)…");
    let mut world = World::build()?;
    world.start_servers()?;
    let work = WorkDir::new()?;
    let boot = work.path().join("boot");
    let socket = work.path().join("sock");
    let script_log = work.path().join("scripts.log");
    let daemon_log = work.path().join("daemon.log");
    let passive = args.scenario == PASSIVE;
    let settings = if passive { "" } else { FAST_SETTINGS };
    world.write_boot_dir(&boot, settings, &work.path().join("state"), &script_log)?;
    // The passive scenario: interval 3600 and application traffic on the device.
    let _apps = if passive {
        world.set_interval(&boot, 3600)?;
        world.internet.ip(&[
            "addr",
            "add",
            &format!("{}/32", super::apps::ECHO),
            "dev",
            "lo",
        ])?;
        let echo = super::apps::EchoServer::start(
            &world.internet,
            std::net::SocketAddr::from((super::apps::ECHO, 7)),
        )?;
        let app = super::apps::BusyClient::start(
            &world.device,
            std::net::SocketAddr::from((super::apps::ECHO, 7)),
            Duration::from_millis(250),
            Duration::from_secs(1),
        )?;
        println!(
            "application: a TCP connection to {}:7, 4 messages a second",
            super::apps::ECHO
        );
        Some((echo, app))
    } else {
        None
    };
    println!(
        "device namespace {}, boot directory {}, daemon log {}",
        world.device.name(),
        boot.display(),
        daemon_log.display()
    );
    let exe = std::env::current_exe().map_err(|error| LabError::Daemon { error })?;
    let mut daemon = DaemonProcess::start(&exe, &world, &boot, &socket, &daemon_log, &[])?;
    println!("daemon started (pid {})", daemon.id());
    let step_timeout = if passive {
        PASSIVE_STEP_TIMEOUT
    } else {
        STEP_TIMEOUT
    };
    let result = play(
        &steps,
        step_timeout,
        &world,
        &mut daemon,
        &socket,
        &script_log,
    );
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => {
            drop(daemon);
            println!("\nstopping: {e}; removing the namespaces");
            return Err(e);
        }
    };
    println!("\n{}", summary(&outcomes));
    if passive {
        if let Some(o) = outcomes.iter().find(|o| o.what.starts_with("blackhole")) {
            println!(
                "passive health: silent blackhole noticed and the route on the backup after {} \
                 at interval 3600 (periodic checks alone: up to 3600 s)",
                o.route_time
                    .map_or_else(|| "-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
            );
        }
    }
    let passed = outcomes.iter().all(|o| o.ok);
    if !passed {
        let log = std::fs::read_to_string(&daemon_log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        println!("last lines of the daemon's log:");
        for l in tail.iter().rev() {
            println!("  {l}");
        }
    }
    if args.keep {
        println!(
            "--keep: the world stays up until Ctrl-C. Try:\n  netfailover status --socket {}\n  ip netns exec {} ip route",
            socket.display(),
            world.device.name()
        );
        while interrupted().is_ok() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(daemon);
    drop(world);
    println!("namespaces removed");
    Ok(passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_start_from_all_full_and_end_where_they_began() {
        for name in SCENARIOS {
            let steps = scenario(name).unwrap();
            assert!(matches!(steps[0].action, Action::Start));
            let last = steps.last().unwrap();
            assert_eq!(last.primary, Some("eth0"), "{name}");
            assert_eq!(last.global, Connectivity::Full, "{name}");
        }
        assert!(scenario("nope").is_err());
        assert_eq!(scenario("default").unwrap().len(), 11);
        assert_eq!(scenario("passive").unwrap().len(), 3);
    }

    #[test]
    fn summary_counts_failures() {
        let o = |ok| Outcome {
            what: "x".into(),
            expected_primary: Some("eth0"),
            observed_primary: None,
            route_time: None,
            settled_time: Some(Duration::from_millis(5)),
            ok,
        };
        let text = summary(&[o(true), o(false)]);
        assert!(text.contains("1/2 steps ok"), "{text}");
        assert!(text.contains("FAILED"));
    }
}
