//! NetworkManager 1.42's connection types as the keyfile reader needs them: the names a keyfile
//! may write (`connection.type` accepts the setting name or its short alias), the short name
//! check-config shows, the default route metric of the device type
//! (`nm_device_get_route_metric_default()` in NetworkManager's `src/core/devices/nm-device.c`),
//! whether a profile of that type can be an uplink at all, and which section
//! `nm_connection_normalize()` insists on. One table, so the reader, the report and the docs
//! (`docs/config.md`, "Connection types") cannot drift apart. [`infer`] gives the type
//! NetworkManager derives from the sections when `connection.type` is absent.

use netfailover_actors::model::UplinkType;

/// Whether a profile of this type can carry a default route to the Internet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    /// An uplink; `UplinkType` decides name-prefix matching for profiles without a binding.
    Uplink(UplinkType),
    /// Listed, never managed (a tunnel, a VPN, a virtual link): why, for check-config.
    NotUplink(&'static str),
}

/// The section `nm_connection_normalize()` requires for the type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Section {
    /// No section needed (NetworkManager adds an empty one).
    Optional,
    /// A virtual device NetworkManager creates: `connection.interface-name` is required, the
    /// section is then optional.
    NeedsInterfaceName,
    /// Always needed.
    Required(&'static str),
}

/// One connection type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NmType {
    /// The setting name (`802-3-ethernet`), what NetworkManager itself stores.
    pub setting: &'static str,
    /// The short name nmcli and check-config show (`ethernet`).
    pub short: &'static str,
    /// NetworkManager's default route metric for the device type.
    pub metric: u32,
    pub role: Role,
    pub section: Section,
}

const fn t(
    setting: &'static str,
    short: &'static str,
    metric: u32,
    role: Role,
    section: Section,
) -> NmType {
    NmType {
        setting,
        short,
        metric,
        role,
        section,
    }
}

use Role::{NotUplink, Uplink};
use Section::{NeedsInterfaceName, Optional, Required};

const OTHER: Role = Uplink(UplinkType::Other);
const TUNNEL: Role = NotUplink("a tunnel or VPN, not an uplink");
const VIRTUAL: Role = NotUplink("a local virtual link, not an uplink");

/// Every type NetworkManager 1.42 accepts (its `nm_setting_lookup_type()` list of base types).
pub const TYPES: &[NmType] = &[
    t(
        "802-3-ethernet",
        "ethernet",
        100,
        Uplink(UplinkType::Ethernet),
        Optional,
    ),
    t(
        "802-11-wireless",
        "wifi",
        600,
        Uplink(UplinkType::Wifi),
        Required("wifi"),
    ),
    t("gsm", "gsm", 700, Uplink(UplinkType::Gsm), Optional),
    t("cdma", "cdma", 700, Uplink(UplinkType::Cdma), Optional),
    t("bond", "bond", 300, OTHER, NeedsInterfaceName),
    t("team", "team", 350, OTHER, NeedsInterfaceName),
    t("vlan", "vlan", 400, OTHER, Required("vlan")),
    t("bridge", "bridge", 425, OTHER, NeedsInterfaceName),
    t("macvlan", "macvlan", 410, OTHER, Required("macvlan")),
    t("macsec", "macsec", 125, OTHER, Required("macsec")),
    t(
        "infiniband",
        "infiniband",
        150,
        OTHER,
        Required("infiniband"),
    ),
    t("adsl", "adsl", 200, OTHER, Required("adsl")),
    t("wimax", "wimax", 250, OTHER, Required("wimax")),
    t("pppoe", "pppoe", 460, OTHER, Required("pppoe")),
    t("vxlan", "vxlan", 500, OTHER, Optional),
    t(
        "802-11-olpc-mesh",
        "olpc-mesh",
        650,
        OTHER,
        Required("802-11-olpc-mesh"),
    ),
    t("bluetooth", "bluetooth", 750, OTHER, Required("bluetooth")),
    t("6lowpan", "6lowpan", 775, OTHER, Required("6lowpan")),
    t(
        "ovs-interface",
        "ovs-interface",
        800,
        OTHER,
        Required("ovs-interface"),
    ),
    t("generic", "generic", 950, OTHER, Optional),
    t(
        "ovs-bridge",
        "ovs-bridge",
        800,
        NotUplink("an Open vSwitch bridge has no IP configuration of its own"),
        NeedsInterfaceName,
    ),
    t(
        "ovs-port",
        "ovs-port",
        800,
        NotUplink("an Open vSwitch port has no IP configuration of its own"),
        Required("ovs-port"),
    ),
    t(
        "wpan",
        "wpan",
        850,
        NotUplink("an IEEE 802.15.4 link, not an uplink"),
        Optional,
    ),
    t(
        "wifi-p2p",
        "wifi-p2p",
        950,
        NotUplink("a Wi-Fi P2P link, not an uplink"),
        Required("wifi-p2p"),
    ),
    t("wireguard", "wireguard", 50, TUNNEL, NeedsInterfaceName),
    t("vpn", "vpn", 50, TUNNEL, Required("vpn")),
    t("ip-tunnel", "ip-tunnel", 675, TUNNEL, Required("ip-tunnel")),
    t("tun", "tun", 450, TUNNEL, Optional),
    t("veth", "veth", 100, VIRTUAL, Required("veth")),
    t("vrf", "vrf", 470, VIRTUAL, Required("vrf")),
    t("dummy", "dummy", 550, VIRTUAL, NeedsInterfaceName),
    t("loopback", "loopback", 30, VIRTUAL, Optional),
];

