//! What `netfailover status`, the metrics endpoint and tests read: the status records, as data.
//! The shared board that holds them and announces their changes is `board.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::metered::SkipReason;
use crate::model::{Connectivity, Event, Family, IfaceName, UplinkType};
use crate::ports::{FlowFailure, ScriptOutcome, Verdict};

/// Recent events kept for `netfailover events`.
pub const HISTORY_LEN: usize = 256;

/// Upper bounds (seconds) of the check-latency histogram buckets; the last bucket is +Inf.
pub const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 20.0];

/// One finished check, as shown by `status`; or a periodic check skipped (`skipped`), which
/// keeps the verdict it stood on.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct CheckSummary {
    pub at_unix_ms: u64,
    pub verdict: Verdict,
    pub reason: String,
    pub latency_ms: f64,
    /// Why the periodic check was skipped (0 bytes spent); absent for a check that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<SkipReason>,
}

/// Per-interface counters for the metrics endpoint.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct CheckCounters {
    /// Checks by verdict (`FULL`, `PORTAL`, `LIMITED`, `NONE`).
    pub by_verdict: BTreeMap<String, u64>,
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound, plus one for +Inf.
    pub latency_buckets: Vec<u64>,
    pub latency_sum_seconds: f64,
    pub latency_count: u64,
    /// Periodic checks skipped, by reason (`traffic`, `budget`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, u64>,
}

impl CheckCounters {
    /// One periodic check skipped for `reason`.
    pub fn record_skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason.as_str().to_string()).or_default() += 1;
    }

    pub fn record(&mut self, verdict: Verdict, latency_seconds: f64) {
        let key = serde_json::to_value(verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *self.by_verdict.entry(key).or_default() += 1;
        if self.latency_buckets.len() != LATENCY_BUCKETS.len() + 1 {
            self.latency_buckets = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if latency_seconds <= *bound {
                self.latency_buckets[i] += 1;
            }
        }
        // The +Inf bucket counts everything.
        if let Some(last) = self.latency_buckets.last_mut() {
            *last += 1;
        }
        self.latency_sum_seconds += latency_seconds;
        self.latency_count += 1;
    }
}

/// Passive health's verdict on one interface, as `status` shows it.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PassiveState {
    /// Not sampled yet (JSON `""`).
    #[default]
    #[serde(rename = "")]
    Unsampled,
    /// Disabled, or the interface is not sampled.
    Off,
    /// Sampled, no evidence of a stall.
    Quiet,
    /// Evidence of a stall: confirmations asked for.
    Suspect,
}

impl PassiveState {
    /// The word `status --json` holds (`""` before the first sample).
    pub fn as_str(self) -> &'static str {
        match self {
            PassiveState::Unsampled => "",
            PassiveState::Off => "off",
            PassiveState::Quiet => "quiet",
            PassiveState::Suspect => "suspect",
        }
    }
}

/// A passive state compares equal to its word (`state == "suspect"`).
impl PartialEq<&str> for PassiveState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What passive health's sampling sees of an interface's traffic.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub enum Sees {
    /// Before the first sample (JSON `""`).
    #[default]
    #[serde(rename = "")]
    Unsampled,
    /// The device's own TCP sockets, and every tracked flow (forwarded, NATed, UDP).
    #[serde(rename = "sockets+conntrack")]
    SocketsAndConntrack,
    /// Only the device's own TCP sockets: connection tracking is not available.
    #[serde(rename = "sockets only (no connection tracking)")]
    SocketsOnly,
}

impl Sees {
    /// The text `status --json` holds.
    pub fn as_str(self) -> &'static str {
        match self {
            Sees::Unsampled => "",
            Sees::SocketsAndConntrack => "sockets+conntrack",
            Sees::SocketsOnly => "sockets only (no connection tracking)",
        }
    }
}

