//! The ports: everything the engine needs from the operating system, as object-safe traits.
//!
//! The root crate implements them against the kernel (`src/os/`), `fake/` implements them in
//! memory. Ports are shared (`Arc`) by every incarnation of an actor: an actor that restarts asks
//! its port again (a new subscription, a fresh dump), so a port must never hand out state that
//! belongs to a dead actor. Every future is `Send + 'static` so an adapter may run it anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::model::{Connectivity, Event, Family, IfaceAddr, IfaceName, KernelRoute, LinkInfo};

pub use crate::error::{PortError, PortErrorKind};

mod recovery;
pub use recovery::{ActionOutcome, NoRecovery, Recovery, RecoveryAction, RecoveryTarget};

pub type PortResult<T> = Result<T, PortError>;

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

/// One notification from the kernel's link/address/route multicast groups.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LinkUpdate {
    /// A link appeared or changed (RTM_NEWLINK).
    Link(LinkInfo),
    /// A link disappeared (RTM_DELLINK).
    Removed { ifindex: u32 },
    /// Addresses or routes changed somewhere (RTM_NEW/DELADDR, RTM_NEW/DELROUTE): the route
    /// table must be reconciled.
    RoutesChanged,
    /// The socket overran (ENOBUFS): notifications were lost; dump everything again.
    Overrun,
}

/// Where link facts come from (a netlink multicast socket in production).
pub trait LinkSource: Send + Sync + 'static {
    /// Opens a fresh subscription. Called on every (re)start of the LinkWatcher, which then calls
    /// [`LinkSource::dump`] so nothing between the two is missed. The stream ends only if the
    /// socket fails; the LinkWatcher then stops and is restarted.
    fn subscribe(&self) -> BoxFuture<'static, PortResult<BoxStream<'static, LinkUpdate>>>;

    /// Every link the kernel has now.
    fn dump(&self) -> BoxFuture<'static, PortResult<Vec<LinkInfo>>>;

    /// The network interface of a modem's control device (`cdc-wdm0`, `ttyUSB2`), if the
    /// device and its interface exist now (sysfs in production). Asked on every reconcile, so a
    /// modem that appears (or re-enumerates under another name) after the start is found.
    fn control_device_net(&self, device: &str) -> Option<IfaceName> {
        let _ = device;
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Routes and kernel settings
// ---------------------------------------------------------------------------------------------

/// The main routing table's default routes, and interface addresses (netlink in production).
pub trait RouteTable: Send + Sync + 'static {
    /// Every default route (destination 0.0.0.0/0 or ::/0) of the main table, both families,
    /// any protocol. IPv6 metric 0 is reported as 1024, as the kernel stores it.
    fn list_defaults(&self) -> BoxFuture<'static, PortResult<Vec<KernelRoute>>>;

    /// Adds a route; `PortErrorKind::Exists` if one with the same key (family, metric) exists.
    fn add(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>>;

    /// Replaces the route with the same key (family, metric) in place (NLM_F_REPLACE), or adds it.
    fn replace(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>>;

    /// Deletes exactly this route (matched by family, ifindex, gateway, metric, protocol);
    /// `PortErrorKind::NotFound` if it is already gone.
    fn delete(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>>;

    /// Every interface address, both families, as (ifindex, address with its prefix length).
    /// RouteManager remembers each managed interface's last addresses from it, so the flows of an
    /// interface that vanished (a modem unplugged) can still be reset.
    fn list_addresses(&self) -> BoxFuture<'static, PortResult<Vec<(u32, IfaceAddr)>>>;

    /// Makes sure `addr` is on the interface (idempotent: an existing address is success).
    fn ensure_address(&self, ifindex: u32, addr: IfaceAddr) -> BoxFuture<'static, PortResult<()>>;

    /// Sends one IPv6 Router Solicitation on the interface (to all-routers, hop limit 255), so
    /// the router's answer re-installs its default route with the current `ra_defrtr_metric`.
    /// The default does nothing (a table without router-advertised routes).
    fn solicit_router(&self, ifindex: u32, name: IfaceName) -> BoxFuture<'static, PortResult<()>> {
        let _ = (ifindex, name);
        Box::pin(async { Ok(()) })
    }
}

/// Per-interface kernel settings the engine tunes (`/proc/sys/net/...` in production).
/// Keys are sysctl names with dots, e.g. `net.ipv4.conf.eth0.rp_filter`.
pub trait Sysctl: Send + Sync + 'static {
    fn read(&self, key: String) -> BoxFuture<'static, PortResult<String>>;
    fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>>;
}

// ---------------------------------------------------------------------------------------------
// Connectivity checks
// ---------------------------------------------------------------------------------------------

/// What to check: one interface, with the DNS servers to resolve the check host through it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ProbeRequest {
    pub iface: IfaceName,
    pub ifindex: u32,
    /// In the docs/semantics.md §3 order; queried through `iface` only.
    pub dns: Vec<SocketAddr>,
    /// Families with a known default route or gateway on `iface`. A check goes only to target
    /// addresses of these families (through a socket bound to the interface, the kernel would
    /// take any other target as on-link and ARP for it); none at all: NONE without a check.
    pub routed: Vec<Family>,
}

