//! The typed engine [`Config`] and its sections, already validated.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{IfaceName, Metered, Metric, UplinkType};
/// How addresses reach an interface (`[ipvX] method=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Another agent (DHCP client, SLAAC) configures addresses; the gateway is learned from the
    /// default route it installs.
    Auto,
    /// This daemon applies the profile's address and gateway.
    Manual,
}

/// An interface address with its prefix length.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct IfaceAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl fmt::Display for IfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Per-family settings of a profile.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FamilyConfig {
    /// False with `never-default=true` (or `method=disabled/ignore`): no default route of this
    /// family is managed for the interface.
    pub manage_default: bool,
    pub method: Method,
    /// The configured metric (already resolved to the per-type default when absent or -1).
    pub metric: Metric,
    pub addresses: Vec<IfaceAddr>,
    pub gateway: Option<IpAddr>,
}

/// Which interface a profile binds to.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum IfaceMatch {
    /// `interface-name=` (or the network interface of a modem's control device).
    Name(IfaceName),
    /// `mac-address=` in the type's section.
    Mac([u8; 6]),
    /// Neither: the first unclaimed interface whose name fits the type, in ifindex order.
    ByType,
    /// A modem's control device (`interface-name=cdc-wdm0`, `ttyUSB2`): the network interface
    /// of the same device, looked up when links appear (`LinkSource::control_device_net`), else
    /// the first unclaimed `wwan*` interface (never `ppp*`/`usb*`: a USB gadget `usb0` is no
    /// modem).
    ControlDevice(String),
}

/// One uplink profile after validation (a NetworkManager keyfile in balenaOS).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Profile {
    /// `[connection] id=` (`CONNECTION_ID`).
    pub id: String,
    pub uuid: Option<String>,
    /// The keyfile it came from, for messages and `status`.
    pub file: PathBuf,
    pub uplink_type: UplinkType,
    pub matches: IfaceMatch,
    /// `autoconnect=false`: loaded but not managed.
    pub managed: bool,
    pub ipv4: FamilyConfig,
    pub ipv6: FamilyConfig,
    /// `dns=` of both families, in file order.
    pub dns: Vec<IpAddr>,
    /// `[connection] metered`, or NetworkManager's guess from the type.
    #[serde(default)]
    pub metered: Metered,
}

/// Connectivity-check settings (config.json `os.network.connectivity` + `[check]`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CheckConfig {
    /// The check URI (http or https); used by the probe adapter, shown in `status`.
    pub uri: String,
    /// Expected body prefix; empty = 204 or empty body.
    pub response: String,
    /// Period while FULL; zero disables checks (no penalty, state stays UNKNOWN).
    pub interval: Duration,
    pub down_count: u32,
    pub up_count: u32,
    pub failback_hold: Duration,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub recheck_max: Duration,
    pub ca_file: Option<PathBuf>,
}

impl CheckConfig {
    pub fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            uri: "https://api.balena-cloud.com/connectivity-check".into(),
            response: String::new(),
            interval: Duration::from_secs(3600),
            down_count: 2,
            up_count: 2,
            failback_hold: Duration::ZERO,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            recheck_max: Duration::from_secs(60),
            ca_file: None,
        }
    }
}

/// Passive health settings (`[passive]`): watching the device's own traffic for a stall and
/// asking for confirmation checks (docs/semantics.md §9.6).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PassiveConfig {
    /// Off: no sampling, no confirmation checks; only the periodic checks notice an upstream loss.
    pub enabled: bool,
    /// How often the interfaces' counters and TCP sockets are sampled.
    pub period: Duration,
    /// How long a stall must last to count (no ACK with data outstanding; tx without rx).
    pub window: Duration,
    /// One-way counter rule: at least this many packets sent in a window ...
    pub tx_min: u64,
    /// ... while at most this many (multicast excluded) came in: the LAN noise a dead upstream
    /// still delivers (ARP replies).
    pub rx_noise: u64,
    /// Floor of a confirmation check's deadline (it is otherwise derived from the interface's
    /// recent check latency and TCP RTT).
    pub confirm_timeout_min: Duration,
    /// First back-off of the same evidence after a confirmation (doubling, capped at the check
    /// interval).
    pub backoff_min: Duration,
    /// Shortest time between two confirmations of one interface.
    pub min_gap: Duration,
    /// Most confirmations of one interface in any hour for evidence that never worked (peers
    /// that never answered, one-way counters); a working flow that stops is never held back.
    pub max_confirmations_per_hour: u32,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            period: Duration::from_secs(1),
            window: Duration::from_secs(1),
            tx_min: 3,
            rx_noise: 2,
            confirm_timeout_min: Duration::from_millis(500),
            backoff_min: Duration::from_secs(60),
            min_gap: Duration::from_secs(10),
            max_confirmations_per_hour: 4,
        }
    }
}

