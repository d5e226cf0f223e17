//! The client side of the control socket (the CLI's `status`, `check`, `kill`, `events`):
//! every exchange runs under one total deadline, and a timeout says what it was waiting for.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::{ControlError, Reply, Request};

/// Total time the CLI gives one exchange by default (`--timeout`): the daemon answers in
/// milliseconds, so a few seconds only passes when it is stuck.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default total time for `check`, whose reply waits for the check itself (up to the
/// configured `check.timeout`, 20 s by default).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client was waiting for when its deadline passed (named in [`ControlError::Timeout`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Waiting {
    /// Connecting (the listener's backlog is full).
    Connect,
    /// Sending the request (the daemon reads nothing).
    Send,
    /// The reply (the connection was accepted, but no answer came).
    Reply,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiting::Connect => "to connect",
            Waiting::Send => "to send the request",
            Waiting::Reply => "for the reply",
        })
    }
}

/// The default total deadline of `request`: [`DEFAULT_CHECK_TIMEOUT`] for a check,
/// [`DEFAULT_TIMEOUT`] otherwise.
pub fn default_timeout(request: &Request) -> Duration {
    match request {
        Request::Check { .. } => DEFAULT_CHECK_TIMEOUT,
        _ => DEFAULT_TIMEOUT,
    }
}

/// One deadline for a whole exchange.
struct Deadline<'a> {
    at: Instant,
    total: Duration,
    path: &'a Path,
}

impl<'a> Deadline<'a> {
    fn new(path: &'a Path, total: Duration) -> Self {
        Self {
            at: Instant::now() + total,
            total,
            path,
        }
    }

    async fn run<T>(
        &self,
        waiting: Waiting,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, ControlError> {
        tokio::time::timeout_at(self.at, step)
            .await
            .map_err(|_| ControlError::Timeout {
                path: self.path.to_path_buf(),
                waiting,
                after: self.total,
            })
    }

    /// Connects, retrying while the listener's backlog is full (a unix socket refuses with
    /// `EAGAIN` instead of waiting).
    async fn connect(&self) -> Result<UnixStream, ControlError> {
        let attempt = async {
            loop {
                match UnixStream::connect(self.path).await {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => return other,
                }
            }
        };
        self.run(Waiting::Connect, attempt)
            .await?
            .map_err(|e| connect_error(self.path, e))
    }
}

/// Sends one request to the daemon on `path` and returns its `data`, within the request's
/// [`default_timeout`].
pub async fn request(path: &Path, request: &Request) -> Result<serde_json::Value, ControlError> {
    request_within(path, request, default_timeout(request)).await
}

/// [`request`] with an explicit total deadline (connect, send and reply together).
pub async fn request_within(
    path: &Path,
    request: &Request,
    total: Duration,
) -> Result<serde_json::Value, ControlError> {
    let deadline = Deadline::new(path, total);
    let stream = deadline.connect().await?;
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
    let write_result = deadline.run(Waiting::Send, write.write_all(&line)).await?;
    let mut reply = String::new();
    // The reply is bounded by what our own daemon sends; `take` guards against a stranger.
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 64 * 1024 * 1024));
    deadline
        .run(Waiting::Reply, reader.read_line(&mut reply))
        .await?
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
/// (`Ok`), `on_line` returns `false` (`Ok`), or the connection fails. Connecting and the first
/// line (the snapshot) must come within `first_line`; the stream after it has no deadline. A
/// daemon that refuses (not root, an older protocol) is reported as [`ControlError::Remote`].
pub async fn follow_lines(
    path: &Path,
    first_line: Duration,
    mut on_line: impl FnMut(serde_json::Value) -> bool,
) -> Result<(), ControlError> {
    let deadline = Deadline::new(path, first_line);
    let stream = deadline.connect().await?;
    let (read, mut write) = stream.into_split();
    let io_err = |error| ControlError::Socket {
        path: path.to_path_buf(),
        error,
    };
    let write_result = deadline
        .run(Waiting::Send, write.write_all(b"{\"cmd\":\"follow\"}\n"))
        .await?;
    // The server is our own root daemon; lines are bounded by its history and status.
    let mut lines = BufReader::new(read).lines();
    let mut first = true;
    loop {
        let next = if first {
            deadline.run(Waiting::Reply, lines.next_line()).await?
        } else {
            lines.next_line().await
        };
        let Some(line) = next.map_err(io_err)? else {
            break;
        };
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
