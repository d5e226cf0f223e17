//! Running the scripts of one event: [`ScriptDirRunner`], the real `ScriptRunner` port.
//!
//! One script at a time, in the order [`super::discover`] gives, each as a tokio child process:
//! - arguments `$1` = interface (empty for `connectivity-change`), `$2` = event name;
//! - environment cleared and set to exactly [`script_environment`] (absent values are empty
//!   strings, so a script can rely on every variable being set), working directory `/`, stdin
//!   `/dev/null`;
//! - its own process group (`setpgid(0, 0)` in the child), so the whole group can be signalled;
//! - stdout and stderr logged line by line (lines cut at [`MAX_LINE_BYTES`]) with the fields
//!   `event_id`, `script`, `stream`;
//! - past `script_timeout`: SIGTERM to the group, then SIGKILL to whatever of the group is left
//!   [`DEFAULT_KILL_GRACE`] later; result `TimedOut`;
//! - a non-zero exit or a signal is logged as a warning and reported, never an error;
//! - dropping the future (the Dispatcher stopped or was killed) SIGKILLs the running script's
//!   whole group through a drop guard, so nothing of it keeps running.
//!
//! Background processes left by a script that exits by itself are not killed (NetworkManager
//! does not either; `(sleep 30; reboot) &` is a known recovery idiom); their output is read for
//! [`DRAIN_GRACE`] after the script exits and then no longer (a later write gets EPIPE).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use netfailover_actors::model::{Event, EventKind};
use netfailover_actors::ports::{ScriptOutcome, ScriptResult, ScriptRunner};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::discover::{discover, mount_problem, DiscoveredScript, MountProblem};

/// The only `PATH` scripts get: the standard system directories, nothing from the daemon's own
/// environment (which may come from a unit file or a shell).
pub const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Time between SIGTERM and SIGKILL for a script past its timeout: long enough for a shell
/// script to run a `trap ... TERM` cleanup, short enough not to hold up the next event.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// How long a script's output is still read after it exited: background children that keep
/// the pipes open must not hold up the next script.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Longest log line taken from a script; longer lines are cut into pieces of this size, so a
/// script printing without newlines cannot make the daemon buffer without bound.
pub const MAX_LINE_BYTES: usize = 4096;

/// Where the mount options of the dispatcher directory are read.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// How often a spawn that fails with ETXTBSY is retried: the script file is still open for
/// writing somewhere (an editor saving it, or another thread's fork holding the write fd for an
/// instant), which passes by itself.
const SPAWN_BUSY_RETRIES: u32 = 5;
const SPAWN_BUSY_PAUSE: Duration = Duration::from_millis(20);

/// Poll period while waiting for a signalled process group to empty.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// Runs the scripts in a `dispatcher.d/` directory (the real `ScriptRunner`).
#[derive(Clone, Debug)]
pub struct ScriptDirRunner {
    inner: Arc<RunnerConfig>,
}

#[derive(Debug)]
struct RunnerConfig {
    dir: PathBuf,
    timeout: Duration,
    kill_grace: Duration,
    mount_problem: Option<MountProblem>,
}

impl ScriptDirRunner {
    /// A runner for `dispatcher_dir` with a per-script timeout. Checks the directory's mount
    /// options once (through `/proc/self/mountinfo`) and warns if they make every script fail
    /// the security checks.
    pub fn new(dispatcher_dir: impl Into<PathBuf>, script_timeout: Duration) -> Self {
        Self::with_mountinfo(dispatcher_dir, script_timeout, Path::new(MOUNTINFO))
    }

    /// As [`ScriptDirRunner::new`], reading mount options from `mountinfo` (tests).
    pub fn with_mountinfo(
        dispatcher_dir: impl Into<PathBuf>,
        script_timeout: Duration,
        mountinfo: &Path,
    ) -> Self {
        let dir = dispatcher_dir.into();
        let problem = mount_problem(&dir, mountinfo);
        if let Some(p) = &problem {
            tracing::warn!(dir = %dir.display(), "dispatcher: {p}");
        }
        Self {
            inner: Arc::new(RunnerConfig {
                dir,
                timeout: script_timeout,
                kill_grace: DEFAULT_KILL_GRACE,
                mount_problem: problem,
            }),
        }
    }

