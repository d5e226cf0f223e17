//! The control socket: a unix stream socket (mode 0600, root peers only) speaking JSON lines,
//! server and client.
//!
//! Requests are one JSON object per line: `{"cmd":"status"}`, `{"cmd":"check","iface":"eth0"}`,
//! `{"cmd":"kill","actor":"dispatcher"}`, `{"cmd":"events"}`, `{"cmd":"version"}`. Every
//! request gets one reply line: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
//! `{"cmd":"follow"}` instead turns the connection into a stream of `type`-tagged lines: a
//! snapshot, then each change as it happens (`lagged` when the reader fell behind). The whole
//! protocol, with examples, is in `docs/control.md`; [`PROTOCOL_VERSION`] is its version.
//!
//! The server talks to the engine through [`ControlBackend`], so it is tested with a stub and
//! runs on the real engine through `daemon::EngineBackend`. It is built to survive whatever a local
//! process sends: garbage gets an error reply and the connection stays usable, a line that ends
//! before its newline (client gone) is dropped, a line longer than [`MAX_LINE`] gets an error
//! reply and is discarded as it streams in (never buffered) before the connection is closed,
//! idle connections are closed, and the number of concurrent connections is bounded.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use netfailover_actors::model::IfaceName;
use netfailover_actors::observe::EngineEvent;
use netfailover_actors::ports::ProbeReport;
use netfailover_actors::status::{EngineStatus, HistoryEntry};
use netfailover_actors::EngineError;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use crate::agent::{Subscription, Update};

/// Version of the protocol documented in `docs/control.md`: a new request or a new field keeps
/// it; a change that breaks an existing client increments it.
pub const PROTOCOL_VERSION: u32 = 1;

/// A follower that does not take a line within this long is dropped (the broadcast buffer has
/// long overflowed for it by then; it would only get `lagged`).
pub const FOLLOW_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/netfailover.sock";

/// Longest request line accepted. Requests are a few dozen bytes; 64 KiB is far beyond any
/// legitimate one and small enough that a hostile client cannot make the daemon hold much.
pub const MAX_LINE: usize = 64 * 1024;

/// A connection that sends nothing for this long is closed, so forgotten clients cannot pin
/// connection slots forever.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once; more wait in the kernel's backlog until a slot frees.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client waits to connect and for each reply (a check takes up to the configured
/// total timeout, so the client's reply timeout is generous).
pub const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const CLIENT_REPLY_TIMEOUT: Duration = Duration::from_secs(90);

/// One request line.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Status,
    Check {
        iface: String,
    },
    Kill {
        actor: String,
    },
    Events,
    /// Stream the state, then every change (see the module doc).
    Follow,
    /// The protocol version and the daemon's version.
    Version,
}

/// One reply line.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn data(value: serde_json::Value) -> Self {
        Self {
            ok: true,
            data: Some(value),
            error: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            data: None,
            error: Some(message.into()),
        }
    }

    /// The reply as one line, newline included.
    fn to_line(&self) -> Vec<u8> {
        // Serialising a `Reply` cannot fail: its fields are plain JSON values and strings.
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
        line.push(b'\n');
        line
    }
}

/// What the control socket needs from the engine.
pub trait ControlBackend {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus>;
    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>>;
    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>>;
    /// Dispatcher events and flow resets, oldest first.
    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>>;
    /// The configuration's problems as printed (`FILE:LINE: error: …`), shown by `status` as
    /// `config_problems`.
    fn config_problems(&self) -> Vec<String> {
        Vec::new()
    }
    /// The snapshot-then-changes stream of `follow`; `None` if this backend has none.
    fn subscribe(&self) -> Option<Subscription> {
        None
    }
}

/// Control socket errors.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another netfailover daemon already answers on {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("control socket {path}: {error}")]
    Socket { path: PathBuf, error: io::Error },
    #[error(
        "the daemon is not running (nothing listens on {path}); start it with `netfailover run`"
    )]
    NotRunning { path: PathBuf },
    #[error(
        "permission denied on {path}: the control socket is root only (run this command as root)"
    )]
    PermissionDenied { path: PathBuf },
    #[error("timed out talking to the daemon on {path}")]
    Timeout { path: PathBuf },
    #[error("bad reply from the daemon on {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("{message}")]
    Remote { message: String },
}

