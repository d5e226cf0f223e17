//! The sections of `netfailover.toml`: one serde struct per table (`[check]`, `[route]`, …;
//! the top-level keys are the section named `""`), its defaults (taken from the engine's own
//! defaults in `netfailover_actors::model`, so there is one source of truth), its checks, and
//! how it fills the engine configuration. See the module doc of `settings` for how to add one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use netfailover_actors::model::{
    CheckConfig, DeviceEvents, DispatcherConfig, FlowsConfig, MeteredConfig, PassiveConfig,
    RecoveryConfig, RouteConfig, RpFilterPolicy, PENALTY_MAX,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::values::{absolute, at_least, bytes, duration, in_range, pem_file, Invalid};

/// One table of `netfailover.toml`.
pub trait Section: Serialize + DeserializeOwned + Default {
    /// The table's name (`"check"` for `[check]`); `""` for the top-level keys.
    const NAME: &'static str;
    /// Checks every key; returns the rejected ones with why (each then takes its default).
    fn validate(&self, ctx: &Context) -> Vec<(&'static str, Invalid)>;
}

/// What checks need to know beyond the values.
pub struct Context {
    /// Relative paths (`check.ca_file`) are relative to this folder.
    pub base_dir: PathBuf,
}

impl Context {
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }
}

/// Keeps the failed checks of `checks` with their key.
fn rejected<const N: usize>(
    checks: [(&'static str, Result<(), Invalid>); N],
) -> Vec<(&'static str, Invalid)> {
    checks
        .into_iter()
        .filter_map(|(key, r)| r.err().map(|e| (key, e)))
        .collect()
}

/// Route protocol ids the kernel reserves (0..=4) or that iproute2's `rt_protos` assigns to
/// other routing daemons: tagging our routes with one would make us delete theirs.
const TAKEN_PROTOCOLS: [u8; 23] = [
    0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 42, 99, 186, 187, 188, 189, 192,
];

/// `[check]`: the tuning of the connectivity check (uri, response and interval come from
/// config.json).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckSection {
    pub down_count: u32,
    pub up_count: u32,
    #[serde(with = "duration")]
    pub failback_hold: Duration,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    #[serde(with = "duration")]
    pub timeout: Duration,
    #[serde(with = "duration")]
    pub recheck_max: Duration,
    pub ca_file: Option<PathBuf>,
}

impl Default for CheckSection {
    fn default() -> Self {
        let d = CheckConfig::default();
        Self {
            down_count: d.down_count,
            up_count: d.up_count,
            failback_hold: d.failback_hold,
            connect_timeout: d.connect_timeout,
            timeout: d.timeout,
            recheck_max: d.recheck_max,
            ca_file: d.ca_file,
        }
    }
}

impl Section for CheckSection {
    const NAME: &'static str = "check";

    fn validate(&self, ctx: &Context) -> Vec<(&'static str, Invalid)> {
        let ms = Duration::from_millis;
        rejected([
            ("down_count", in_range(self.down_count, 1, 100)),
            ("up_count", in_range(self.up_count, 1, 100)),
            (
                "failback_hold",
                at_least(self.failback_hold, Duration::ZERO),
            ),
            ("connect_timeout", at_least(self.connect_timeout, ms(1))),
            ("timeout", at_least(self.timeout, ms(1))),
            ("recheck_max", at_least(self.recheck_max, ms(1000))),
            (
                "ca_file",
                self.ca_file
                    .as_deref()
                    .map_or(Ok(()), |p| pem_file(&ctx.resolve(p))),
            ),
        ])
    }
}

impl CheckSection {
    /// Our keys into the engine's check settings (`base` holds config.json's).
    pub fn apply(self, base: CheckConfig, ctx: &Context) -> CheckConfig {
        CheckConfig {
            down_count: self.down_count,
            up_count: self.up_count,
            failback_hold: self.failback_hold,
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            recheck_max: self.recheck_max,
            ca_file: self.ca_file.map(|p| ctx.resolve(&p)),
            ..base
        }
    }
}

/// `[route]`: maps one to one onto the engine's [`RouteConfig`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RouteSection {
    pub penalty: u32,
    pub protocol: u8,
    pub rp_filter: RpFilterPolicy,
    #[serde(with = "duration")]
    pub reconcile_interval: Duration,
}

