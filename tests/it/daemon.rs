//! The operator side of the daemon: the control socket (against a stub engine, and against a
//! client running as `nobody`) and, with the real engine, the built binary end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use netfailover::control::{self, ControlBackend, ControlError, Request};
use netfailover::engine::model::{Connectivity, IfaceName};
use netfailover::engine::ports::{ProbeReport, Verdict};
use netfailover::engine::status::{ActorStatus, EngineStatus, EventRecord, HistoryEntry};
use netfailover::engine::EngineError;

/// An engine stand-in: a fixed status, checks that succeed for `eth0` only, kills of known
/// actor names.
pub(crate) struct Stub;

impl ControlBackend for Stub {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus> {
        Box::pin(async {
            EngineStatus {
                connectivity: Connectivity::Full,
                actors: vec![ActorStatus {
                    name: "dispatcher".into(),
                    running: true,
                    restarts: 0,
                    kills: 0,
                    last_failure: None,
                }],
                ..Default::default()
            }
        })
    }

    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>> {
        Box::pin(async move {
            if iface.as_str() == "eth0" {
                Ok(ProbeReport {
                    verdict: Verdict::Full,
                    reason: "HTTP 204".into(),
                    bytes: 500,
                    dns_bytes: 100,
                    elapsed: Duration::from_millis(3),
                })
            } else {
                Err(EngineError::CannotCheck {
                    iface: iface.to_string(),
                    reason: "not managed".into(),
                })
            }
        })
    }

    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            if actor == "dispatcher" {
                Ok(())
            } else {
                Err(EngineError::UnknownActor { name: actor })
            }
        })
    }

    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>> {
        Box::pin(async { Vec::new() })
    }
}

/// The dispatcher events of an `events --json` answer (flow resets left out).
pub fn dispatcher_events(json: &[u8]) -> Vec<EventRecord> {
    let all: Vec<HistoryEntry> = serde_json::from_slice(json).unwrap();
    all.into_iter()
        .filter_map(|e| match e {
            HistoryEntry::Event(r) => Some(r),
            HistoryEntry::FlowsReset { .. } => None,
        })
        .collect()
}