/// The classified result of one check (docs/semantics.md §3 table).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Full,
    Portal,
    Limited,
    /// No link or no route on the interface.
    None,
}

impl Verdict {
    pub fn connectivity(self) -> Connectivity {
        match self {
            Verdict::Full => Connectivity::Full,
            Verdict::Portal => Connectivity::Portal,
            Verdict::Limited => Connectivity::Limited,
            Verdict::None => Connectivity::None,
        }
    }
}

/// One check's outcome.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ProbeReport {
    pub verdict: Verdict,
    /// Human reason: "HTTP 204", "connect timeout", "DNS: no answer from 192.0.2.53:53", ...
    pub reason: String,
    /// Bytes on the wire for this check at L3 (HTTP(S) both ways, plus DNS), estimated by the
    /// adapter from what it sent and received plus per-packet header overhead.
    pub bytes: u64,
    /// Of which DNS.
    pub dns_bytes: u64,
    pub elapsed: Duration,
}

/// What a check in flight has achieved so far, readable while it runs: a confirmation whose
/// short deadline passes after the check reached its server is not a failed check (the path
/// works; the server is slow), so it is awaited up to the full timeout.
#[derive(Debug, Default)]
pub struct CheckProgress(std::sync::atomic::AtomicBool);

impl CheckProgress {
    /// The check's TCP connection to the check server is established through the interface.
    pub fn set_connected(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Connectivity checks (HTTP(S) bound to an interface in production).
pub trait Probe: Send + Sync + 'static {
    /// Runs one check. Must end by itself within the configured connect/total timeouts; the
    /// engine adds its own safety timeout on top and calls a late check LIMITED.
    fn check(&self, request: ProbeRequest) -> BoxFuture<'static, ProbeReport>;

    /// [`Probe::check`], recording in `progress` how far it got (an adapter that cannot tell
    /// leaves it untouched: a short deadline then ends the check as before).
    fn check_with_progress(
        &self,
        request: ProbeRequest,
        progress: Arc<CheckProgress>,
    ) -> BoxFuture<'static, ProbeReport> {
        drop(progress);
        self.check(request)
    }
}

// ---------------------------------------------------------------------------------------------
// Passive health: the device's own traffic
// ---------------------------------------------------------------------------------------------

/// TCP state of a sampled socket, reduced to what passive health distinguishes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpPhase {
    /// SYN sent, no answer yet.
    SynSent,
    /// Connected and able to carry data (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, CLOSING, LAST_ACK).
    Open,
    /// Anything else the dump returned (closing states with nothing in flight).
    Other,
}