impl Default for RouteSection {
    fn default() -> Self {
        let d = RouteConfig::default();
        Self {
            penalty: d.penalty,
            protocol: d.protocol,
            rp_filter: d.rp_filter,
            reconcile_interval: d.reconcile_interval,
        }
    }
}

impl Section for RouteSection {
    const NAME: &'static str = "route";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        let protocol = if TAKEN_PROTOCOLS.contains(&self.protocol) {
            Err(Invalid::ReservedProtocol(self.protocol))
        } else {
            Ok(())
        };
        rejected([
            ("penalty", in_range(self.penalty, 1, u64::from(PENALTY_MAX))),
            ("protocol", protocol),
            (
                "reconcile_interval",
                at_least(self.reconcile_interval, Duration::from_millis(100)),
            ),
        ])
    }
}

impl From<RouteSection> for RouteConfig {
    fn from(s: RouteSection) -> Self {
        Self {
            penalty: s.penalty,
            protocol: s.protocol,
            rp_filter: s.rp_filter,
            reconcile_interval: s.reconcile_interval,
        }
    }
}

/// `[dispatcher]`: maps one to one onto the engine's [`DispatcherConfig`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatcherSection {
    #[serde(with = "duration")]
    pub script_timeout: Duration,
    pub device_events: DeviceEvents,
    pub journal_limit: usize,
}

impl Default for DispatcherSection {
    fn default() -> Self {
        let d = DispatcherConfig::default();
        Self {
            script_timeout: d.script_timeout,
            device_events: d.device_events,
            journal_limit: d.journal_limit,
        }
    }
}

impl Section for DispatcherSection {
    const NAME: &'static str = "dispatcher";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        rejected([
            (
                "script_timeout",
                at_least(self.script_timeout, Duration::from_millis(1)),
            ),
            (
                "journal_limit",
                in_range(self.journal_limit as u64, 1, 1_000_000),
            ),
        ])
    }
}

impl From<DispatcherSection> for DispatcherConfig {
    fn from(s: DispatcherSection) -> Self {
        Self {
            script_timeout: s.script_timeout,
            device_events: s.device_events,
            journal_limit: s.journal_limit,
        }
    }
}

/// `[passive]`: passive health (docs/semantics.md §9.6); maps one to one onto the engine's
/// [`PassiveConfig`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PassiveSection {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub period: Duration,
    #[serde(with = "duration")]
    pub window: Duration,
    pub tx_min: u64,
    pub rx_noise: u64,
    #[serde(with = "duration")]
    pub confirm_timeout_min: Duration,
    #[serde(with = "duration")]
    pub backoff_min: Duration,
    #[serde(with = "duration")]
    pub min_gap: Duration,
    pub max_confirmations_per_hour: u32,
}

impl Default for PassiveSection {
    fn default() -> Self {
        let d = PassiveConfig::default();
        Self {
            enabled: d.enabled,
            period: d.period,
            window: d.window,
            tx_min: d.tx_min,
            rx_noise: d.rx_noise,
            confirm_timeout_min: d.confirm_timeout_min,
            backoff_min: d.backoff_min,
            min_gap: d.min_gap,
            max_confirmations_per_hour: d.max_confirmations_per_hour,
        }
    }
}

