//! End to end with the engine: `netfailover_actors::start` on the fake kernel and probe, with
//! the real `ScriptDirRunner`, `FileJournal` and `FileStateStore`, real `/bin/sh` scripts, and
//! real time (real processes must not be mixed with paused time). Shows docs/semantics.md §5 delivery: order
//! and arguments, at-least-once across a Dispatcher kill and across an engine restart, ids that
//! keep increasing, routing unaffected by a hanging script, and 1 000 link flaps.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use netfailover::engine::fake::FakeWorld;
use netfailover::engine::model::{
    CheckConfig, Config, DispatcherConfig, EventKind, FamilyConfig, IfaceAddr, IfaceMatch,
    LinkKind, Method, Metric, Profile, UplinkType,
};
use netfailover::engine::ports::{Ports, ScriptResult};
use netfailover::engine::status::EventRecord;
use netfailover::engine::EngineHandle;
use netfailover::os::persist::{FileJournal, FileStateStore};
use netfailover::os::scripts::ScriptDirRunner;

use super::{pid_is_dead, ScriptDir};

/// Upper bound for any wait in these tests: far above what each step needs.
const WAIT: Duration = Duration::from_secs(60);

fn profile(name: &str, metric: u32, gateway: &str, address: &str) -> Profile {
    Profile {
        id: format!("profile-{name}"),
        uuid: Some(format!("00000000-0000-4000-8000-{metric:012}")),
        file: PathBuf::from(format!("/boot/system-connections/{name}")),
        uplink_type: UplinkType::Ethernet,
        matches: IfaceMatch::Name(super::iface(name)),
        managed: true,
        ipv4: FamilyConfig {
            manage_default: true,
            method: Method::Manual,
            metric: Metric::new(i64::from(metric)).expect("metric"),
            addresses: vec![IfaceAddr {
                addr: address.parse().expect("addr"),
                prefix_len: 24,
            }],
            gateway: Some(gateway.parse().expect("gateway")),
        },
        ipv6: FamilyConfig {
            manage_default: false,
            method: Method::Auto,
            metric: Metric::new(i64::from(metric)).expect("metric"),
            addresses: vec![],
            gateway: None,
        },
        dns: vec!["192.0.2.53".parse().expect("dns")],
        metered: netfailover_actors::model::Metered::guess(UplinkType::Ethernet),
    }
}

/// eth0 (metric 100) and wlan0 (600), fast checks, the given script timeout.
fn config(script_timeout: Duration, journal_limit: usize) -> Config {
    Config {
        profiles: vec![
            profile("eth0", 100, "192.0.2.1", "192.0.2.10"),
            profile("wlan0", 600, "198.51.100.1", "198.51.100.10"),
        ],
        adopt: false,
        check: CheckConfig {
            uri: "http://192.0.2.80/check".into(),
            interval: Duration::from_secs(30),
            down_count: 1,
            up_count: 1,
            recheck_max: Duration::from_secs(1),
            ..CheckConfig::default()
        },
        dispatcher: DispatcherConfig {
            script_timeout,
            journal_limit,
            ..DispatcherConfig::default()
        },
        ..Config::default()
    }
}

/// A fake world with eth0 and wlan0 up, and ports using the real runner and state files.
fn world_and_ports(
    scripts: &Path,
    state_dir: &Path,
    script_timeout: Duration,
) -> (FakeWorld, Ports) {
    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.kernel.add_link("wlan0", LinkKind::Other);
    let ports = ports_on(&world, scripts, state_dir, script_timeout);
    (world, ports)
}

fn ports_on(
    world: &FakeWorld,
    scripts: &Path,
    state_dir: &Path,
    script_timeout: Duration,
) -> Ports {
    Ports {
        scripts: Arc::new(ScriptDirRunner::new(scripts, script_timeout)),
        journal: Arc::new(FileJournal::new(state_dir)),
        state: Arc::new(FileStateStore::new(state_dir)),
        ..world.ports()
    }
}

