//! The production ports: the kernel adapters of `src/os/` wired for one loaded configuration,
//! and the adapters a reload rebuilds (probe, script runner). Used by the [`Agent`] builder for
//! every port the embedder did not supply, and so by the daemon.
//!
//! [`Agent`]: super::Agent

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use netfailover_actors::model::{CheckConfig, Event};
use netfailover_actors::ports::{
    EngineState, FlowTable, JournalState, LinkSource, Probe, ProbeReport, ProbeRequest, RouteTable,
    ScriptOutcome, ScriptRunner, Store, Sysctl, TrafficSource,
};

use super::AgentError;
use crate::os;

/// A port whose adapter is rebuilt on reload: the probe and the script runner are built from
/// settings (check URI, timeouts, CA file, script timeout) that a reload may change, while the
/// engine keeps the `Ports` it was started with.
pub(crate) struct Swappable<T: ?Sized>(RwLock<Arc<T>>);

impl<T: ?Sized> Swappable<T> {
    fn new(inner: Arc<T>) -> Self {
        Self(RwLock::new(inner))
    }

    fn get(&self) -> Arc<T> {
        // A poisoned lock still holds a complete Arc: use it.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, inner: Arc<T>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = inner;
    }
}

impl Probe for Swappable<dyn Probe> {
    fn check(&self, request: ProbeRequest) -> BoxFuture<'static, ProbeReport> {
        self.get().check(request)
    }

    fn check_with_progress(
        &self,
        request: ProbeRequest,
        progress: Arc<netfailover_actors::ports::CheckProgress>,
    ) -> BoxFuture<'static, ProbeReport> {
        self.get().check_with_progress(request, progress)
    }
}

impl ScriptRunner for Swappable<dyn ScriptRunner> {
    fn run(&self, event: Event) -> BoxFuture<'static, Vec<ScriptOutcome>> {
        self.get().run(event)
    }
}

