//! `netfailover run`: load the config, build the kernel ports, start the engine in an actix
//! System, serve the control socket and metrics, talk to systemd, and turn signals into
//! shutdown (SIGTERM/SIGINT) and reload (SIGHUP).
//!
//! Exit codes: 0 after a clean shutdown (signal), 1 when the start fails (config, socket,
//! metrics address) or the engine escalated (too many restarts), so systemd's
//! `Restart=on-failure` restarts it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use netfailover_actors::model::{EventKind, IfaceName};
use netfailover_actors::ports::ProbeReport;
use netfailover_actors::status::{EngineStatus, HistoryEntry};
use netfailover_actors::{EngineError, EngineHandle};
use tokio::signal::unix::{signal, SignalKind};

use crate::agent::{Agent, AgentError, AgentHandle, Subscription};
use crate::config;
use crate::control::{self, ControlBackend, ControlError};
use crate::metrics::{self, MetricsError};

/// What `run` needs: plain values, so the binary (`src/main.rs`, which owns the command line)
/// and an embedder or the lab fill it in without the argument parser.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: ConfigSource,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    pub metrics: Option<SocketAddr>,
    /// Log line format on stderr.
    pub log_format: LogFormat,
    /// Control socket to bind.
    pub socket: PathBuf,
}

/// Where the configuration is read from (shared by `run` and `check-config`).
#[derive(Clone, Debug)]
pub struct ConfigSource {
    /// Boot directory holding config.json, system-connections/ and dispatcher.d/.
    pub boot_dir: PathBuf,
    /// Own settings file (default: BOOT_DIR/netfailover.toml).
    pub config: Option<PathBuf>,
}

/// Log line format on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (journald adds the time).
    Plain,
    /// One JSON object per line.
    Json,
}

/// Daemon start-up and run errors (each ends `run` with exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("configuration in {boot_dir}: {error}")]
    Config {
        boot_dir: PathBuf,
        error: config::ConfigError,
    },
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("installing the {signal} handler: {error}")]
    Signal {
        signal: &'static str,
        error: std::io::Error,
    },
    /// A reload whose `netfailover.toml` had something rejected (never ends the daemon).
    #[error("netfailover.toml has errors (logged above)")]
    SettingsRejected,
    #[error("the engine stopped after too many restarts: {error}")]
    Escalated { error: EngineError },
}

/// Sets up tracing to stderr: plain lines (journald adds time and unit) or JSON objects.
/// `RUST_LOG` overrides the default `info` level with `target=level` directives
/// (`warn,netfailover=debug`); tracing-subscriber's `Targets` reads them without the regex
/// engine behind `EnvFilter`'s span filters, which the device binary does not need. Colours only
/// when stderr is a terminal: the journal and log files would store the escape sequences.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    // A second initialisation (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Plain => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json()).try_init(),
    };
}

/// `RUST_LOG`'s directives, or `info` when unset or unreadable.
fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::filter::Targets {
    rust_log
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        })
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

    /// READY=1 with a STATUS= line (also after a reload).
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

    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>> {
        Box::pin(async move { self.0.check_now(&iface).await })
    }

    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { self.0.kill(&actor).await })
    }

    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>> {
        Box::pin(async move { self.0.timeline() })
    }

    fn subscribe(&self) -> Option<Subscription> {
        Some(Subscription::of(&self.0))
    }
}

/// The running daemon's control backend: the engine, plus the problems of the configuration
/// last read (at start or on the last SIGHUP), which `status` shows as `config_problems`.
struct DaemonBackend {
    engine: EngineBackend,
    problems: Rc<RefCell<Vec<String>>>,
}

impl ControlBackend for DaemonBackend {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus> {
        self.engine.status()
    }

    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>> {
        self.engine.check(iface)
    }

    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>> {
        self.engine.kill(actor)
    }

    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>> {
        self.engine.events()
    }

    fn subscribe(&self) -> Option<Subscription> {
        self.engine.subscribe()
    }

    fn config_problems(&self) -> Vec<String> {
        self.problems.borrow().clone()
    }
}