/// One local TCP socket whose source address is on a sampled interface (sock_diag with
/// `INET_DIAG_INFO` in production; the fields are `struct tcp_info`'s).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TcpSocketSample {
    /// The kernel's socket cookie: stable for the socket's life, never reused while it lives.
    pub cookie: u64,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub phase: TcpPhase,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`).
    pub unacked: u32,
    /// Consecutive retransmission timeouts of the current segment (`tcpi_retransmits`).
    pub retransmits: u8,
    /// Retransmitted segments over the socket's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Time since the last ACK was received (`tcpi_last_ack_recv`).
    pub last_ack_recv: Duration,
    /// Smoothed round-trip time (`tcpi_rtt`); zero before the first measurement.
    pub rtt: Duration,
    /// Bytes the peer acknowledged so far (`tcpi_bytes_acked`); progress shows here.
    pub bytes_acked: u64,
    /// Bytes received so far (`tcpi_bytes_received`).
    pub bytes_received: u64,
}

/// One interface's traffic at one moment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IfaceTraffic {
    pub ifindex: u32,
    /// The name the kernel has for `ifindex` now (differs from the managed name after a rename).
    pub name: String,
    /// Link counters (`IFLA_STATS64`); they may wrap or restart from zero.
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Received multicast packets, part of `rx_packets` (LAN noise, not upstream traffic).
    pub rx_multicast: u64,
    /// Link byte counters (`IFLA_STATS64`, L3 and up as the driver counts them), for the
    /// monthly accounting; they may wrap or restart from zero like the packet counters.
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
    /// TCP sockets whose source address is on this interface (both families).
    pub tcp: Vec<TcpSocketSample>,
    /// The interface's connected subnets (address, prefix length): a peer inside one is on the
    /// LAN, reached without the uplink's gateway, so its traffic never speaks for the uplink.
    pub subnets: Vec<(IpAddr, u8)>,
    /// Connection-tracking entries that leave through this interface (forwarded and NATed
    /// flows, UDP, the device's own), with per-direction packet counters; `None` when
    /// connection tracking (or its accounting) is not available, so flows are not seen.
    pub flows: Option<Vec<FlowSample>>,
}

/// The transport protocol of a tracked flow.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowProto {
    Tcp,
    Udp,
    Other,
}

/// One connection-tracking entry (ctnetlink with `nf_conntrack_acct` in production).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FlowSample {
    /// The entry's id: stable for the entry's life.
    pub id: u64,
    pub proto: FlowProto,
    /// The remote end (the original direction's destination).
    pub peer: IpAddr,
    /// Packets in the original direction (from the device or a container to `peer`).
    pub orig_packets: u64,
    /// Packets in the reply direction (from `peer`).
    pub reply_packets: u64,
}

/// Where passive health reads the device's own traffic (rtnetlink + sock_diag in production).
pub trait TrafficSource: Send + Sync + 'static {
    /// Samples the interfaces with these indexes; an index the kernel no longer has is simply
    /// absent from the answer. Called once per `passive.period`, so it must be cheap.
    fn sample(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>>;

    /// The link counters alone (`tcp`, `subnets` and `flows` left empty): one link dump, what
    /// TrafficWatcher reads each period to decide whether a whole sample could show anything
    /// new. By default a whole sample.
    fn counters(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>> {
        self.sample(ifindexes)
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatcher scripts and persistence
// ---------------------------------------------------------------------------------------------

/// How one script ended.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum ScriptResult {
    Exited {
        code: i32,
    },
    Signalled {
        signal: i32,
    },
    /// Ran past `script_timeout`; its process group was killed.
    TimedOut,
    /// Not run: failed the security checks or could not be started.
    Skipped {
        why: String,
    },
}

/// One script's run for one event.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ScriptOutcome {
    /// Path relative to `dispatcher.d/`.
    pub script: String,
    #[serde(flatten)]
    pub result: ScriptResult,
    pub elapsed: Duration,
}

/// Runs the user's scripts for an event (tokio processes in production).
pub trait ScriptRunner: Send + Sync + 'static {
    /// Runs every script for `event`, one at a time, in order, and reports each.
    ///
    /// Contract: dropping the future (the Dispatcher was stopped or killed) kills the running
    /// script's whole process group; nothing keeps running.
    fn run(&self, event: Event) -> BoxFuture<'static, Vec<ScriptOutcome>>;
}

/// What the event journal holds.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct JournalState {
    /// The id the next event gets.
    pub next_id: u64,
    /// Events produced and not yet fully delivered, oldest first.
    pub pending: Vec<Event>,
}

/// Durable store of one piece of engine state (a JSON file under `state_dir` in production):
/// the dispatcher's pending events ([`JournalState`], the event journal) and RouteManager's
/// per-interface records ([`EngineState`]). One port for both: they are saved and loaded alike.
pub trait Store<T>: Send + Sync + 'static {
    /// The last saved state; a missing one is `T::default()`.
    fn load(&self) -> BoxFuture<'static, PortResult<T>>;
    /// Atomically replaces the saved state.
    fn save(&self, state: T) -> BoxFuture<'static, PortResult<()>>;
    /// The lowest id the next event may take (asked of the journal only), from a clock that
    /// only moves forward within a boot (the journal lives on tmpfs): a lost or corrupt journal,
    /// or a crash before a write, never makes ids start over or repeat. 0: no floor.
    fn id_floor(&self) -> u64 {
        0
    }
}

/// The last known state of one interface, persisted on every change.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IfaceRecord {
    pub connectivity: Connectivity,
    /// An `up` event has been produced and no `down` since.
    pub announced_up: bool,
}

/// What RouteManager persists so a restart resumes instead of starting from UNKNOWN.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct EngineState {
    pub interfaces: BTreeMap<IfaceName, IfaceRecord>,
    /// The last global connectivity announced.
    pub global: Option<Connectivity>,
    /// Gateways learned from foreign default routes we replaced (method=auto), per interface.
    pub learned_gateways: BTreeMap<IfaceName, Vec<IpAddr>>,
    /// Interfaces whose NONE came from their checks (not from a lost link): a restart keeps
    /// them NONE instead of taking them for a fresh link (UNKNOWN).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub none_from_checks: BTreeSet<IfaceName>,
    /// What was left of each running fail-back hold when this was saved, in milliseconds:
    /// a restart resumes the hold instead of dropping the penalty at once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failback_hold_ms: BTreeMap<IfaceName, u64>,
}

// ---------------------------------------------------------------------------------------------
// Flows pinned to an interface
// ---------------------------------------------------------------------------------------------

/// Which flows to reset: those pinned to one interface's addresses of one family (the rules are
/// `flows.rs`'s [`crate::flows::Pinned`]).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FlowScope {
    pub iface: IfaceName,
    pub ifindex: u32,
    pub family: Family,
    /// The interface's addresses as RouteManager last saw them. The reset matches the union of
    /// these and the addresses the interface has when it runs: an interface that vanished (or
    /// lost its lease) has none left, while its sockets still hold them.
    #[serde(default)]
    pub last_addresses: Vec<IfaceAddr>,
}

/// Why part of a flow reset failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowFailureKind {
    /// The kernel lacks the feature (SOCK_DESTROY without `CONFIG_INET_DIAG_DESTROY`, or no
    /// conntrack): EOPNOTSUPP, EPROTONOSUPPORT.
    Unsupported,
    /// Not allowed (no CAP_NET_ADMIN): EPERM, EACCES.
    NoPermission,
    /// Anything else, with the OS's words.
    Failed,
}

/// One failed part of a flow reset.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, thiserror::Error)]
#[error("{what}: {message}")]
pub struct FlowFailure {
    pub kind: FlowFailureKind,
    /// What was attempted: `destroying TCP sockets`, `deleting conntrack entries`, ...
    pub what: String,
    /// A message an operator can act on.
    pub message: String,
}

/// What one flow reset did.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct FlowResetReport {
    /// The interface's addresses the flows were matched against.
    pub addresses: Vec<IfaceAddr>,
    pub sockets_destroyed: u64,
    pub conntrack_deleted: u64,
    /// Each failed part; the other parts still ran. Several failures of the same kind are
    /// reported once, with a count in the message.
    pub failures: Vec<FlowFailure>,
}

/// Local sockets and connection tracking (sock_diag and ctnetlink in production).
pub trait FlowTable: Send + Sync + 'static {
    /// Destroys the local TCP sockets and deletes the conntrack entries pinned to `scope`'s
    /// interface. Never fails as a whole: every failed part is in the report.
    fn reset(&self, scope: FlowScope) -> BoxFuture<'static, FlowResetReport>;
}

/// All the ports the engine runs on.
#[derive(Clone)]
pub struct Ports {
    pub links: Arc<dyn LinkSource>,
    pub routes: Arc<dyn RouteTable>,
    pub sysctl: Arc<dyn Sysctl>,
    pub probe: Arc<dyn Probe>,
    pub scripts: Arc<dyn ScriptRunner>,
    pub journal: Arc<dyn Store<JournalState>>,
    pub state: Arc<dyn Store<EngineState>>,
    pub flows: Arc<dyn FlowTable>,
    pub traffic: Arc<dyn TrafficSource>,
    /// The recovery ladder's actions and the persisted reboot times.
    pub recovery: Arc<dyn Recovery>,
    /// The monthly accounts (check bytes, link bytes, budget thresholds announced), kept where
    /// a reboot does not lose them (`persist_dir`).
    pub accounts: Arc<dyn Store<crate::accounting::Accounts>>,
    /// The calendar the accounts' months follow.
    pub calendar: Arc<dyn Calendar>,
}

/// The wall clock, UTC: which calendar month it is (the accounting's months). A port so a test
/// can turn the month.
pub trait Calendar: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch, now.
    fn now_unix_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemCalendar;

impl Calendar for SystemCalendar {
    fn now_unix_ms(&self) -> u64 {
        unix_ms_now()
    }
}

/// The wall clock now, in milliseconds since the Unix epoch (0 for a clock set before 1970):
/// the time stamps of events, checks and records in `status`.
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