/// A temporary `state_dir` on tmpfs, as the default `/run/netfailover` is in production (there
/// fsync is free; on a disk it would dominate these tests' run time).
fn state_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("netfailover-state-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temporary state_dir")
}

/// Polls (real time) until `done` holds, or fails the test after [`WAIT`].
async fn until(what: &str, done: impl FnMut() -> bool) {
    until_within(WAIT, what, done).await
}

async fn until_within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered(handle: &EngineHandle) -> Vec<EventRecord> {
    handle
        .history()
        .into_iter()
        .filter(|r| r.delivered)
        .collect()
}

fn all_delivered(handle: &EngineHandle) -> bool {
    let h = handle.history();
    !h.is_empty() && h.iter().all(|r| r.delivered) && handle.status().pending_events == 0
}

/// `kind iface` of a record, as the reporter scripts write `$2 $1`.
fn label(r: &EventRecord) -> String {
    format!(
        "{} {}",
        r.event.kind,
        r.event
            .iface
            .as_ref()
            .map(|i| i.to_string())
            .unwrap_or_default()
    )
}

/// A top-level script writing `$2|$1|id|state|previous|connection|gateway|nameservers`.
fn env_reporter(d: &ScriptDir) {
    d.script(
        "10-log",
        &format!(
            "echo \"$2|$1|$NETFAILOVER_EVENT_ID|$CONNECTIVITY_STATE|$NETFAILOVER_PREVIOUS_STATE|\
             $CONNECTION_ID|$IP4_GATEWAY|$IP4_NAMESERVERS\" >> '{}'",
            d.out.display()
        ),
        0o755,
    );
}

#[actix::test]
async fn events_reach_real_scripts_in_spec_order_with_arguments_and_environment() {
    let d = ScriptDir::new();
    let state = state_dir();
    env_reporter(&d);
    d.script(
        "down.d/20-only-on-down",
        &format!("echo \"only-down|$1\" >> '{}'", d.out.display()),
        0o755,
    );
    let (world, ports) = world_and_ports(&d.dir, state.path(), WAIT);
    let handle = netfailover::engine::start(config(WAIT, 1024), ports);

    until("both uplinks FULL and announced", || {
        all_delivered(&handle)
            && delivered(&handle)
                .iter()
                .filter(|r| r.event.kind == EventKind::Up)
                .count()
                == 2
            && handle.status().connectivity == netfailover::engine::model::Connectivity::Full
    })
    .await;
    let before = handle.history().len();
    world.kernel.set_carrier("eth0", false);
    until("eth0 down delivered", || {
        all_delivered(&handle) && handle.history().len() > before
    })
    .await;
    world.kernel.set_carrier("wlan0", false);
    until("wlan0 down delivered", || {
        all_delivered(&handle)
            && handle
                .history()
                .iter()
                .any(|r| r.event.kind == EventKind::Down && label(r) == "down wlan0")
            && handle
                .history()
                .last()
                .is_some_and(|r| r.event.kind == EventKind::ConnectivityChange)
    })
    .await;
    handle.shutdown().await.unwrap();

    let history = handle.history();
    // Every event, in id order, reached the top-level script once, with the right $1/$2/env;
    // `down` also reached down.d/ right after.
    let mut want = Vec::new();
    for r in &history {
        let e = &r.event;
        let iface = e.iface.as_ref().map(|i| i.to_string()).unwrap_or_default();
        // The runner passes what the event carries; where the engine leaves a value out
        // (the gateway once the route is gone), the variable is empty.
        let gw = e.ip4_gateway.map(|g| g.to_string()).unwrap_or_default();
        let ns: Vec<String> = e.ip4_nameservers.iter().map(|a| a.to_string()).collect();
        want.push(format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            e.kind,
            iface,
            e.id,
            e.state,
            e.previous,
            e.connection_id.clone().unwrap_or_default(),
            gw,
            ns.join(" ")
        ));
        if e.kind == EventKind::Down {
            want.push(format!("only-down|{iface}"));
        }
        assert!(r
            .scripts
            .iter()
            .all(|s| s.result == ScriptResult::Exited { code: 0 }));
    }
    assert_eq!(d.lines(), want);
    let ids: Vec<u64> = history.iter().map(|r| r.event.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // The profile's values reach the scripts of an `up`.
    let lines = d.lines();
    assert!(lines.iter().any(|l| l.starts_with("up|eth0|") && l.ends_with("|profile-eth0|192.0.2.1|192.0.2.53")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("up|wlan0|")
                && l.ends_with("|profile-wlan0|198.51.100.1|192.0.2.53")),
        "{lines:?}"
    );

    // docs/semantics.md §5 order after eth0's carrier loss: down → device-connectivity-change (it left
    // FULL); after wlan0's too: down → device-connectivity-change → connectivity-change (NONE).
    let labels: Vec<String> = history.iter().map(label).collect();
    let pos = |l: &str| {
        labels
            .iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} missing: {labels:?}"))
    };
    let up_eth0 = pos("up eth0");
    let dcc_eth0 = pos("device-connectivity-change eth0");
    assert!(up_eth0 < dcc_eth0, "{labels:?}");
    let down_eth0 = pos("down eth0");
    assert_eq!(
        labels[down_eth0 + 1],
        "device-connectivity-change eth0",
        "{labels:?}"
    );
    let down_wlan0 = pos("down wlan0");
    assert_eq!(
        labels[down_wlan0 + 1..down_wlan0 + 3],
        ["device-connectivity-change wlan0", "connectivity-change "],
        "{labels:?}"
    );
    let last = history.last().unwrap();
    assert_eq!(last.event.state.as_str(), "NONE");
}