impl Section for PassiveSection {
    const NAME: &'static str = "passive";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        let ms = Duration::from_millis;
        rejected([
            // Sampling is a few netlink dumps: faster than 100 ms buys nothing but CPU.
            ("period", at_least(self.period, ms(100))),
            ("window", at_least(self.window, ms(100))),
            ("tx_min", in_range(self.tx_min, 1, 1_000_000)),
            ("rx_noise", in_range(self.rx_noise, 0, 1_000_000)),
            (
                "confirm_timeout_min",
                at_least(self.confirm_timeout_min, ms(100)),
            ),
            ("backoff_min", at_least(self.backoff_min, ms(1000))),
            ("min_gap", at_least(self.min_gap, ms(1000))),
            (
                "max_confirmations_per_hour",
                in_range(u64::from(self.max_confirmations_per_hour), 1, 3600),
            ),
        ])
    }
}

impl From<PassiveSection> for PassiveConfig {
    fn from(s: PassiveSection) -> Self {
        Self {
            enabled: s.enabled,
            period: s.period,
            window: s.window,
            tx_min: s.tx_min,
            rx_noise: s.rx_noise,
            confirm_timeout_min: s.confirm_timeout_min,
            backoff_min: s.backoff_min,
            min_gap: s.min_gap,
            max_confirmations_per_hour: s.max_confirmations_per_hour,
        }
    }
}

/// `[flows]`: resetting the flows pinned to a demoted uplink (docs/semantics.md §9.8); maps
/// one to one onto the engine's [`FlowsConfig`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowsSection {
    pub enabled: bool,
    pub on_failback: bool,
}

impl Default for FlowsSection {
    fn default() -> Self {
        let d = FlowsConfig::default();
        Self {
            enabled: d.enabled,
            on_failback: d.on_failback,
        }
    }
}

impl Section for FlowsSection {
    const NAME: &'static str = "flows";

    /// Two booleans: serde refuses anything else, nothing more to check.
    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        Vec::new()
    }
}

impl From<FlowsSection> for FlowsConfig {
    fn from(s: FlowsSection) -> Self {
        Self {
            enabled: s.enabled,
            on_failback: s.on_failback,
        }
    }
}

/// `[recovery]`: the recovery ladder (`docs/recovery.md`); maps one to one onto the engine's
/// [`RecoveryConfig`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RecoverySection {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub relink_after: Duration,
    #[serde(with = "duration")]
    pub reconnect_after: Duration,
    #[serde(with = "duration")]
    pub modem_reset_after: Duration,
    #[serde(with = "duration")]
    pub episode_repeat: Duration,
    #[serde(with = "duration")]
    pub reboot_after: Duration,
    #[serde(with = "duration")]
    pub reboot_min_interval: Duration,
    pub reboot_command: Vec<String>,
}

impl Default for RecoverySection {
    fn default() -> Self {
        let d = RecoveryConfig::default();
        Self {
            enabled: d.enabled,
            relink_after: d.relink_after,
            reconnect_after: d.reconnect_after,
            modem_reset_after: d.modem_reset_after,
            episode_repeat: d.episode_repeat,
            reboot_after: d.reboot_after,
            reboot_min_interval: d.reboot_min_interval,
            reboot_command: d.reboot_command,
        }
    }
}

impl Section for RecoverySection {
    const NAME: &'static str = "recovery";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        let s = Duration::from_secs;
        rejected([
            ("relink_after", at_least(self.relink_after, s(1))),
            ("reconnect_after", at_least(self.reconnect_after, s(1))),
            ("modem_reset_after", at_least(self.modem_reset_after, s(1))),
            (
                "episode_repeat",
                at_least(self.episode_repeat, Duration::ZERO),
            ),
            ("reboot_after", at_least(self.reboot_after, Duration::ZERO)),
            (
                "reboot_min_interval",
                at_least(self.reboot_min_interval, s(60)),
            ),
            (
                "reboot_command",
                // No shell and no PATH search: the program is named by its absolute path.
                self.reboot_command
                    .first()
                    .map_or(Ok(()), |p| absolute(Path::new(p))),
            ),
        ])
    }
}

impl From<RecoverySection> for RecoveryConfig {
    fn from(s: RecoverySection) -> Self {
        Self {
            enabled: s.enabled,
            relink_after: s.relink_after,
            reconnect_after: s.reconnect_after,
            modem_reset_after: s.modem_reset_after,
            episode_repeat: s.episode_repeat,
            reboot_after: s.reboot_after,
            reboot_min_interval: s.reboot_min_interval,
            reboot_command: s.reboot_command,
        }
    }
}

