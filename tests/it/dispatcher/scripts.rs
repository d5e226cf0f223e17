//! The real `ScriptDirRunner` on real scripts: discovery order and ignore list, arguments and
//! environment, security skips, the mount-option warning, timeouts and process-group kills,
//! output logging.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use netfailover::engine::model::EventKind;
use netfailover::engine::ports::{ScriptResult, ScriptRunner};
use netfailover::os::scripts::{discover, ScriptDirRunner, SCRIPT_PATH};
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;

use super::{event, pid_is_dead, read_pid, ScriptDir};

/// Generous: no test here waits on a timeout this long.
const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn scripts_run_in_name_order_across_top_level_and_event_folders() {
    let d = ScriptDir::new();
    for rel in [
        "20-b",
        "10-a",
        "30-same",
        "up.d/15-c",
        "up.d/30-same",
        "up/05-d",
        "up/30-same",
        "down.d/01-not-for-up",
        "down/02-not-for-up",
        // Byte order: upper case sorts before lower case, digits before letters.
        "Z-upper",
    ] {
        d.reporter(rel);
    }
    // Leftovers NetworkManager ignores, all executable and otherwise valid.
    for rel in [
        ".hidden",
        "40-x~",
        "41-x.bak",
        "42-x.orig",
        "43-x.rpmsave",
        "44-x.rpmnew",
        "45-x.dpkg-old",
        "up.d/46-x.dpkg-dist",
        "up/.47-hidden",
    ] {
        d.reporter(rel);
    }
    let want_up = [
        "up/05-d",
        "10-a",
        "up.d/15-c",
        "20-b",
        "30-same",
        "up.d/30-same",
        "up/30-same",
        "Z-upper",
    ];
    let found: Vec<String> = discover(&d.dir, EventKind::Up)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(found, want_up);

    let runner = ScriptDirRunner::new(&d.dir, LONG);
    let outcomes = runner.run(event(1, EventKind::Up, Some("eth0"))).await;
    let names: Vec<&str> = outcomes.iter().map(|o| o.script.as_str()).collect();
    assert_eq!(names, want_up);
    assert!(outcomes
        .iter()
        .all(|o| o.result == ScriptResult::Exited { code: 0 }));
    let want_lines: Vec<String> = want_up
        .iter()
        .map(|n| format!("{n} up eth0 id=1"))
        .collect();
    assert_eq!(d.lines(), want_lines);

    // The same directory for `down`: the top level plus down's folders only.
    fs::remove_file(&d.out).unwrap();
    runner.run(event(2, EventKind::Down, Some("eth0"))).await;
    assert_eq!(
        d.lines(),
        [
            "down.d/01-not-for-up down eth0 id=2",
            "down/02-not-for-up down eth0 id=2",
            "10-a down eth0 id=2",
            "20-b down eth0 id=2",
            "30-same down eth0 id=2",
            "Z-upper down eth0 id=2",
        ]
    );
}

/// Runs one event through a script that dumps its argv and its exact initial environment
/// (`/proc/$$/environ`, what execve received, before the shell adds anything).
async fn arguments_and_environment(
    kind: EventKind,
    iface: Option<&str>,
) -> (Vec<String>, BTreeMap<String, String>) {
    let d = ScriptDir::new();
    let env_file = d.scratch("env");
    d.script(
        "10-dump",
        &format!(
            "printf '%s\\n' \"$#\" \"$1\" \"$2\" > '{args}'\n\
             tr '\\0' '\\n' < /proc/$$/environ > '{env}'",
            args = d.out.display(),
            env = env_file.display()
        ),
        0o755,
    );
    let outcomes = ScriptDirRunner::new(&d.dir, LONG)
        .run(event(41, kind, iface))
        .await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].result, ScriptResult::Exited { code: 0 });
    let env = fs::read_to_string(&env_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (d.lines(), env)
}