impl fmt::Display for Sees {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares equal to its text (`sees == "sockets+conntrack"`).
impl PartialEq<&str> for Sees {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Passive health of one interface in `status` (TrafficWatcher and ProbeScheduler publish it).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct PassiveStatus {
    /// `off` (disabled or not sampled), `quiet`, or `suspect` (`""` before the first sample).
    pub state: PassiveState,
    /// Since when the interface has shown evidence of a stall (Unix ms), while suspect.
    pub suspect_since_unix_ms: Option<u64>,
    /// What last asked for a confirmation, and when (Unix ms).
    pub last_trigger: Option<String>,
    pub last_trigger_unix_ms: Option<u64>,
    /// Suspicions that asked for confirmation (after the cost bound's back-off).
    pub suspicions: u64,
    /// Confirmation checks run, and of those the ones that failed.
    pub confirmations: u64,
    pub confirmations_failed: u64,
    /// What the sampling sees: `sockets+conntrack` (the device's own TCP sockets, and every
    /// tracked flow: forwarded, NATed, UDP) or `sockets only (no connection tracking)`; empty
    /// before the first sample.
    #[serde(default)]
    pub sees: Sees,
    /// Confirmations the hourly ceiling (`passive.max_confirmations_per_hour`) held back.
    #[serde(default)]
    pub held_by_ceiling: u64,
}

/// The link of a managed interface, as `status` shows it (`"up"`, `"down"`, `"absent"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Up with carrier.
    Up,
    /// No carrier, or administratively down.
    Down,
    /// A profile's interface that does not exist (yet).
    Absent,
}

impl LinkState {
    /// The word `status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Absent => "absent",
        }
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A link state compares equal to its word (`link == "up"`).
impl PartialEq<str> for LinkState {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for LinkState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Why an interface is managed: a profile matched it, or it was adopted (no profile, a default
/// route of its own). Serialised as `status` prints it: `"profile <id> (<file>)"` or
/// `"adopted"`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum IfaceSource {
    /// The profile (`[connection] id=`) and the keyfile it came from.
    Profile {
        id: String,
        file: PathBuf,
    },
    Adopted,
}

impl fmt::Display for IfaceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IfaceSource::Profile { id, file } => write!(f, "profile {id} ({})", file.display()),
            IfaceSource::Adopted => f.write_str("adopted"),
        }
    }
}

/// Not a source `status` prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("interface source {0:?} is neither \"adopted\" nor \"profile ID (FILE)\"")]
pub struct BadIfaceSource(pub String);

impl FromStr for IfaceSource {
    type Err = BadIfaceSource;

    /// The inverse of `Display`. An id or file holding `" ("` makes the split ambiguous; any
    /// split prints back to the same text, which is all a reader of `status` sees.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "adopted" {
            return Ok(IfaceSource::Adopted);
        }
        s.strip_prefix("profile ")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|rest| rest.split_once(" ("))
            .map(|(id, file)| IfaceSource::Profile {
                id: id.into(),
                file: file.into(),
            })
            .ok_or_else(|| BadIfaceSource(s.into()))
    }
}

impl TryFrom<String> for IfaceSource {
    type Error = BadIfaceSource;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<IfaceSource> for String {
    fn from(s: IfaceSource) -> Self {
        s.to_string()
    }
}

/// RouteManager's part of one interface's status (`iface_parts.rs`): everything but checks
/// and passive health.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct IfaceRoute {
    pub name: IfaceName,
    pub ifindex: Option<u32>,
    pub link: LinkState,
    pub connectivity: Connectivity,
    /// Configured IPv4 metric.
    pub metric: u32,
    /// Metric of the IPv4 route installed now (with penalty and uniqueness bump); `None` when
    /// no IPv4 default route is installed.
    pub effective_metric: Option<u32>,
    pub metric6: u32,
    pub effective_metric6: Option<u32>,
    pub gateway4: Option<IpAddr>,
    pub gateway6: Option<IpAddr>,
    /// Set when router-advertised IPv6 routes on this interface cannot be demoted: the kernel
    /// has no `net.ipv6.conf.IFACE.ra_defrtr_metric` (added in Linux 5.12), so they keep the
    /// kernel's metric through penalties; says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_penalty_unavailable: Option<String>,
    pub uplink_type: UplinkType,
    pub source: IfaceSource,
    pub dns: Vec<SocketAddr>,
    /// The profile's `connection.metered` (or the type's guess, as for an adopted interface).
    #[serde(default)]
    pub metered: bool,
    /// `metered` was guessed from the type, not written in the profile.
    #[serde(default)]
    pub metered_guessed: bool,
}

/// One managed interface in `status`: RouteManager's part ([`IfaceRoute`], whose fields come
/// first in the JSON, flattened) and the checks' and passive health's.
///
/// The route part's fields read through `Deref` (`status.link`, `status.connectivity`), as
/// they did when they were this struct's own.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct IfaceStatus {
    #[serde(flatten)]
    pub route: IfaceRoute,
    pub last_check: Option<CheckSummary>,
    pub probe_bytes: u64,
    pub probe_dns_bytes: u64,
    pub checks: CheckCounters,
    #[serde(default)]
    pub passive: PassiveStatus,
}