/// What to do with strict reverse-path filtering on managed interfaces.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilterPolicy {
    /// Set strict (1) to loose (2) and log it once.
    Loose,
    /// Leave it and warn.
    Keep,
}

/// Route settings (`[route]`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RouteConfig {
    pub penalty: u32,
    /// `rtm_protocol` of owned routes. 0x4e ('N') is unassigned in iproute2's rt_protos list.
    pub protocol: u8,
    pub rp_filter: RpFilterPolicy,
    /// Period of the level-triggered reconcile against the kernel (drift repair).
    pub reconcile_interval: Duration,
}

impl Default for RouteConfig {
    fn default() -> Self {
        Self {
            penalty: 20_000,
            protocol: DEFAULT_ROUTE_PROTOCOL,
            rp_filter: RpFilterPolicy::Loose,
            reconcile_interval: Duration::from_secs(10),
        }
    }
}

/// Our route protocol id: 78 (`'N'`), not registered in iproute2's `rt_protos`.
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 78;

/// When `device-connectivity-change` fires.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceEvents {
    /// Only when an interface leaves FULL (balenaOS semantics).
    LeaveFull,
    /// On every change of an interface's state.
    All,
}

/// Dispatcher settings (`[dispatcher]`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DispatcherConfig {
    pub script_timeout: Duration,
    pub device_events: DeviceEvents,
    /// Pending events past which all pending `connectivity-change` events are coalesced.
    pub journal_limit: usize,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            script_timeout: Duration::from_secs(600),
            device_events: DeviceEvents::LeaveFull,
            journal_limit: 1024,
        }
    }
}

/// DNS servers from config.json's `dnsServers` and the system resolver.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct DnsConfig {
    /// `ADDR@IFACE` entries: queried only through that interface.
    pub bound: BTreeMap<IfaceName, Vec<SocketAddr>>,
    /// Entries without `@IFACE` (or the 8.8.8.8 default): queried through each interface.
    pub global: Vec<SocketAddr>,
    /// `/etc/resolv.conf` nameservers, queried through each interface last.
    pub system: Vec<SocketAddr>,
}

impl DnsConfig {
    /// docs/semantics.md §3 order for one interface: its bound servers, then the profile's `dns=` (port 53),
    /// then the global ones, then the system resolver's; duplicates removed.
    pub fn servers_for(&self, iface: &IfaceName, profile_dns: &[IpAddr]) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let bound = self.bound.get(iface).into_iter().flatten().copied();
        let profile = profile_dns.iter().map(|ip| SocketAddr::new(*ip, 53));
        for s in bound
            .chain(profile)
            .chain(self.global.iter().copied())
            .chain(self.system.iter().copied())
        {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

/// Resetting the flows pinned to a demoted uplink (`[flows]`; docs/semantics.md §9.8).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FlowsConfig {
    /// Reset flows when the route in use moves to another interface (a failover).
    pub enabled: bool,
    /// Also when it moves back onto a more preferred uplink (a fail-back): on by default, since
    /// without a source route for the backup's address (none is installed by the daemon) a
    /// connection opened on the backup leaves through the primary with the backup's source
    /// address and hangs where the primary's ISP drops foreign sources.
    pub on_failback: bool,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            on_failback: true,
        }
    }
}