/// A directory under /tmp that `nobody` can traverse, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("nf-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The stub server on its own thread (a tokio LocalSet, as inside the actix System).
pub(crate) struct StubServer {
    dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubServer {
    pub(crate) fn start(idle: Duration) -> Self {
        Self::start_with(idle, || Rc::new(Stub))
    }

    /// The server on another backend (built on the server's thread: backends are `Rc`).
    fn start_with(
        idle: Duration,
        backend: impl FnOnce() -> Rc<dyn ControlBackend> + Send + 'static,
    ) -> Self {
        let dir = TempDir::new("ctl");
        let path = dir.path().join("sock");
        let listener_path = path.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = control::bind(&listener_path).unwrap();
                ready_tx.send(()).unwrap();
                let backend = backend();
                tokio::select! {
                    _ = control::serve_with(listener, backend, idle) => {}
                    _ = stop_rx => {}
                }
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub(crate) fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn ask(path: &Path, request: Request) -> Result<serde_json::Value, ControlError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(control::request(path, &request))
}

pub(crate) fn reply_line(reader: &mut impl BufRead) -> serde_json::Value {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn control_socket_answers_every_verb() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let mode = std::fs::metadata(server.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let status = ask(&server.socket(), Request::Status).unwrap();
    assert_eq!(status["connectivity"], "FULL");
    assert_eq!(status["actors"][0]["name"], "dispatcher");
    let check = ask(
        &server.socket(),
        Request::Check {
            iface: "eth0".into(),
        },
    )
    .unwrap();
    assert_eq!(check["verdict"], "FULL");
    let err = ask(
        &server.socket(),
        Request::Check {
            iface: "wlan9".into(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not managed"), "{err}");
    let bad_name = ask(
        &server.socket(),
        Request::Check {
            iface: "a-name-far-too-long".into(),
        },
    )
    .unwrap_err();
    assert!(bad_name.to_string().contains("15"), "{bad_name}");
    assert!(ask(
        &server.socket(),
        Request::Kill {
            actor: "dispatcher".into()
        }
    )
    .is_ok());
    assert!(ask(&server.socket(), Request::Kill { actor: "x".into() }).is_err());
    assert_eq!(
        ask(&server.socket(), Request::Events).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn control_socket_survives_garbage_on_one_connection() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let mut conn = server.connect();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for garbage in [
        "not json\n",
        "{\"cmd\":\"reboot\"}\n",
        "\n",
        "[1,2,3]\n",
        "\u{0}\u{1}\u{2}\n",
    ] {
        conn.write_all(garbage.as_bytes()).unwrap();
        let reply = reply_line(&mut reader);
        assert_eq!(reply["ok"], false, "{garbage:?}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Invalid UTF-8 too.
    conn.write_all(b"\xff\xfe\n").unwrap();
    assert_eq!(reply_line(&mut reader)["ok"], false);
    // Still usable.
    conn.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let reply = reply_line(&mut reader);
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["data"]["connectivity"], "FULL");
}

#[test]
fn control_socket_drops_half_lines_quietly() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    {
        let mut conn = server.connect();
        conn.write_all(b"{\"cmd\":\"sta").unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        // No reply for a half line: the server just closes.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    assert!(ask(&server.socket(), Request::Status).is_ok());
}

#[test]
fn control_socket_rejects_a_10mb_line_without_buffering_it() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let conn = server.connect();
    let mut writer = conn.try_clone().unwrap();
    // Write from another thread: the server answers as soon as the line passes 64 KiB.
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..10 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"\n{\"cmd\":\"status\"}\n");
    });
    let mut reader = BufReader::new(conn);
    let reply = reply_line(&mut reader);
    assert_eq!(reply["ok"], false);
    assert!(reply["error"].as_str().unwrap().contains("longer than"));
    // The connection is closed after the error: the status request after the long line is
    // never answered.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    sender.join().unwrap();
    assert!(ask(&server.socket(), Request::Status).is_ok());
}

#[test]
fn control_socket_serves_many_clients_at_once() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let path = server.socket();
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || ask(&path, Request::Status).map(|_| ()))
        })
        .collect();
    for c in clients {
        c.join().unwrap().unwrap();
    }
}

#[test]
fn control_socket_closes_idle_connections() {
    let server = StubServer::start(Duration::from_millis(200));
    let mut conn = server.connect();
    let mut buf = [0u8; 16];
    // EOF (0 bytes) once the idle timeout passes; the read timeout bounds the wait.
    assert_eq!(conn.read(&mut buf).unwrap(), 0);
}

