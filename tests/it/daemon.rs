//! The operator side of the daemon: the control socket (against a stub engine, and against a
//! client running as `nobody`) and, with the real engine, the built binary end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use netfailover::control::{self, ControlBackend, ControlError, Request};
use netfailover::engine::model::{Connectivity, IfaceName};
use netfailover::engine::ports::{ProbeReport, Verdict};
use netfailover::engine::status::{ActorStatus, EngineStatus, EventRecord};

/// An engine stand-in: a fixed status, checks that succeed for `eth0` only, kills of known
/// actor names.
struct Stub;

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

    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, String>> {
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
                Err(format!("{iface} is not managed"))
            }
        })
    }

    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if actor == "dispatcher" {
                Ok(())
            } else {
                Err(format!("no actor named {actor}"))
            }
        })
    }

    fn events(&self) -> LocalBoxFuture<'_, Vec<EventRecord>> {
        Box::pin(async { Vec::new() })
    }
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
struct StubServer {
    dir: TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubServer {
    fn start(idle: Duration) -> Self {
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
                let backend: Rc<dyn ControlBackend> = Rc::new(Stub);
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

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn connect(&self) -> UnixStream {
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

fn ask(path: &Path, request: Request) -> Result<serde_json::Value, ControlError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(control::request(path, &request))
}

fn reply_line(reader: &mut impl BufRead) -> serde_json::Value {
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
    if !netfailover::lab::netns::require_root("control_socket_refuses_a_non_root_peer") {
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
