//! Dispatcher events ([`Event`], [`EventKind`]): what scripts are run with.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Connectivity, IfaceName};
/// The dispatcher events of docs/semantics.md §5, and `recovery` (a rung of the recovery ladder
/// taken, `docs/recovery.md`).
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
    #[serde(rename = "recovery")]
    Recovery,
    /// A metered uplink's checks reached 75 %, 95 % or 100 % of `metered.budget_month`.
    #[serde(rename = "budget")]
    Budget,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Up,
        EventKind::Down,
        EventKind::DeviceConnectivityChange,
        EventKind::ConnectivityChange,
        EventKind::Recovery,
        EventKind::Budget,
    ];

    /// The name scripts see as `$2` and the name of the event's subfolder.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Up => "up",
            EventKind::Down => "down",
            EventKind::DeviceConnectivityChange => "device-connectivity-change",
            EventKind::ConnectivityChange => "connectivity-change",
            EventKind::Recovery => "recovery",
            EventKind::Budget => "budget",
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
    /// The rung of a `recovery` event (`None` for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Box<RecoveryInfo>>,
    /// The threshold of a `budget` event (`None` for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Box<BudgetInfo>>,
}

/// What a `budget` event tells scripts (`NETFAILOVER_BUDGET_*`, `NETFAILOVER_PROBE_BYTES`) and
/// `netfailover events`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct BudgetInfo {
    /// 75, 95 or 100 (`NETFAILOVER_BUDGET_PERCENT`); at 100 periodic checks stop until the
    /// month changes.
    pub percent: u8,
    /// `metered.budget_month` (`NETFAILOVER_BUDGET_BYTES`).
    pub budget_bytes: u64,
    /// The month's check bytes when the threshold was reached (`NETFAILOVER_PROBE_BYTES`).
    pub probe_bytes: u64,
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
}

/// What a `recovery` event tells scripts (`NETFAILOVER_RECOVERY_*`) and `netfailover events`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RecoveryInfo {
    /// `relink`, `reconnect`, `modem-reset` or `reboot` (`NETFAILOVER_RECOVERY_ACTION`).
    pub action: String,
    /// 1 to 4, the rung's place in the ladder (`NETFAILOVER_RECOVERY_RUNG`).
    pub rung: u32,
    /// How long the interface (for `reboot`: every uplink) had not been FULL
    /// (`NETFAILOVER_NOT_FULL_SECONDS`).
    pub not_full_seconds: u64,
    /// `done`, `skipped: REASON`, `failed: REASON`, or for `reboot` `requested` (the event is
    /// delivered before the reboot is asked for).
    pub result: String,
}