/// The type a `connection.type` value names: the setting name, or the short aliases
/// NetworkManager 1.42 accepts (`ethernet`, `wifi`; not `olpc-mesh`, which 1.42 refuses).
pub fn lookup(name: &str) -> Option<&'static NmType> {
    TYPES
        .iter()
        .find(|t| t.setting == name || (t.short == name && name != "olpc-mesh"))
}

/// Sections NetworkManager 1.42 counts as a base type although it has no connection type of
/// that name netfailover reads (Open vSwitch DPDK and patch ports).
const OTHER_BASE_SECTIONS: &[&str] = &["ovs-dpdk", "ovs-patch"];

/// The rank NetworkManager gives a section when it looks for the base type
/// (`nm_meta_setting_info_get_base_type_priority()`: hardware types 2, `bluetooth` 3, `pppoe`
/// 5; lower wins), `None` for a section that names no type.
fn base_rank(section: &str) -> Option<u8> {
    match section {
        "bluetooth" => Some(3),
        "pppoe" => Some(5),
        s if lookup(s).is_some() || OTHER_BASE_SECTIONS.contains(&s) => Some(2),
        _ => None,
    }
}

/// The type NetworkManager gives a profile without `connection.type`
/// (`_nm_connection_find_base_type_setting()` in `nm-connection.c`): the section (group names
/// after the aliases are resolved) of the best rank — `[gsm]` beats `[bluetooth]`, both beat
/// `[pppoe]`. `Err` with why, when no section names a type or two of the best rank do (then
/// NetworkManager refuses the profile: "connection.type: property is missing").
pub fn infer<'a>(sections: impl IntoIterator<Item = &'a str>) -> Result<&'static NmType, String> {
    let mut best: Vec<&str> = Vec::new();
    let mut best_rank = u8::MAX;
    for s in sections {
        match base_rank(s) {
            Some(rank) if rank < best_rank => (best, best_rank) = (vec![s], rank),
            Some(rank) if rank == best_rank && !best.contains(&s) => best.push(s),
            _ => {}
        }
    }
    match best.as_slice() {
        [] => Err("and no section names one".to_string()),
        [one] => {
            lookup(one).ok_or_else(|| format!("and [{one}] is a type netfailover does not read"))
        }
        several => Err(format!("and [{}] leave it ambiguous", several.join("], ["))),
    }
}

/// Keyfile group aliases NetworkManager reads as the setting they stand for.
pub const GROUP_ALIASES: &[(&str, &str)] = &[
    ("802-3-ethernet", "ethernet"),
    ("802-11-wireless", "wifi"),
    ("802-11-wireless-security", "wifi-security"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_metrics_follow_networkmanager() {
        let m = |n: &str| lookup(n).map(|t| t.metric);
        assert_eq!(m("802-3-ethernet"), Some(100));
        assert_eq!(m("ethernet"), Some(100));
        assert_eq!(m("wifi"), Some(600));
        assert_eq!(m("bond"), Some(300));
        assert_eq!(m("vlan"), Some(400));
        assert_eq!(m("bridge"), Some(425));
        assert_eq!(m("gsm"), Some(700));
        assert_eq!(m("olpc-mesh"), None);
        assert_eq!(m("hsr"), None);
        assert_eq!(m("ipvlan"), None);
        assert!(matches!(
            lookup("wireguard").map(|t| t.role),
            Some(Role::NotUplink(_))
        ));
    }
    #[test]
    fn a_missing_type_is_inferred_as_networkmanager_does() {
        let short = |g: &[&str]| infer(g.iter().copied()).map(|t| t.short);
        assert_eq!(short(&["connection", "ethernet", "ipv4"]), Ok("ethernet"));
        assert_eq!(short(&["connection", "wifi", "wifi-security"]), Ok("wifi"));
        assert_eq!(short(&["connection", "bridge"]), Ok("bridge"));
        // A hardware type outranks bluetooth, which outranks pppoe.
        assert_eq!(short(&["bluetooth", "gsm"]), Ok("gsm"));
        assert_eq!(short(&["pppoe", "bluetooth"]), Ok("bluetooth"));
        assert_eq!(short(&["ethernet", "pppoe"]), Ok("ethernet"));
        // The same section twice is still one.
        assert_eq!(short(&["ethernet", "ethernet"]), Ok("ethernet"));
        assert!(short(&["ethernet", "wifi"]).is_err());
        assert!(short(&["connection", "ipv4", "802-1x"]).is_err());
        assert!(short(&["ovs-patch"]).is_err());
        assert!(short(&["ovs-patch", "ethernet"]).is_err());
    }
}