/// The recovery ladder (`[recovery]`; `docs/recovery.md`): what RecoveryManager does to an
/// uplink that has link but stays not FULL, and the guarded reboot.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RecoveryConfig {
    /// Off: no rung is ever taken (dispatcher scripts still run as before).
    pub enabled: bool,
    /// Not FULL this long (link present) → `relink` (admin down/up).
    pub relink_after: Duration,
    /// → `reconnect` (NetworkManager re-activates the interface's connection).
    pub reconnect_after: Duration,
    /// → `modem-reset` (ModemManager resets the modem; cellular only).
    pub modem_reset_after: Duration,
    /// An episode that lasts this long starts its ladder again (a long outage is retried, not
    /// hammered).
    pub episode_repeat: Duration,
    /// No managed uplink FULL this long → `reboot`; zero: never.
    pub reboot_after: Duration,
    /// Least time between two reboots, across reboots (persisted in `persist_dir`).
    pub reboot_min_interval: Duration,
    /// Reboot with this command instead of logind or the balena supervisor.
    pub reboot_command: Vec<String>,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        let min = |m: u64| Duration::from_secs(60 * m);
        Self {
            enabled: true,
            relink_after: min(3),
            reconnect_after: min(6),
            modem_reset_after: min(10),
            episode_repeat: min(60),
            reboot_after: Duration::ZERO,
            reboot_min_interval: min(24 * 60),
            reboot_command: Vec::new(),
        }
    }
}

/// Metered uplinks (`[metered]`; docs/semantics.md §9.11 and §10): what checking them costs.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct MeteredConfig {
    /// How often a metered uplink that does not carry the route in use is checked while the
    /// one that does is FULL; never more often than `check.interval`
    /// ([`MeteredConfig::standby_cadence`]).
    #[serde(default = "default_standby_interval")]
    pub standby_interval: Duration,
    /// Check bytes a metered uplink may spend per calendar month (UTC); 0: no cap. At 100 %
    /// its periodic checks stop until the month changes (docs/semantics.md §10).
    #[serde(default)]
    pub budget_month: u64,
}

fn default_standby_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}

impl MeteredConfig {
    /// The effective standby cadence: `standby_interval`, never shorter than `interval`.
    pub fn standby_cadence(&self, interval: Duration) -> Duration {
        self.standby_interval.max(interval)
    }
}

impl Default for MeteredConfig {
    fn default() -> Self {
        Self {
            standby_interval: default_standby_interval(),
            budget_month: 0,
        }
    }
}

/// Everything the engine needs, already validated.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Config {
    pub profiles: Vec<Profile>,
    /// Manage interfaces that hold a default route without a profile.
    pub adopt: bool,
    pub check: CheckConfig,
    pub route: RouteConfig,
    pub dispatcher: DispatcherConfig,
    pub dns: DnsConfig,
    pub flows: FlowsConfig,
    pub passive: PassiveConfig,
    #[serde(default)]
    pub recovery: RecoveryConfig,
    #[serde(default)]
    pub metered: MeteredConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profiles: Vec::new(),
            adopt: true,
            check: CheckConfig::default(),
            route: RouteConfig::default(),
            dispatcher: DispatcherConfig::default(),
            dns: DnsConfig::default(),
            flows: FlowsConfig::default(),
            passive: PassiveConfig::default(),
            recovery: RecoveryConfig::default(),
            metered: MeteredConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_order_per_interface() {
        let wwan0 = IfaceName::new("wwan0").unwrap();
        let mut dns = DnsConfig::default();
        dns.bound
            .insert(wwan0.clone(), vec!["192.0.2.53:53".parse().unwrap()]);
        dns.global = vec!["198.51.100.53:53".parse().unwrap()];
        dns.system = vec!["203.0.113.53:53".parse().unwrap()];
        let got = dns.servers_for(&wwan0, &["192.0.2.54".parse().unwrap()]);
        let want: Vec<SocketAddr> = [
            "192.0.2.53:53",
            "192.0.2.54:53",
            "198.51.100.53:53",
            "203.0.113.53:53",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(got, want);
    }
}