/// Loads the configuration; `last_good` is the previous load's (empty at start), so a reload
/// reads a file that fails to parse from its last good version.
fn load(args: &ConfigSource, last_good: &config::LastGood) -> Result<config::Loaded, DaemonError> {
    let mut opts = config::LoadOptions::new(&args.boot_dir);
    opts.settings_file = args.config.clone();
    opts.last_good = last_good.clone();
    let loaded = config::load_with(&opts).map_err(|error| DaemonError::Config {
        boot_dir: args.boot_dir.clone(),
        error,
    })?;
    for problem in &loaded.problems {
        if problem.is_error() {
            tracing::error!("{problem}");
        } else {
            tracing::warn!("{problem}");
        }
    }
    Ok(loaded)
}

fn status_line(engine: &EngineHandle) -> String {
    format!("connectivity {}", engine.status().connectivity)
}

/// Runs the daemon until a signal or an escalation; returns the process exit code.
pub fn run(args: &RunOptions) -> Result<u8, DaemonError> {
    init_tracing(args.log_format);
    let loaded = load(&args.config, &config::LastGood::default())?;
    tracing::info!(
        boot_dir = %args.config.boot_dir.display(),
        profiles = loaded.config.profiles.len(),
        "configuration loaded"
    );
    let system = actix_rt::System::new();
    system.block_on(serve(args, loaded))
}

/// Removes the control socket file when the daemon that bound it stops (never one that
/// belongs to another daemon: it exists only after our own bind succeeded).
struct SocketFile<'a>(&'a Path);

impl Drop for SocketFile<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// The daemon's result once the engine stopped by itself: 0, or its escalation as an error.
fn engine_stopped(result: Result<(), EngineError>) -> Result<u8, DaemonError> {
    match result {
        Ok(()) => Ok(0),
        Err(error) => {
            tracing::error!(reason = %error, "engine escalated; exiting with code 1");
            Err(DaemonError::Escalated { error })
        }
    }
}

async fn serve(args: &RunOptions, loaded: config::Loaded) -> Result<u8, DaemonError> {
    let socket = args.socket.as_path();
    let problems = Rc::new(RefCell::new(printed(&loaded.problems)));
    let mut reload = Reload::new(&loaded, &args.config, problems.clone());
    // Bind everything that can fail before the engine touches a route.
    let control_listener = control::bind(socket)?;
    let _socket_file = SocketFile(socket);
    let metrics_listener = match args.metrics {
        Some(addr) => Some(metrics::bind(addr).await?),
        None => None,
    };
    let sig = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|error| DaemonError::Signal {
            signal: name,
            error,
        })
    };
    let mut sigterm = sig(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = sig(SignalKind::interrupt(), "SIGINT")?;
    let mut sighup = sig(SignalKind::hangup(), "SIGHUP")?;

    let agent = Agent::builder().loaded(loaded).start()?;
    let engine = agent.engine().clone();
    let mut events = engine.subscribe();
    tokio::task::spawn_local(control::serve(
        control_listener,
        Rc::new(DaemonBackend {
            engine: EngineBackend(engine.clone()),
            problems: problems.clone(),
        }),
    ));
    if let Some((listener, addr)) = metrics_listener.zip(args.metrics) {
        let board = engine.clone();
        tokio::task::spawn_local(metrics::serve(listener, Rc::new(move || board.status())));
        tracing::info!(%addr, "metrics listening");
    }
    let notifier = Notifier::from_env();
    notifier.ready(&status_line(&engine));
    tracing::info!(socket = %socket.display(), "netfailover running");

    let mut watchdog = notifier.watchdog_period().map(tokio::time::interval);
    let waiter = engine.clone();
    let stopped = async move { waiter.wait().await };
    tokio::pin!(stopped);
    loop {
        let watchdog_tick = async {
            match watchdog.as_mut() {
                Some(w) => {
                    w.tick().await;
                }
                None => futures::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = sigterm.recv() => return shutdown(agent, &notifier, "SIGTERM").await,
            _ = sigint.recv() => return shutdown(agent, &notifier, "SIGINT").await,
            _ = sighup.recv() => reload.run(&agent, &notifier),
            result = &mut stopped => return engine_stopped(result),
            event = events.recv() => match event {
                Ok(event) if event.kind == EventKind::ConnectivityChange => {
                    notifier.status(&format!("connectivity {}", event.state));
                }
                Ok(_) => {}
                // Lagging behind the broadcast only loses STATUS= updates; catch up.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    notifier.status(&status_line(&engine));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    events = engine.subscribe();
                }
            },
            _ = watchdog_tick => notifier.watchdog(),
        }
    }
}