fn expected_env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn script_gets_iface_event_and_exactly_the_specs_environment() {
    // Something the daemon has in its own environment must not leak.
    assert!(std::env::var_os("PATH").is_some());
    let (args, env) = arguments_and_environment(EventKind::Down, Some("wwan0")).await;
    assert_eq!(args, ["2", "wwan0", "down"]);
    assert_eq!(
        env,
        expected_env(&[
            ("PATH", SCRIPT_PATH),
            ("DEVICE_IFACE", "wwan0"),
            ("DEVICE_IP_IFACE", "wwan0"),
            ("CONNECTION_ID", "profile-wwan0"),
            ("CONNECTION_UUID", "0b6f6c1e-4b1f-4c53-9e8d-2f6f3b1e7a10"),
            ("CONNECTIVITY_STATE", "LIMITED"),
            ("IP4_GATEWAY", "192.0.2.1"),
            ("IP4_NAMESERVERS", "192.0.2.53 198.51.100.53"),
            ("NETFAILOVER_EVENT_ID", "41"),
            ("NETFAILOVER_PREVIOUS_STATE", "FULL"),
        ])
    );
    assert!(!env.contains_key("HOME"));
}

#[tokio::test]
async fn connectivity_change_has_an_empty_first_argument_and_empty_device_variables() {
    let (args, env) = arguments_and_environment(EventKind::ConnectivityChange, None).await;
    assert_eq!(args, ["2", "", "connectivity-change"]);
    assert_eq!(env["DEVICE_IFACE"], "");
    assert_eq!(env["DEVICE_IP_IFACE"], "");
    assert_eq!(env["CONNECTION_ID"], "");
    assert_eq!(env["CONNECTIVITY_STATE"], "LIMITED");
    assert_eq!(env.len(), 10, "{env:?}");
}

