//! Settings: SIGHUP reloads, and a broken netfailover.toml never stops the daemon
//! (docs/decisions.md).

use super::*;
use netfailover_lab::world::dir_settings;

#[test]
fn daemon_sighup_follows_a_keyfile_metric_without_a_gap() {
    let e2e = test_setup!(E2e::start(0));
    let seen = wait_for(Duration::from_secs(20), || {
        e2e.default_routes()
            .contains(&("eth0".to_string(), 100))
            .then_some(())
    });
    assert!(seen.is_some(), "{:?}", e2e.default_routes());
    // A reload with a broken settings file is refused; the daemon keeps its configuration.
    let settings = e2e.dir.path().join("boot/netfailover.toml");
    let good_settings = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, "[check\ndown_count = \"many\"\n").unwrap();
    e2e.signal(nix::sys::signal::Signal::SIGHUP);
    let refused = wait_for(Duration::from_secs(10), || {
        e2e.log().contains("reload failed").then_some(())
    });
    assert!(refused.is_some(), "{}", e2e.log());
    assert!(e2e.status().is_some(), "daemon gone after a bad reload");
    assert!(e2e.default_routes().contains(&("eth0".to_string(), 100)));
    std::fs::write(&settings, good_settings).unwrap();
    // Sample the table from another thread during the reload.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let device = e2e.world.device.name().to_string();
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            // At least 20 samples even when the reload beats a slow `ip` (a loaded machine):
            // the table must hold an eth0 route in every one of them, before and after.
            while (!stop.load(std::sync::atomic::Ordering::SeqCst) || samples.len() < 20)
                && samples.len() < 5000
            {
                let out = netfailover_lab::netns::run(&[
                    "ip", "-n", &device, "-4", "route", "show", "default",
                ])
                .unwrap_or_default();
                samples.push(parse_default_routes(&out));
            }
            samples
        })
    };
    let keyfile = e2e.dir.path().join("boot/system-connections/lab-eth0");
    let text = std::fs::read_to_string(&keyfile).unwrap();
    std::fs::write(
        &keyfile,
        text.replace("route-metric=100", "route-metric=50"),
    )
    .unwrap();
    e2e.signal(nix::sys::signal::Signal::SIGHUP);
    let moved = wait_for(Duration::from_secs(20), || {
        let r = e2e.default_routes();
        (r.contains(&("eth0".to_string(), 50)) && !r.contains(&("eth0".to_string(), 100)))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    assert!(moved.is_some(), "{:?}\n{}", e2e.default_routes(), e2e.log());
    assert!(samples.len() > 5, "too few samples");
    for (n, s) in samples.iter().enumerate() {
        assert!(
            s.iter().any(|(dev, _)| dev == "eth0"),
            "sample {n}: eth0 had no default route: {s:?}"
        );
    }
}

#[test]
fn daemon_sighup_applies_a_new_check_uri() {
    let e2e = test_setup!(E2e::start(1));
    // Nothing listens on the configured URI (port 80): every uplink is LIMITED.
    let limited = wait_for(Duration::from_secs(15), || {
        let s = e2e.status()?;
        s.interfaces
            .iter()
            .all(|i| i.connectivity == Connectivity::Limited)
            .then_some(())
    });
    assert!(limited.is_some(), "{:?}", e2e.status());
    let _server = netfailover_lab::internet::CheckServer::start(
        &e2e.world.internet,
        SocketAddr::from((CHECK_ADDR, 8080)),
        None,
    )
    .unwrap();
    let config = e2e.dir.path().join("boot/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("/connectivity-check", ":8080/connectivity-check"),
    )
    .unwrap();
    e2e.signal(nix::sys::signal::Signal::SIGHUP);
    let full = wait_for(Duration::from_secs(15), || {
        let s = e2e.status()?;
        s.interfaces
            .iter()
            .all(|i| i.connectivity == Connectivity::Full)
            .then_some(())
    });
    assert!(full.is_some(), "{:?}\n{}", e2e.status(), e2e.log());
    assert_eq!(
        sorted(e2e.default_routes()),
        routes(&[("eth0", 100), ("wlan0", 600), ("wwan0", 700)])
    );
}

/// `[check] down_count = "two"`: the daemon starts, manages routes, keeps `state_dir` from the
/// same file, and names the bad key in its log, `status` and `check-config`.
#[test]
fn daemon_with_a_bad_key_runs_on_the_rest_of_its_settings() {
    test_setup!();
    let e2e = E2e::start_prepared(0, Vec::new(), |_, boot| {
        let state_dir = boot.with_file_name("kept-state");
        let settings = format!(
            "{}[check]\ndown_count = \"two\"\nup_count = 3\n",
            dir_settings(&state_dir)
        );
        std::fs::write(boot.join("netfailover.toml"), settings).unwrap();
    });
    let state_dir = e2e.dir.path().join("kept-state");
    let managed = wait_for(Duration::from_secs(20), || {
        let r = e2e.default_routes();
        [("eth0", 100), ("wlan0", 600), ("wwan0", 700)]
            .iter()
            .all(|(dev, metric)| r.contains(&(dev.to_string(), *metric)))
            .then_some(())
    });
    assert!(
        managed.is_some(),
        "{:?}\n{}",
        e2e.default_routes(),
        e2e.log()
    );
    // state_dir from the file: the journal and states are written there.
    let written = wait_for(Duration::from_secs(20), || {
        std::fs::read_dir(&state_dir)
            .ok()?
            .next()
            .is_some()
            .then_some(())
    });
    assert!(
        written.is_some(),
        "nothing written to {}",
        state_dir.display()
    );
    let log = e2e.log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR")
                && l.contains("netfailover.toml:4: error: check.down_count")),
        "{log}"
    );
    let problems = e2e.config_problems().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("check.down_count")),
        "{problems:?}"
    );
    let text = String::from_utf8_lossy(&e2e.cli(&["status"]).stdout).to_string();
    assert!(text.contains("configuration problems"), "{text}");
    assert!(text.contains("check.down_count"), "{text}");
    // check-config reads the files, not the daemon: no --socket.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netfailover"))
        .arg("check-config")
        .arg("--boot-dir")
        .arg(e2e.dir.path().join("boot"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        report.contains("check.down_count = 2  (default: the value at "),
        "{report}"
    );
    assert!(report.contains("check.up_count = 3  ("), "{report}");
}