async fn shutdown(
    agent: AgentHandle,
    notifier: &Notifier,
    signal: &str,
) -> Result<u8, DaemonError> {
    tracing::info!(signal, "shutting down: removing penalties");
    notifier.stopping();
    match agent.shutdown().await {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            Ok(0)
        }
        Err(e) => {
            tracing::error!(error = %e, "shutdown was not clean");
            Ok(1)
        }
    }
}

/// Settings that only a restart applies (they belong to sockets and files opened at start).
#[derive(PartialEq)]
struct Restartable {
    state_dir: PathBuf,
    netlink_rcvbuf: usize,
}

impl Restartable {
    fn of(loaded: &config::Loaded) -> Self {
        Self {
            state_dir: loaded.state_dir.clone(),
            netlink_rcvbuf: loaded.netlink_rcvbuf,
        }
    }
}

fn printed(problems: &[config::Problem]) -> Vec<String> {
    problems.iter().map(ToString::to_string).collect()
}

/// What a SIGHUP needs besides the agent: how the daemon started, where the problems of the
/// configuration last read are shown, and the file versions in force.
struct Reload<'a> {
    started_with: Restartable,
    args: &'a ConfigSource,
    problems: Rc<RefCell<Vec<String>>>,
    last_good: config::LastGood,
}

impl<'a> Reload<'a> {
    fn new(
        loaded: &config::Loaded,
        args: &'a ConfigSource,
        problems: Rc<RefCell<Vec<String>>>,
    ) -> Self {
        Self {
            started_with: Restartable::of(loaded),
            args,
            problems,
            last_good: loaded.last_good.clone(),
        }
    }

    /// SIGHUP: reads the boot directory again and hands it to the agent. config.json or a
    /// keyfile that fails to parse is read from its last good version (`config/last_good.rs`;
    /// the versions in force are updated when the reload applies). When `netfailover.toml` (or
    /// its environment) has something rejected, the whole last good configuration stays in
    /// force: per-key defaults are a start-up fallback, not something to switch a running
    /// device to.
    fn run(&mut self, agent: &AgentHandle, notifier: &Notifier) {
        notifier.reloading();
        let loaded = load(self.args, &self.last_good);
        if let Ok(loaded) = &loaded {
            *self.problems.borrow_mut() = printed(&loaded.problems);
        }
        if let Some(applied) = apply(agent, &self.started_with, loaded) {
            self.last_good = applied;
        }
        notifier.ready(&status_line(agent.engine()));
    }
}

/// Hands a reloaded configuration to the agent, unless its settings were rejected; returns the
/// file versions now in force when it was applied.
fn apply(
    agent: &AgentHandle,
    started_with: &Restartable,
    loaded: Result<config::Loaded, DaemonError>,
) -> Option<config::LastGood> {
    let loaded = loaded.and_then(|loaded| match loaded.settings_rejected {
        true => Err(DaemonError::SettingsRejected),
        false => Ok(loaded),
    });
    match loaded {
        Ok(loaded) => {
            if Restartable::of(&loaded) != *started_with {
                tracing::warn!(
                    "SIGHUP: state_dir and netlink.rcvbuf changes apply at the next restart"
                );
            }
            let profiles = loaded.config.profiles.len();
            match agent.reload(loaded.config) {
                Ok(()) => {
                    tracing::info!(profiles, "SIGHUP: configuration reloaded");
                    return Some(loaded.last_good);
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: reload failed; keeping the last good configuration")
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: reload failed; keeping the last good configuration")
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_directives_set_levels_per_target() {
        let directives = log_filter(Some("warn,netfailover=debug"));
        assert!(directives.would_enable("netfailover::daemon", &Level::DEBUG));
        assert!(!directives.would_enable("netfailover::daemon", &Level::TRACE));
        assert!(directives.would_enable("hyper", &Level::WARN));
        assert!(!directives.would_enable("hyper", &Level::INFO));
        for default in [log_filter(None), log_filter(Some("netfailover=loud"))] {
            assert!(default.would_enable("hyper", &Level::INFO));
            assert!(!default.would_enable("netfailover", &Level::DEBUG));
        }
    }
}