/// Binds the control socket at `path` with mode 0600.
///
/// A socket file nobody answers on is a leftover of a crashed daemon and is removed; one that
/// answers belongs to a running daemon, and starting a second one is refused.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let sock_err = |error| ControlError::Socket {
        path: path.to_path_buf(),
        error,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::AlreadyRunning {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(sock_err)?;
    }
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(sock_err)?;
        }
    }
    let listener = UnixListener::bind(path).map_err(sock_err)?;
    // Between bind and chmod the file has the umask's mode; the peer-credential check below
    // refuses non-root peers anyway, so that short window grants nothing.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(sock_err)?;
    Ok(listener)
}

/// Accepts connections forever (until the future is dropped), one local task per connection.
/// Must run inside a tokio `LocalSet` (an actix System is one).
pub async fn serve(listener: UnixListener, backend: Rc<dyn ControlBackend>) {
    serve_with(listener, backend, IDLE_TIMEOUT).await
}

/// [`serve`] with an explicit idle timeout (tests use a short one).
pub async fn serve_with(
    listener: UnixListener,
    backend: Rc<dyn ControlBackend>,
    idle_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Taking the slot before accepting leaves extra clients in the kernel backlog.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "control socket: accept failed");
                // Out of descriptors and similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let backend = backend.clone();
        tokio::task::spawn_local(async move {
            serve_connection(stream, backend, idle_timeout).await;
            drop(permit);
        });
    }
}

/// Why a connection loop stopped reading.
enum LineRead {
    Line(Vec<u8>),
    /// The peer closed (possibly mid-line: the partial line is dropped), went idle, or failed.
    Closed,
    /// The line passed [`MAX_LINE`]; it has been discarded up to its newline (or EOF).
    TooLong,
}

/// Reads one line of at most [`MAX_LINE`] bytes without ever buffering more than that.
async fn read_bounded_line(
    reader: &mut BufReader<tokio::net::unix::ReadHalf<'_>>,
    idle_timeout: Duration,
) -> LineRead {
    let mut line = Vec::new();
    let mut overlong = false;
    loop {
        let chunk = match tokio::time::timeout(idle_timeout, reader.fill_buf()).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(_)) | Err(_) => return LineRead::Closed,
        };
        if chunk.is_empty() {
            return if overlong {
                LineRead::TooLong
            } else {
                LineRead::Closed
            };
        }
        let (taken, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(pos) => (pos, true),
            None => (chunk.len(), false),
        };
        if !overlong {
            if line.len() + taken > MAX_LINE {
                overlong = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(&chunk[..taken]);
            }
        }
        reader.consume(if done { taken + 1 } else { taken });
        if done {
            return if overlong {
                LineRead::TooLong
            } else {
                LineRead::Line(line)
            };
        }
    }
}

async fn serve_connection(
    mut stream: UnixStream,
    backend: Rc<dyn ControlBackend>,
    idle_timeout: Duration,
) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(error) => {
            tracing::warn!(%error, "control socket: no peer credentials; closing");
            return;
        }
    };
    if uid != 0 {
        tracing::warn!(uid, "control socket: refused a non-root peer");
        let reply = Reply::error(format!(
            "permission denied: the control socket accepts root (uid 0) only, not uid {uid}"
        ));
        let _ = stream.write_all(&reply.to_line()).await;
        return;
    }
    let (read, mut write) = stream.split();
    let mut reader = BufReader::with_capacity(8 * 1024, read);
    loop {
        let reply = match read_bounded_line(&mut reader, idle_timeout).await {
            LineRead::Closed => return,
            LineRead::TooLong => {
                let reply = Reply::error(format!(
                    "request line longer than {MAX_LINE} bytes; closing the connection"
                ));
                let _ = write.write_all(&reply.to_line()).await;
                return;
            }
            LineRead::Line(line) if is_follow(&line) => match backend.subscribe() {
                Some(subscription) => {
                    follow(subscription, &mut reader, &mut write).await;
                    return;
                }
                None => Reply::error("this server does not stream events"),
            },
            LineRead::Line(line) => answer(&line, backend.as_ref()).await,
        };
        if write.write_all(&reply.to_line()).await.is_err() {
            return;
        }
    }
}

fn is_follow(line: &[u8]) -> bool {
    serde_json::from_slice::<Request>(trim_ascii(line)).is_ok_and(|r| r == Request::Follow)
}