impl std::ops::Deref for IfaceStatus {
    type Target = IfaceRoute;
    fn deref(&self) -> &IfaceRoute {
        &self.route
    }
}

impl std::ops::DerefMut for IfaceStatus {
    fn deref_mut(&mut self) -> &mut IfaceRoute {
        &mut self.route
    }
}

/// How an actor's task ended, as `status` and the restart events say it (`"stopped"`,
/// `"panicked"`, `"killed"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    /// The actor stopped itself (e.g. its event stream ended).
    Stopped,
    /// A handler panicked; the panic was contained in the child's task.
    Panicked,
    /// Aborted by `kill` (or by its parent).
    Killed,
}

impl Exit {
    /// The word `status` and the events hold.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Stopped => "stopped",
            Exit::Panicked => "panicked",
            Exit::Killed => "killed",
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exit compares equal to its word (`reason == "killed"`).
impl PartialEq<str> for Exit {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Exit {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One actor in `status`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ActorStatus {
    pub name: String,
    pub running: bool,
    /// Restarts after a failure or a kill.
    pub restarts: u32,
    /// Of which caused by `kill` (they do not count toward the restart intensity).
    pub kills: u32,
    /// How the last failure ended it (`stopped` or `panicked`; kills are not failures).
    pub last_failure: Option<Exit>,
}

/// A produced event and, once delivered, its scripts' outcomes.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EventRecord {
    pub event: Event,
    pub delivered: bool,
    pub scripts: Vec<ScriptOutcome>,
}

/// One `flows-reset`: the flows pinned to a demoted interface were reset after the route in use
/// moved. Part of the `events` history, but not a dispatcher event (no id, no scripts).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct FlowResetRecord {
    pub at_unix_ms: u64,
    pub family: Family,
    /// The interface the route in use moved off (whose flows were reset).
    pub iface: IfaceName,
    /// The interface it moved to.
    pub to: IfaceName,
    /// The move was a fail-back onto a more preferred uplink.
    pub failback: bool,
    pub sockets_destroyed: u64,
    pub conntrack_deleted: u64,
    pub failures: Vec<FlowFailure>,
    /// From the route change (RouteManager's apply) to the end of the reset.
    pub elapsed_ms: f64,
}

/// Totals of every flow reset since the start, for `status` and the metrics endpoint.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct FlowCounters {
    pub resets: u64,
    pub sockets_destroyed: u64,
    pub conntrack_deleted: u64,
    pub failures: u64,
}

impl FlowCounters {
    /// Counts one finished reset.
    pub fn add(&mut self, r: &FlowResetRecord) {
        self.resets += 1;
        self.sockets_destroyed += r.sockets_destroyed;
        self.conntrack_deleted += r.conntrack_deleted;
        self.failures += r.failures.len() as u64;
    }
}

/// One line of the `events` history: a dispatcher event, or a flow reset.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HistoryEntry {
    Event(EventRecord),
    FlowsReset { flows_reset: FlowResetRecord },
}

impl HistoryEntry {
    pub fn at_unix_ms(&self) -> u64 {
        match self {
            HistoryEntry::Event(r) => r.event.at_unix_ms,
            HistoryEntry::FlowsReset { flows_reset } => flows_reset.at_unix_ms,
        }
    }
}

/// The whole status, as `status --json` prints it.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct EngineStatus {
    pub connectivity: Connectivity,
    pub interfaces: Vec<IfaceStatus>,
    pub actors: Vec<ActorStatus>,
    /// Dispatcher events produced / scripts that failed (non-zero, signal, timeout).
    pub events_total: u64,
    pub script_failures: u64,
    pub pending_events: usize,
    #[serde(default)]
    pub flows: FlowCounters,
    /// Whether the event journal on disk is behind the events produced.
    #[serde(default)]
    pub journal: JournalStatus,
    /// The recovery ladder (RecoveryManager's part).
    #[serde(default)]
    pub recovery: RecoveryStatus,
    /// What checking cost this month, per interface (the Accountant's part).
    #[serde(default)]
    pub accounting: AccountingStatus,
    /// Checks are off (`interval` 0, `uri` "null"): nothing is verified FULL (RouteManager's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checks_disabled: bool,
}

