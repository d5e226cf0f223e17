//! The built binary end to end in a lab world: status, kill and events; signals and clean
//! shutdown; systemd notification; a SIGKILL and a restart.

use super::*;

#[test]
fn daemon_status_kill_and_events_end_to_end() {
    let e2e = test_setup!(E2e::start(2));
    let status = e2e.status().unwrap();
    let actors: Vec<String> = status.actors.iter().map(|a| a.name.clone()).collect();
    for want in [
        "link-watcher",
        "route-manager",
        "probe-scheduler",
        "dispatcher",
        "traffic-watcher",
        "recovery-manager",
        "prober:eth0",
    ] {
        assert!(actors.iter().any(|a| a == want), "{want} not in {actors:?}");
    }
    // `status --json` has the contract's (docs/semantics.md) fields.
    let out = e2e.cli(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["connectivity", "interfaces", "actors"] {
        assert!(json.get(key).is_some(), "{key} missing");
    }
    let eth0 = &json["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .cloned()
        .unwrap();
    assert_eq!(eth0["link"], "up");
    assert_eq!(eth0["metric"], 100);
    let out = e2e.cli(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("INTERFACE") && table.contains("wwan0"),
        "{table}"
    );

    // Kill each actor; each comes back (running, one more kill counted). A prober is listed
    // again only once its restarted scheduler has started it: wait for it to be there first.
    for actor in &actors {
        let listed = wait_for(Duration::from_secs(15), || {
            let s = e2e.status()?;
            s.actors
                .iter()
                .any(|a| &a.name == actor && a.running)
                .then_some(())
        });
        assert!(listed.is_some(), "{actor} not running; log:\n{}", e2e.log());
        let out = e2e.cli(&["kill", actor]);
        assert!(out.status.success(), "kill {actor}: {out:?}");
        let back = wait_for(Duration::from_secs(15), || {
            let s = e2e.status()?;
            let a = s.actors.iter().find(|a| &a.name == actor)?;
            (a.running && a.kills >= 1).then_some(())
        });
        assert!(back.is_some(), "{actor} not restarted; log:\n{}", e2e.log());
    }
    assert!(!e2e.cli(&["kill", "no-such-actor"]).status.success());

    // A second daemon on the same socket is refused and leaves the first one reachable.
    let second = std::process::Command::new("timeout")
        .args(["20", "ip", "netns", "exec", e2e.world.device.name()])
        .arg(env!("CARGO_BIN_EXE_netfailover"))
        .arg("run")
        .arg("--boot-dir")
        .arg(e2e.dir.path().join("boot"))
        .arg("--socket")
        .arg(e2e.socket())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already answers"), "{stderr}");
    assert!(e2e.status().is_some(), "first daemon lost its socket");

    // Events: an `up` for every interface.
    let out = e2e.cli(&["events", "--json"]);
    assert!(out.status.success());
    let events = dispatcher_events(&out.stdout);
    for iface in ["eth0", "wlan0", "wwan0"] {
        assert!(
            events.iter().any(|r| r.event.kind.as_str() == "up"
                && r.event.iface.as_ref().is_some_and(|i| i.as_str() == iface)),
            "no up event for {iface}: {events:?}"
        );
    }
    let out = e2e.cli(&["events"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("up"));
}

#[test]
fn daemon_sigterm_leaves_configured_metrics() {
    test_setup!();
    clean_shutdown_leaves_configured_metrics(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn daemon_sigint_is_a_clean_shutdown_too() {
    test_setup!();
    clean_shutdown_leaves_configured_metrics(nix::sys::signal::Signal::SIGINT);
}

fn clean_shutdown_leaves_configured_metrics(signal: nix::sys::signal::Signal) {
    let mut e2e = E2e::start(2);
    // Nothing answers the checks: every uplink is LIMITED and penalised.
    let penalised = routes(&[("eth0", 20100), ("wlan0", 20600), ("wwan0", 20700)]);
    let seen = wait_for(Duration::from_secs(20), || {
        (sorted(e2e.default_routes()) == penalised).then_some(())
    });
    assert!(seen.is_some(), "{:?}\n{}", e2e.default_routes(), e2e.log());
    e2e.signal(signal);
    let status = e2e.wait_exit();
    assert!(status.success(), "{status}; log:\n{}", e2e.log());
    assert_eq!(
        sorted(e2e.default_routes()),
        routes(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)])
    );
}

#[test]
fn daemon_sigkill_and_restart_adopts_routes_without_duplicates() {
    let mut e2e = test_setup!(E2e::start(0));
    let configured = routes(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)]);
    let seen = wait_for(Duration::from_secs(20), || {
        (sorted(e2e.default_routes()) == configured).then_some(())
    });
    assert!(seen.is_some(), "{:?}", e2e.default_routes());
    e2e.signal(nix::sys::signal::Signal::SIGKILL);
    e2e.wait_exit();
    assert_eq!(sorted(e2e.default_routes()), configured, "left in place");
    e2e.spawn();
    // Give the restarted daemon a few reconcile rounds; the table must stay exactly as it was.
    for _ in 0..20 {
        assert_eq!(sorted(e2e.default_routes()), configured);
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn daemon_talks_to_systemd_when_notify_socket_is_set() {
    test_setup!();
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify");
    let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut e2e = E2e::start_with_env(
        2,
        vec![
            ("NOTIFY_SOCKET".into(), path.display().to_string()),
            // 400 ms: WATCHDOG=1 every 200 ms.
            ("WATCHDOG_USEC".into(), "400000".into()),
        ],
    );
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(n) = listener.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        if messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3 {
            break;
        }
    }
    let all = messages.concat();
    assert!(all.contains("READY=1"), "{messages:?}");
    assert!(all.contains("STATUS=connectivity "), "{messages:?}");
    assert!(
        messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3,
        "{messages:?}"
    );
    e2e.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(e2e.wait_exit().success());
    let mut stopping = false;
    while let Ok(n) = listener.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "no STOPPING=1");
}

/// Event ids in the order the scripts logged them (the lab script writes
/// `TIME ID EVENT IFACE STATE` per run).
fn logged_ids(e2e: &E2e) -> Vec<u64> {
    std::fs::read_to_string(e2e.dir.path().join("scripts.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

#[test]
fn daemon_sigkill_with_pending_events_delivers_them_after_restart() {
    let mut e2e = test_setup!(E2e::start(0));
    let startup = wait_for(Duration::from_secs(20), || {
        (logged_ids(&e2e).len() >= 3).then_some(())
    });
    assert!(startup.is_some(), "startup events ran; log:\n{}", e2e.log());
    // From now on every script run takes a second: events pile up in the journal.
    let script = e2e.dir.path().join("boot/dispatcher.d/50-log");
    let original = std::fs::read_to_string(&script).unwrap();
    std::fs::write(&script, format!("{original}sleep 1\n")).unwrap();
    for _ in 0..3 {
        e2e.world.pull_cable("wwan0").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        e2e.world.plug_cable("wwan0").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let produced: Vec<u64> = {
        let out = e2e.cli(&["events", "--json"]);
        let events = dispatcher_events(&out.stdout);
        events.iter().map(|r| r.event.id).collect()
    };
    let before_kill = logged_ids(&e2e);
    assert!(
        produced.len() >= before_kill.len() + 4,
        "events pending when killed: produced {produced:?}, delivered {before_kill:?}"
    );
    e2e.signal(nix::sys::signal::Signal::SIGKILL);
    e2e.wait_exit();
    std::fs::write(&script, &original).unwrap();
    e2e.spawn();
    // Every old event, and the restarted daemon's own startup `up`s after them.
    let all_delivered = wait_for(Duration::from_secs(60), || {
        let logged = logged_ids(&e2e);
        let old_done = produced.iter().all(|id| logged.contains(id));
        let new_seen = logged.iter().any(|id| !produced.contains(id));
        (old_done && new_seen).then_some(logged)
    });
    let logged = all_delivered.unwrap_or_else(|| {
        panic!(
            "not every event delivered: produced {produced:?}, logged {:?}",
            logged_ids(&e2e)
        )
    });
    // In order: the first delivery of each id is increasing (a re-run of the interrupted
    // event may repeat an id, which is what NETFAILOVER_EVENT_ID is for).
    let mut firsts: Vec<u64> = Vec::new();
    for id in &logged {
        if !firsts.contains(id) {
            firsts.push(*id);
        }
    }
    let old: Vec<u64> = firsts
        .iter()
        .copied()
        .filter(|id| produced.contains(id))
        .collect();
    assert!(old.windows(2).all(|w| w[0] < w[1]), "in order: {logged:?}");
    eprintln!(
        "produced {produced:?}, delivered before the kill {before_kill:?}, logged {logged:?}"
    );
    let max_old = produced.iter().max().copied().unwrap_or(0);
    let new: Vec<u64> = firsts
        .iter()
        .copied()
        .filter(|id| !produced.contains(id))
        .collect();
    assert!(
        !new.is_empty(),
        "the restarted daemon announced its uplinks: {logged:?}"
    );
    assert!(
        new.iter().all(|id| *id > max_old),
        "ids never reused: {logged:?}"
    );
}