/// Why a kernel adapter could not be set up ([`AgentError::Port`]).
#[derive(Debug, thiserror::Error)]
pub enum PortSetupError {
    /// The HTTP(S) probe (its check URI, CA file or TLS client).
    #[error(transparent)]
    Probe(#[from] crate::os::probe::ProbeError),
    /// A netlink socket (routes, traffic sampling).
    #[error(transparent)]
    Netlink(#[from] crate::os::netlink::NetlinkError),
}

/// The kernel HTTP(S) probe for `check`. The configuration already refused a CA file the probe
/// cannot read, but the file may change before we read it again: then the check runs with the
/// built-in roots only (an error in the log) rather than the daemon stopping.
pub(crate) fn http_probe(check: &CheckConfig) -> Result<Arc<dyn Probe>, AgentError> {
    let probe = os::probe::HttpProbe::new(check).or_else(|error| match check.ca_file {
        Some(_) => {
            tracing::error!(%error, "check.ca_file ignored; checks use the built-in roots");
            os::probe::HttpProbe::new(&CheckConfig {
                ca_file: None,
                ..check.clone()
            })
        }
        None => Err(error),
    });
    let probe = probe.map_err(|e| AgentError::Port {
        port: "probe",
        error: e.into(),
    })?;
    Ok(Arc::new(probe))
}

/// Where the script runner finds its scripts and how long one may run.
#[derive(Clone, Debug)]
pub(crate) struct ScriptSettings {
    pub dispatcher_dir: PathBuf,
    pub timeout: std::time::Duration,
}

pub(crate) fn script_runner(s: &ScriptSettings) -> Arc<dyn ScriptRunner> {
    Arc::new(os::scripts::ScriptDirRunner::new(
        s.dispatcher_dir.clone(),
        s.timeout,
    ))
}

/// The kernel's probe and script runner behind [`Swappable`]s, rebuilt by a reload. `None`
/// for a port the embedder supplied (a reload leaves it alone).
#[derive(Clone, Default)]
pub(crate) struct Reloadable {
    pub probe: Option<Arc<Swappable<dyn Probe>>>,
    pub scripts: Option<Arc<Swappable<dyn ScriptRunner>>>,
}

impl Reloadable {
    pub fn probe(check: &CheckConfig) -> Result<Arc<Swappable<dyn Probe>>, AgentError> {
        Ok(Arc::new(Swappable::new(http_probe(check)?)))
    }

    pub fn scripts(s: &ScriptSettings) -> Arc<Swappable<dyn ScriptRunner>> {
        Arc::new(Swappable::new(script_runner(s)))
    }

    /// Rebuilds the kernel adapters from new settings; on error the old ones stay.
    pub fn update(&self, check: &CheckConfig, scripts: &ScriptSettings) -> Result<(), AgentError> {
        if let Some(p) = &self.probe {
            p.set(http_probe(check)?);
        }
        if let Some(s) = &self.scripts {
            s.set(script_runner(scripts));
        }
        Ok(())
    }
}

/// The netlink route table (opens its socket; needs a running tokio runtime).
pub(crate) fn netlink_routes() -> Result<Arc<dyn RouteTable>, AgentError> {
    let routes = os::netlink::NetlinkRoutes::new().map_err(|e| AgentError::Port {
        port: "netlink routes",
        error: e.into(),
    })?;
    Ok(Arc::new(routes))
}

pub(crate) fn netlink_links(rcvbuf: usize) -> Arc<dyn LinkSource> {
    Arc::new(os::netlink::NetlinkLinks::new(rcvbuf))
}

/// Passive health's traffic counters (rtnetlink + sock_diag + ctnetlink; opens its sockets).
/// With `watch` (passive health on) conntrack accounting is turned on now, at start, so the
/// flows applications open from here on carry counters.
pub(crate) fn netlink_traffic(watch: bool) -> Result<Arc<dyn TrafficSource>, AgentError> {
    let traffic = os::traffic::NetlinkTraffic::new().map_err(|e| AgentError::Port {
        port: "netlink traffic sampling",
        error: e.into(),
    })?;
    if watch {
        traffic.prepare();
    }
    Ok(Arc::new(traffic))
}

/// Flow resets (sock_diag + ctnetlink) in the calling thread's network namespace.
pub(crate) fn netlink_flows() -> Arc<dyn FlowTable> {
    Arc::new(os::flows::NetlinkFlows::new())
}

pub(crate) fn proc_sysctl() -> Arc<dyn Sysctl> {
    Arc::new(os::sysctl::ProcSysctl::new())
}

pub(crate) fn file_journal(state_dir: &std::path::Path) -> Arc<dyn Store<JournalState>> {
    Arc::new(os::persist::FileJournal::new(state_dir))
}

pub(crate) fn file_state(state_dir: &std::path::Path) -> Arc<dyn Store<EngineState>> {
    Arc::new(os::persist::FileStateStore::new(state_dir))
}

/// The given ports' recovery, else the real one with its reboot times in `persist_dir`.
pub(crate) fn recovery(
    given: Option<&netfailover_actors::ports::Ports>,
    persist_dir: &std::path::Path,
) -> Arc<dyn netfailover_actors::ports::Recovery> {
    match given {
        Some(p) => p.recovery.clone(),
        None => Arc::new(os::recovery::OsRecovery::new(persist_dir)),
    }
}

/// The given ports' accounts, else `persist_dir/accounting.json`.
pub(crate) fn accounts(
    given: Option<&netfailover_actors::ports::Ports>,
    persist_dir: &std::path::Path,
) -> Arc<dyn Store<netfailover_actors::accounting::Accounts>> {
    match given {
        Some(p) => p.accounts.clone(),
        None => Arc::new(os::persist::FileAccounts::new(persist_dir)),
    }
}

/// The given ports' calendar, else the system's wall clock.
pub(crate) fn calendar(
    given: Option<&netfailover_actors::ports::Ports>,
) -> Arc<dyn netfailover_actors::ports::Calendar> {
    match given {
        Some(p) => p.calendar.clone(),
        None => Arc::new(netfailover_actors::ports::SystemCalendar),
    }
}
