//! Domain types shared by every actor and by the root crate: interface names, metrics,
//! connectivity states, link facts, kernel routes, dispatcher events, and the typed engine
//! [`Config`] that [`crate::run`] takes. The engine never reads files: the root crate's config
//! module builds a `Config` from the boot directory.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Interface names
// ---------------------------------------------------------------------------------------------

/// Longest interface name the kernel accepts (IFNAMSIZ 16, minus the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// A network interface name the kernel would accept (`dev_valid_name()` in net/core/dev.c):
/// 1..=15 bytes, not `.` or `..`, no `/`, `:`, NUL or whitespace.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfaceName(String);

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IfaceNameError {
    #[error("interface name is empty")]
    Empty,
    #[error("interface name {name:?} is {len} bytes long; the kernel allows at most 15")]
    TooLong { name: String, len: usize },
    #[error("interface name {name:?} contains {ch:?}, which the kernel refuses")]
    BadChar { name: String, ch: char },
    #[error("interface name {name:?} is reserved")]
    Reserved { name: String },
}

impl IfaceName {
    pub fn new(name: impl Into<String>) -> Result<Self, IfaceNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(IfaceNameError::Empty);
        }
        if name.len() > IFNAME_MAX {
            let len = name.len();
            return Err(IfaceNameError::TooLong { name, len });
        }
        if name == "." || name == ".." {
            return Err(IfaceNameError::Reserved { name });
        }
        if let Some(ch) = name
            .chars()
            .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
        {
            return Err(IfaceNameError::BadChar { name, ch });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if the name starts with any of `prefixes`.
    pub fn has_prefix(&self, prefixes: &[&str]) -> bool {
        prefixes.iter().any(|p| self.0.starts_with(p))
    }
}

impl TryFrom<String> for IfaceName {
    type Error = IfaceNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for IfaceName {
    type Error = IfaceNameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<IfaceName> for String {
    fn from(n: IfaceName) -> String {
        n.0
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// A configured route metric (priority; lower wins).
///
/// Capped at [`Metric::MAX`] so that the penalty and the +1 bumps that keep metrics unique can
/// never overflow the kernel's u32.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Metric(u32);

/// Why a number is not a valid metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route metric {value} is out of range (0..={max})")]
pub struct MetricError {
    pub value: i64,
    pub max: u32,
}

impl Metric {
    /// Largest configurable metric: leaves headroom for the largest `route.penalty` plus
    /// uniqueness bumps.
    pub const MAX: u32 = 0x7fff_ffff;

    pub fn new(value: i64) -> Result<Self, MetricError> {
        if (0..=i64::from(Self::MAX)).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(MetricError {
                value,
                max: Self::MAX,
            })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Metric {
    type Error = MetricError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::new(i64::from(v))
    }
}

impl From<Metric> for u32 {
    fn from(m: Metric) -> u32 {
        m.0
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Largest accepted `route.penalty` (keeps `Metric::MAX + penalty + bumps` inside u32).
pub const PENALTY_MAX: u32 = 0x3fff_ffff;

// ---------------------------------------------------------------------------------------------
// Kinds of uplink
// ---------------------------------------------------------------------------------------------

/// The kind of uplink a profile describes (`[connection] type=`), which sets its default metric
/// and the interface names it matches when the profile names no interface.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UplinkType {
    Ethernet,
    Wifi,
    Gsm,
    Cdma,
    Other,
}

impl UplinkType {
    /// NetworkManager's default route metric for this type.
    pub fn default_metric(self) -> Metric {
        Metric(match self {
            UplinkType::Ethernet => 100,
            UplinkType::Wifi => 600,
            UplinkType::Gsm | UplinkType::Cdma => 700,
            UplinkType::Other => 800,
        })
    }

    /// Interface-name prefixes a profile of this type matches when it names no interface.
    pub fn name_prefixes(self) -> &'static [&'static str] {
        match self {
            UplinkType::Ethernet => &["eth", "en"],
            UplinkType::Wifi => &["wl"],
            UplinkType::Gsm | UplinkType::Cdma => &["wwan", "ppp", "usb"],
            UplinkType::Other => &[],
        }
    }

    /// The type an adopted interface (no profile) is assumed to be, from its name.
    pub fn guess_from_name(name: &IfaceName) -> UplinkType {
        [UplinkType::Ethernet, UplinkType::Wifi, UplinkType::Gsm]
            .into_iter()
            .find(|t| name.has_prefix(t.name_prefixes()))
            .unwrap_or(UplinkType::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UplinkType::Ethernet => "ethernet",
            UplinkType::Wifi => "wifi",
            UplinkType::Gsm => "gsm",
            UplinkType::Cdma => "cdma",
            UplinkType::Other => "other",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connectivity
// ---------------------------------------------------------------------------------------------

/// Connectivity of one interface or of the device, as NetworkManager names it.
///
/// The derived order is the contract's (docs/semantics.md) "best" order: `None < Unknown < Limited < Portal < Full`,
/// so the global state is simply the maximum over interfaces.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Connectivity {
    None,
    #[default]
    Unknown,
    Limited,
    Portal,
    Full,
}

impl Connectivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Connectivity::None => "NONE",
            Connectivity::Unknown => "UNKNOWN",
            Connectivity::Limited => "LIMITED",
            Connectivity::Portal => "PORTAL",
            Connectivity::Full => "FULL",
        }
    }

    /// Global connectivity: the best state over all interfaces (NONE when there are none).
    pub fn global(states: impl IntoIterator<Item = Connectivity>) -> Connectivity {
        states.into_iter().max().unwrap_or(Connectivity::None)
    }
}

impl fmt::Display for Connectivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel facts
// ---------------------------------------------------------------------------------------------

/// Address family of a route.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// What kind of device a link is, as far as adoption cares (docs/semantics.md §2: loopback, bridges, veths
/// and tunnels are never adopted without a profile).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Loopback,
    Bridge,
    Veth,
    Tunnel,
    Other,
}

/// One network interface as the kernel reports it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LinkInfo {
    pub ifindex: u32,
    pub name: IfaceName,
    pub kind: LinkKind,
    /// `IFF_UP`: the administrator enabled it.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: the carrier is present.
    pub carrier: bool,
    /// The kernel's carrier-change counter; a jump of two or more with no visible change means
    /// the kernel merged a down/up flap into one message.
    pub carrier_changes: u32,
    pub mac: Option<[u8; 6]>,
}

impl LinkInfo {
    /// The link can carry traffic: administratively up and with carrier.
    pub fn usable(&self) -> bool {
        self.admin_up && self.carrier
    }
}

/// A default route in the main table, as the kernel has it or as the engine wants it.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct KernelRoute {
    pub family: Family,
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
    /// The kernel's metric (IPv6 metric 0 is normalised to 1024 by the adapter).
    pub metric: u32,
    /// `rtm_protocol`: ours is `route.protocol`; anything else is foreign.
    pub protocol: u8,
}

// ---------------------------------------------------------------------------------------------
// Dispatcher events
// ---------------------------------------------------------------------------------------------

/// The four dispatcher events of docs/semantics.md §5.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "up")]
    Up,
    #[serde(rename = "down")]
    Down,
    #[serde(rename = "device-connectivity-change")]
    DeviceConnectivityChange,
    #[serde(rename = "connectivity-change")]
    ConnectivityChange,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Up,
        EventKind::Down,
        EventKind::DeviceConnectivityChange,
        EventKind::ConnectivityChange,
    ];

    /// The name scripts see as `$2` and the name of the event's subfolder.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Up => "up",
            EventKind::Down => "down",
            EventKind::DeviceConnectivityChange => "device-connectivity-change",
            EventKind::ConnectivityChange => "connectivity-change",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dispatcher event with everything a script's environment needs (docs/semantics.md §5).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Unique and increasing across restarts (`NETFAILOVER_EVENT_ID`).
    pub id: u64,
    pub kind: EventKind,
    /// `$1`, `DEVICE_IFACE`, `DEVICE_IP_IFACE`; `None` for `connectivity-change`.
    pub iface: Option<IfaceName>,
    /// `CONNECTIVITY_STATE`: the interface's state, or the global one for `connectivity-change`.
    pub state: Connectivity,
    /// `NETFAILOVER_PREVIOUS_STATE`.
    pub previous: Connectivity,
    /// Why it happened, for the log and `netfailover events` ("carrier lost", ...).
    pub reason: String,
    /// `CONNECTION_ID` / `CONNECTION_UUID` of the interface's profile, if any.
    pub connection_id: Option<String>,
    pub connection_uuid: Option<String>,
    /// `IP4_GATEWAY`.
    pub ip4_gateway: Option<IpAddr>,
    /// `IP4_NAMESERVERS`.
    pub ip4_nameservers: Vec<IpAddr>,
    /// Wall-clock time the event was produced, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

