//! Operator safety (issue 24): the CLI never hangs on a stuck or hostile control socket, the
//! server bounds every connection in time, the protocol refuses unknown fields everywhere, and
//! the CLI's output and messages behave for a person and a pipe.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use netfailover::control::{self, ControlError, Request};
use netfailover_lab as lab;
use netfailover_lab::test_setup;

use crate::daemon::{StubServer, TempDir};

fn cli(args: &[&str]) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(env!("CARGO_BIN_EXE_netfailover"))
        .args(args);
    cmd
}

fn run(cmd: &mut Command) -> (Output, Duration) {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    (out, started.elapsed())
}

/// Whether the server closed `conn` (EOF or reset) before `within`.
fn closed_within(conn: &mut UnixStream, within: Duration) -> bool {
    conn.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn control_socket_cuts_a_client_trickling_a_line_at_the_idle_limit() {
    let idle = Duration::from_millis(500);
    let server = StubServer::start(idle);
    let conn = server.connect();
    let mut writer = conn.try_clone().unwrap();
    // One byte every 100 ms, never a newline: each byte used to restart the idle timer.
    let trickle = std::thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let started = Instant::now();
    let mut conn = conn;
    assert!(closed_within(&mut conn, Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    trickle.join().unwrap();
}

#[test]
fn control_socket_cuts_a_client_that_never_reads_its_replies() {
    let idle = Duration::from_millis(500);
    let server = StubServer::start(idle);
    let mut conn = server.connect();
    // Requests until the socket buffers are full both ways (the server blocks on its reply).
    conn.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let request = b"{\"cmd\":\"status\"}\n".repeat(64);
    let mut sent = 0;
    while conn.write_all(&request).is_ok() && sent < 100_000 {
        sent += 1;
    }
    // Well past the idle limit, the server must have given up on the connection: draining the
    // replies ends in EOF (or a reset), not in a server still waiting to write more.
    std::thread::sleep(idle * 3);
    assert!(
        closed_within(&mut conn, Duration::from_secs(3)),
        "the server still holds the connection of a client that reads nothing"
    );
}

#[test]
fn the_cli_gets_status_while_every_slot_is_held_by_slow_clients() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let held: Vec<UnixStream> = (0..control::MAX_CONNECTIONS + 4)
        .map(|_| {
            let mut c = server.connect();
            c.write_all(b"{\"cmd\":").unwrap();
            c
        })
        .collect();
    let socket = server.socket();
    let (out, took) = run(cli(&["status", "--json", "--socket"]).arg(&socket));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"connectivity\""), "{stdout}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    drop(held);
}

#[test]
fn the_cli_gives_up_on_a_listener_that_never_answers_and_says_what_it_waited_for() {
    let dir = TempDir::new("mute");
    let socket = dir.path().join("sock");
    // Bound and listening, never accepting: connect succeeds into the backlog.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (out, took) = run(cli(&["status", "--timeout", "1", "--socket"]).arg(&socket));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(stderr.contains("waiting for the reply"), "{stderr}");
    assert!(stderr.contains("--timeout"), "{stderr}");
    // The library's default applies without --timeout.
    let started = Instant::now();
    let err = crate::daemon::ask(&socket, Request::Version).unwrap_err();
    assert!(matches!(err, ControlError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < control::DEFAULT_TIMEOUT + Duration::from_secs(2));
}

#[test]
fn control_socket_refuses_unknown_fields_on_every_request() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let conn = server.connect();
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    for request in [
        r#"{"cmd":"status","verbose":true}"#,
        r#"{"cmd":"version","x":1}"#,
        r#"{"cmd":"events","since":3}"#,
        r#"{"cmd":"follow","from":0}"#,
        r#"{"cmd":"check","iface":"eth0","fast":true}"#,
        r#"{"cmd":"kill","actor":"dispatcher","force":1}"#,
    ] {
        writer.write_all(format!("{request}\n").as_bytes()).unwrap();
        let reply = crate::daemon::reply_line(&mut reader);
        assert_eq!(reply["ok"], false, "{request}: {reply}");
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains("unknown field"), "{request}: {error}");
    }
    // The same requests without the stray field are answered.
    writer.write_all(b"{\"cmd\":\"version\"}\n").unwrap();
    assert_eq!(crate::daemon::reply_line(&mut reader)["ok"], true);
}