/// Streams `subscription` to a follower until the engine stops, the follower goes away (closes,
/// sends anything, or takes no line for [`FOLLOW_WRITE_TIMEOUT`]). The engine never waits for
/// the follower: a slow one misses events and gets a `lagged` line and a fresh snapshot.
async fn follow(
    mut subscription: Subscription,
    reader: &mut BufReader<tokio::net::unix::ReadHalf<'_>>,
    write: &mut tokio::net::unix::WriteHalf<'_>,
) {
    loop {
        let update = tokio::select! {
            update = subscription.next() => update,
            // A follower only reads: EOF, an error or a stray request all end the stream.
            _ = reader.fill_buf() => return,
        };
        let line = update_line(update.as_ref());
        match tokio::time::timeout(FOLLOW_WRITE_TIMEOUT, write.write_all(&line)).await {
            Ok(Ok(())) if update.is_some() => {}
            _ => return,
        }
    }
}

/// One line of a `follow` stream; `None` is the engine's end.
pub fn update_line(update: Option<&Update>) -> Vec<u8> {
    let value = match update {
        None => serde_json::json!({ "type": "stopped" }),
        Some(Update::Snapshot(s)) => serde_json::json!({
            "type": "snapshot",
            "protocol": PROTOCOL_VERSION,
            "status": s.status,
            "events": s.events,
        }),
        Some(Update::Lagged { missed }) => serde_json::json!({ "type": "lagged", "count": missed }),
        Some(Update::Event(event)) => {
            let mut value = serde_json::to_value(event).unwrap_or_default();
            // A dispatcher event is also an `events --json` entry (`event`, `delivered`,
            // `scripts`), so a client parses both the same way.
            if let (EngineEvent::Event(e), Some(map)) = (event, value.as_object_mut()) {
                map.insert("event".into(), serde_json::to_value(e).unwrap_or_default());
                map.insert("delivered".into(), false.into());
                map.insert("scripts".into(), serde_json::Value::Array(Vec::new()));
            }
            value
        }
    };
    // Serialising a `serde_json::Value` cannot fail.
    let mut line = serde_json::to_vec(&value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Answers one request line.
pub async fn answer(line: &[u8], backend: &dyn ControlBackend) -> Reply {
    let line = trim_ascii(line);
    if line.is_empty() {
        return Reply::error("empty request; send e.g. {\"cmd\":\"status\"}");
    }
    let request: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return Reply::error(format!("bad request: {e}")),
    };
    let to_value = |r: Result<serde_json::Value, serde_json::Error>| match r {
        Ok(v) => Reply::data(v),
        Err(e) => Reply::error(format!("internal: cannot encode reply: {e}")),
    };
    match request {
        Request::Status => to_value(serde_json::to_value(backend.status().await).map(
            |mut status| {
                if let serde_json::Value::Object(fields) = &mut status {
                    fields.insert(
                        "config_problems".to_string(),
                        backend.config_problems().into(),
                    );
                }
                status
            },
        )),
        Request::Events => to_value(serde_json::to_value(backend.events().await)),
        Request::Check { iface } => match IfaceName::new(iface) {
            Err(e) => Reply::error(e.to_string()),
            Ok(iface) => match backend.check(iface).await {
                Ok(report) => to_value(serde_json::to_value(report)),
                // The edge: the typed error becomes the reply's text here.
                Err(e) => Reply::error(e.to_string()),
            },
        },
        Request::Kill { actor } => match backend.kill(actor).await {
            Ok(()) => Reply::data(serde_json::Value::Null),
            Err(e) => Reply::error(e.to_string()),
        },
        Request::Version => Reply::data(serde_json::json!({
            "protocol": PROTOCOL_VERSION,
            "version": env!("CARGO_PKG_VERSION"),
        })),
        // Handled by the connection loop, which streams; here only a stray one from a caller
        // of `answer` lands.
        Request::Follow => Reply::error("follow streams; send it as a connection's request"),
    }
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Sends one request to the daemon on `path` and returns its `data` (client side of the CLI).
pub async fn request(path: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    let timeout_err = || ControlError::Timeout {
        path: path.to_path_buf(),
    };
    let stream = tokio::time::timeout(CLIENT_CONNECT_TIMEOUT, UnixStream::connect(path))
        .await
        .map_err(|_| timeout_err())?
        .map_err(|e| connect_error(path, e))?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| ControlError::Protocol {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    line.push(b'\n');
    let io_err = |error| ControlError::Socket {
        path: path.to_path_buf(),
        error,
    };
    // A daemon that refuses us (not root) replies and closes before reading: the write may
    // fail with EPIPE while its explanation waits in our receive buffer, so read it anyway.
    let write_result = write.write_all(&line).await;
    let mut reply = String::new();
    // The reply is bounded by what our own daemon sends; `take` guards against a stranger.
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 64 * 1024 * 1024));
    tokio::time::timeout(CLIENT_REPLY_TIMEOUT, reader.read_line(&mut reply))
        .await
        .map_err(|_| timeout_err())?
        .map_err(io_err)?;
    if reply.is_empty() {
        write_result.map_err(io_err)?;
    }
    let reply: Reply = serde_json::from_str(&reply).map_err(|e| ControlError::Protocol {
        path: path.to_path_buf(),
        message: if reply.is_empty() {
            "connection closed without a reply".into()
        } else {
            e.to_string()
        },
    })?;
    if reply.ok {
        Ok(reply.data.unwrap_or(serde_json::Value::Null))
    } else {
        Err(ControlError::Remote {
            message: reply.error.unwrap_or_else(|| "unknown error".into()),
        })
    }
}

/// `follow` client: sends the request and hands every line to `on_line` until the daemon stops
/// (`Ok`), `on_line` returns `false` (`Ok`), or the connection fails. A daemon that refuses
/// (not root, an older protocol) is reported as [`ControlError::Remote`].
pub async fn follow_lines(
    path: &Path,
    mut on_line: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), ControlError> {
    let stream = tokio::time::timeout(CLIENT_CONNECT_TIMEOUT, UnixStream::connect(path))
        .await
        .map_err(|_| ControlError::Timeout {
            path: path.to_path_buf(),
        })?
        .map_err(|e| connect_error(path, e))?;
    let (read, mut write) = stream.into_split();
    let io_err = |error| ControlError::Socket {
        path: path.to_path_buf(),
        error,
    };
    let write_result = write.write_all(b"{\"cmd\":\"follow\"}\n").await;
    // The server is our own root daemon; lines are bounded by its history and status.
    let mut lines = BufReader::new(read).lines();
    let mut first = true;
    while let Some(line) = lines.next_line().await.map_err(io_err)? {
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| ControlError::Protocol {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if first && value.get("ok") == Some(&serde_json::Value::Bool(false)) {
            let message = value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_string();
            return Err(ControlError::Remote { message });
        }
        first = false;
        if !on_line(value) {
            return Ok(());
        }
    }
    if first {
        write_result.map_err(io_err)?;
    }
    Ok(())
}

fn connect_error(path: &Path, e: io::Error) -> ControlError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning { path }
        }
        io::ErrorKind::PermissionDenied => ControlError::PermissionDenied { path },
        _ => ControlError::Socket { path, error: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_as_documented() {
        let parse = |s: &str| serde_json::from_str::<Request>(s).ok();
        assert_eq!(parse(r#"{"cmd":"status"}"#), Some(Request::Status));
        assert_eq!(
            parse(r#"{"cmd":"check","iface":"eth0"}"#),
            Some(Request::Check {
                iface: "eth0".into()
            })
        );
        assert_eq!(
            parse(r#"{"cmd":"kill","actor":"dispatcher"}"#),
            Some(Request::Kill {
                actor: "dispatcher".into()
            })
        );
        assert_eq!(parse(r#"{"cmd":"events"}"#), Some(Request::Events));
        assert_eq!(parse(r#"{"cmd":"follow"}"#), Some(Request::Follow));
        assert_eq!(parse(r#"{"cmd":"version"}"#), Some(Request::Version));
        assert_eq!(parse(r#"{"cmd":"reboot"}"#), None);
        assert_eq!(parse(r#"{"cmd":"check"}"#), None);
    }

    #[test]
    fn replies_serialise_as_documented() {
        let ok = String::from_utf8(Reply::data(serde_json::json!(1)).to_line()).unwrap();
        assert_eq!(ok, "{\"ok\":true,\"data\":1}\n");
        let err = String::from_utf8(Reply::error("no").to_line()).unwrap();
        assert_eq!(err, "{\"ok\":false,\"error\":\"no\"}\n");
    }
}