// ---------------------------------------------------------------------------------------------
// Engine configuration
// ---------------------------------------------------------------------------------------------

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
/// asking for confirmation checks (README "Passive health").
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

/// Resetting the flows pinned to a demoted uplink (`[flows]`; README, "How it behaves").
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct FlowsConfig {
    /// Reset flows when the route in use moves to another interface (a failover).
    pub enabled: bool,
    /// Also when it moves back onto a more preferred uplink (a fail-back): off by default,
    /// since flows on the backup still work.
    pub on_failback: bool,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            on_failback: false,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_names_follow_kernel_rules() {
        assert!(IfaceName::new("eth0").is_ok());
        assert!(IfaceName::new("a23456789012345").is_ok());
        assert!(matches!(
            IfaceName::new("a234567890123456"),
            Err(IfaceNameError::TooLong { len: 16, .. })
        ));
        assert_eq!(IfaceName::new(""), Err(IfaceNameError::Empty));
        for bad in ["a/b", "a:b", "a b", "a\tb"] {
            assert!(
                matches!(IfaceName::new(bad), Err(IfaceNameError::BadChar { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            IfaceName::new(".."),
            Err(IfaceNameError::Reserved { .. })
        ));
    }

    #[test]
    fn connectivity_order_is_the_specs() {
        use Connectivity::*;
        assert!(Full > Portal && Portal > Limited && Limited > Unknown && Unknown > None);
        assert_eq!(Connectivity::global([Limited, Full, None]), Full);
        assert_eq!(Connectivity::global([]), None);
    }

    #[test]
    fn metrics_leave_headroom() {
        assert!(Metric::new(-1).is_err());
        assert!(Metric::new(i64::from(Metric::MAX) + 1).is_err());
        assert_eq!(Metric::new(40).map(Metric::get), Ok(40));
        let worst = u64::from(Metric::MAX) + u64::from(PENALTY_MAX) + 100_000;
        assert!(worst < u64::from(u32::MAX));
    }

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

    #[test]
    fn type_guess_from_name() {
        let n = |s: &str| IfaceName::new(s).unwrap();
        assert_eq!(
            UplinkType::guess_from_name(&n("enp3s0")),
            UplinkType::Ethernet
        );
        assert_eq!(UplinkType::guess_from_name(&n("wlan0")), UplinkType::Wifi);
        assert_eq!(UplinkType::guess_from_name(&n("wwan0")), UplinkType::Gsm);
        assert_eq!(UplinkType::guess_from_name(&n("foo0")), UplinkType::Other);
    }
}
