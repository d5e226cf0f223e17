//! Chaos on the real kernel: the built daemon in the lab world (three uplinks, three ISPs, the
//! Internet with the check and DNS servers) while links flap and upstreams blackhole on a seeded
//! random schedule, a driver kills a random actor through the control socket every 50–200 ms,
//! and the whole daemon is SIGKILLed and restarted once in the middle of the storm. After the
//! storm and a bounded settle time it asserts that
//!
//! - the kernel's default routes are exactly the desired set for the final link and upstream
//!   state (no duplicate, no stale owned route), and `ip route get` picks the right uplink;
//! - `status` shows the final state of every uplink and no pending event;
//! - every event the daemon raised (its log has one line per event) was delivered at least
//!   once (the dispatcher script appends to a file), with the same kind and interface, in
//!   increasing id order overall and per interface; ids of the restarted daemon follow the
//!   journal's, never reused;
//! - no actor failed (every restart in `status` is a kill) and the kill counts match the
//!   kills the driver made, in each daemon incarnation; the daemon never died by itself and
//!   no panic shows in its log.
//!
//! The storm lasts 60 s (`NETFAILOVER_CHAOS_SECS` for longer); its seed comes from
//! `NETFAILOVER_CHAOS_SEED` or the clock and is printed first with the command that replays it.

mod storm;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netfailover::control::Request;
use netfailover::engine::model::Connectivity;
use netfailover::engine::status::EngineStatus;
use netfailover_lab::daemon::DaemonProcess;
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
use netfailover_lab::world::{World, FAST_SETTINGS};

use crate::daemon::{ask, parse_default_routes, TempDir};

/// Storm length when `NETFAILOVER_CHAOS_SECS` is not set (the CI run).
const DEFAULT_SECS: u64 = 60;
/// Longest wait for the settled state after the storm. The lab settings bound leaving and
/// returning to FULL at 5 s each (`interval + 2 × timeout + 1 s`, `recheck_max + 2 × timeout +
/// 1 s`); the rest is the event backlog's scripts on a loaded 2-core machine.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// Pause between two faults, and between two kills (milliseconds, inclusive).
const FAULT_GAP_MS: (u64, u64) = (100, 400);
const KILL_GAP_MS: (u64, u64) = (50, 200);
/// The supervisor's own children: their kill counts survive every other kill.
const TOP_LEVEL: [&str; 4] = [
    "link-watcher",
    "route-manager",
    "probe-scheduler",
    "dispatcher",
];
/// Most events that may be raised and not yet in the journal when the daemon is SIGKILLed:
/// the producer waits for the journal after each batch, so only one reconcile's events (at
/// most a `down`/`up`, a device change and a global change per uplink) can be in flight.
const MAX_NOT_DURABLE: usize = 12;

/// A small seeded generator for the schedule: SplitMix64 (Steele, Lea, Flood 2014), one
/// independent stream per `stream` number. Not for anything but reproducible test schedules.
struct Schedule(u64);

impl Schedule {
    fn new(seed: u64, stream: u8) -> Self {
        Self(seed ^ (u64::from(stream) << 56))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the modulo bias is irrelevant for a schedule).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    fn pause(&mut self, (lo, hi): (u64, u64)) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok()?.trim().parse().ok()
}

/// What the storm did to one uplink, and so what the daemon must end with.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UplinkFaults {
    pub(crate) cable_pulled: bool,
    pub(crate) blackholed: bool,
}

impl UplinkFaults {
    fn connectivity(self) -> Connectivity {
        match (self.cable_pulled, self.blackholed) {
            (true, _) => Connectivity::None,
            (false, true) => Connectivity::Limited,
            (false, false) => Connectivity::Full,
        }
    }
}

/// The desired default routes (dev, metric) and the uplink `ip route get` must pick.
fn desired(world: &World, faults: &[UplinkFaults]) -> (Vec<(String, u32)>, Option<String>) {
    let mut routes: Vec<(String, u32)> = world
        .uplinks
        .iter()
        .zip(faults)
        .filter(|(_, f)| !f.cable_pulled)
        .map(|(u, f)| {
            // route.penalty (20000) while the uplink is not FULL.
            let penalty = if f.blackholed { 20_000 } else { 0 };
            (u.iface.to_string(), u.kind.metric() + penalty)
        })
        .collect();
    routes.sort();
    let primary = routes
        .iter()
        .min_by_key(|(_, metric)| *metric)
        .map(|(dev, _)| dev.clone());
    (routes, primary)
}