/// `[metered]`: metered uplinks (`connection.metered`, or the type's guess): what checking
/// them may cost (docs/semantics.md §9.11 and §10); maps one to one onto the engine's
/// [`MeteredConfig`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MeteredSection {
    #[serde(with = "duration")]
    pub standby_interval: Duration,
    /// Check bytes per metered uplink and calendar month; 0: no cap.
    #[serde(with = "bytes")]
    pub budget_month: u64,
}

impl Default for MeteredSection {
    fn default() -> Self {
        let d = MeteredConfig::default();
        Self {
            standby_interval: d.standby_interval,
            budget_month: d.budget_month,
        }
    }
}

impl Section for MeteredSection {
    const NAME: &'static str = "metered";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        // Shorter than `check.interval` is allowed: the engine never checks more often than
        // `interval` anyway (`MeteredConfig::standby_cadence`). Any byte count is a budget; 0
        // is none.
        rejected([(
            "standby_interval",
            at_least(self.standby_interval, Duration::from_secs(1)),
        )])
    }
}

impl From<MeteredSection> for MeteredConfig {
    fn from(s: MeteredSection) -> Self {
        Self {
            standby_interval: s.standby_interval,
            budget_month: s.budget_month,
        }
    }
}

/// `[netlink]`: the link-event socket (applies at the next start).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct NetlinkSection {
    /// Receive buffer of the link-event socket, bytes.
    pub rcvbuf: usize,
}

impl Default for NetlinkSection {
    fn default() -> Self {
        Self { rcvbuf: 4 << 20 }
    }
}

impl Section for NetlinkSection {
    const NAME: &'static str = "netlink";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        rejected([(
            "rcvbuf",
            in_range(self.rcvbuf as u64, 1024, i32::MAX as u64),
        )])
    }
}

/// The top-level keys.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonSection {
    /// Journal and interface states (tmpfs; applies at the next start).
    pub state_dir: PathBuf,
    /// What must outlive a reboot: the recovery ladder's reboot times (applies at the next
    /// start).
    pub persist_dir: PathBuf,
    /// Manage interfaces that hold a default route without a profile.
    pub adopt: bool,
}

impl Default for DaemonSection {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/run/netfailover"),
            persist_dir: PathBuf::from("/var/lib/netfailover"),
            adopt: netfailover_actors::model::Config::default().adopt,
        }
    }
}

impl Section for DaemonSection {
    const NAME: &'static str = "";

    fn validate(&self, _: &Context) -> Vec<(&'static str, Invalid)> {
        rejected([
            ("state_dir", absolute(&self.state_dir)),
            ("persist_dir", absolute(&self.persist_dir)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            base_dir: PathBuf::from("/"),
        }
    }

    /// The built-in defaults are valid: a rejected key can always fall back to its default.
    #[test]
    fn defaults_pass_their_own_checks() {
        assert!(CheckSection::default().validate(&ctx()).is_empty());
        assert!(RouteSection::default().validate(&ctx()).is_empty());
        assert!(DispatcherSection::default().validate(&ctx()).is_empty());
        assert!(NetlinkSection::default().validate(&ctx()).is_empty());
        assert!(PassiveSection::default().validate(&ctx()).is_empty());
        assert!(FlowsSection::default().validate(&ctx()).is_empty());
        assert!(RecoverySection::default().validate(&ctx()).is_empty());
        assert!(DaemonSection::default().validate(&ctx()).is_empty());
    }

    #[test]
    fn a_taken_protocol_is_rejected_with_its_key() {
        let route = RouteSection {
            protocol: 42,
            ..RouteSection::default()
        };
        let bad = route.validate(&ctx());
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, "protocol");
        assert!(matches!(bad[0].1, Invalid::ReservedProtocol(42)));
    }
}
