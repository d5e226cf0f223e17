//! The profile fixtures every engine suite builds its `Config` from (`engine/`, `budget.rs`,
//! `cadence.rs`, `metered.rs`, `passive.rs`, `recovery.rs`), included by `#[path]`: one uplink
//! per interface name, matched by name, IPv4 default route managed, IPv6 not; and the suites' common
//! check settings.

// Each suite uses only some of these.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use netfailover_actors::model::{
    CheckConfig, FamilyConfig, IfaceMatch, IfaceName, Metered, Method, Metric, Profile, UplinkType,
};

/// An interface name the test knows is valid.
pub fn name(s: &str) -> IfaceName {
    IfaceName::new(s).unwrap()
}

/// A managed family with DHCP (`method=auto`) at `metric`.
pub fn family(metric: u32) -> FamilyConfig {
    FamilyConfig {
        manage_default: true,
        method: Method::Auto,
        metric: Metric::new(metric.into()).unwrap(),
        addresses: vec![],
        gateway: None,
    }
}

/// The profile of `iface`, of type `t`, at `metric`, without a UUID.
pub fn profile(iface: &str, t: UplinkType, metric: u32) -> Profile {
    Profile {
        id: format!("{iface}-profile"),
        uuid: None,
        file: PathBuf::from(format!("{iface}.nmconnection")),
        uplink_type: t,
        matches: IfaceMatch::Name(name(iface)),
        managed: true,
        ipv4: family(metric),
        ipv6: FamilyConfig {
            manage_default: false,
            ..family(metric)
        },
        dns: vec![],
        metered: Metered::guess(t),
    }
}

/// The suites' checks: every 30 s against the fake probe's 192.0.2.80, connect 1 s, total 2 s,
/// re-checks at most 8 s apart; the rest at the defaults (counts 2).
pub fn checks_every_30s() -> CheckConfig {
    CheckConfig {
        uri: "http://192.0.2.80/check".into(),
        interval: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        recheck_max: Duration::from_secs(8),
        ..CheckConfig::default()
    }
}