/// How the kernel's routes, its choice (`ip route get`) and `status` differ from the desired
/// state for `faults`, including events still pending; empty when they agree.
pub(crate) fn state_problems(chaos: &Chaos, faults: &[UplinkFaults]) -> Vec<String> {
    let (want_routes, want_primary) = desired(&chaos.world, faults);
    let mut problems = Vec::new();
    let mut routes = parse_default_routes(&chaos.world.default_routes().unwrap_or_default());
    routes.sort();
    if routes != want_routes {
        problems.push(format!("default routes {routes:?}, want {want_routes:?}"));
    }
    let primary = chaos.world.route_to_check_server();
    if primary != want_primary {
        problems.push(format!("ip route get: {primary:?}, want {want_primary:?}"));
    }
    match chaos.status() {
        None => problems.push("no status".into()),
        Some(status) => {
            for (u, f) in chaos.world.uplinks.iter().zip(faults) {
                let got = status
                    .interfaces
                    .iter()
                    .find(|i| i.name.as_str() == u.iface)
                    .map(|i| i.connectivity);
                if got != Some(f.connectivity()) {
                    problems.push(format!("{}: {got:?}, want {}", u.iface, f.connectivity()));
                }
            }
            if status.pending_events != 0 {
                problems.push(format!("{} events pending", status.pending_events));
            }
        }
    }
    problems
}

/// Kills accepted by the daemon, per actor name, since its last start.
#[derive(Default)]
struct KillLedger {
    accepted: HashMap<String, u32>,
    total: u64,
    refused: u64,
}

/// The daemon under test, its files, and the incarnation running now.
pub(crate) struct Chaos {
    pub(crate) world: World,
    dir: TempDir,
    daemon: Option<DaemonProcess>,
    pub(crate) incarnation: u32,
}

impl Chaos {
    /// The lab world with its servers and boot directory (state under [`Self::state_dir`]);
    /// no daemon yet.
    pub(crate) fn prepare(tag: &str) -> Self {
        let mut world = World::build().expect("building the lab world");
        world.start_servers().expect("starting the lab servers");
        let dir = TempDir::new(tag);
        let chaos = Self {
            world,
            dir,
            daemon: None,
            incarnation: 0,
        };
        chaos
            .world
            .write_boot_dir(
                &chaos.dir.path().join("boot"),
                FAST_SETTINGS,
                &chaos.state_dir(),
                &chaos.script_log(),
            )
            .expect("writing the boot directory");
        chaos
    }

    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log_path(&self, incarnation: u32) -> PathBuf {
        self.dir.path().join(format!("daemon-{incarnation}.log"))
    }

    pub(crate) fn script_log(&self) -> PathBuf {
        self.dir.path().join("scripts.log")
    }

    pub(crate) fn journal(&self) -> PathBuf {
        self.state_dir().join("journal.json")
    }

    pub(crate) fn status(&self) -> Option<EngineStatus> {
        serde_json::from_value(ask(&self.socket(), Request::Status).ok()?).ok()
    }

    pub(crate) fn log(&self, incarnation: u32) -> String {
        std::fs::read_to_string(self.log_path(incarnation)).unwrap_or_default()
    }

    /// Starts the next incarnation and waits until it answers with all three uplinks.
    pub(crate) fn spawn(&mut self) {
        self.incarnation += 1;
        let daemon = DaemonProcess::start(
            Path::new(env!("CARGO_BIN_EXE_netfailover")),
            &self.world,
            &self.dir.path().join("boot"),
            &self.socket(),
            &self.log_path(self.incarnation),
            &[],
        )
        .expect("starting the daemon");
        self.daemon = Some(daemon);
        let ready = wait_for(Duration::from_secs(30), || {
            (self.status()?.interfaces.len() == 3).then_some(())
        });
        assert!(
            ready.is_some(),
            "daemon not ready; log:\n{}",
            self.log(self.incarnation)
        );
    }

    fn sigkill(&mut self) {
        let mut daemon = self.daemon.take().expect("a running daemon");
        let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
        let exited = wait_for(Duration::from_secs(20), || daemon.exited());
        assert!(exited.is_some(), "daemon survived SIGKILL");
    }

    fn alive(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(|d| d.exited().is_none())
    }