#[tokio::test]
async fn unsafe_or_broken_entries_are_skipped_with_a_reason_and_good_ones_still_run() {
    test_setup!();
    let d = ScriptDir::new();
    d.reporter("00-good");
    d.reporter("up.d/01-good");
    let bad = [
        ("10-world-writable", 0o757, "writable by others"),
        ("11-group-writable", 0o775, "writable by its group"),
        ("12-setuid", 0o4755, "setuid"),
        ("13-setgid", 0o2755, "setgid"),
        ("14-not-executable", 0o644, "not executable"),
    ];
    for (rel, mode, _) in bad {
        let path = d.reporter(rel);
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    let not_root = d.reporter("15-not-root");
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("user nobody");
    nix::unistd::chown(&not_root, Some(nobody.uid), None).unwrap();
    fs::create_dir(d.dir.join("16-a-directory")).unwrap();
    symlink(d.dir.join("does-not-exist"), d.dir.join("17-broken-link")).unwrap();
    // A symlink to a good file runs, as with NetworkManager (which stat()s, following links).
    let target = d.reporter("up.d/.real-target");
    symlink(&target, d.dir.join("18-good-link")).unwrap();
    // Executable but not a valid executable: passes the checks, cannot be started.
    fs::write(d.dir.join("19-no-interpreter"), b"\x7fELF garbage").unwrap();
    fs::set_permissions(
        d.dir.join("19-no-interpreter"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    d.reporter("99-good");

    let outcomes = ScriptDirRunner::new(&d.dir, LONG)
        .run(event(5, EventKind::Up, Some("eth0")))
        .await;
    let by_name: BTreeMap<&str, &ScriptResult> = outcomes
        .iter()
        .map(|o| (o.script.as_str(), &o.result))
        .collect();
    let skipped_why = |name: &str| match by_name.get(name) {
        Some(ScriptResult::Skipped { why }) => why.clone(),
        other => panic!("{name}: expected Skipped, got {other:?}"),
    };
    for (rel, _, why) in bad {
        assert!(
            skipped_why(rel).contains(why),
            "{rel}: {}",
            skipped_why(rel)
        );
    }
    assert!(skipped_why("15-not-root").contains("not by root"));
    assert!(skipped_why("16-a-directory").contains("directory"));
    assert!(skipped_why("17-broken-link").contains("broken symlink"));
    assert!(skipped_why("19-no-interpreter").contains("could not be started"));
    for good in ["00-good", "up.d/01-good", "18-good-link", "99-good"] {
        assert_eq!(by_name[good], &ScriptResult::Exited { code: 0 }, "{good}");
    }
    // Only the good ones wrote (the link runs the target's body, which names the target).
    assert_eq!(
        d.lines(),
        [
            "00-good up eth0 id=5",
            "up.d/01-good up eth0 id=5",
            "up.d/.real-target up eth0 id=5",
            "99-good up eth0 id=5",
        ]
    );
}

#[test]
fn a_world_writable_mount_is_reported_once_with_the_option_to_change() {
    let d = ScriptDir::new();
    let mountinfo = d.scratch("mountinfo");
    let boot = d.dir.parent().unwrap().canonicalize().unwrap();
    fs::write(
        &mountinfo,
        format!(
            "22 1 0:21 / / rw,relatime - ext4 /dev/sda2 rw\n\
             30 22 8:1 / {} rw,relatime - vfat /dev/sda1 rw,fmask=0000,dmask=0000\n",
            boot.display()
        ),
    )
    .unwrap();
    let runner = ScriptDirRunner::with_mountinfo(&d.dir, LONG, &mountinfo);
    let problem = runner.mount_problem().expect("fmask=0000 must be reported");
    assert_eq!(problem.option, "fmask=0000");
    assert_eq!(problem.instead, "fmask=0022");
    assert_eq!(problem.mount_point, boot);

    fs::write(
        &mountinfo,
        format!(
            "30 22 8:1 / {} rw - vfat /dev/sda1 rw,fmask=0022,dmask=0022\n",
            boot.display()
        ),
    )
    .unwrap();
    assert!(ScriptDirRunner::with_mountinfo(&d.dir, LONG, &mountinfo)
        .mount_problem()
        .is_none());
}

#[tokio::test]
async fn failing_scripts_are_reported_and_do_not_stop_the_next() {
    let d = ScriptDir::new();
    d.script("10-exit-3", "exit 3", 0o755);
    d.script("20-killed", "kill -USR1 $$", 0o755);
    d.reporter("30-next");
    let outcomes = ScriptDirRunner::new(&d.dir, LONG)
        .run(event(9, EventKind::Down, Some("eth1")))
        .await;
    let results: Vec<_> = outcomes.iter().map(|o| o.result.clone()).collect();
    assert_eq!(
        results,
        [
            ScriptResult::Exited { code: 3 },
            ScriptResult::Signalled {
                signal: nix::sys::signal::Signal::SIGUSR1 as i32
            },
            ScriptResult::Exited { code: 0 },
        ]
    );
    assert_eq!(d.lines(), ["30-next down eth1 id=9"]);
}

#[tokio::test]
async fn a_script_past_its_timeout_dies_with_its_background_children_and_the_next_runs() {
    let d = ScriptDir::new();
    // Dies on SIGTERM, leaving nothing.
    let (leader_a, child_a) = (d.scratch("leader-a"), d.scratch("child-a"));
    d.script(
        "10-hangs",
        &format!(
            "sleep 1000 &\necho $! > '{}'\necho $$ > '{}'\nwhile :; do sleep 1; done",
            child_a.display(),
            leader_a.display()
        ),
        0o755,
    );
    // Ignores SIGTERM (so do its children: SIG_IGN survives fork and exec): needs SIGKILL.
    let (leader_b, child_b) = (d.scratch("leader-b"), d.scratch("child-b"));
    d.script(
        "20-ignores-term",
        &format!(
            "trap '' TERM\nsleep 1000 &\necho $! > '{}'\necho $$ > '{}'\nwhile :; do sleep 1; done",
            child_b.display(),
            leader_b.display()
        ),
        0o755,
    );
    d.reporter("30-next");
    let timeout = Duration::from_secs(2);
    let grace = Duration::from_secs(1);
    let runner = ScriptDirRunner::new(&d.dir, timeout).with_kill_grace(grace);
    let started = std::time::Instant::now();
    let outcomes = runner.run(event(3, EventKind::Up, Some("eth0"))).await;
    let took = started.elapsed();
    let results: Vec<_> = outcomes.iter().map(|o| o.result.clone()).collect();
    assert_eq!(
        results,
        [
            ScriptResult::TimedOut,
            ScriptResult::TimedOut,
            ScriptResult::Exited { code: 0 }
        ]
    );
    assert_eq!(d.lines(), ["30-next up eth0 id=3"]);
    for pid_file in [&leader_a, &child_a, &leader_b, &child_b] {
        let pid = read_pid(pid_file);
        assert!(
            wait_for(Duration::from_secs(10), || pid_is_dead(pid).then_some(())).is_some(),
            "{} (pid {pid}) still running",
            pid_file.display()
        );
    }
    // Bound: two timeouts, one grace (the TERM-ignoring one), plus generous slack.
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[tokio::test]
async fn dropping_the_run_future_kills_the_running_scripts_whole_group() {
    let d = ScriptDir::new();
    let (leader, child) = (d.scratch("leader"), d.scratch("child"));
    d.script(
        "10-hangs",
        &format!(
            "trap '' TERM\nsleep 1000 &\necho $! > '{}'\necho $$ > '{}'\nwhile :; do sleep 1; done",
            child.display(),
            leader.display()
        ),
        0o755,
    );
    d.reporter("20-never");
    let runner = ScriptDirRunner::new(&d.dir, LONG);
    let task = tokio::spawn(runner.run(event(4, EventKind::Up, Some("eth0"))));
    // Wait (without blocking the runtime) until the script has started its child.
    let mut waited = Duration::ZERO;
    while !(leader.exists() && child.exists()) {
        assert!(waited < LONG, "script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let (leader_pid, child_pid) = (read_pid(&leader), read_pid(&child));
    assert!(!pid_is_dead(leader_pid) && !pid_is_dead(child_pid));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    for pid in [leader_pid, child_pid] {
        assert!(
            wait_for(Duration::from_secs(10), || pid_is_dead(pid).then_some(())).is_some(),
            "pid {pid} survived the drop"
        );
    }
    assert!(d.lines().is_empty(), "the next script must not run");
}

/// A `Write` into a shared buffer, for capturing the log.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn output_is_logged_line_by_line_with_the_script_name() {
    let d = ScriptDir::new();
    d.script(
        "10-talks",
        "echo first line\necho to stderr >&2\nprintf 'no newline at end'",
        0o755,
    );
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Current-thread test runtime: the runner's future runs on this thread, under the guard.
    let outcomes = ScriptDirRunner::new(&d.dir, LONG)
        .run(event(77, EventKind::Up, Some("eth0")))
        .await;
    assert_eq!(outcomes[0].result, ScriptResult::Exited { code: 0 });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for (text, stream) in [
        ("first line", "stdout"),
        ("to stderr", "stderr"),
        ("no newline at end", "stdout"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{text:?} not logged:\n{log}"));
        assert!(line.contains("event_id=77"), "{line}");
        assert!(line.contains("script=10-talks"), "{line}");
        assert!(line.contains(&format!("stream=\"{stream}\"")), "{line}");
    }
}

#[tokio::test]
async fn a_background_child_holding_the_output_pipe_does_not_hold_up_the_next_script() {
    let d = ScriptDir::new();
    let child = d.scratch("child");
    // The background sleep inherits stdout and stderr, so the pipes never reach end-of-file
    // while it lives.
    d.script(
        "10-leaves-a-child",
        &format!("sleep 1000 &\necho $! > '{}'\necho done", child.display()),
        0o755,
    );
    d.reporter("20-next");
    let started = std::time::Instant::now();
    let outcomes = ScriptDirRunner::new(&d.dir, LONG)
        .run(event(8, EventKind::Up, Some("eth0")))
        .await;
    let took = started.elapsed();
    let child_pid = read_pid(&child);
    // A script that exits by itself keeps its background children, as with NetworkManager.
    let child_alive = !pid_is_dead(child_pid);
    // This test started it, so this test ends it, before any assertion can fail.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(outcomes[0].result, ScriptResult::Exited { code: 0 });
    assert_eq!(outcomes[1].result, ScriptResult::Exited { code: 0 });
    assert_eq!(d.lines(), ["20-next up eth0 id=8"]);
    assert!(child_alive);
    // Bounded by the drain grace (0.5 s), not by the child's 1 000 s.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[tokio::test]
async fn a_missing_directory_runs_nothing_and_a_fifo_is_skipped_without_blocking() {
    let d = ScriptDir::new();
    let missing = ScriptDirRunner::new(d.dir.join("absent"), LONG)
        .run(event(1, EventKind::Up, Some("eth0")))
        .await;
    assert!(missing.is_empty());

    // Opening a FIFO would block until a writer comes; the checks only stat() it.
    nix::unistd::mkfifo(
        &d.dir.join("10-fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .unwrap();
    d.reporter("20-good");
    let outcomes = tokio::time::timeout(
        LONG,
        ScriptDirRunner::new(&d.dir, LONG).run(event(2, EventKind::Up, Some("eth0"))),
    )
    .await
    .expect("a FIFO must not block the runner");
    match &outcomes[0].result {
        ScriptResult::Skipped { why } => assert!(why.contains("FIFO"), "{why}"),
        other => panic!("10-fifo: {other:?}"),
    }
    assert_eq!(outcomes[1].result, ScriptResult::Exited { code: 0 });
    assert_eq!(d.lines(), ["20-good up eth0 id=2"]);
}
