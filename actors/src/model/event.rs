//! Dispatcher events ([`Event`], [`EventKind`]): what scripts are run with.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Connectivity, IfaceName};
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