/// An unreadable `check.ca_file`: the daemon starts and checks with the built-in roots.
#[test]
fn daemon_with_an_unreadable_ca_file_runs() {
    test_setup!();
    let e2e = E2e::start_prepared(2, Vec::new(), |_, boot| {
        std::fs::write(boot.join("not-a-cert.pem"), "not a certificate\n").unwrap();
        let settings = format!(
            "{}{}ca_file = \"not-a-cert.pem\"\n",
            dir_settings(&boot.with_file_name("state")),
            netfailover_lab::world::FAST_SETTINGS
        );
        std::fs::write(boot.join("netfailover.toml"), settings).unwrap();
    });
    // Checks run (refused → LIMITED): the penalty proves the probe was built.
    let penalised = wait_for(Duration::from_secs(30), || {
        e2e.default_routes()
            .contains(&("eth0".to_string(), 20_100))
            .then_some(())
    });
    assert!(
        penalised.is_some(),
        "{:?}\n{}",
        e2e.default_routes(),
        e2e.log()
    );
    let log = e2e.log();
    assert!(log.contains("error: check.ca_file: "), "{log}");
    let problems = e2e.config_problems().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("check.ca_file")),
        "{problems:?}"
    );
}

/// SIGHUP with a broken netfailover.toml keeps the last good values; the next good file applies.
#[test]
fn daemon_sighup_with_a_broken_file_keeps_the_last_good_values() {
    test_setup!();
    let settings = |state: &Path, penalty: &str, extra: &str| {
        format!(
            "{}{}{extra}[route]\npenalty = {penalty}\n",
            dir_settings(state),
            netfailover_lab::world::FAST_SETTINGS
        )
    };
    let e2e = E2e::start_prepared(2, Vec::new(), |_, boot| {
        let text = settings(&boot.with_file_name("state"), "5000", "");
        std::fs::write(boot.join("netfailover.toml"), text).unwrap();
    });
    let state = e2e.dir.path().join("state");
    let eth0_at = |metric: u32| {
        wait_for(Duration::from_secs(30), || {
            e2e.default_routes()
                .contains(&("eth0".to_string(), metric))
                .then_some(())
        })
    };
    // Checks are refused (LIMITED): eth0 carries its metric plus the configured penalty.
    assert!(
        eth0_at(5_100).is_some(),
        "{:?}\n{}",
        e2e.default_routes(),
        e2e.log()
    );
    assert_eq!(e2e.config_problems(), Some(vec![]));

    // A new penalty next to a bad key: nothing of the new file applies.
    e2e.write_settings(&settings(&state, "7000", "failback_hold = \"soonish\"\n"));
    e2e.signal(nix::sys::signal::Signal::SIGHUP);
    let kept = wait_for(Duration::from_secs(10), || {
        e2e.log()
            .contains("keeping the last good configuration")
            .then_some(())
    });
    assert!(kept.is_some(), "{}", e2e.log());
    let problems = e2e.config_problems().unwrap();
    assert!(
        problems.iter().any(|p| p.contains("check.failback_hold")),
        "{problems:?}"
    );
    // The old penalty still holds, at every moment until eth0 has had two more checks.
    let checks = e2e.checks_of("eth0");
    let later = wait_for(Duration::from_secs(30), || {
        let routes = e2e.default_routes();
        assert!(routes.contains(&("eth0".to_string(), 5_100)), "{routes:?}");
        assert!(!routes.contains(&("eth0".to_string(), 7_100)), "{routes:?}");
        (e2e.checks_of("eth0") >= checks + 2).then_some(())
    });
    assert!(
        later.is_some(),
        "eth0 not checked again: {:?}",
        e2e.status()
    );

    // Fixed: the new penalty applies and the problems clear.
    e2e.write_settings(&settings(&state, "7000", ""));
    e2e.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        eth0_at(7_100).is_some(),
        "{:?}\n{}",
        e2e.default_routes(),
        e2e.log()
    );
    assert_eq!(e2e.config_problems(), Some(vec![]));
}
