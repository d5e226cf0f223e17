//! The profile fixtures every engine suite builds its `Config` from (`engine/`, `cadence.rs`,
//! `passive.rs`, `recovery.rs`), included by `#[path]`: one uplink per interface name, matched by
//! name, IPv4 default route managed, IPv6 not.

// Each suite uses only some of these.
#![allow(dead_code)]

use std::path::PathBuf;

use netfailover_actors::model::{
    FamilyConfig, IfaceMatch, IfaceName, Metered, Method, Metric, Profile, UplinkType,
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