    /// Sets the time between SIGTERM and SIGKILL (default [`DEFAULT_KILL_GRACE`]).
    pub fn with_kill_grace(self, grace: Duration) -> Self {
        let c = &self.inner;
        Self {
            inner: Arc::new(RunnerConfig {
                dir: c.dir.clone(),
                timeout: c.timeout,
                kill_grace: grace,
                mount_problem: c.mount_problem.clone(),
            }),
        }
    }

    /// What the mount check found when the runner was made.
    pub fn mount_problem(&self) -> Option<&MountProblem> {
        self.inner.mount_problem.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

impl ScriptRunner for ScriptDirRunner {
    fn run(&self, event: Event) -> BoxFuture<'static, Vec<ScriptOutcome>> {
        let cfg = Arc::clone(&self.inner);
        async move {
            let dir = cfg.dir.clone();
            let kind = event.kind;
            let scripts = tokio::task::spawn_blocking(move || discover(&dir, kind))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!(event_id = event.id, error = %e, "dispatcher: script discovery failed");
                    Vec::new()
                });
            let mut outcomes = Vec::with_capacity(scripts.len());
            for script in scripts {
                outcomes.push(run_or_skip(&cfg, &event, script).await);
            }
            outcomes
        }
        .boxed()
    }
}

async fn run_or_skip(cfg: &RunnerConfig, event: &Event, script: DiscoveredScript) -> ScriptOutcome {
    if let Some(reason) = &script.skip {
        let hint = cfg
            .mount_problem
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        tracing::warn!(event_id = event.id, script = %script.name, "dispatcher: not running {}: it {reason}{hint}", script.path.display());
        return ScriptOutcome {
            script: script.name,
            result: ScriptResult::Skipped {
                why: reason.to_string(),
            },
            elapsed: Duration::ZERO,
        };
    }
    let started = Instant::now();
    let result = run_one(cfg, event, &script).await;
    let elapsed = started.elapsed();
    match &result {
        ScriptResult::Exited { code: 0 } => {
            tracing::info!(event_id = event.id, script = %script.name, ?elapsed, "dispatcher: script finished")
        }
        other => {
            tracing::warn!(event_id = event.id, script = %script.name, ?elapsed, result = ?other, "dispatcher: script failed")
        }
    }
    ScriptOutcome {
        script: script.name,
        result,
        elapsed,
    }
}

