//! The control socket: a unix stream socket (mode 0600, root peers only) speaking JSON lines,
//! server here, client in `control/client.rs`.
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
//! reply at once and the connection is closed, and every connection is bounded in time: a
//! request line (however slowly it trickles in) must be complete within [`IDLE_TIMEOUT`] and a
//! reply must be taken within it, so a misbehaving client holds a slot for at most that long.
//! [`MAX_CONNECTIONS`] are served at once; when all are taken, [`SPARE_CONNECTIONS`] more
//! serve one request each (the CLI's) under the short [`SPARE_TIMEOUT`].

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::LocalBoxFuture;
use futures::StreamExt as _;
use netfailover_actors::model::IfaceName;
use netfailover_actors::observe::EngineEvent;
use netfailover_actors::ports::ProbeReport;
use netfailover_actors::status::{EngineStatus, HistoryEntry};
use netfailover_actors::EngineError;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder, FramedRead};

use crate::agent::{Subscription, Update};

mod client;
pub use client::{
    default_timeout, follow_lines, request, request_within, Waiting, DEFAULT_CHECK_TIMEOUT,
    DEFAULT_TIMEOUT,
};

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

/// A connection whose next request line is not complete within this long is closed (idle, or
/// trickling bytes without a newline), and so is one that leaves a reply unread this long: a
/// misbehaving client holds a slot for at most this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once in regular slots.
pub const MAX_CONNECTIONS: usize = 64;

/// Spare slots, used only while every regular slot is taken: each serves one request (the
/// CLI's), whose line must come within [`SPARE_TIMEOUT`], then closes. More clients wait in the
/// kernel's backlog.
pub const SPARE_CONNECTIONS: usize = 8;

/// The line and reply deadline of a spare slot.
pub const SPARE_TIMEOUT: Duration = Duration::from_secs(2);

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
    #[error(
        "no answer from the daemon on {path}: timed out after {} waiting {waiting} \
         (--timeout sets the limit)",
        humantime::format_duration(*after)
    )]
    Timeout {
        path: PathBuf,
        waiting: Waiting,
        after: Duration,
    },
    #[error("{path} exists and is not a socket; refusing to replace it (remove it or choose another --socket)")]
    NotASocket { path: PathBuf },
    #[error("bad reply from the daemon on {path}: {message}")]
    Protocol { path: PathBuf, message: String },
    #[error("{message}")]
    Remote { message: String },
}

/// Binds the control socket at `path` with mode 0600.
///
/// A socket file nobody answers on is a leftover of a crashed daemon and is removed; one that
/// answers belongs to a running daemon, and starting a second one is refused. Anything else at
/// `path` (a regular file, a directory, a symlink) is refused, never removed.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    use std::os::unix::fs::FileTypeExt as _;
    let sock_err = |error| ControlError::Socket {
        path: path.to_path_buf(),
        error,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket {
                path: path.to_path_buf(),
            });
        }
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

/// How a connection is served: a regular slot, or a spare one (all regular slots taken).
#[derive(Clone, Copy)]
struct Limits {
    /// Longest wait for a whole request line, and for a reply to be taken.
    idle: Duration,
    /// Spare slot: one request, then the connection is closed.
    one_request: bool,
}

/// [`serve`] with an explicit idle timeout (tests use a short one).
pub async fn serve_with(
    listener: UnixListener,
    backend: Rc<dyn ControlBackend>,
    idle_timeout: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let spare = Arc::new(Semaphore::new(SPARE_CONNECTIONS));
    let regular = Limits {
        idle: idle_timeout,
        one_request: false,
    };
    let one_shot = Limits {
        idle: idle_timeout.min(SPARE_TIMEOUT),
        one_request: true,
    };
    loop {
        // Taking the slot before accepting leaves extra clients in the kernel backlog. A
        // regular slot is preferred; when all are taken, a spare one serves one request.
        let taken = match slots.clone().try_acquire_owned() {
            Ok(permit) => Ok((permit, regular)),
            Err(_) => tokio::select! {
                biased;
                permit = slots.clone().acquire_owned() => permit.map(|p| (p, regular)),
                permit = spare.clone().acquire_owned() => permit.map(|p| (p, one_shot)),
            },
        };
        let Ok((permit, limits)) = taken else {
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
            serve_connection(stream, backend, limits).await;
            drop(permit);
        });
    }
}

/// Request lines: `\n`-delimited chunks of at most [`MAX_LINE`] bytes, never buffering more.
/// Bytes, not `String`s (`LinesCodec`): a line that is not UTF-8 gets an error reply and the
/// connection stays usable. A half line at the end of input (client gone) is dropped.
struct RequestLines(AnyDelimiterCodec);