/// The month's accounts (docs/semantics.md §10), written by the Accountant only.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct AccountingStatus {
    /// `metered.budget_month`, bytes (0: no cap); it applies to metered uplinks.
    pub budget_month: u64,
    /// Every managed interface with a link seen this month.
    pub interfaces: BTreeMap<IfaceName, IfaceAccounting>,
}

/// One interface's month in `status`.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct IfaceAccounting {
    /// The month counted, `YYYY-MM` (UTC).
    pub month: String,
    /// `connection.metered` (or the type's guess): the budget applies.
    pub metered: bool,
    /// The month's check bytes at L3, both directions, DNS included; of which DNS.
    pub probe_bytes: u64,
    pub probe_dns_bytes: u64,
    /// Checks counted this month.
    pub checks: u64,
    /// The link's bytes this month (every packet through the interface).
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The highest budget threshold reached this month (75, 95, 100; 0: none or no budget).
    pub budget_percent: u8,
    /// The budget cannot take another check: periodic checks stopped until the month changes.
    pub budget_exhausted: bool,
}

/// Where the recovery ladder stands (`docs/recovery.md`), written by RecoveryManager only.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct RecoveryStatus {
    /// Interfaces in an episode (link, not FULL), with their next rung.
    pub interfaces: BTreeMap<IfaceName, IfaceRecovery>,
    /// The reboot rung: `off`, `uplink FULL`, `in 5m`, `rate-limited for 3h`, `requested`.
    pub reboot: String,
    /// Actions taken since the start, by `action` and `result` (`done`, `skipped`, `failed`).
    pub actions: BTreeMap<String, BTreeMap<String, u64>>,
}

/// One interface's episode in `status`.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct IfaceRecovery {
    /// Not FULL (with link) since, Unix ms.
    pub since_unix_ms: u64,
    /// The next rung (`relink`, `reconnect`, `modem-reset`), if one is left in this pass.
    pub next: Option<String>,
    /// When it is due, Unix ms.
    pub next_at_unix_ms: Option<u64>,
    /// Rungs already taken in this pass, with their results (`relink: done`).
    pub taken: Vec<String>,
}

/// The event journal's lag: routing never waits on the disk, so events can be acknowledged
/// (and their scripts run) before they are on disk; this says so.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct JournalStatus {
    /// Events not yet on disk or the last write failed.
    pub behind: bool,
    /// Events produced since the last successful journal write took its data.
    pub unsaved_events: u64,
    /// The last journal write's error, until a write succeeds.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON of one interface, field by field as `status --json` printed it before
    /// `IfaceStatus` was composed of `IfaceRoute` (flattened, same order, same words), with
    /// `metered` and `metered_guessed` added after `dns`.
    const ETH0: &str = concat!(
        r#"{"name":"eth0","ifindex":2,"link":"absent","connectivity":"LIMITED","metric":100,"#,
        r#""effective_metric":null,"metric6":100,"effective_metric6":null,"#,
        r#""gateway4":"192.0.2.1","gateway6":null,"uplink_type":"ethernet","#,
        r#""source":"profile Wired (1) (/etc/nm/a (b).nmconnection)","dns":["192.0.2.53:53"],"#,
        r#""metered":false,"metered_guessed":true,"#,
        r#""last_check":null,"probe_bytes":1,"probe_dns_bytes":2,"#,
        r#""checks":{"by_verdict":{},"latency_buckets":[],"latency_sum_seconds":0.0,"latency_count":0},"#,
        r#""passive":{"state":"","suspect_since_unix_ms":null,"last_trigger":null,"#,
        r#""last_trigger_unix_ms":null,"suspicions":0,"confirmations":0,"#,
        r#""confirmations_failed":0,"sees":"","held_by_ceiling":0}}"#
    );

    #[test]
    fn iface_status_json_is_the_flat_record_with_words() {
        let parsed: IfaceStatus = serde_json::from_str(ETH0).unwrap();
        assert_eq!(parsed.link, LinkState::Absent);
        assert!(matches!(parsed.source, IfaceSource::Profile { .. }));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), ETH0);
        for (state, word) in [
            (LinkState::Up, "\"up\""),
            (LinkState::Down, "\"down\""),
            (LinkState::Absent, "\"absent\""),
        ] {
            assert_eq!(serde_json::to_string(&state).unwrap(), word);
        }
        let adopted: IfaceSource = serde_json::from_str("\"adopted\"").unwrap();
        assert_eq!(adopted, IfaceSource::Adopted);
        assert!("profile x".parse::<IfaceSource>().is_err());
    }
}
