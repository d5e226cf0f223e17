//! `netfailover wait-online` with the built binary against a daemon in a lab world: exit 0 right
//! after the first FULL, 1 at its timeout with where each uplink stands, 2 without a daemon, a
//! daemon that starts after it; and the systemd unit that orders it before
//! `network-online.target`, checked by `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netfailover::control;
use netfailover_lab::test_setup;

use crate::daemon::E2e;

const UPLINKS: [&str; 3] = ["eth0", "wlan0", "wwan0"];

/// How long after the first FULL event `wait-online` may exit. The goal is 100 ms (the event
/// stream delivers the change as the daemon makes it); the bound leaves room for a loaded
/// 2-core machine scheduling two processes.
const EXIT_AFTER_FULL: Duration = Duration::from_millis(500);

/// `wait-online` started now, its exit (time and output) sent on the returned channel.
fn spawn_wait_online(socket: &Path, args: &[&str]) -> mpsc::Receiver<(Instant, Output)> {
    let child = Command::new(env!("CARGO_BIN_EXE_netfailover"))
        .arg("wait-online")
        .args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning wait-online");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let output = child.wait_with_output().expect("waiting for wait-online");
        let _ = tx.send((Instant::now(), output));
    });
    rx
}

/// The instant this process sees the first `connectivity` … `FULL` line on the daemon's stream.
fn first_full_event(socket: PathBuf) -> mpsc::Receiver<Instant> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _ = runtime.block_on(control::follow_lines(
            &socket,
            control::DEFAULT_TIMEOUT,
            |line| {
                let full = line["type"] == "connectivity" && line["state"] == "FULL";
                if full {
                    let _ = tx.send(Instant::now());
                }
                !full
            },
        ));
    });
    rx
}

/// A lab world with the check server running and every uplink's upstream blackholed.
fn offline_world() -> E2e {
    E2e::start_prepared(2, Vec::new(), |world, _| {
        world.start_servers().expect("lab servers");
        for iface in UPLINKS {
            world.blackhole_upstream(iface).expect("blackhole");
        }
    })
}

fn socket_of(e2e: &E2e) -> PathBuf {
    e2e.dir.path().join("sock")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn wait_online_exits_0_right_after_the_first_full() {
    test_setup!();
    // Measured: the exit within EXIT_AFTER_FULL of the first FULL.
    let _serial = crate::heavy_test_lock();
    let e2e = offline_world();
    let socket = socket_of(&e2e);
    let full = first_full_event(socket.clone());
    let exited = spawn_wait_online(&socket, &["--timeout", "60"]);
    // Every upstream dead: it keeps waiting (no exit for 2 s, watched as it happens).
    assert!(
        exited.recv_timeout(Duration::from_secs(2)).is_err(),
        "wait-online exited with every uplink offline"
    );
    e2e.world.restore_upstream("wwan0").expect("restore");
    let (exit_at, output) = exited
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("wait-online still waiting; log:\n{}", e2e.log()));
    let full_at = full
        .recv_timeout(Duration::from_secs(5))
        .expect("the FULL event on the stream");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("wwan0"), "{output:?}");
    let after = exit_at.saturating_duration_since(full_at);
    println!("wait-online exited {after:?} after the first FULL event");
    assert!(after <= EXIT_AFTER_FULL, "exited {after:?} after FULL");
}

#[test]
fn wait_online_exits_1_at_its_timeout_saying_where_each_uplink_stands() {
    test_setup!();
    // Measured: the exit 6 to 10 s after the start, every check failed at 1 s timeouts.
    let _serial = crate::heavy_test_lock();
    let e2e = offline_world();
    let started = Instant::now();
    let (_, output) = spawn_wait_online(&socket_of(&e2e), &["--timeout", "6"])
        .recv_timeout(Duration::from_secs(30))
        .expect("wait-online exits at its timeout");
    let took = started.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The timeout, plus at most the one final `status` request (2 s) and process start.
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(stderr.contains("not online after 6 s"), "{stderr}");
    for iface in UPLINKS {
        let line = stderr
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{iface}: ")))
            .unwrap_or_else(|| panic!("no line for {iface}: {stderr}"));
        // 6 s at interval 2 and 1 s timeouts: every check failed (docs/semantics.md §3).
        assert!(line.contains("LIMITED: "), "{line}");
    }
}

#[test]
fn wait_online_exits_2_without_a_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("sock");
    let started = Instant::now();
    let (_, output) = spawn_wait_online(&socket, &["--timeout", "1"])
        .recv_timeout(Duration::from_secs(20))
        .expect("wait-online exits");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(stderr.contains("no daemon"), "{stderr}");
}

#[test]
fn wait_online_waits_for_a_daemon_that_starts_after_it() {
    test_setup!();
    let mut exited = None;
    let e2e = E2e::start_prepared(2, Vec::new(), |world, boot| {
        world.start_servers().expect("lab servers");
        let socket = boot.parent().expect("boot in the test dir").join("sock");
        assert!(!socket.exists());
        exited = Some(spawn_wait_online(&socket, &["--timeout", "60"]));
        std::thread::sleep(Duration::from_millis(500));
    });
    let (_, output) = exited
        .expect("spawned")
        .recv_timeout(Duration::from_secs(40))
        .unwrap_or_else(|_| panic!("wait-online still waiting; log:\n{}", e2e.log()));
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

/// The shipped unit and the daemon's, with `/usr/bin/netfailover` replaced by the built binary
/// (verify checks that the command exists), pass `systemd-analyze verify`.
#[test]
fn the_wait_online_unit_passes_systemd_analyze_verify() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(repo.join("contrib/netfailover-wait-online.service"))
        .expect("the unit");
    for line in [
        "Type=oneshot",
        "Requires=netfailover.service",
        "After=netfailover.service",
        "WantedBy=network-online.target",
        "ExecStart=/usr/bin/netfailover wait-online",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    assert!(
        unit.lines()
            .any(|l| l.starts_with("Before=") && l.contains("network-online.target")),
        "{unit}"
    );
    if !netfailover_lab::setup::require_tool(
        "the_wait_online_unit_passes_systemd_analyze_verify",
        "systemd-analyze",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = env!("CARGO_BIN_EXE_netfailover");
    let mut units = Vec::new();
    for name in ["netfailover.service", "netfailover-wait-online.service"] {
        let text = std::fs::read_to_string(repo.join("contrib").join(name)).expect("unit");
        let path = dir.path().join(name);
        std::fs::write(&path, text.replace("/usr/bin/netfailover", exe)).expect("write");
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
        .expect("systemd-analyze");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("netfailover"),
        "warnings about our units: {stderr}"
    );
}
