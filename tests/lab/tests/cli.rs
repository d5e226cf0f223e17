//! The `netfailover-lab` binary (a test tool, do not ship) run to completion: every step of the
//! default timeline reaches its expected state with the real daemon, and it says why it needs
//! root.

use netfailover_lab::test_setup;

#[test]
fn netfailover_lab_runs_every_step_to_its_expected_state() {
    test_setup!();
    let out = std::process::Command::new("timeout")
        .args(["-k", "5", "170"])
        .arg(env!("CARGO_BIN_EXE_netfailover-lab"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // The summary: one row per step, each with the expected route observed.
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("STEP"))
        .skip(1)
        .take_while(|l| !l.contains("steps ok"))
        .collect();
    assert_eq!(summary.len(), 11, "{stdout}");
    for row in &summary {
        let cells: Vec<&str> = row.split("  ").filter(|c| !c.trim().is_empty()).collect();
        assert_eq!(cells.last().map(|c| c.trim()), Some("ok"), "{row}");
        // expected route == observed route
        let n = cells.len();
        assert_eq!(cells[n - 5].trim(), cells[n - 4].trim(), "{row}");
    }
    assert!(stdout.contains("11/11 steps ok"), "{stdout}");
    // The global outage was announced to the scripts.
    assert!(stdout.contains("connectivity-change - NONE"), "{stdout}");
    assert!(stdout.contains("namespaces removed"));
}

#[test]
fn netfailover_lab_says_why_it_needs_root() {
    test_setup!();
    let out = std::process::Command::new("timeout")
        .args([
            "20",
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_netfailover-lab"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(stderr.contains("namespaces"), "{stderr}");
}

/// meta-balena 3053: Ethernet with carrier and a dead upstream at boot, cellular working:
/// wait-online returns 0 through cellular, and the lab says how long after the daemon's start.
#[test]
fn netfailover_lab_boot_3053_is_online_through_cellular() {
    test_setup!();
    let out = std::process::Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(env!("CARGO_BIN_EXE_netfailover-lab"))
        .args(["--scenario", "boot-3053"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\nstdout:\n{stdout}", out.status);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("wait-online: exit 0 after "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.ends_with("from the daemon's start (wwan0)"), "{line}");
    println!("{line}");
    assert!(
        stdout.contains("route to the check server: wwan0"),
        "{stdout}"
    );
    assert!(stdout.contains("namespaces removed"), "{stdout}");
}