    fn kill_actor(&self, actor: &str) -> bool {
        std::process::Command::new("timeout")
            .arg("10")
            .arg(env!("CARGO_BIN_EXE_netfailover"))
            .args(["kill", actor, "--socket"])
            .arg(self.socket())
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

/// One `event` line of the daemon's log: the event as raised.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Raised {
    pub(crate) id: u64,
    kind: String,
    /// `-` for a global event (the script's `$1` is empty then).
    iface: String,
}

/// Removes ANSI colour sequences (`ESC [ ... m`) from the plain log format.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The events a daemon log says were raised (`event_log`'s `event` lines).
pub(crate) fn raised_events(log: &str) -> Vec<Raised> {
    strip_ansi(log)
        .lines()
        .filter(|l| l.contains("event_log") && l.contains(" event_id="))
        .filter_map(|l| {
            let field = |key: &str| {
                let start = l.find(key)? + key.len();
                l[start..].split_whitespace().next()
            };
            let id = field(" event_id=")?.parse().ok()?;
            let kind = field(" event=")?.to_string();
            // The global event has no interface: the field is left out.
            let iface = field(" iface=").unwrap_or("-").to_string();
            Some(Raised { id, kind, iface })
        })
        .collect()
}

/// Script runs in the order they logged (`TIME ID EVENT IFACE STATE`).
pub(crate) fn delivered_events(script_log: &str) -> Vec<Raised> {
    script_log
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some(Raised {
                id: w.get(1)?.parse().ok()?,
                kind: w.get(2)?.to_string(),
                iface: w.get(3)?.to_string(),
            })
        })
        .collect()
}

/// Ids by their first delivery, in delivery order.
fn first_deliveries(delivered: &[Raised]) -> Vec<&Raised> {
    let mut seen = std::collections::HashSet::new();
    delivered.iter().filter(|d| seen.insert(d.id)).collect()
}

/// Every problem with delivery: missing events, content that differs, order.
pub(crate) fn delivery_problems(raised: &[Raised], delivered: &[Raised]) -> Vec<String> {
    let mut problems = Vec::new();
    let by_id: BTreeMap<u64, &Raised> = delivered.iter().map(|d| (d.id, d)).collect();
    for r in raised {
        match by_id.get(&r.id) {
            None => problems.push(format!(
                "event {} ({} {}) never delivered",
                r.id, r.kind, r.iface
            )),
            Some(d) if d.kind != r.kind || d.iface != r.iface => problems.push(format!(
                "event {} raised as {} {} but delivered as {} {}",
                r.id, r.kind, r.iface, d.kind, d.iface
            )),
            Some(_) => {}
        }
    }
    let firsts = first_deliveries(delivered);
    if let Some(w) = firsts.windows(2).find(|w| w[0].id >= w[1].id) {
        problems.push(format!(
            "delivered out of order: {} before {}",
            w[0].id, w[1].id
        ));
    }
    let mut last_per_iface: HashMap<&str, u64> = HashMap::new();
    for d in &firsts {
        if let Some(prev) = last_per_iface.insert(&d.iface, d.id) {
            if prev >= d.id {
                problems.push(format!(
                    "{}: event {} delivered after {prev}",
                    d.iface, d.id
                ));
            }
        }
    }
    problems
}

/// Kill counts in `status` against the ledger: empty when they agree.
fn kill_count_problems(status: &EngineStatus, ledger: &KillLedger) -> Vec<String> {
    let mut problems = Vec::new();
    for a in &status.actors {
        let ours = ledger.accepted.get(&a.name).copied().unwrap_or(0);
        if !a.running {
            problems.push(format!("{} is not running", a.name));
        }
        if a.restarts != a.kills {
            problems.push(format!(
                "{}: {} restarts but {} kills (last failure {:?})",
                a.name, a.restarts, a.kills, a.last_failure
            ));
        }
        // A prober's counter starts again with each probe-scheduler and each link-up, so it
        // can only be lower than the kills sent to that name.
        let exact = TOP_LEVEL.contains(&a.name.as_str());
        if (exact && a.kills != ours) || a.kills > ours {
            problems.push(format!(
                "{}: status counts {} kills, we made {ours}",
                a.name, a.kills
            ));
        }
    }
    for name in TOP_LEVEL {
        if !status.actors.iter().any(|a| a.name == name) {
            problems.push(format!("{name} missing from status"));
        }
    }
    problems
}

/// Waits (bounded) until `status` agrees with the ledger; panics with the difference.
fn assert_kill_counts(chaos: &Chaos, ledger: &KillLedger, replay: &str) {
    let mut last = Vec::new();
    let agreed = wait_for(Duration::from_secs(10), || {
        let status = chaos.status()?;
        last = kill_count_problems(&status, ledger);
        last.is_empty().then_some(())
    });
    assert!(
        agreed.is_some(),
        "incarnation {}: kill counts disagree: {last:?}\n{replay}",
        chaos.incarnation
    );
}
