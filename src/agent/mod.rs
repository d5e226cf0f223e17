//! Embedding: [`Agent::builder`] configures, wires and starts netfailover inside another
//! program, and the [`AgentHandle`] it returns watches and steers it. The daemon
//! (`src/daemon.rs`) is built on the same builder.
//!
//! Owns: the choice of ports (the embedder's, else the kernel adapters of `kernel.rs`, wrapped
//! by `dry_run.rs` for a dry run), the engine's start in the caller's actix System or on a
//! thread of its own. The [`Subscription`] (snapshot, then typed events) is `subscription.rs`.
//!
//! ```
//! use std::time::Duration;
//! use netfailover::agent::{Agent, Update};
//! use netfailover::engine::fake::FakeWorld;
//! use netfailover::engine::model::{Config, LinkKind};
//! use netfailover::engine::ports::Verdict;
//!
//! // A simulated device: one Ethernet link, its checks pass.
//! let world = FakeWorld::new();
//! world.kernel.add_link("eth0", LinkKind::Other);
//! world.probe.set("eth0", Verdict::Full);
//!
//! // On a plain thread (no actix): `spawn` runs the engine in its own System.
//! let agent = Agent::builder()
//!     .config(Config::default())
//!     .ports(world.ports())
//!     .spawn()
//!     .expect("fake ports cannot fail to start");
//! let mut updates = agent.subscribe();
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! runtime.block_on(async {
//!     // The first update is always the snapshot of the whole state.
//!     let Some(Update::Snapshot(snapshot)) = updates.next().await else { panic!() };
//!     println!("{} interfaces", snapshot.status.interfaces.len());
//!     agent.shutdown().await.expect("clean stop");
//! });
//! ```

mod dry_run;
pub(crate) mod kernel;
mod subscription;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use netfailover_actors::model::{Config, IfaceName, IfaceNameError};
use netfailover_actors::ports::{
    LinkSource, Ports, Probe, ProbeReport, RouteTable, ScriptRunner, Sysctl,
};
use netfailover_actors::status::{EngineStatus, EventRecord};
use netfailover_actors::{EngineError, EngineHandle, ToActorName};

use dry_run::{dry_run_ports, Plan};
pub use dry_run::{PlannedChange, PLAN_LEN};
pub use kernel::PortSetupError;
use kernel::{Reloadable, ScriptSettings};
pub use subscription::{Subscription, Update};

use crate::config;

/// Errors of the embedding API.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Neither [`AgentBuilder::boot_dir`] nor [`AgentBuilder::config`] was called.
    #[error("no configuration: call boot_dir(), config() or loaded() on the builder")]
    NoConfig,
    #[error("configuration in {boot_dir}: {error}")]
    Config {
        boot_dir: PathBuf,
        error: config::ConfigError,
    },
    /// A kernel adapter could not be set up (netlink socket, TLS roots of the probe).
    #[error("setting up {port}: {error}")]
    Port {
        port: &'static str,
        error: PortSetupError,
    },
    #[error("interface name {name:?}: {error}")]
    BadIface { name: String, error: IfaceNameError },
    /// The engine's own error (unknown actor, escalation, stopped).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `spawn`: the engine's thread could not start (`ThreadSpawn`) or ended while starting.
    #[error("engine thread: {error}")]
    ThreadSpawn { error: std::io::Error },
    #[error("engine thread: it ended while starting")]
    ThreadEnded,
}

/// Entry point of the embedding API; see [`Agent::builder`].
pub struct Agent;

impl Agent {
    /// A builder with nothing chosen: give it a configuration ([`AgentBuilder::boot_dir`] or
    /// [`AgentBuilder::config`]); every port not supplied is the kernel's.
    pub fn builder() -> AgentBuilder {
        AgentBuilder::default()
    }
}

/// Where the configuration comes from.
#[derive(Default)]
enum Source {
    #[default]
    None,
    BootDir {
        dir: PathBuf,
        settings: Option<PathBuf>,
    },
    Config(Box<Config>),
    Loaded(Box<config::Loaded>),
}

/// Configures an agent; see [`Agent::builder`]. Every setter takes and returns the builder.
#[derive(Default)]
#[must_use = "a builder does nothing until start() or spawn()"]
pub struct AgentBuilder {
    source: Source,
    ports: Option<Ports>,
    routes: Option<Arc<dyn RouteTable>>,
    probe: Option<Arc<dyn Probe>>,
    scripts: Option<Arc<dyn ScriptRunner>>,
    links: Option<Arc<dyn LinkSource>>,
    state_dir: Option<PathBuf>,
    dispatcher_dir: Option<PathBuf>,
    dry_run: bool,
}

/// What `start` hands to the engine, and what the handle keeps for reloads.
struct Prepared {
    config: Config,
    ports: Ports,
    reloadable: Reloadable,
    dispatcher_dir: PathBuf,
    plan: Option<Plan>,
}

impl AgentBuilder {
    /// Reads the configuration from a boot directory (`config.json`, `system-connections/`,
    /// `netfailover.toml`, `dispatcher.d/`), as `netfailover run --boot-dir` does. Problems in
    /// it are logged as warnings; only an unreadable directory fails [`start`](Self::start).
    pub fn boot_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        let settings = match std::mem::take(&mut self.source) {
            Source::BootDir { settings, .. } => settings,
            _ => None,
        };
        self.source = Source::BootDir {
            dir: dir.into(),
            settings,
        };
        self
    }

    /// With [`boot_dir`](Self::boot_dir): the settings file instead of
    /// `<boot_dir>/netfailover.toml`.
    pub fn settings_file(mut self, file: impl Into<PathBuf>) -> Self {
        if let Source::BootDir { settings, .. } = &mut self.source {
            *settings = Some(file.into());
        }
        self
    }

    /// Uses a configuration built by the embedder.
    pub fn config(mut self, config: Config) -> Self {
        self.source = Source::Config(Box::new(config));
        self
    }

    /// Uses a configuration already read by [`config::load`] (the daemon does this, to log and
    /// check it before starting).
    pub fn loaded(mut self, loaded: config::Loaded) -> Self {
        self.source = Source::Loaded(Box::new(loaded));
        self
    }

    /// Every port at once (tests, simulations: `netfailover::engine::fake::FakeWorld::ports`).
    /// The single-port setters below override it.
    pub fn ports(mut self, ports: Ports) -> Self {
        self.ports = Some(ports);
        self
    }

    /// The route table to manage (default: the kernel's main table over netlink).
    pub fn route_table(mut self, routes: Arc<dyn RouteTable>) -> Self {
        self.routes = Some(routes);
        self
    }

    /// The connectivity check (default: HTTP(S) bound to each interface, from `check.*`).
    pub fn probe(mut self, probe: Arc<dyn Probe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// What runs on each dispatcher event (default: the scripts of `dispatcher.d/`).
    pub fn script_runner(mut self, scripts: Arc<dyn ScriptRunner>) -> Self {
        self.scripts = Some(scripts);
        self
    }

    /// Where link facts come from (default: the kernel's netlink multicast groups).
    pub fn link_source(mut self, links: Arc<dyn LinkSource>) -> Self {
        self.links = Some(links);
        self
    }

    /// Directory of the event journal and interface state (default: the configuration's
    /// `state_dir`, `/run/netfailover`).
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Directory of the dispatcher scripts (default: `<boot_dir>/dispatcher.d`).
    pub fn dispatcher_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dispatcher_dir = Some(dir.into());
        self
    }

    /// Dry run: the engine reads the live device and plans as usual, but no route, address or
    /// sysctl is written and no script runs; each would-be change is logged and kept in
    /// [`AgentHandle::plan`]. The journal and interface state stay in memory, so a dry run next
    /// to a real daemon does not disturb it.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use netfailover::agent::{Agent, PlannedChange};
    /// # use netfailover::engine::fake::{manual_profile, FakeWorld};
    /// # use netfailover::engine::model::{Config, LinkKind, UplinkType};
    /// let world = FakeWorld::new();
    /// world.kernel.add_link("eth0", LinkKind::Other);
    /// let config = Config {
    ///     profiles: vec![manual_profile("eth0", UplinkType::Ethernet, 100, "192.0.2.1".parse()?)?],
    ///     ..Config::default()
    /// };
    /// actix_rt::System::new().block_on(async {
    ///     let agent = Agent::builder().config(config).ports(world.ports()).dry_run(true).start()?;
    ///     for _ in 0..100 {
    ///         if !agent.plan().unwrap_or_default().is_empty() { break; }
    ///         tokio::time::sleep(Duration::from_millis(10)).await;
    ///     }
    ///     // eth0's route is planned (penalised until its first check), the kernel untouched.
    ///     let plan = agent.plan().unwrap_or_default();
    ///     assert!(plan.iter().any(|c| matches!(c, PlannedChange::AddRoute { .. })));
    ///     assert!(world.kernel.routes().is_empty());
    ///     agent.shutdown().await
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    fn prepare(self) -> Result<Prepared, AgentError> {
        let (config, state_dir, rcvbuf, dispatcher_dir, persist_dir) = resolve(self.source)?;
        let state_dir = self.state_dir.unwrap_or(state_dir);
        let dispatcher_dir = self.dispatcher_dir.unwrap_or(dispatcher_dir);
        let given = self.ports;
        let mut reloadable = Reloadable::default();
        let routes = match self
            .routes
            .or_else(|| given.as_ref().map(|p| p.routes.clone()))
        {
            Some(r) => r,
            None => kernel::netlink_routes()?,
        };
        let probe: Arc<dyn Probe> = match self
            .probe
            .or_else(|| given.as_ref().map(|p| p.probe.clone()))
        {
            Some(p) => p,
            None => {
                let p = Reloadable::probe(&config.check)?;
                reloadable.probe = Some(p.clone());
                p
            }
        };
        let scripts: Arc<dyn ScriptRunner> = match self
            .scripts
            .or_else(|| given.as_ref().map(|p| p.scripts.clone()))
        {
            Some(s) => s,
            None => {
                let s = Reloadable::scripts(&ScriptSettings {
                    dispatcher_dir: dispatcher_dir.clone(),
                    timeout: config.dispatcher.script_timeout,
                });
                reloadable.scripts = Some(s.clone());
                s
            }
        };
        let links = self
            .links
            .or_else(|| given.as_ref().map(|p| p.links.clone()))
            .unwrap_or_else(|| kernel::netlink_links(rcvbuf));
        let sysctl: Arc<dyn Sysctl> = match &given {
            Some(p) => p.sysctl.clone(),
            None => kernel::proc_sysctl(),
        };
        let mut ports = Ports {
            links,
            routes,
            sysctl,
            probe,
            scripts,
            journal: match &given {
                Some(p) => p.journal.clone(),
                None => kernel::file_journal(&state_dir),
            },
            state: match &given {
                Some(p) => p.state.clone(),
                None => kernel::file_state(&state_dir),
            },
            traffic: match &given {
                Some(p) => p.traffic.clone(),
                None => kernel::netlink_traffic(config.passive.enabled && config.check.enabled())?,
            },
            flows: match &given {
                Some(p) => p.flows.clone(),
                None => kernel::netlink_flows(),
            },
            recovery: kernel::recovery(given.as_ref(), &persist_dir),
            accounts: kernel::accounts(given.as_ref(), &persist_dir),
            calendar: kernel::calendar(given.as_ref()),
        };
        let plan = self.dry_run.then(|| dry_run_ports(&mut ports));
        Ok(Prepared {
            config,
            ports,
            reloadable,
            dispatcher_dir,
            plan,
        })
    }

    /// Starts the engine inside the caller's running actix System (an `#[actix::main]` or
    /// `actix_rt::System::block_on`); kernel ports need its tokio runtime.
    ///
    /// ```
    /// # use netfailover::agent::Agent;
    /// # use netfailover::engine::{fake::FakeWorld, model::{Config, LinkKind}, ports::Verdict};
    /// let world = FakeWorld::new();
    /// world.kernel.add_link("eth0", LinkKind::Other);
    /// world.probe.set("eth0", Verdict::Full);
    /// actix_rt::System::new().block_on(async {
    ///     let agent = Agent::builder().config(Config::default()).ports(world.ports()).start()?;
    ///     let report = agent.check_now("eth0").await;
    ///     println!("{report:?}");
    ///     agent.shutdown().await
    /// })?;
    /// # Ok::<(), netfailover::agent::AgentError>(())
    /// ```
    pub fn start(self) -> Result<AgentHandle, AgentError> {
        let prepared = self.prepare()?;
        let engine = netfailover_actors::start(prepared.config, prepared.ports);
        Ok(AgentHandle {
            engine,
            reloadable: prepared.reloadable,
            dispatcher_dir: prepared.dispatcher_dir,
            plan: prepared.plan,
            thread: None,
            stopped: false,
        })
    }

    /// Starts the engine in an actix System of its own, on a new thread, for embedders without
    /// actix (a plain tokio runtime, or none). The handle works from any thread; its
    /// [`shutdown`](AgentHandle::shutdown) (or drop) stops the engine and joins the thread.
    pub fn spawn(self) -> Result<AgentHandle, AgentError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("netfailover".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    match self.start() {
                        Ok(handle) => {
                            let engine = handle.engine.clone();
                            // The thread's copy must not stop the engine when dropped here.
                            let parts = handle.into_parts();
                            if tx.send(Ok(parts)).is_ok() {
                                // Until the tree stopped (shutdown, drop or escalation); the
                                // System, and every task left in it, ends with this thread.
                                let _ = engine.wait().await;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|error| AgentError::ThreadSpawn { error })?;
        let parts = rx.recv().map_err(|_| AgentError::ThreadEnded)??;
        let mut handle = AgentHandle::from_parts(parts);
        handle.thread = Some(thread);
        Ok(handle)
    }
}

/// (config, state directory, netlink receive buffer, dispatcher directory) from the
/// builder's configuration source; a boot directory's problems are logged as warnings.
/// The engine config, `state_dir`, `netlink.rcvbuf`, the dispatcher directory, `persist_dir`.
type Resolved = (Config, PathBuf, usize, PathBuf, PathBuf);

fn resolve(source: Source) -> Result<Resolved, AgentError> {
    let settings = config::settings::Settings::default();
    Ok(match source {
        Source::None => return Err(AgentError::NoConfig),
        Source::BootDir { dir, settings } => {
            let loaded =
                config::load(&dir, settings.as_deref()).map_err(|error| AgentError::Config {
                    boot_dir: dir.clone(),
                    error,
                })?;
            for problem in &loaded.problems {
                tracing::warn!("{problem}");
            }
            unpack(loaded)
        }
        Source::Loaded(loaded) => unpack(*loaded),
        Source::Config(config) => (
            *config,
            settings.state_dir,
            settings.netlink_rcvbuf,
            Path::new(config::DEFAULT_BOOT_DIR).join("dispatcher.d"),
            settings.persist_dir,
        ),
    })
}

fn unpack(loaded: config::Loaded) -> Resolved {
    (
        loaded.config,
        loaded.state_dir,
        loaded.netlink_rcvbuf,
        loaded.dispatcher_dir,
        loaded.persist_dir,
    )
}

/// A running agent. Not `Clone`: it owns the engine's life. Dropping it stops the engine
/// cleanly (owned routes back at their configured metrics) and, for [`AgentBuilder::spawn`],
/// joins its thread; use [`AgentHandle::engine`] for a cheap clonable handle.
pub struct AgentHandle {
    engine: EngineHandle,
    reloadable: Reloadable,
    dispatcher_dir: PathBuf,
    plan: Option<Plan>,
    thread: Option<std::thread::JoinHandle<()>>,
    stopped: bool,
}

/// An [`AgentHandle`] without its drop behaviour, to cross from the engine's thread.
struct Parts {
    engine: EngineHandle,
    reloadable: Reloadable,
    dispatcher_dir: PathBuf,
    plan: Option<Plan>,
}

impl AgentHandle {
    fn into_parts(mut self) -> Parts {
        self.stopped = true; // disarm Drop: the parts live on in another handle
        Parts {
            engine: self.engine.clone(),
            reloadable: std::mem::take(&mut self.reloadable),
            dispatcher_dir: std::mem::take(&mut self.dispatcher_dir),
            plan: self.plan.take(),
        }
    }

    fn from_parts(p: Parts) -> Self {
        Self {
            engine: p.engine,
            reloadable: p.reloadable,
            dispatcher_dir: p.dispatcher_dir,
            plan: p.plan,
            thread: None,
            stopped: false,
        }
    }

    /// Interfaces, global connectivity and actors, as `netfailover status --json` prints them.
    pub fn status(&self) -> EngineStatus {
        self.engine.status()
    }

    /// Recent dispatcher events with their scripts' outcomes, oldest first (`events --json`).
    pub fn history(&self) -> Vec<EventRecord> {
        self.engine.history()
    }

    /// The state now, then every change: see [`Subscription`].
    pub fn subscribe(&self) -> Subscription {
        Subscription::of(&self.engine)
    }

    /// Checks one interface now (it also counts as a regular check).
    pub async fn check_now(&self, iface: &str) -> Result<ProbeReport, AgentError> {
        let name = IfaceName::new(iface).map_err(|error| AgentError::BadIface {
            name: iface.into(),
            error,
        })?;
        Ok(self.engine.check_now(&name).await?)
    }

    /// Kills an actor by its name (an `ActorName`, or its `status` text: `route-manager`,
    /// `prober:eth0`, ...); the supervisor restarts it at once (resilience testing).
    pub async fn kill(&self, actor: impl ToActorName) -> Result<(), AgentError> {
        Ok(self.engine.kill(actor).await?)
    }

    /// Applies a new configuration without restarting anything. The kernel probe and script
    /// runner are rebuilt from it (check URI, timeouts, CA file, script timeout); ports the
    /// embedder supplied are kept. On error nothing changes.
    pub fn reload(&self, config: Config) -> Result<(), AgentError> {
        self.reloadable.update(
            &config.check,
            &ScriptSettings {
                dispatcher_dir: self.dispatcher_dir.clone(),
                timeout: config.dispatcher.script_timeout,
            },
        )?;
        self.engine.reload(config);
        Ok(())
    }

    /// Dry run only: every change the engine would have made so far, oldest first (at most
    /// [`PLAN_LEN`]). `None` when not a dry run.
    pub fn plan(&self) -> Option<Vec<PlannedChange>> {
        self.plan.as_ref().map(Plan::changes)
    }

    /// The engine's own handle (clonable; what the control socket and metrics use).
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// Resolves when the engine stopped: `Ok` after a shutdown, `Err` when it escalated (too
    /// many restarts).
    pub async fn wait(&self) -> Result<(), AgentError> {
        Ok(self.engine.wait().await?)
    }

    /// Clean stop: owned routes back at their configured metrics (penalties removed), then
    /// every actor and task ends; pending events stay in the journal for the next start.
    pub async fn shutdown(mut self) -> Result<(), AgentError> {
        let result = self.engine.shutdown().await;
        self.stopped = true;
        if let Some(thread) = self.thread.take() {
            // The thread returns as soon as the engine reported done.
            for _ in 0..500 {
                if thread.is_finished() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            join(thread);
        }
        Ok(result?)
    }
}

fn join(thread: std::thread::JoinHandle<()>) {
    if thread.is_finished() {
        if thread.join().is_err() {
            tracing::error!("the engine's thread panicked");
        }
    } else {
        tracing::error!("the engine's thread did not end; leaving it");
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.engine.request_shutdown();
        if let Some(thread) = self.thread.take() {
            // Bounded by the route restore's own grace, plus a margin for the rest.
            let limit = netfailover_actors::supervisor::SHUTDOWN_GRACE + Duration::from_secs(5);
            let start = std::time::Instant::now();
            while !thread.is_finished() && start.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(10));
            }
            join(thread);
        }
    }
}