impl RequestLines {
    fn new() -> Self {
        Self(AnyDelimiterCodec::new_with_max_length(
            b"\n".to_vec(),
            Vec::new(),
            MAX_LINE,
        ))
    }
}

impl Decoder for RequestLines {
    type Item = Bytes;
    type Error = AnyDelimiterCodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        self.0.decode(buf)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        let line = self.0.decode(buf)?;
        if line.is_none() {
            buf.clear();
        }
        Ok(line)
    }
}

/// Writes `line` unless the client takes longer than `limit` to read it; `false` ends the
/// connection.
async fn send(write: &mut OwnedWriteHalf, line: &[u8], limit: Duration) -> bool {
    matches!(
        tokio::time::timeout(limit, write.write_all(line)).await,
        Ok(Ok(()))
    )
}

async fn serve_connection(stream: UnixStream, backend: Rc<dyn ControlBackend>, limits: Limits) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(error) => {
            tracing::warn!(%error, "control socket: no peer credentials; closing");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    if uid != 0 {
        tracing::warn!(uid, "control socket: refused a non-root peer");
        let reply = Reply::error(format!(
            "permission denied: the control socket accepts root (uid 0) only, not uid {uid}"
        ));
        send(&mut write, &reply.to_line(), limits.idle).await;
        return;
    }
    let mut lines = FramedRead::new(read, RequestLines::new());
    loop {
        // One deadline for the whole line: a client trickling bytes is cut like an idle one.
        let reply = match tokio::time::timeout(limits.idle, lines.next()).await {
            Err(_) | Ok(None) | Ok(Some(Err(AnyDelimiterCodecError::Io(_)))) => return,
            Ok(Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded))) => {
                let reply = Reply::error(format!(
                    "request line longer than {MAX_LINE} bytes; closing the connection"
                ));
                send(&mut write, &reply.to_line(), limits.idle).await;
                return;
            }
            Ok(Some(Ok(line))) if is_follow(&line) => match backend.subscribe() {
                Some(_) if limits.one_request => Reply::error(format!(
                    "the daemon serves {MAX_CONNECTIONS} connections already; follow later"
                )),
                Some(subscription) => {
                    follow(subscription, &mut lines, &mut write).await;
                    return;
                }
                None => Reply::error("this server does not stream events"),
            },
            Ok(Some(Ok(line))) => answer(&line, backend.as_ref()).await,
        };
        if !send(&mut write, &reply.to_line(), limits.idle).await || limits.one_request {
            return;
        }
    }
}

fn is_follow(line: &[u8]) -> bool {
    parse_request(line).is_ok_and(|r| r == Request::Follow)
}

/// Streams `subscription` to a follower until the engine stops, the follower goes away (closes,
/// sends anything, or takes no line for [`FOLLOW_WRITE_TIMEOUT`]). The engine never waits for
/// the follower: a slow one misses events and gets a `lagged` line and a fresh snapshot.
async fn follow(
    mut subscription: Subscription,
    lines: &mut FramedRead<OwnedReadHalf, RequestLines>,
    write: &mut OwnedWriteHalf,
) {
    // A follower only reads: anything sent after `follow`, EOF or an error ends the stream.
    if !lines.read_buffer().is_empty() {
        return;
    }
    let mut byte = [0u8; 1];
    loop {
        let update = tokio::select! {
            update = subscription.next() => update,
            _ = lines.get_mut().read(&mut byte) => return,
        };
        let line = update_line(update.as_ref());
        if !send(write, &line, FOLLOW_WRITE_TIMEOUT).await || update.is_none() {
            return;
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
    let request = match parse_request(line) {
        Ok(r) => r,
        Err(e) => return Reply::error(e),
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

/// Parses one request line; the error is the reply's text. Every request refuses fields it does
/// not have: serde's `deny_unknown_fields` does not reach the variants without fields of an
/// internally tagged enum (`status`, `events`, `follow`, `version`), so the fields sent are
/// compared with the request's own.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let line = trim_ascii(line);
    let request: Request = serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
    let sent: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
    let own = serde_json::to_value(&request).map_err(|e| format!("bad request: {e}"))?;
    match sent.keys().find(|key| own.get(key.as_str()).is_none()) {
        Some(field) => Err(format!(
            "bad request: unknown field `{field}` for cmd `{}`",
            own["cmd"].as_str().unwrap_or("?")
        )),
        None => Ok(request),
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
