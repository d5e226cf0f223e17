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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use netfailover::control::Request;
use netfailover::engine::model::Connectivity;
use netfailover::engine::status::EngineStatus;
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
use netfailover_lab::timeline::DaemonProcess;
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

#[test]
fn chaos_storm_with_kills_and_a_daemon_sigkill_loses_nothing() {
    test_setup!();
    // Measured: settled within SETTLE_LIMIT of the storm's end.
    let _serial = crate::heavy_test_lock();
    let seed = env_u64("NETFAILOVER_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let secs = env_u64("NETFAILOVER_CHAOS_SECS")
        .unwrap_or(DEFAULT_SECS)
        .max(5);
    let replay = format!(
        "replay: NETFAILOVER_CHAOS_SEED={seed} NETFAILOVER_CHAOS_SECS={secs} cargo test --test it chaos:: -- --nocapture"
    );
    eprintln!("chaos: seed {seed}, storm {secs} s\n{replay}");

    let mut chaos = Chaos::prepare("chaos");
    chaos.spawn();

    let storm = Duration::from_secs(secs);
    let mut faults_rng = Schedule::new(seed, 0);
    // The daemon is SIGKILLed once, between 40 % and 60 % of the storm.
    let sigkill_at = storm.mul_f64(faults_rng.range(40, 60) as f64 / 100.0);
    let mut faults = vec![UplinkFaults::default(); chaos.world.uplinks.len()];
    let mut injected = 0u64;
    let mut quick_flaps = 0u64;
    let ledger = Mutex::new(KillLedger::default());
    let stop = AtomicBool::new(false);
    let mut first_ledger_total = 0;
    let mut not_durable = Vec::new();
    let mut journal_next_id = 0;
    let chaos_cell = Mutex::new(chaos);

    let started = Instant::now();
    std::thread::scope(|scope| {
        // The killer: a random actor every 50–200 ms, through `netfailover kill`.
        let killer = scope.spawn(|| {
            let mut rng = Schedule::new(seed, 1);
            let mut kills_until_stop = 0u64;
            while !stop.load(Ordering::SeqCst) && kills_until_stop < 100_000 {
                std::thread::sleep(rng.pause(KILL_GAP_MS));
                let pick = rng.next_u64();
                let chaos = chaos_cell.lock().unwrap_or_else(|p| p.into_inner());
                let Some(status) = chaos.status() else {
                    continue;
                };
                let mut names: Vec<String> = status.actors.into_iter().map(|a| a.name).collect();
                names.sort();
                let Some(actor) =
                    names.get(pick as usize % names.len().max(1)).cloned() as Option<String>
                else {
                    continue;
                };
                let accepted = chaos.kill_actor(&actor);
                let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                if accepted {
                    *l.accepted.entry(actor).or_default() += 1;
                    l.total += 1;
                } else {
                    l.refused += 1;
                }
                kills_until_stop += 1;
            }
        });

        let mut sigkilled = false;
        // Bounded: every iteration sleeps at least FAULT_GAP_MS.0.
        while started.elapsed() < storm {
            std::thread::sleep(faults_rng.pause(FAULT_GAP_MS));
            if !sigkilled && started.elapsed() >= sigkill_at {
                sigkilled = true;
                let mut chaos = chaos_cell.lock().unwrap_or_else(|p| p.into_inner());
                {
                    let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
                    assert_kill_counts(&chaos, &l, &replay);
                    first_ledger_total = l.total;
                    *l = KillLedger {
                        total: l.total,
                        refused: l.refused,
                        ..KillLedger::default()
                    };
                }
                assert!(chaos.alive(), "the daemon died by itself\n{replay}");
                chaos.sigkill();
                // What the journal held at the kill: events below `next_id` are durable.
                let journal: serde_json::Value = std::fs::read(chaos.journal())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                journal_next_id = journal["next_id"].as_u64().unwrap_or(1);
                not_durable = raised_events(&chaos.log(1))
                    .into_iter()
                    .filter(|r| r.id >= journal_next_id)
                    .collect();
                chaos.spawn();
                continue;
            }
            let u = faults_rng.range(0, faults.len() as u64 - 1) as usize;
            let chaos = chaos_cell.lock().unwrap_or_else(|p| p.into_inner());
            let world = &chaos.world;
            let iface = world.uplinks[u].iface;
            let f = &mut faults[u];
            let result = match faults_rng.range(0, 9) {
                0..=4 => {
                    f.cable_pulled = !f.cable_pulled;
                    if f.cable_pulled {
                        world.pull_cable(iface)
                    } else {
                        world.plug_cable(iface)
                    }
                }
                5..=7 => {
                    f.blackholed = !f.blackholed;
                    if f.blackholed {
                        world.blackhole_upstream(iface)
                    } else {
                        world.restore_upstream(iface)
                    }
                }
                // A flap faster than a check: down and up again at once (if plugged).
                _ if !f.cable_pulled => {
                    quick_flaps += 1;
                    world
                        .pull_cable(iface)
                        .and_then(|()| world.plug_cable(iface))
                }
                _ => Ok(()),
            };
            result.expect("injecting a fault");
            injected += 1;
        }
        stop.store(true, Ordering::SeqCst);
        killer.join().expect("the killer thread");
    });
    let storm_time = started.elapsed();
    let mut chaos = chaos_cell.into_inner().unwrap_or_else(|p| p.into_inner());
    let ledger = ledger.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(chaos.alive(), "the daemon died during the storm\n{replay}");

    // Settle: the kernel, the status and the scripts all at the desired state.
    let durable_first: Vec<Raised> = raised_events(&chaos.log(1))
        .into_iter()
        .filter(|r| r.id < journal_next_id)
        .collect();
    let settle_started = Instant::now();
    let mut last_problems = Vec::new();
    let settled = wait_for(SETTLE_LIMIT, || {
        let mut problems = state_problems(&chaos, &faults);
        let delivered =
            delivered_events(&std::fs::read_to_string(chaos.script_log()).unwrap_or_default());
        let mut raised = durable_first.clone();
        raised.extend(raised_events(&chaos.log(chaos.incarnation)));
        problems.extend(delivery_problems(&raised, &delivered));
        last_problems = problems;
        last_problems.is_empty().then_some(())
    });
    let settle_time = settle_started.elapsed();
    let tail = |log: String| {
        let lines: Vec<&str> = log.lines().rev().take(40).collect();
        strip_ansi(&lines.into_iter().rev().collect::<Vec<_>>().join("\n"))
    };
    assert!(
        settled.is_some(),
        "not settled within {} s: {last_problems:#?}\nfaults {faults:?}\n{replay}\nlast log lines:\n{}",
        SETTLE_LIMIT.as_secs(),
        tail(chaos.log(chaos.incarnation))
    );

    // Kills: every restart of the second incarnation is one of ours; nothing failed.
    assert_kill_counts(&chaos, &ledger, &replay);
    let status = chaos.status().expect("status after settling");
    let second = raised_events(&chaos.log(2));
    assert!(
        second.iter().all(|r| r.id >= journal_next_id),
        "the restarted daemon reused an id below the journal's next id {journal_next_id}\n{replay}"
    );
    assert_eq!(
        status.events_total,
        second.len() as u64,
        "events_total in status and the log's event lines"
    );
    assert!(
        not_durable.len() <= MAX_NOT_DURABLE,
        "{} events raised but not in the journal when SIGKILLed: {not_durable:?}\n{replay}",
        not_durable.len()
    );
    for n in 1..=chaos.incarnation {
        let log = strip_ansi(&chaos.log(n));
        assert!(
            !log.contains("panicked"),
            "incarnation {n} logged a panic:\n{}\n{replay}",
            tail(log.clone())
        );
    }
    let delivered =
        delivered_events(&std::fs::read_to_string(chaos.script_log()).unwrap_or_default());
    let distinct = first_deliveries(&delivered).len();
    eprintln!(
        "chaos figures (seed {seed}): storm {:.1} s; faults injected {injected} ({quick_flaps} quick \
         flaps); actor kills accepted {} ({} before the daemon SIGKILL, {} refused while an actor \
         was restarting); daemon SIGKILLed and restarted once at {:.1} s; events raised {} \
         ({} not yet journalled at the SIGKILL), delivered {distinct} distinct in {} script runs; \
         settle time {} ms",
        storm_time.as_secs_f64(),
        ledger.total,
        first_ledger_total,
        ledger.refused,
        sigkill_at.as_secs_f64(),
        durable_first.len() + second.len(),
        not_durable.len(),
        delivered.len(),
        settle_time.as_millis()
    );
    if let Some(mut daemon) = chaos.daemon.take() {
        let exit = daemon.stop(Duration::from_secs(10));
        assert!(exit.is_some_and(|s| s.success()), "clean stop: {exit:?}");
    }
}

#[test]
fn event_lines_and_script_lines_parse() {
    let log = "2026-12-01T21:25:30Z  INFO netfailover_actors::event_log: event event_id=7 \
               event=up iface=eth0 state=UNKNOWN\n\
               x INFO netfailover_actors::event_log: event event_id=8 event=connectivity-change state=FULL\n\
               x WARN netfailover_actors::supervisor: killed on request actor=\"dispatcher\"\n";
    let raised = raised_events(log);
    assert_eq!(
        raised,
        vec![
            Raised {
                id: 7,
                kind: "up".into(),
                iface: "eth0".into()
            },
            Raised {
                id: 8,
                kind: "connectivity-change".into(),
                iface: "-".into()
            },
        ]
    );
    let delivered = delivered_events(
        "1.0 7 up eth0 UNKNOWN\n1.1 7 up eth0 UNKNOWN\n1.2 8 connectivity-change - FULL\n",
    );
    assert!(delivery_problems(&raised, &delivered).is_empty());
    // Missing, reordered and changed events are all reported.
    let wrong = delivered_events("1.0 8 connectivity-change - FULL\n1.1 7 down eth0 NONE\n");
    let problems = delivery_problems(&raised, &wrong);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(!delivery_problems(&raised, &[]).is_empty());
}

#[test]
fn final_connectivity_follows_cable_then_upstream() {
    let f = |cable_pulled, blackholed| UplinkFaults {
        cable_pulled,
        blackholed,
    };
    assert_eq!(f(true, true).connectivity(), Connectivity::None);
    assert_eq!(f(false, true).connectivity(), Connectivity::Limited);
    assert_eq!(f(false, false).connectivity(), Connectivity::Full);
}

#[test]
fn schedule_is_reproducible_from_the_seed() {
    let draw = |seed| {
        let mut s = Schedule::new(seed, 0);
        (0..20).map(|_| s.range(50, 200)).collect::<Vec<_>>()
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
    assert!(draw(7).iter().all(|v| (50..=200).contains(v)));
}