#[test]
fn control_socket_refuses_a_second_daemon_and_replaces_a_stale_file() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    match control::bind(&server.socket()) {
        Err(ControlError::AlreadyRunning { .. }) => {}
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    let dir = TempDir::new("stale");
    let stale = dir.path().join("sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { control::bind(&stale).unwrap() });
}

#[test]
fn client_says_when_the_daemon_is_not_running() {
    let dir = TempDir::new("none");
    let err = ask(&dir.path().join("sock"), Request::Status).unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
    assert!(err.to_string().contains("not running"));
}

/// Runs the CLI as `nobody`.
fn cli_as_nobody(args: &[&str]) -> std::process::Output {
    std::process::Command::new("timeout")
        .args([
            "20",
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_netfailover"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn control_socket_refuses_a_non_root_peer() {
    if !netfailover_lab::netns::require_root("control_socket_refuses_a_non_root_peer") {
        return;
    }
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let socket = server.socket();
    let socket_arg = socket.to_str().unwrap();
    // Mode 0600: the kernel refuses the connection.
    let out = cli_as_nobody(&["status", "--socket", socket_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
    // Even if someone loosens the mode, the peer-credential check refuses.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = cli_as_nobody(&["status", "--socket", socket_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("uid 0"), "{stderr}");
    // Root still gets through.
    assert!(ask(&socket, Request::Status).is_ok());
}

// ---------------------------------------------------------------------------------------------
// End to end: the built binary in a lab world
// ---------------------------------------------------------------------------------------------

use netfailover_lab::netns::wait_for;
use netfailover_lab::timeline::DaemonProcess;
use netfailover_lab::world::{World, CHECK_ADDR};

/// A lab world with the daemon running in its device namespace. Checks go to an IP-literal
/// URI on the Internet namespace where nothing listens (connection refused → LIMITED), unless
/// `interval` is 0 (checks off). Dropping it stops the daemon and deletes the namespaces.
pub(crate) struct E2e {
    pub(crate) daemon: Option<DaemonProcess>,
    pub(crate) world: World,
    pub(crate) dir: TempDir,
    env: Vec<(String, String)>,
}

impl E2e {
    pub(crate) fn start(interval: u32) -> Self {
        Self::start_with_env(interval, Vec::new())
    }

    fn start_with_env(interval: u32, env: Vec<(String, String)>) -> Self {
        Self::start_prepared(interval, env, |_, _| {})
    }

    /// Like `start_with_env`, with `prepare` run on the world and the boot directory before the
    /// daemon starts (start the servers, edit a keyfile, ...).
    pub(crate) fn start_prepared(
        interval: u32,
        env: Vec<(String, String)>,
        prepare: impl FnOnce(&mut World, &Path),
    ) -> Self {
        let mut world = World::build().unwrap();
        let dir = TempDir::new("e2e");
        let boot = dir.path().join("boot");
        world
            .write_boot_dir(
                &boot,
                netfailover_lab::world::FAST_SETTINGS,
                &dir.path().join("state"),
                &dir.path().join("scripts.log"),
            )
            .unwrap();
        std::fs::write(
            boot.join("config.json"),
            format!(
                "{{\"dnsServers\":\"null\",\"os\":{{\"network\":{{\"connectivity\":\
                 {{\"uri\":\"http://{CHECK_ADDR}/connectivity-check\",\"interval\":\"{interval}\"}}}}}}}}"
            ),
        )
        .unwrap();
        prepare(&mut world, &boot);
        let mut e2e = Self {
            daemon: None,
            world,
            dir,
            env,
        };
        e2e.spawn();
        e2e
    }

    fn write_settings(&self, settings: &str) {
        std::fs::write(self.dir.path().join("boot/netfailover.toml"), settings).unwrap();
    }

    pub(crate) fn spawn(&mut self) {
        let daemon = DaemonProcess::start(
            Path::new(env!("CARGO_BIN_EXE_netfailover")),
            &self.world,
            &self.dir.path().join("boot"),
            &self.socket(),
            &self.dir.path().join("daemon.log"),
            &self
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        self.daemon = Some(daemon);
        let ready = wait_for(Duration::from_secs(20), || {
            let s = self.status()?;
            (s.interfaces.len() == 3).then_some(())
        });
        assert!(ready.is_some(), "daemon not ready; log:\n{}", self.log());
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub(crate) fn status(&self) -> Option<EngineStatus> {
        serde_json::from_value(ask(&self.socket(), Request::Status).ok()?).ok()
    }

    /// `config_problems` of `status`, as printed.
    pub(crate) fn config_problems(&self) -> Option<Vec<String>> {
        let status = ask(&self.socket(), Request::Status).ok()?;
        serde_json::from_value(status.get("config_problems")?.clone()).ok()
    }

    /// Runs the CLI (as root) against this daemon.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("timeout")
            .arg("30")
            .arg(env!("CARGO_BIN_EXE_netfailover"))
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .unwrap()
    }

    /// IPv4 default routes in the device namespace as (dev, metric) pairs.
    pub(crate) fn default_routes(&self) -> Vec<(String, u32)> {
        parse_default_routes(&self.world.default_routes().unwrap())
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.daemon.as_ref().unwrap().id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
    }

    pub(crate) fn wait_exit(&mut self) -> std::process::ExitStatus {
        let daemon = self.daemon.as_mut().unwrap();
        let status = wait_for(Duration::from_secs(20), || daemon.exited());
        self.daemon = None;
        status.expect("daemon did not exit")
    }
}

pub(crate) fn parse_default_routes(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let after = |key: &str| {
                words
                    .iter()
                    .position(|w| *w == key)
                    .and_then(|p| words.get(p + 1))
            };
            let dev = after("dev")?.to_string();
            let metric = after("metric").and_then(|m| m.parse().ok()).unwrap_or(0);
            Some((dev, metric))
        })
        .collect()
}

pub(crate) fn sorted(mut v: Vec<(String, u32)>) -> Vec<(String, u32)> {
    v.sort();
    v
}

pub(crate) fn routes(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    sorted(pairs.iter().map(|(d, m)| (d.to_string(), *m)).collect())
}

#[test]
fn daemon_status_kill_and_events_end_to_end() {
    if !netfailover_lab::netns::require_root("daemon_status_kill_and_events_end_to_end") {
        return;
    }
    let e2e = E2e::start(2);
    let status = e2e.status().unwrap();
    let actors: Vec<String> = status.actors.iter().map(|a| a.name.clone()).collect();
    for want in [
        "link-watcher",
        "route-manager",
        "probe-scheduler",
        "dispatcher",
        "traffic-watcher",
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

    // Kill each actor; each comes back (running, one more kill counted).
    for actor in &actors {
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
    if !netfailover_lab::netns::require_root("daemon_sigterm_leaves_configured_metrics") {
        return;
    }
    clean_shutdown_leaves_configured_metrics(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn daemon_sigint_is_a_clean_shutdown_too() {
    if !netfailover_lab::netns::require_root("daemon_sigint_is_a_clean_shutdown_too") {
        return;
    }
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
    if !netfailover_lab::netns::require_root(
        "daemon_sigkill_and_restart_adopts_routes_without_duplicates",
    ) {
        return;
    }
    let mut e2e = E2e::start(0);
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
fn daemon_sighup_follows_a_keyfile_metric_without_a_gap() {
    if !netfailover_lab::netns::require_root("daemon_sighup_follows_a_keyfile_metric_without_a_gap")
    {
        return;
    }
    let e2e = E2e::start(0);
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

// ---------------------------------------------------------------------------------------------
// The control socket and metrics on the real engine (fake ports, in process)
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn control_socket_and_metrics_drive_the_engine() {
    use netfailover::daemon::EngineBackend;
    use netfailover::engine::fake::FakeWorld;
    use netfailover::engine::model::{Config, LinkKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.probe.set("eth0", Verdict::Full);
    world
        .kernel
        .add_route_by_hand(netfailover::engine::model::KernelRoute {
            family: netfailover::engine::model::Family::V4,
            ifindex: 2,
            gateway: Some("192.0.2.1".parse().unwrap()),
            metric: 100,
            protocol: 4,
        });
    let mut config = Config::default();
    config.check.interval = Duration::from_secs(1);
    let engine = netfailover::engine::start(config, world.ports());

    let dir = TempDir::new("engine");
    let socket = dir.path().join("sock");
    let listener = control::bind(&socket).unwrap();
    tokio::task::spawn_local(control::serve(
        listener,
        Rc::new(EngineBackend(engine.clone())),
    ));
    let metrics_listener = netfailover::metrics::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let board = engine.clone();
    tokio::task::spawn_local(netfailover::metrics::serve(
        metrics_listener,
        Rc::new(move || board.status()),
    ));

    let status_of = |socket: PathBuf| async move {
        let data = control::request(&socket, &Request::Status).await.ok()?;
        serde_json::from_value::<EngineStatus>(data).ok()
    };
    // The adopted eth0 becomes FULL.
    let mut full = false;
    for _ in 0..100 {
        if let Some(s) = status_of(socket.clone()).await {
            full = s
                .interfaces
                .iter()
                .any(|i| i.name.as_str() == "eth0" && i.connectivity == Connectivity::Full);
            if full {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(full, "eth0 never FULL");

    // Kill every actor over the socket; each is running again with its kill counted.
    let actors: Vec<String> = status_of(socket.clone())
        .await
        .unwrap()
        .actors
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert!(actors.iter().any(|a| a == "prober:eth0"), "{actors:?}");
    for actor in &actors {
        control::request(
            &socket,
            &Request::Kill {
                actor: actor.clone(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("kill {actor}: {e}"));
        let mut back = false;
        for _ in 0..100 {
            if let Some(s) = status_of(socket.clone()).await {
                back = s
                    .actors
                    .iter()
                    .any(|a| &a.name == actor && a.running && a.kills >= 1);
                if back {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(back, "{actor} not back");
    }
    let check = control::request(
        &socket,
        &Request::Check {
            iface: "eth0".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(check["verdict"], "FULL");
    let events = control::request(&socket, &Request::Events).await.unwrap();
    assert!(events.as_array().is_some_and(|e| !e.is_empty()), "{events}");

    // A scrape reflects the same board.
    let mut conn = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("netfailover_interface_link_up{iface=\"eth0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("netfailover_actor_restarts_total{actor=\"dispatcher\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("netfailover_checks_total{iface=\"eth0\",result=\"FULL\"}"),
        "{text}"
    );

    engine.shutdown().await.unwrap();
}

#[test]
fn daemon_talks_to_systemd_when_notify_socket_is_set() {
    if !netfailover_lab::netns::require_root("daemon_talks_to_systemd_when_notify_socket_is_set") {
        return;
    }
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

#[test]
fn daemon_sighup_applies_a_new_check_uri() {
    if !netfailover_lab::netns::require_root("daemon_sighup_applies_a_new_check_uri") {
        return;
    }
    let e2e = E2e::start(1);
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
    if !netfailover_lab::netns::require_root(
        "daemon_sigkill_with_pending_events_delivers_them_after_restart",
    ) {
        return;
    }
    let mut e2e = E2e::start(0);
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

// ---------------------------------------------------------------------------------------------
// A broken netfailover.toml never stops the daemon (README, "Decisions")
// ---------------------------------------------------------------------------------------------

/// `[check] down_count = "two"`: the daemon starts, manages routes, keeps `state_dir` from the
/// same file, and names the bad key in its log, `status` and `check-config`.
#[test]
fn daemon_with_a_bad_key_runs_on_the_rest_of_its_settings() {
    if !netfailover_lab::netns::require_root(
        "daemon_with_a_bad_key_runs_on_the_rest_of_its_settings",
    ) {
        return;
    }
    let e2e = E2e::start_prepared(0, Vec::new(), |_, boot| {
        let state_dir = boot.with_file_name("kept-state");
        let settings = format!(
            "state_dir = \"{}\"\n[check]\ndown_count = \"two\"\nup_count = 3\n",
            state_dir.display()
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
                && l.contains("netfailover.toml:3: error: check.down_count")),
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
    if !netfailover_lab::netns::require_root("daemon_with_an_unreadable_ca_file_runs") {
        return;
    }
    let e2e = E2e::start_prepared(2, Vec::new(), |_, boot| {
        std::fs::write(boot.join("not-a-cert.pem"), "not a certificate\n").unwrap();
        let settings = format!(
            "state_dir = \"{}\"\n{}ca_file = \"not-a-cert.pem\"\n",
            boot.with_file_name("state").display(),
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
    if !netfailover_lab::netns::require_root(
        "daemon_sighup_with_a_broken_file_keeps_the_last_good_values",
    ) {
        return;
    }
    let settings = |state: &Path, penalty: &str, extra: &str| {
        format!(
            "state_dir = \"{}\"\n{}{extra}[route]\npenalty = {penalty}\n",
            state.display(),
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
    // Several check intervals later the old penalty still holds.
    std::thread::sleep(Duration::from_secs(3));
    let routes = e2e.default_routes();
    assert!(routes.contains(&("eth0".to_string(), 5_100)), "{routes:?}");
    assert!(!routes.contains(&("eth0".to_string(), 7_100)), "{routes:?}");

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

// ---------------------------------------------------------------------------------------------
// `follow`: the snapshot, then every change (stub engine, then the real daemon)
// ---------------------------------------------------------------------------------------------

use netfailover::agent::Subscription;
use netfailover::engine::model::{Event, EventKind};
use netfailover::engine::observe::{EngineEvent, Snapshot};
use tokio::sync::broadcast;

/// Buffer of the stub's change channel: small, so a stalled reader lags quickly.
const STUB_BUFFER: usize = 8;

/// The stub plus a change channel the test feeds.
struct FollowStub(broadcast::Sender<EngineEvent>);

impl ControlBackend for FollowStub {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus> {
        Stub.status()
    }
    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>> {
        Box::pin(async move {
            Err(EngineError::CannotCheck {
                iface: iface.to_string(),
                reason: "not in this stub".into(),
            })
        })
    }
    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { Err(EngineError::UnknownActor { name: actor }) })
    }
    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>> {
        Box::pin(async { Vec::new() })
    }
    fn subscribe(&self) -> Option<Subscription> {
        let tx = self.0.clone();
        Some(Subscription::new(move || {
            let mut snapshot = Snapshot::default();
            snapshot.status.connectivity = Connectivity::Full;
            (snapshot, tx.subscribe())
        }))
    }
}

fn link_change(n: u32) -> EngineEvent {
    let (link, previous) = if n.is_multiple_of(2) {
        ("down", "up")
    } else {
        ("up", "down")
    };
    EngineEvent::Link {
        iface: IfaceName::new("eth0").unwrap(),
        link: link.into(),
        previous: previous.into(),
    }
}

fn down_event(id: u64) -> EngineEvent {
    EngineEvent::Event(Event {
        id,
        kind: EventKind::Down,
        iface: Some(IfaceName::new("eth0").unwrap()),
        state: Connectivity::None,
        previous: Connectivity::Full,
        reason: "carrier lost".into(),
        connection_id: None,
        connection_uuid: None,
        ip4_gateway: None,
        ip4_nameservers: vec![],
        at_unix_ms: 0,
        recovery: None,
    })
}

/// Sends `{"cmd":"follow"}` on a new connection.
fn follower(server: &StubServer) -> BufReader<UnixStream> {
    let mut s = server.connect();
    s.write_all(b"{\"cmd\":\"follow\"}\n").unwrap();
    BufReader::new(s)
}

#[test]
fn follow_streams_the_snapshot_then_each_change_and_tells_a_slow_reader_it_lagged() {
    let (tx, _) = broadcast::channel(STUB_BUFFER);
    let feed = tx.clone();
    let server = StubServer::start_with(control::IDLE_TIMEOUT, move || Rc::new(FollowStub(tx)));
    let mut reader = follower(&server);
    let first = reply_line(&mut reader);
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["protocol"], control::PROTOCOL_VERSION);
    assert_eq!(first["status"]["connectivity"], "FULL");
    assert!(first["events"].is_array());

    feed.send(link_change(0)).unwrap();
    let link = reply_line(&mut reader);
    assert_eq!(
        link,
        serde_json::json!({"type":"link","iface":"eth0","link":"down","previous":"up"})
    );
    // A dispatcher event: its own fields, and the shape of an `events --json` entry.
    feed.send(down_event(7)).unwrap();
    let down = reply_line(&mut reader);
    assert_eq!(down["type"], "event");
    assert_eq!(
        (&down["id"], &down["kind"], &down["iface"]),
        (&7.into(), &"down".into(), &"eth0".into())
    );
    assert_eq!(
        (&down["state"], &down["previous"]),
        (&"NONE".into(), &"FULL".into())
    );
    assert_eq!(down["reason"], "carrier lost");
    let entry: EventRecord = serde_json::from_value(down.clone()).unwrap();
    assert_eq!((entry.event.id, entry.delivered), (7, false));

    // A reader that stops reading: the server blocks on its socket, never the sender, and the
    // reader is told how much it missed, then gets a fresh snapshot.
    let sent = 20_000;
    for n in 0..sent {
        let _ = feed.send(link_change(n));
    }
    let mut lagged = None;
    let mut lines = 0;
    while lines < sent + 10 {
        let line = reply_line(&mut reader);
        lines += 1;
        if line["type"] == "lagged" {
            lagged = Some(line["count"].as_u64().unwrap());
            let next = reply_line(&mut reader);
            assert_eq!(next["type"], "snapshot", "a snapshot follows a lag");
            break;
        }
    }
    let missed = lagged.expect("no lagged line");
    assert!(missed > 0 && missed < sent as u64, "{missed}");
    // Still streaming after the lag. A marker can itself be lost to a second lag while the
    // server drains the burst (it is then part of that lag's fresh snapshot), so send markers
    // until one comes through.
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut arrived = false;
    // Kept across timeouts: a timed-out read leaves the partial line in it.
    let mut line = String::new();
    'markers: for marker in 0..40 {
        feed.send(down_event(1000 + marker)).unwrap();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if !line.ends_with('\n') {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            if value["type"] == "event" {
                assert!(value["id"].as_u64().unwrap() >= 1000, "{value}");
                arrived = true;
                break 'markers;
            }
            line.clear();
        }
    }
    assert!(arrived, "the marker never arrived");
}

#[test]
fn a_follower_vanishing_mid_stream_disturbs_nothing() {
    let (tx, _) = broadcast::channel(STUB_BUFFER);
    let feed = tx.clone();
    let server = StubServer::start_with(control::IDLE_TIMEOUT, move || Rc::new(FollowStub(tx)));
    for round in 0..3 {
        let mut reader = follower(&server);
        assert_eq!(reply_line(&mut reader)["type"], "snapshot");
        feed.send(link_change(round)).unwrap();
        assert_eq!(reply_line(&mut reader)["type"], "link");
        drop(reader); // gone mid-stream, without a word
        for n in 0..100 {
            let _ = feed.send(link_change(n));
        }
    }
    // The server noticed each departure: no follower left on the channel.
    let gone = wait_for(Duration::from_secs(10), || {
        (feed.receiver_count() == 0).then_some(())
    });
    assert!(gone.is_some(), "{} followers left", feed.receiver_count());
    assert!(ask(&server.socket(), Request::Status).is_ok());
    let version = ask(&server.socket(), Request::Version).unwrap();
    assert_eq!(version["protocol"], control::PROTOCOL_VERSION);
}

/// Lines of `netfailover events --follow --json`, stamped as they arrive.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(std::time::Instant, serde_json::Value)>,
}

impl Follower {
    fn start(e2e: &E2e) -> Self {
        let mut child = std::process::Command::new("timeout")
            .arg("120")
            .arg(env!("CARGO_BIN_EXE_netfailover"))
            .args(["events", "--follow", "--json", "--socket"])
            .arg(e2e.socket())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send((std::time::Instant::now(), value)).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line, within a generous bound.
    fn next(&self) -> Option<(std::time::Instant, serde_json::Value)> {
        self.lines.recv_timeout(Duration::from_secs(20)).ok()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_follow_sees_a_carrier_loss_in_order_and_survives_the_client_vanishing() {
    if !netfailover_lab::netns::require_root(
        "events_follow_sees_a_carrier_loss_in_order_and_survives_the_client_vanishing",
    ) {
        return;
    }
    let e2e = E2e::start(0);
    let follower = Follower::start(&e2e);
    let (_, snapshot) = follower.next().expect("no snapshot");
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let eth0 = snapshot["status"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .cloned()
        .unwrap();
    assert_eq!(eth0["link"], "up");
    let metric = eth0["effective_metric"].clone();
    assert!(metric.is_u64(), "{eth0}");

    let pulled = std::time::Instant::now();
    e2e.world.pull_cable("eth0").unwrap();
    let mut seen = Vec::new();
    while let Some((at, line)) = follower.next() {
        let done = line["type"] == "event" && line["kind"] == "down";
        seen.push((at, line));
        if done {
            break;
        }
    }
    let of_eth0: Vec<&serde_json::Value> = seen
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l["iface"] == "eth0")
        .collect();
    let kinds: Vec<String> = of_eth0
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                l["type"].as_str().unwrap(),
                l["kind"]
                    .as_str()
                    .map(|k| format!(":{k}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let at = |want: &str| {
        kinds
            .iter()
            .position(|k| k == want)
            .unwrap_or_else(|| panic!("no {want} in {kinds:?}; log:\n{}", e2e.log()))
    };
    // Link down → route gone → NONE → the dispatcher's `down`.
    assert!(
        at("link") < at("route") && at("route") < at("connectivity"),
        "{kinds:?}"
    );
    assert!(at("connectivity") < at("event:down"), "{kinds:?}");
    let link = of_eth0[at("link")];
    assert_eq!(
        (&link["previous"], &link["link"]),
        (&"up".into(), &"down".into())
    );
    let route = of_eth0[at("route")];
    assert_eq!(route["old_metric"], metric);
    assert!(route["new_metric"].is_null(), "{route}");
    assert_eq!(of_eth0[at("connectivity")]["state"], "NONE");
    let (down_at, down) = seen.last().unwrap();
    eprintln!(
        "events --follow: carrier pulled → down event line after {:?}",
        down_at.duration_since(pulled)
    );
    assert_eq!(down["event"]["kind"], "down", "an events --json entry too");
    assert!(
        down_at.duration_since(pulled) < Duration::from_secs(1),
        "the down event took {:?}",
        down_at.duration_since(pulled)
    );

    // The client vanishes mid-stream (SIGKILL), changes keep coming: the daemon goes on.
    follower.kill();
    e2e.world.plug_cable("eth0").unwrap();
    let back = wait_for(Duration::from_secs(20), || {
        let s = e2e.status()?;
        let eth0 = s.interfaces.iter().find(|i| i.name.as_str() == "eth0")?;
        (eth0.link == "up" && eth0.effective_metric.is_some()).then_some(())
    });
    assert!(
        back.is_some(),
        "daemon stuck after the follower vanished; log:\n{}",
        e2e.log()
    );
    // A new follower starts from a snapshot with eth0 up again.
    let again = Follower::start(&e2e);
    let (_, snapshot) = again.next().expect("no snapshot for a new follower");
    assert_eq!(snapshot["type"], "snapshot");
    again.kill();

    // The Python example client (examples/control.py) follows the same stream.
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok()
    {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/control.py");
        let mut client = std::process::Command::new("timeout")
            .args(["30", "python3"])
            .arg(script)
            .arg("--socket")
            .arg(e2e.socket())
            .args(["--count", "3"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = client.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Pull the cable once it follows (its snapshot is printed).
        let mut text = String::new();
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("snapshot:") {
                e2e.world.pull_cable("eth0").unwrap();
            }
        }
        let status = client.wait().unwrap();
        assert!(status.success(), "{text}");
        assert!(
            text.contains("protocol 1") && text.contains("snapshot:"),
            "{text}"
        );
        assert!(text.contains("eth0: link down"), "{text}");
    } else {
        eprintln!("python3 not installed: examples/control.py not exercised");
    }
    assert!(!e2e.log().contains("panicked"), "{}", e2e.log());
}
