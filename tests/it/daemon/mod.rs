//! The operator side of the daemon: the control socket (against a stub engine, and against a
//! client running as `nobody`) and, with the real engine, the built binary end to end.

mod follow;
mod lifecycle;
mod reload;
mod socket;

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

use netfailover_lab::daemon::DaemonProcess;
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
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

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub(crate) fn status(&self) -> Option<EngineStatus> {
        serde_json::from_value(ask(&self.socket(), Request::Status).ok()?).ok()
    }

    /// Checks of `iface` so far, every verdict (0 when the daemon does not answer).
    pub(crate) fn checks_of(&self, iface: &str) -> u64 {
        self.status()
            .and_then(|s| s.interfaces.into_iter().find(|i| i.name.as_str() == iface))
            .map_or(0, |i| i.checks.by_verdict.values().sum())
    }

    /// `config_problems` of `status`, as printed.
    pub(crate) fn config_problems(&self) -> Option<Vec<String>> {
        let status = ask(&self.socket(), Request::Status).ok()?;
        serde_json::from_value(status.get("config_problems")?.clone()).ok()
    }

    /// Runs the CLI (as root) against this daemon.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
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
