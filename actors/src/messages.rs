//! The facts and requests actors exchange: every message that crosses from one actor to another
//! is defined here, grouped by the actor that handles it.
//!
//! Actors never name each other: each holds a [`crate::peers::Slot`] per message it sends, which
//! the supervisor points at the handler's current incarnation (docs/architecture.md). So this
//! module depends on data modules only (`model`, `ports`, `error`, `supervision`) and every actor
//! module depends on it, never on another actor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Message;
use tokio::time::Instant;

use crate::actor_name::ActorName;
use crate::error::EngineError;
use crate::model::{Config, Connectivity, Family, IfaceAddr, IfaceName, LinkInfo};
use crate::ports::{ProbeReport, ProbeRequest};

// ---------------------------------------------------------------------------------------------
// Handled by every actor that reads the configuration
// ---------------------------------------------------------------------------------------------

/// A new configuration (SIGHUP; from the supervisor, to each running actor that reads the
/// configuration: RouteManager, ProbeScheduler, FlowResetter, TrafficWatcher, RecoveryManager,
/// Accountant).
/// Each takes the parts it uses; the supervisor also keeps it for the next (re)start of any child.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure(pub Arc<Config>);

// ---------------------------------------------------------------------------------------------
// Handled by RouteManager
// ---------------------------------------------------------------------------------------------

/// A link appeared or changed (from LinkWatcher).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LinkChanged(pub LinkInfo);

/// A link disappeared (from LinkWatcher).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LinkRemoved {
    pub ifindex: u32,
}

/// Every link, after a (re)subscription or an overrun: replaces the model (from LinkWatcher).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LinkSnapshot(pub Vec<LinkInfo>);

/// Routes or addresses changed somewhere: reconcile (from LinkWatcher).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RoutesChanged;

/// ProbeScheduler's verdict on an interface changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConnectivityChanged {
    pub iface: IfaceName,
    pub state: Connectivity,
    pub reason: String,
}

/// The managed interfaces, now (from ProbeScheduler on its start, TrafficWatcher each period).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Vec<Uplink>")]
pub struct GetUplinks;

/// Clean shutdown: remove penalties, leave owned routes at their configured metrics (from the
/// supervisor).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Shutdown;

/// A managed interface as RouteManager reports it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Uplink {
    pub name: IfaceName,
    pub ifindex: u32,
    /// Link up with carrier.
    pub usable: bool,
    pub dns: Vec<SocketAddr>,
    /// Families with a known default route or gateway (see `ProbeRequest::routed`).
    pub routed: Vec<Family>,
    /// Its settings expect a default route through it: IPv4's is managed (no `never-default`,
    /// not `disabled`), or IPv6's with a manual gateway. An interface that expects none and has
    /// none (a LAN port with `never-default=true`, IPv6 left to router advertisements that never
    /// come) is no uplink to recover: the ladder leaves it alone.
    pub expects_default: bool,
    /// RouteManager's recorded state (UNKNOWN right after the link came back).
    pub connectivity: Connectivity,
    /// Configured IPv4 metric (before penalty): passive health ranks uplinks with it.
    pub metric: u32,
    /// A gsm/cdma uplink (the recovery ladder's `modem-reset` applies).
    pub cellular: bool,
    /// The profile's `connection.metered` (or the type's guess): checks cost money here
    /// (`[metered]`: the standby cadence, skipped checks, `budget_month`).
    pub metered: bool,
    /// Carries the route in use of a family (after the last applied reconcile).
    pub in_use: bool,
}

// ---------------------------------------------------------------------------------------------
// Handled by ProbeScheduler
// ---------------------------------------------------------------------------------------------

/// RouteManager's managed interfaces changed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UplinksChanged(pub Vec<Uplink>);

/// RouteManager reset these interfaces (their link bounced inside one kernel message): their
/// checks start over from UNKNOWN.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ResetChecks(pub Vec<IfaceName>);

/// Passive health suspects `iface` (from TrafficWatcher): confirm with checks.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Confirm {
    pub iface: IfaceName,
    /// The interface's TCP round-trip time while healthy, if measured.
    pub rtt: Option<Duration>,
    /// The standby that would take over, to check once if its last result is stale.
    pub standby: Option<IfaceName>,
    pub reason: String,
}

/// A Prober finished a check; the reply says what next (`None`: stop).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<NextCheck>")]
pub struct ProbeDone {
    pub iface: IfaceName,
    pub report: ProbeReport,
}

/// What a Prober does after a check.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NextCheck {
    /// (Re)schedule the periodic timer for this delay.
    After(Duration),
    /// Confirming: check again at once with this deadline.
    Confirm(Duration),
    /// The confirmation ended well: leave the periodic timer as it is (or set this delay if
    /// none is pending).
    KeepTimer(Duration),
}

/// How an actor is ended on request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KillHow {
    /// Aborted (`netfailover kill`): restarted at once, not counted as a failure.
    Abort,
    /// Test hook (feature `fake`): its task panics, as a bug in a handler would.
    #[cfg(feature = "fake")]
    Panic,
}