#[test]
fn control_socket_answers_64k_without_a_newline_at_once_then_closes() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let mut conn = server.connect();
    let started = Instant::now();
    conn.write_all(&vec![b'x'; control::MAX_LINE + 1]).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let reply = crate::daemon::reply_line(&mut reader);
    assert_eq!(reply["ok"], false);
    assert!(reply["error"].as_str().unwrap().contains("longer than"));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(closed_within(&mut conn, Duration::from_secs(5)));
}

#[test]
fn bind_refuses_to_replace_a_regular_file() {
    let dir = TempDir::new("regular");
    let path = dir.path().join("precious");
    std::fs::write(&path, "data").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async { control::bind(&path).map(drop) });
    match result {
        Err(e @ ControlError::NotASocket { .. }) => {
            assert!(e.to_string().contains("not a socket"), "{e}")
        }
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
}

/// Runs the CLI with a stdout whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netfailover"));
    cmd.args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped());
    cmd.output().unwrap()
}

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let socket = server.socket();
    let socket = socket.to_str().unwrap();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["events"],
        &["events", "--json"],
        &["check", "eth0"],
        &["kill", "dispatcher"],
    ] {
        let mut all = args.to_vec();
        all.extend(["--socket", socket]);
        let out = with_closed_stdout(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // check-config's exit code is its verdict on the files (0 here), however short the report.
    let dir = TempDir::new("closed-stdout");
    let boot = dir.path().to_str().unwrap();
    for args in [
        &["check-config", "--boot-dir", boot][..],
        &["check-config", "--json", "--boot-dir", boot],
    ] {
        let out = with_closed_stdout(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn kill_help_lists_every_actor() {
    let out = cli(&["kill", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for child in netfailover::engine::supervisor::Child::ALL {
        assert!(
            help.contains(child.name()),
            "{} missing:\n{help}",
            child.name()
        );
    }
    assert!(help.contains("prober:IFACE"), "{help}");
}

#[test]
fn check_config_refuses_socket() {
    let dir = TempDir::new("nosock");
    let boot = dir.path().to_str().unwrap();
    let verb = ["check-config", "--boot-dir", boot];
    let mut args = verb.to_vec();
    args.extend(["--socket", "/tmp/elsewhere.sock"]);
    let out = cli(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--socket has no meaning"), "{stderr}");
    // Without --socket it runs.
    let out = cli(&verb).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

#[test]
fn metrics_address_messages_are_plain() {
    let out = cli(&["run", "--metrics", "localhost:9101"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("IP address and port"), "{stderr}");
    assert!(
        !stderr.contains("invalid socket address syntax"),
        "{stderr}"
    );
}

#[test]
fn a_taken_metrics_port_is_reported_with_its_cause_once() {
    test_setup!();
    let dir = TempDir::new("metrics98");
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    // The daemon binds the metrics port before its engine starts, so it stops there and never
    // touches a route.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = cli(&["run", "--metrics", &addr, "--boot-dir"])
        .arg(&boot)
        .arg("--socket")
        .arg(dir.path().join("sock"))
        .env("NETFAILOVER_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(last.matches("os error 98").count(), 1, "{last}");
    assert!(last.contains(&addr), "{last}");
}

#[test]
fn check_config_reports_unsafe_dispatcher_scripts_as_warnings() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = TempDir::new("unsafe-scripts");
    let scripts = dir.path().join("dispatcher.d");
    std::fs::create_dir_all(scripts.join("up.d")).unwrap();
    let script = |name: &str, mode: u32| {
        let path = scripts.join(name);
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    };
    script("10-fine", 0o755);
    script("20-world-writable", 0o777);
    script("up.d/30-setuid", 0o4755);
    script("40-not-executable", 0o644);
    let foreign = script("50-foreign", 0o755);
    let foreign_owned = chown(&foreign, Some(65534), None).is_ok();
    let boot = dir.path().to_str().unwrap();

    let out = cli(&["check-config", "--boot-dir", boot]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let mut unsafe_names = vec!["20-world-writable", "up.d/30-setuid", "40-not-executable"];
    if foreign_owned {
        unsafe_names.push("50-foreign");
    }
    let problems = text.split("problems:").nth(1).unwrap();
    for name in &unsafe_names {
        assert!(
            problems
                .lines()
                .any(|l| l.contains(name) && l.contains("warning")),
            "{name} not a warning:\n{text}"
        );
    }
    assert!(!problems.contains("10-fine"), "{text}");
    let summary = format!("0 error(s), {} warning(s)", unsafe_names.len());
    assert!(text.contains(&summary), "{summary}\n{text}");

    let out = cli(&["check-config", "--json", "--boot-dir", boot])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = doc["problems"].as_array().unwrap();
    assert_eq!(problems.len(), unsafe_names.len(), "{problems:?}");
    for name in &unsafe_names {
        assert!(
            problems.iter().any(|p| p["severity"] == "warning"
                && p["file"].as_str().is_some_and(|f| f.ends_with(name))),
            "{name}: {problems:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lab namespaces: removed on SIGTERM, and after a process that could not clean up (item 11)
// ---------------------------------------------------------------------------------------------

use lab::netns::{self, Netns};

/// Set in the child process of `a_process_stopped_by_sigterm_removes_its_namespaces`.
const HOLD_ENV: &str = "NF_TEST_HOLD_NAMESPACE";

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// The registry the signal watcher cleans up from follows creation and drop. Run as the child of
/// the SIGTERM test (with `HOLD_ENV`), it also holds a namespace until the signal comes.
#[test]
fn live_namespaces_are_tracked_from_creation_to_drop() {
    let ns = test_setup!(Netns::new("held").unwrap());
    assert!(netns::live_namespaces().contains(&ns.name().to_string()));
    if std::env::var_os(HOLD_ENV).is_some() {
        println!("HOLDING {}", ns.name());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(60));
        panic!("no signal came");
    }
    let name = ns.name().to_string();
    drop(ns);
    assert!(!netns::live_namespaces().contains(&name));
    assert!(!netns_exists(&name));
}

#[test]
fn a_process_stopped_by_sigterm_removes_its_namespaces() {
    use std::io::BufRead;
    test_setup!();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "operator::live_namespaces_are_tracked_from_creation_to_drop",
            "--exact",
            "--nocapture",
        ])
        .env(HOLD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let name = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("HOLDING ").map(str::to_string));
    let Some(name) = name else {
        let _ = child.kill();
        panic!("the child never created its namespace");
    };
    assert!(netns_exists(&name));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = netns::wait_for(Duration::from_secs(20), || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("the child did not exit on SIGTERM");
    };
    assert_eq!(status.code(), Some(143), "{status}");
    assert!(!netns_exists(&name), "{name} left behind");
}

#[test]
fn namespaces_of_a_gone_process_are_removed_and_live_ones_kept() {
    test_setup!();
    // A pid that existed and is gone (pids are not reused this fast).
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let stale = format!("nf-stale-{pid}-0");
    netns::run(&["ip", "netns", "add", &stale]).unwrap();
    let live = Netns::new("kept").unwrap();
    let removed = netns::remove_stale_namespaces();
    assert!(removed.contains(&stale), "{removed:?}");
    assert!(!netns_exists(&stale));
    assert!(netns_exists(live.name()));
    assert!(!removed.iter().any(|n| n == live.name()));
}