/// The environment of a script for `event` (docs/semantics.md §5), in a fixed order. Absent values are empty
/// strings; `IP4_NAMESERVERS` is space-separated.
pub fn script_environment(event: &Event) -> Vec<(&'static str, String)> {
    let iface = event
        .iface
        .as_ref()
        .map(|i| i.to_string())
        .unwrap_or_default();
    let mut env = vec![
        ("PATH", SCRIPT_PATH.to_string()),
        ("DEVICE_IFACE", iface.clone()),
        ("DEVICE_IP_IFACE", iface),
        (
            "CONNECTION_ID",
            event.connection_id.clone().unwrap_or_default(),
        ),
        (
            "CONNECTION_UUID",
            event.connection_uuid.clone().unwrap_or_default(),
        ),
        ("CONNECTIVITY_STATE", event.state.as_str().to_string()),
        (
            "IP4_GATEWAY",
            event.ip4_gateway.map(|g| g.to_string()).unwrap_or_default(),
        ),
        (
            "IP4_NAMESERVERS",
            event
                .ip4_nameservers
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("NETFAILOVER_EVENT_ID", event.id.to_string()),
        (
            "NETFAILOVER_PREVIOUS_STATE",
            event.previous.as_str().to_string(),
        ),
    ];
    // A `recovery` event's rung (docs/recovery.md).
    if let Some(r) = &event.recovery {
        env.push(("NETFAILOVER_RECOVERY_ACTION", r.action.clone()));
        env.push(("NETFAILOVER_RECOVERY_RUNG", r.rung.to_string()));
        env.push((
            "NETFAILOVER_NOT_FULL_SECONDS",
            r.not_full_seconds.to_string(),
        ));
    }
    // A `budget` event's threshold (docs/dispatcher.md).
    if let Some(b) = &event.budget {
        env.push(("NETFAILOVER_BUDGET_PERCENT", b.percent.to_string()));
        env.push(("NETFAILOVER_BUDGET_BYTES", b.budget_bytes.to_string()));
        env.push(("NETFAILOVER_PROBE_BYTES", b.probe_bytes.to_string()));
    }
    env
}

/// `$1`: the interface, empty for `connectivity-change` (and whenever an event has none).
fn first_argument(event: &Event) -> String {
    match (event.kind, &event.iface) {
        (EventKind::ConnectivityChange, _) | (_, None) => String::new(),
        (_, Some(iface)) => iface.to_string(),
    }
}

/// Starts the script, retrying briefly while its file is busy (ETXTBSY).
async fn spawn(event: &Event, script: &DiscoveredScript) -> std::io::Result<Child> {
    let mut attempt = 0;
    loop {
        let mut cmd = Command::new(&script.path);
        cmd.arg(first_argument(event))
            .arg(event.kind.as_str())
            .env_clear()
            .envs(script_environment(event))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Belt and braces with the group guard: tokio kills and reaps the leader too.
            .kill_on_drop(true);
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < SPAWN_BUSY_RETRIES => {
                attempt += 1;
                tokio::time::sleep(SPAWN_BUSY_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Runs one script to its end or its timeout.
async fn run_one(cfg: &RunnerConfig, event: &Event, script: &DiscoveredScript) -> ScriptResult {
    let mut child = match spawn(event, script).await {
        Ok(c) => c,
        Err(e) => {
            return ScriptResult::Skipped {
                why: format!("could not be started: {e}"),
            }
        }
    };
    // A child not yet waited for always has an id; if it somehow has none there is no group to
    // signal, and the guard is simply not armed.
    let mut guard = ProcessGroupGuard::new(child.id());
    let log = LogTags {
        event_id: event.id,
        script: script.name.clone(),
    };
    let mut out = OutputPipe::new(child.stdout.take(), "stdout");
    let mut err = OutputPipe::new(child.stderr.take(), "stderr");

    let deadline = tokio::time::sleep(cfg.timeout);
    tokio::pin!(deadline);
    let finished: Option<std::io::Result<ExitStatus>> = loop {
        tokio::select! {
            n = out.read(), if out.is_open() => out.consume(n, &log),
            n = err.read(), if err.is_open() => err.consume(n, &log),
            status = child.wait() => break Some(status),
            _ = &mut deadline => break None,
        }
    };

    let result = match finished {
        Some(status) => {
            drain(&mut out, &mut err, &log, DRAIN_GRACE).await;
            // It exited by itself: whatever it left in the background may live on.
            guard.disarm();
            exit_result(status)
        }
        None => {
            tracing::warn!(event_id = event.id, script = %script.name, timeout = ?cfg.timeout,
                "dispatcher: script ran past script_timeout; sending SIGTERM to its process group");
            terminate_group(
                &mut child,
                &mut guard,
                &mut out,
                &mut err,
                &log,
                cfg.kill_grace,
            )
            .await;
            ScriptResult::TimedOut
        }
    };
    out.flush(&log);
    err.flush(&log);
    result
}

fn exit_result(status: std::io::Result<ExitStatus>) -> ScriptResult {
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => ScriptResult::Exited { code },
            (None, Some(signal)) => ScriptResult::Signalled { signal },
            // Neither code nor signal cannot happen for a reaped child on Unix; report it as a
            // failure rather than success.
            (None, None) => ScriptResult::Exited { code: -1 },
        },
        Err(e) => ScriptResult::Skipped {
            why: format!("could not be waited for: {e}"),
        },
    }
}

/// SIGTERM to the group, up to `grace` for the group to empty (logging its output meanwhile),
/// then SIGKILL to what is left, then reaps the leader.
async fn terminate_group(
    child: &mut Child,
    guard: &mut ProcessGroupGuard,
    out: &mut OutputPipe,
    err: &mut OutputPipe,
    log: &LogTags,
    grace: Duration,
) {
    guard.signal(Signal::SIGTERM);
    let until = Instant::now() + grace;
    let mut leader_reaped = false;
    // Wait for the leader first (it must be reaped before its group can empty), then for the
    // rest of the group.
    while Instant::now() < until {
        if !leader_reaped {
            tokio::select! {
                n = out.read(), if out.is_open() => out.consume(n, log),
                n = err.read(), if err.is_open() => err.consume(n, log),
                _ = child.wait() => leader_reaped = true,
                _ = tokio::time::sleep_until(until) => {}
            }
        } else if guard.group_alive() {
            tokio::select! {
                n = out.read(), if out.is_open() => out.consume(n, log),
                n = err.read(), if err.is_open() => err.consume(n, log),
                _ = tokio::time::sleep(GROUP_POLL) => {}
            }
        } else {
            break;
        }
    }
    if guard.group_alive() {
        tracing::warn!(event_id = log.event_id, script = %log.script,
            "dispatcher: script's process group outlived SIGTERM by {grace:?}; sending SIGKILL");
        guard.signal(Signal::SIGKILL);
    }
    if !leader_reaped {
        // After SIGKILL the leader dies at once unless it is stuck in the kernel; do not wait
        // for that forever (tokio reaps it later since it was spawned with kill_on_drop).
        let _ = tokio::time::timeout(grace, child.wait()).await;
    }
    guard.disarm();
}

/// Reads what is left in the pipes until both close or `grace` passes.
async fn drain(out: &mut OutputPipe, err: &mut OutputPipe, log: &LogTags, grace: Duration) {
    let until = tokio::time::sleep(grace);
    tokio::pin!(until);
    while out.is_open() || err.is_open() {
        tokio::select! {
            n = out.read(), if out.is_open() => out.consume(n, log),
            n = err.read(), if err.is_open() => err.consume(n, log),
            _ = &mut until => break,
        }
    }
}

/// Tracing fields of a script's log lines.
struct LogTags {
    event_id: u64,
    script: String,
}

/// One of a script's output pipes, read in chunks and logged by line.
struct OutputPipe {
    reader: Option<Box<dyn AsyncRead + Send + Unpin>>,
    stream: &'static str,
    buf: Vec<u8>,
    lines: LineSplitter,
}

impl OutputPipe {
    fn new<R: AsyncRead + Send + Unpin + 'static>(reader: Option<R>, stream: &'static str) -> Self {
        Self {
            reader: reader.map(|r| Box::new(r) as Box<dyn AsyncRead + Send + Unpin>),
            stream,
            buf: vec![0; MAX_LINE_BYTES],
            lines: LineSplitter::new(MAX_LINE_BYTES),
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Reads one chunk; cancel-safe (tokio's `read` loses nothing when dropped before ready).
    async fn read(&mut self) -> std::io::Result<usize> {
        match self.reader.as_mut() {
            Some(r) => r.read(&mut self.buf).await,
            None => Ok(0),
        }
    }

    fn consume(&mut self, n: std::io::Result<usize>, log: &LogTags) {
        match n {
            Ok(0) | Err(_) => self.reader = None,
            Ok(n) => {
                for line in self.lines.push(&self.buf[..n]) {
                    self.log(&line, log);
                }
            }
        }
    }

    fn flush(&mut self, log: &LogTags) {
        if let Some(line) = self.lines.finish() {
            self.log(&line, log);
        }
    }

    fn log(&self, line: &str, log: &LogTags) {
        tracing::info!(event_id = log.event_id, script = %log.script, stream = self.stream, "{line}");
    }
}

/// Splits a byte stream into lines of at most `max` bytes (invalid UTF-8 replaced, `\r\n`
/// trimmed).
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            pending: Vec::new(),
            max: max.max(1),
        }
    }

    /// Feeds bytes; returns the lines completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take());
            } else {
                self.pending.push(b);
                if self.pending.len() >= self.max {
                    lines.push(self.take());
                }
            }
        }
        lines
    }

    /// The last unterminated line, if any.
    pub fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut line = std::mem::take(&mut self.pending);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// Kills a script's whole process group when dropped while armed: the port's contract that
/// dropping the `run` future leaves nothing running.
struct ProcessGroupGuard {
    pgid: Option<Pid>,
}

impl ProcessGroupGuard {
    /// The child was spawned with `process_group(0)`, so its pid is its group id.
    fn new(pid: Option<u32>) -> Self {
        Self {
            pgid: pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw),
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is already gone) is the normal end of the story.
            let _ = killpg(pgid, signal);
        }
    }

    /// Some process (a zombie included) is still in the group.
    fn group_alive(&self) -> bool {
        self.pgid.is_some_and(|pgid| killpg(pgid, None).is_ok())
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            tracing::warn!(
                pgid = pgid.as_raw(),
                "dispatcher: stopped mid-script; killing the script's process group"
            );
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