/// A top-level script that logs `start|$2|$1|id`, holds (with a background child, in its own
/// group) while `hold` exists, then logs `end|...`. Writes its and its child's pid.
struct HoldingScript {
    hold: PathBuf,
    leader: PathBuf,
    child: PathBuf,
}

impl HoldingScript {
    fn install(d: &ScriptDir) -> Self {
        let s = Self {
            hold: d.scratch("hold"),
            leader: d.scratch("leader"),
            child: d.scratch("child"),
        };
        d.script(
            "10-hold",
            &format!(
                "echo \"start|$2|$1|$NETFAILOVER_EVENT_ID\" >> '{out}'\n\
                 if [ -e '{hold}' ]; then\n\
                   sleep 1000 &\n\
                   echo $! > '{child}.tmp' && mv '{child}.tmp' '{child}'\n\
                   echo $$ > '{leader}.tmp' && mv '{leader}.tmp' '{leader}'\n\
                   wait\n\
                 fi\n\
                 echo \"end|$2|$1|$NETFAILOVER_EVENT_ID\" >> '{out}'",
                out = d.out.display(),
                hold = s.hold.display(),
                child = s.child.display(),
                leader = s.leader.display(),
            ),
            0o755,
        );
        std::fs::write(&s.hold, b"").unwrap();
        s
    }

    fn pids(&self) -> Option<(u32, u32)> {
        let read = |p: &Path| std::fs::read_to_string(p).ok()?.trim().parse().ok();
        Some((read(&self.leader)?, read(&self.child)?))
    }
}

/// Ids in the `start|...` / `end|...` lines of the output, in file order.
fn ids_of(lines: &[String], prefix: &str) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.rsplit('|').next()?.parse().ok())
        .collect()
}

