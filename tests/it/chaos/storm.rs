//! The storm itself, and the checks of the harness's own parsing, fault model and schedule.

use super::*;

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
