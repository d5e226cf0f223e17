//! `netfailover run`: load the config, build the kernel ports, start the engine in an actix
//! System, serve the control socket and metrics, talk to systemd, and turn signals into
//! shutdown (SIGTERM/SIGINT) and reload (SIGHUP).

use std::path::Path;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use netfailover_actors::model::IfaceName;
use netfailover_actors::ports::ProbeReport;
use netfailover_actors::status::{EngineStatus, EventRecord};
use netfailover_actors::EngineHandle;

use crate::cli::{ConfigArgs, LogFormat, RunArgs};
use crate::control::ControlBackend;

/// Daemon start-up and run errors (each ends `run` with exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("the engine is not available in this build yet")]
    NotWired,
    #[error("starting the runtime: {0}")]
    Runtime(std::io::Error),
}

/// Sets up tracing to stderr: plain lines (journald adds time and unit) or JSON objects.
/// `RUST_LOG` overrides the default `info` level.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// systemd's notification socket, used only when `NOTIFY_SOCKET` is set (sd-notify does
/// nothing otherwise).
pub struct Notifier {
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Self {
        Self {
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    fn send(&self, state: &[sd_notify::NotifyState]) {
        if let Err(error) = sd_notify::notify(state) {
            tracing::warn!(%error, "sd_notify failed");
        }
    }

    /// READY=1 with the first STATUS= line.
    pub fn ready(&self, status: &str) {
        self.send(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(status),
        ]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[sd_notify::NotifyState::Status(status)]);
    }

    pub fn reloading(&self) {
        self.send(&[sd_notify::NotifyState::Reloading]);
    }

    pub fn stopping(&self) {
        self.send(&[sd_notify::NotifyState::Stopping]);
    }

    /// Period of WATCHDOG=1 pings: half of `WATCHDOG_USEC`, as sd_watchdog_enabled(3) advises.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    pub fn watchdog(&self) {
        self.send(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// The control socket's backend on the running engine.
#[derive(Clone)]
pub struct EngineBackend(pub EngineHandle);

impl ControlBackend for EngineBackend {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus> {
        Box::pin(async move { self.0.status() })
    }

    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, String>> {
        Box::pin(async move { self.0.check_now(&iface).await.map_err(|e| e.to_string()) })
    }

    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.kill(&actor).await.map_err(|e| e.to_string()) })
    }

    fn events(&self) -> LocalBoxFuture<'_, Vec<EventRecord>> {
        Box::pin(async move { self.0.history() })
    }
}

/// Runs the daemon until a signal or an escalation; returns the process exit code.
pub fn run(args: &RunArgs, socket: &Path) -> Result<u8, DaemonError> {
    init_tracing(args.log_format);
    let _ = socket;
    Err(DaemonError::NotWired)
}

/// `netfailover check-config`: prints the effective config and problems; returns the exit code.
pub fn check_config(args: &ConfigArgs, out: &mut dyn std::io::Write) -> i32 {
    let _ = (args, out);
    1
}