/// Flaps eth0 until at least `n` events are pending behind the held one.
async fn queue_events(world: &FakeWorld, handle: &EngineHandle, n: usize) {
    let mut carrier = true;
    for _ in 0..200 {
        if handle.status().pending_events > n {
            return;
        }
        carrier = !carrier;
        world.kernel.set_carrier("eth0", carrier);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!(
        "only {} events pending after 200 flaps",
        handle.status().pending_events
    );
}

#[actix::test]
async fn a_killed_dispatcher_redelivers_the_interrupted_event_and_the_ten_queued_in_order() {
    let d = ScriptDir::new();
    let state = state_dir();
    let holder = HoldingScript::install(&d);
    let (world, ports) = world_and_ports(&d.dir, state.path(), WAIT);
    let handle = netfailover::engine::start(config(WAIT, 1024), ports);

    until("the first event's script holds", || holder.pids().is_some()).await;
    let (leader, child) = holder.pids().unwrap();
    queue_events(&world, &handle, 10).await;
    let held_id = *ids_of(&d.lines(), "start|").last().unwrap();
    std::fs::remove_file(&holder.hold).unwrap();
    handle.kill("dispatcher").await.unwrap();
    until("the held script's group is dead", || {
        pid_is_dead(leader) && pid_is_dead(child)
    })
    .await;
    until("everything delivered", || all_delivered(&handle)).await;
    handle.shutdown().await.unwrap();

    let lines = d.lines();
    let history = handle.history();
    let ids: Vec<u64> = history.iter().map(|r| r.event.id).collect();
    assert!(ids.len() >= 11, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Every event finished once, in order; the interrupted one started twice.
    assert_eq!(ids_of(&lines, "end|"), ids);
    let starts = ids_of(&lines, "start|");
    assert_eq!(
        starts.iter().filter(|i| **i == held_id).count(),
        2,
        "{lines:?}"
    );
    let mut deduped = starts.clone();
    deduped.dedup();
    assert_eq!(deduped, ids, "{lines:?}");
    let actors = handle.status().actors;
    let dispatcher = actors.iter().find(|a| a.name == "dispatcher").unwrap();
    assert_eq!(dispatcher.kills, 1);
}

#[actix::test]
async fn pending_events_survive_an_engine_restart_and_ids_continue() {
    let d = ScriptDir::new();
    let state = state_dir();
    let holder = HoldingScript::install(&d);
    let (world, ports) = world_and_ports(&d.dir, state.path(), WAIT);
    let first = netfailover::engine::start(config(WAIT, 1024), ports);

    until("the first event's script holds", || holder.pids().is_some()).await;
    let (leader, child) = holder.pids().unwrap();
    queue_events(&world, &first, 10).await;
    let held_id = *ids_of(&d.lines(), "start|").last().unwrap();
    let produced_before: Vec<u64> = first.history().iter().map(|r| r.event.id).collect();
    std::fs::remove_file(&holder.hold).unwrap();
    first.shutdown().await.unwrap();
    until("the held script's group is dead", || {
        pid_is_dead(leader) && pid_is_dead(child)
    })
    .await;
    let undelivered: Vec<u64> = first
        .history()
        .iter()
        .filter(|r| !r.delivered)
        .map(|r| r.event.id)
        .collect();
    assert!(undelivered.len() > 10, "{undelivered:?}");

    // A new engine on the same kernel and the same state_dir (fresh port objects).
    let second = netfailover::engine::start(
        config(WAIT, 1024),
        ports_on(&world, &d.dir, state.path(), WAIT),
    );
    until("everything delivered after the restart", || {
        all_delivered(&second)
            && undelivered
                .iter()
                .all(|id| ids_of(&d.lines(), "end|").contains(id))
    })
    .await;
    // Something new after the restart gets a fresh id.
    world.kernel.set_carrier("wlan0", false);
    until("wlan0 down delivered", || {
        all_delivered(&second) && second.history().iter().any(|r| label(r) == "down wlan0")
    })
    .await;
    second.shutdown().await.unwrap();

    let lines = d.lines();
    let ends = ids_of(&lines, "end|");
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
    let all_ids: BTreeSet<u64> = produced_before
        .iter()
        .copied()
        .chain(second.history().iter().map(|r| r.event.id))
        .collect();
    assert_eq!(ends.iter().copied().collect::<BTreeSet<_>>(), all_ids);
    let new_ids: Vec<u64> = second
        .history()
        .iter()
        .map(|r| r.event.id)
        .filter(|id| !produced_before.contains(id))
        .collect();
    assert!(!new_ids.is_empty());
    assert!(new_ids
        .iter()
        .all(|id| id > produced_before.iter().max().unwrap()));
    assert_eq!(
        ids_of(&lines, "start|")
            .iter()
            .filter(|i| **i == held_id)
            .count(),
        2
    );
}

#[actix::test]
async fn a_hanging_script_is_killed_at_its_timeout_and_routing_goes_on_meanwhile() {
    let d = ScriptDir::new();
    let state = state_dir();
    let holder = HoldingScript::install(&d);
    // Long enough that the failover below surely happens while the script still hangs.
    let timeout = Duration::from_secs(8);
    let (world, ports) = world_and_ports(&d.dir, state.path(), timeout);
    let handle = netfailover::engine::start(config(timeout, 1024), ports);
    until("eth0 is the route in use", || {
        world.kernel.best_iface().as_deref() == Some("eth0")
    })
    .await;
    until("a script holds", || holder.pids().is_some()).await;
    let (leader, child) = holder.pids().unwrap();
    // While it hangs, a failover still happens at once.
    world.kernel.set_carrier("eth0", false);
    until("failover to wlan0", || {
        world.kernel.best_iface().as_deref() == Some("wlan0")
    })
    .await;
    assert!(
        !pid_is_dead(leader),
        "the failover must not wait for the script"
    );
    std::fs::remove_file(&holder.hold).unwrap();
    until("the hanging script's group is killed", || {
        pid_is_dead(leader) && pid_is_dead(child)
    })
    .await;
    until("later events delivered", || all_delivered(&handle)).await;
    handle.shutdown().await.unwrap();
    let history = handle.history();
    assert!(history
        .iter()
        .flat_map(|r| &r.scripts)
        .any(|s| s.result == ScriptResult::TimedOut));
    assert!(history.iter().any(|r| label(r) == "down eth0"));
}

#[actix::test]
async fn a_thousand_link_flaps_lose_no_up_or_down() {
    let d = ScriptDir::new();
    let state = state_dir();
    d.script(
        "10-log",
        &format!(
            "echo \"$2 $1 $NETFAILOVER_EVENT_ID\" >> '{}'",
            d.out.display()
        ),
        0o755,
    );
    let (world, ports) = world_and_ports(&d.dir, state.path(), WAIT);
    let limit = 16;
    let handle = netfailover::engine::start(config(WAIT, limit), ports);
    until("both uplinks announced", || {
        all_delivered(&handle)
            && handle
                .history()
                .iter()
                .filter(|r| r.event.kind == EventKind::Up)
                .count()
                == 2
    })
    .await;
    let mut produced = handle.subscribe();
    let journal_path = state.path().join(netfailover::os::persist::JOURNAL_FILE);
    let (mut max_pending, mut max_journal) = (0usize, 0u64);
    let mut flaps_events = Vec::new();
    for i in 0..2000 {
        world.kernel.set_carrier("eth0", i % 2 == 1);
        tokio::task::yield_now().await;
        loop {
            match produced.try_recv() {
                Ok(e) => flaps_events.push(e),
                Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                Err(e) => panic!("event subscription: {e}"),
            }
        }
        max_pending = max_pending.max(handle.status().pending_events);
        if i % 10 == 0 {
            max_journal = max_journal.max(
                std::fs::metadata(&journal_path)
                    .map(|m| m.len())
                    .unwrap_or(0),
            );
        }
    }
    // Generous: in a debug build the engine's journal writes make this take about two minutes
    // on 2 vCPU (see the dispatcher docs).
    until_within(
        Duration::from_secs(400),
        "every flap's events delivered",
        || {
            max_journal = max_journal.max(
                std::fs::metadata(&journal_path)
                    .map(|m| m.len())
                    .unwrap_or(0),
            );
            handle.status().pending_events == 0
        },
    )
    .await;
    while let Ok(e) = produced.try_recv() {
        flaps_events.push(e);
    }
    handle.shutdown().await.unwrap();

    let up_down = |kind: EventKind| kind == EventKind::Up || kind == EventKind::Down;
    let want: Vec<String> = flaps_events
        .iter()
        .filter(|e| up_down(e.kind))
        .map(|e| format!("{} eth0 {}", e.kind, e.id))
        .collect();
    let got: Vec<String> = d
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("up eth0 ") || l.starts_with("down eth0 "))
        .skip_while(|l| want.first().is_some_and(|w| w != l))
        .collect();
    assert!(want.len() >= 2, "the flaps produced no up/down: {want:?}");
    assert_eq!(got, want);
    eprintln!(
        "1000 flaps: {} up/down events, max pending {max_pending}, max journal {max_journal} bytes",
        want.len()
    );
    assert!(max_journal < netfailover::os::persist::MAX_STATE_FILE_BYTES);
}

/// The engine-level equivalent of SIGKILLing the daemon: the whole actix System is dropped with
/// no shutdown (every actor and task vanishes at once; only the files under `state_dir` and the
/// fake kernel remain), then a new engine starts on the same `state_dir`.
#[test]
fn pending_events_survive_an_abrupt_stop_of_the_whole_engine() {
    let d = ScriptDir::new();
    let state = state_dir();
    let holder = HoldingScript::install(&d);
    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.kernel.add_link("wlan0", LinkKind::Other);

    let produced: Vec<std::sync::Arc<netfailover::engine::model::Event>> = {
        let system = actix_rt::System::new();
        let produced = system.block_on(async {
            let handle = netfailover::engine::start(
                config(WAIT, 1024),
                ports_on(&world, &d.dir, state.path(), WAIT),
            );
            let mut events = handle.subscribe();
            until("the first event's script holds", || holder.pids().is_some()).await;
            queue_events(&world, &handle, 10).await;
            // One more event, and "crash" as soon as the engine has acknowledged it.
            let before = handle.history().len();
            world.kernel.set_carrier("wlan0", false);
            until("the last event produced", || {
                handle.history().len() > before
            })
            .await;
            let mut produced = Vec::new();
            while let Ok(e) = events.try_recv() {
                produced.push(e);
            }
            produced
        });
        drop(system);
        produced
    };
    let (leader, child) = holder.pids().unwrap();
    assert!(
        netfailover_lab::netns::wait_for(Duration::from_secs(10), || {
            (pid_is_dead(leader) && pid_is_dead(child)).then_some(())
        })
        .is_some(),
        "the held script survived the engine"
    );
    assert!(produced.len() > 11, "{}", produced.len());
    let started: Vec<u64> = ids_of(&d.lines(), "start|");
    let held_id = *started.last().unwrap();

    // What is on disk: every produced event not yet finished, and a counter past them all.
    let on_disk = actix_rt::System::new().block_on(async {
        use netfailover::engine::ports::Store;
        FileJournal::new(state.path()).load().await.unwrap()
    });
    let finished: BTreeSet<u64> = ids_of(&d.lines(), "end|").into_iter().collect();
    let want_pending: Vec<u64> = produced
        .iter()
        .map(|e| e.id)
        .filter(|id| !finished.contains(id))
        .collect();
    let got_pending: Vec<u64> = on_disk.pending.iter().map(|e| e.id).collect();
    assert_eq!(got_pending, want_pending, "journal after the crash");
    let max_id = produced.iter().map(|e| e.id).max().unwrap();
    assert!(on_disk.next_id > max_id);

    std::fs::remove_file(&holder.hold).unwrap();
    actix_rt::System::new().block_on(async {
        let handle = netfailover::engine::start(
            config(WAIT, 1024),
            ports_on(&world, &d.dir, state.path(), WAIT),
        );
        until("the journal's events delivered", || {
            let ends = ids_of(&d.lines(), "end|");
            want_pending.iter().all(|id| ends.contains(id))
        })
        .await;
        until("nothing pending", || all_delivered(&handle)).await;
        handle.shutdown().await.unwrap();
        // Ids continue after the crash; none is reused.
        assert!(handle
            .history()
            .iter()
            .all(|r| r.event.id > max_id || want_pending.contains(&r.event.id)));
    });
    let ends = ids_of(&d.lines(), "end|");
    assert!(ends.windows(2).all(|w| w[0] < w[1]), "{ends:?}");
    assert_eq!(
        ids_of(&d.lines(), "start|")
            .iter()
            .filter(|i| **i == held_id)
            .count(),
        2
    );
}