/// `netfailover kill prober:<iface>` (from the supervisor).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub struct KillProber {
    pub iface: IfaceName,
    pub how: KillHow,
}

/// `netfailover check <iface>` (from the supervisor).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ProbeReport, EngineError>")]
pub struct CheckIface(pub IfaceName);

/// Two-way traffic seen through a metered `iface` in the sample taken `at` (from TrafficWatcher):
/// a TCP socket whose bytes acknowledged and bytes received both grew, or a tracked flow whose
/// both directions grew, since the sample before. Proof of health a periodic check may skip on.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TwoWayTraffic {
    pub iface: IfaceName,
    pub at: Instant,
}

// ---------------------------------------------------------------------------------------------
// Handled by a Prober (sent by ProbeScheduler, its parent)
// ---------------------------------------------------------------------------------------------

/// The periodic timer of `iface`'s Prober fired: may the periodic check run? `None`: run it
/// now; `Some(delay)`: skipped (0 bytes), ask again after `delay` (from the Prober to
/// ProbeScheduler, its parent).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<Duration>")]
pub struct PeriodicDue {
    pub iface: IfaceName,
}

/// Run a confirmation check now with this deadline (ignored while a check is in flight: its
/// result serves as the confirmation).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ConfirmCheck(pub Duration);

/// Re-target the checks (the interface's DNS servers or ifindex changed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Retarget(pub ProbeRequest);

/// Replace the periodic timer: the next periodic check comes after this delay (zero: now, not
/// asking [`PeriodicDue`]). A metered standby's long cadence ended (it is about to be needed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CheckAfter(pub Duration);

/// Check now, outside the schedule, and reply with the result (`netfailover check`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "ProbeReport")]
pub struct CheckNow;

// ---------------------------------------------------------------------------------------------
// Handled by FlowResetter
// ---------------------------------------------------------------------------------------------

/// The route in use of `family` moved from one interface to another; the new routes are in the
/// kernel already (from RouteManager, after apply).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RouteInUseMoved {
    pub family: Family,
    pub from: IfaceName,
    pub from_ifindex: u32,
    /// `from`'s addresses as last seen (it may have none left, or be gone).
    pub from_addresses: Vec<IfaceAddr>,
    pub to: IfaceName,
    /// `from` is cellular (gsm/cdma: metered, as NetworkManager guesses): its flows are reset
    /// even on a fail-back with `on_failback = false`, so they move back to the primary.
    pub from_cellular: bool,
    /// Onto an uplink with a lower configured metric (the primary recovered).
    pub failback: bool,
    /// When RouteManager finished applying the routes.
    pub at: Instant,
}

// ---------------------------------------------------------------------------------------------
// Handled by TrafficWatcher
// ---------------------------------------------------------------------------------------------

/// Whether traffic through `iface` (`ifindex`) was answered since `since` (from a Prober whose
/// confirmation ran out of its short deadline before its check connected): a fresh sample
/// compared with the last one, or progress seen in a sample since then.
#[derive(Message, Debug, Clone)]
#[rtype(result = "bool")]
pub struct AnsweredSince {
    pub iface: IfaceName,
    pub ifindex: u32,
    pub since: Instant,
}

// ---------------------------------------------------------------------------------------------
// Handled by RecoveryManager
// ---------------------------------------------------------------------------------------------

/// RouteManager's managed interfaces changed (sent with `UplinksChanged`): the ladder's input.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UplinkStates(pub Vec<Uplink>);

// ---------------------------------------------------------------------------------------------
// Handled by the Accountant
// ---------------------------------------------------------------------------------------------

/// One check's bytes (from ProbeScheduler, for every check it records: periodic, confirming,
/// requested).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ProbeSpent {
    pub iface: IfaceName,
    pub bytes: u64,
    pub dns_bytes: u64,
}

/// Save the accounts now, with a last reading of the link counters (from the supervisor, on a
/// clean stop, before the tree is stopped).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FlushAccounts;

// ---------------------------------------------------------------------------------------------
// Handled by ProbeScheduler, from the Accountant
// ---------------------------------------------------------------------------------------------

/// The metered uplinks whose budget cannot take another check this month: their periodic
/// checks stop (the whole set, level-triggered: sent on every change and after every
/// `ProbeSpent`, so a restarted ProbeScheduler learns it with its first check).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BudgetExhausted(pub std::collections::BTreeSet<IfaceName>);

// ---------------------------------------------------------------------------------------------
// Handled by the Supervisor (from `EngineHandle`)
// ---------------------------------------------------------------------------------------------

/// End an actor (resilience testing).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), EngineError>")]
pub struct Kill {
    pub actor: ActorName,
    pub how: KillHow,
}

/// Check one interface now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<ProbeReport, EngineError>")]
pub struct CheckNowFor(pub IfaceName);

/// Apply a new configuration.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reload(pub Config);

/// Clean stop: penalties removed, then every child stopped.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StopTree;
