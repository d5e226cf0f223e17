//! NetworkManager keyfiles in `system-connections/` → engine [`Profile`]s, following SPEC §1.2:
//! full and short type names, `interface-name` / `mac-address` / type-based binding, modem
//! control devices, per-type default metrics, `route-metric=-1`, `method`, `address1=` and the
//! older `addresses1=ADDR;LEN;GW;`, `gateway=`, `dns=`, `never-default`, `autoconnect`, and
//! several profiles for one interface (highest `autoconnect-priority`, then file name, wins).
//!
//! A profile that lacks something it needs (type, a valid metric, address, interface name) is
//! skipped with one error naming file and line; lesser mistakes are warnings with the value
//! NetworkManager would use.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netfailover_actors::model::{
    Family, FamilyConfig, IfaceAddr, IfaceMatch, IfaceName, Method, Metric, Profile, UplinkType,
};

use super::keyfile::{self, Entry, KeyFile};
use super::matching::{self, ControlLookup};
use super::problems::Problem;
use super::read_text;

/// A profile as loaded, with what check-config shows about where its values came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LoadedProfile {
    pub profile: Profile,
    pub autoconnect_priority: i32,
    pub ipv4_metric: MetricOrigin,
    pub ipv6_metric: MetricOrigin,
    pub binding: Binding,
    /// Another profile for the same interface won (SPEC §1.2); this one is not used.
    pub lost_to: Option<PathBuf>,
}

/// Where a family's metric came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetricOrigin {
    /// `route-metric=` on that line.
    RouteMetric { line: usize },
    /// Absent or `-1`: the per-type default.
    TypeDefault,
}

/// How the profile finds its interface.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Binding {
    InterfaceName,
    /// `interface-name` named a modem control device; `class` is its sysfs class when found.
    ControlDevice {
        device: String,
        class: Option<&'static str>,
    },
    MacAddress,
    ByType,
}

/// Files NetworkManager's keyfile plugin ignores: hidden files, editor and package leftovers,
/// certificates kept beside profiles.
fn ignored_file_name(name: &str) -> bool {
    const SUFFIXES: [&str; 11] = [
        "~", ".swp", ".swpx", ".bak", ".orig", ".rej", ".rpmnew", ".rpmsave", ".pem", ".der",
        ".key",
    ];
    name.starts_with('.') || SUFFIXES.iter().any(|s| name.ends_with(s)) || name.contains(".dpkg-")
}

/// Loads every profile in `dir` (missing directory: none), in file-name order.
pub fn load_dir(dir: &Path, sysfs_root: &Path, problems: &mut Vec<Problem>) -> Vec<LoadedProfile> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            problems.push(Problem::error(
                dir,
                None,
                format!("cannot read directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    let mut profiles = Vec::new();
    for name in names {
        if ignored_file_name(&name.to_string_lossy()) {
            continue;
        }
        let path = dir.join(&name);
        if path.is_dir() {
            continue;
        }
        match read_text(&path) {
            Ok(text) => {
                if let Some(p) = parse_profile(&text, &path, sysfs_root, problems) {
                    profiles.push(p);
                }
            }
            Err(e) => problems.push(Problem::error(
                &path,
                e.line(),
                format!("profile skipped: {e}"),
            )),
        }
    }
    resolve_duplicates(&mut profiles);
    profiles
}

/// Why a profile is skipped.
struct Reject {
    line: Option<usize>,
    message: String,
}

fn reject(line: impl Into<Option<usize>>, message: impl Into<String>) -> Reject {
    Reject {
        line: line.into(),
        message: message.into(),
    }
}

/// Parses one keyfile. `None` (with one error in `problems`) when it is skipped.
pub fn parse_profile(
    text: &str,
    path: &Path,
    sysfs_root: &Path,
    problems: &mut Vec<Problem>,
) -> Option<LoadedProfile> {
    let mut warnings = Vec::new();
    let result = build(text, path, sysfs_root, &mut warnings);
    // Warnings found before a rejection still help the reader fix the file in one go.
    problems.extend(warnings);
    match result {
        Ok(p) => Some(p),
        Err(r) => {
            problems.push(Problem::error(
                path,
                r.line,
                format!("profile skipped: {}", r.message),
            ));
            None
        }
    }
}

fn build(
    text: &str,
    path: &Path,
    sysfs_root: &Path,
    warnings: &mut Vec<Problem>,
) -> Result<LoadedProfile, Reject> {
    let mut kf = keyfile::parse(text).map_err(|e| reject(e.line, e.message))?;
    if let Some(line) = kf.group_line("ipv46") {
        warnings.push(Problem::warning(
            path,
            Some(line),
            "[ipv46] is not a NetworkManager section; reading it as [ipv6]",
        ));
        kf.rename_group("ipv46", "ipv6");
    }
    kf.rename_group("802-3-ethernet", "ethernet");
    kf.rename_group("802-11-wireless", "wifi");
    let conn_line = kf
        .group_line("connection")
        .ok_or_else(|| reject(None, "no [connection] section"))?;
    let type_entry = kf
        .get("connection", "type")
        .ok_or_else(|| reject(conn_line, "connection.type is missing"))?;
    let uplink_type = parse_type(&type_entry.string()).ok_or_else(|| {
        reject(
            type_entry.line,
            format!(
                "connection.type {:?} is not a NetworkManager connection type",
                type_entry.string()
            ),
        )
    })?;
    let id = kf
        .get("connection", "id")
        .map(Entry::string)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            // NetworkManager names a profile without id after its file.
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let uuid = kf
        .get("connection", "uuid")
        .map(Entry::string)
        .filter(|s| !s.is_empty());
    let autoconnect = bool_key(&kf, "connection", "autoconnect", true, path, warnings);
    let autoconnect_priority = priority(&kf, path, warnings);
    let (matches, binding) = binding(&kf, uplink_type, sysfs_root, path, warnings)?;

    let (ipv4, ipv4_metric, dns4) = family(&kf, Family::V4, uplink_type, path, warnings)?;
    let (ipv6, ipv6_metric, dns6) = family(&kf, Family::V6, uplink_type, path, warnings)?;
    Ok(LoadedProfile {
        profile: Profile {
            id,
            uuid,
            file: path.to_path_buf(),
            uplink_type,
            matches,
            managed: autoconnect,
            ipv4,
            ipv6,
            dns: dns4.into_iter().chain(dns6).collect(),
        },
        autoconnect_priority,
        ipv4_metric,
        ipv6_metric,
        binding,
        lost_to: None,
    })
}

/// NetworkManager's connection types (short and full names); the ones that are not one of ours
/// are `Other` (default metric 800).
fn parse_type(name: &str) -> Option<UplinkType> {
    Some(match name {
        "ethernet" | "802-3-ethernet" => UplinkType::Ethernet,
        "wifi" | "802-11-wireless" => UplinkType::Wifi,
        "gsm" => UplinkType::Gsm,
        "cdma" => UplinkType::Cdma,
        "adsl" | "bluetooth" | "bond" | "bridge" | "dummy" | "generic" | "hsr" | "infiniband"
        | "ip-tunnel" | "ipvlan" | "loopback" | "macsec" | "macvlan" | "olpc-mesh"
        | "802-11-olpc-mesh" | "ovs-bridge" | "ovs-interface" | "ovs-port" | "pppoe" | "team"
        | "tun" | "veth" | "vlan" | "vpn" | "vrf" | "vxlan" | "wifi-p2p" | "wimax"
        | "wireguard" | "wpan" | "6lowpan" => UplinkType::Other,
        _ => return None,
    })
}

/// `interface-name`, a modem control device, `mac-address`, or the type.
fn binding(
    kf: &KeyFile,
    uplink_type: UplinkType,
    sysfs_root: &Path,
    path: &Path,
    warnings: &mut Vec<Problem>,
) -> Result<(IfaceMatch, Binding), Reject> {
    let type_group = match uplink_type {
        UplinkType::Ethernet => Some("ethernet"),
        UplinkType::Wifi => Some("wifi"),
        _ => None,
    };
    let mac_entry = type_group.and_then(|g| kf.get(g, "mac-address"));
    let mac = match mac_entry {
        Some(e) => Some(parse_mac(&e.string()).ok_or_else(|| {
            reject(
                e.line,
                format!("mac-address {:?} is not a MAC address", e.string()),
            )
        })?),
        None => None,
    };
    let name_entry = kf
        .get("connection", "interface-name")
        .filter(|e| !e.raw.is_empty());
    let Some(entry) = name_entry else {
        return Ok(match mac {
            Some(mac) => (IfaceMatch::Mac(mac), Binding::MacAddress),
            None => (IfaceMatch::ByType, Binding::ByType),
        });
    };
    let name = IfaceName::new(entry.string())
        .map_err(|e| reject(entry.line, format!("connection.interface-name: {e}")))?;
    if let (Some(_), Some(mac_entry)) = (mac, mac_entry) {
        warnings.push(Problem::warning(
            path,
            Some(mac_entry.line),
            "mac-address is not used: interface-name already binds this profile",
        ));
    }
    if !matches!(uplink_type, UplinkType::Gsm | UplinkType::Cdma) {
        return Ok((IfaceMatch::Name(name), Binding::InterfaceName));
    }
    let device = name.as_str().to_string();
    Ok(match matching::lookup(sysfs_root, &device) {
        ControlLookup::NetIface | ControlLookup::Unknown => {
            (IfaceMatch::Name(name), Binding::InterfaceName)
        }
        ControlLookup::Mapped { iface, class } => (
            IfaceMatch::Name(iface),
            Binding::ControlDevice {
                device,
                class: Some(class),
            },
        ),
        ControlLookup::ControlWithoutNet { class } => (
            IfaceMatch::ByType,
            Binding::ControlDevice {
                device,
                class: Some(class),
            },
        ),
        ControlLookup::LooksLikeControl => (
            IfaceMatch::ByType,
            Binding::ControlDevice {
                device,
                class: None,
            },
        ),
    })
}

/// `aa:bb:cc:dd:ee:ff` (or `-`-separated), or the old keyfile form `170;187;204;221;238;255;`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let s = s.trim();
    let (parts, radix): (Vec<&str>, u32) = if s.contains(';') {
        (s.split(';').filter(|p| !p.trim().is_empty()).collect(), 10)
    } else {
        (s.split([':', '-']).collect(), 16)
    };
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        let part = part.trim();
        if part.is_empty() || (radix == 16 && part.len() > 2) {
            return None;
        }
        *byte = u8::from_str_radix(part, radix).ok()?;
    }
    Some(mac)
}

/// GKeyFile booleans (`true`/`false`, `1`/`0`) plus `yes`/`no`, which NetworkManager also reads.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn bool_key(
    kf: &KeyFile,
    group: &str,
    key: &str,
    default: bool,
    path: &Path,
    warnings: &mut Vec<Problem>,
) -> bool {
    let Some(e) = kf.get(group, key) else {
        return default;
    };
    parse_bool(&e.string()).unwrap_or_else(|| {
        warnings.push(Problem::warning(
            path,
            Some(e.line),
            format!(
                "{group}.{key} {:?} is not a boolean; using {default}",
                e.string()
            ),
        ));
        default
    })
}

/// `autoconnect-priority` (NetworkManager's range is -999..=999).
fn priority(kf: &KeyFile, path: &Path, warnings: &mut Vec<Problem>) -> i32 {
    let Some(e) = kf.get("connection", "autoconnect-priority") else {
        return 0;
    };
    match e.string().trim().parse::<i32>() {
        Ok(p) if (-999..=999).contains(&p) => p,
        _ => {
            warnings.push(Problem::warning(
                path,
                Some(e.line),
                format!(
                    "connection.autoconnect-priority {:?} is not a number in -999..=999; using 0",
                    e.string()
                ),
            ));
            0
        }
    }
}

/// One family's settings, its metric's origin and its `dns=` servers.
fn family(
    kf: &KeyFile,
    fam: Family,
    uplink_type: UplinkType,
    path: &Path,
    warnings: &mut Vec<Problem>,
) -> Result<(FamilyConfig, MetricOrigin, Vec<IpAddr>), Reject> {
    let group = match fam {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    let method_entry = kf.get(group, "method");
    let (method, method_manages) = match method_entry.map(Entry::string).as_deref() {
        None | Some("auto") | Some("dhcp") => (Method::Auto, true),
        Some("manual") => (Method::Manual, true),
        Some("disabled") | Some("ignore") | Some("link-local") | Some("shared") => {
            (Method::Auto, false)
        }
        Some(other) => {
            return Err(reject(
                method_entry.map(|e| e.line),
                format!(
                    "{group}.method {other:?} is not one of auto, manual, disabled, ignore, link-local, shared"
                ),
            ))
        }
    };
    let (metric, metric_origin) = metric(kf, group, uplink_type)?;
    let never_default = bool_key(kf, group, "never-default", false, path, warnings);

    let mut addresses: Vec<(u64, usize, IfaceAddr, Option<IpAddr>)> = Vec::new();
    for e in kf.entries_in(group) {
        let Some(index) = address_key_index(&e.key) else {
            continue;
        };
        for (addr, gw) in parse_address_entry(e, fam, group, path, warnings)? {
            addresses.push((index, e.line, addr, gw));
        }
    }
    addresses.sort_by_key(|(index, line, ..)| (*index, *line));
    let mut gateway = addresses.iter().find_map(|(.., gw)| *gw);
    if let Some(e) = kf.get(group, "gateway").filter(|e| !e.raw.is_empty()) {
        gateway = Some(
            parse_ip_of(&e.string(), fam)
                .map_err(|why| reject(e.line, format!("{group}.gateway: {why}")))?,
        );
    }
    if method == Method::Manual && method_manages && addresses.is_empty() {
        return Err(reject(
            method_entry.map(|e| e.line),
            format!("{group}.method=manual needs an address ({group}.address1=ADDR/LEN[,GW])"),
        ));
    }
    if method == Method::Manual && gateway.is_none() && !never_default {
        warnings.push(Problem::warning(
            path,
            method_entry.map(|e| e.line),
            format!("{group}.method=manual without a gateway: no {group} default route for this profile"),
        ));
    }

    let mut dns = Vec::new();
    if let Some(e) = kf.get(group, "dns") {
        for item in e.list() {
            match parse_ip_of(&item, fam) {
                Ok(ip) if !dns.contains(&ip) => dns.push(ip),
                Ok(_) => {}
                Err(why) => warnings.push(Problem::warning(
                    path,
                    Some(e.line),
                    format!("{group}.dns entry {item:?} dropped: {why}"),
                )),
            }
        }
    }
    Ok((
        FamilyConfig {
            manage_default: method_manages && !never_default,
            method,
            metric,
            addresses: addresses.into_iter().map(|(_, _, a, _)| a).collect(),
            gateway,
        },
        metric_origin,
        dns,
    ))
}

/// `route-metric`: absent or -1 → the type's default; otherwise 0..=Metric::MAX.
fn metric(
    kf: &KeyFile,
    group: &str,
    uplink_type: UplinkType,
) -> Result<(Metric, MetricOrigin), Reject> {
    let Some(e) = kf.get(group, "route-metric") else {
        return Ok((uplink_type.default_metric(), MetricOrigin::TypeDefault));
    };
    let value: i64 = e.string().trim().parse().map_err(|_| {
        reject(
            e.line,
            format!("{group}.route-metric {:?} is not a number", e.string()),
        )
    })?;
    if value == -1 {
        return Ok((uplink_type.default_metric(), MetricOrigin::TypeDefault));
    }
    let metric =
        Metric::new(value).map_err(|err| reject(e.line, format!("{group}.route-metric: {err}")))?;
    Ok((metric, MetricOrigin::RouteMetric { line: e.line }))
}

/// `address`, `addressN`, `addresses`, `addressesN` → N (0 without a number).
fn address_key_index(key: &str) -> Option<u64> {
    let rest = key
        .strip_prefix("addresses")
        .or_else(|| key.strip_prefix("address"))?;
    if rest.is_empty() {
        return Some(0);
    }
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        return rest.parse().ok();
    }
    None
}

/// One address key: `ADDR/LEN[,GW]` (several may be `;`-separated), or the old
/// `ADDR;LEN;GW;` triple.
fn parse_address_entry(
    e: &Entry,
    fam: Family,
    group: &str,
    path: &Path,
    warnings: &mut Vec<Problem>,
) -> Result<Vec<(IfaceAddr, Option<IpAddr>)>, Reject> {
    let value = e.string();
    let bad = |why: String| reject(e.line, format!("{group}.{} {value:?}: {why}", e.key));
    let items = e.list();
    let old_triple = !value.contains('/')
        && items.len() >= 2
        && items
            .get(1)
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if old_triple {
        let addr = parse_ip_of(&items[0], fam).map_err(|w| bad(format!("address {w}")))?;
        let len = parse_prefix(&items[1], fam).map_err(bad)?;
        let gw = match items.get(2) {
            Some(g) if !is_unspecified(g) => {
                Some(parse_ip_of(g, fam).map_err(|w| bad(format!("gateway {w}")))?)
            }
            _ => None,
        };
        return Ok(vec![(
            IfaceAddr {
                addr,
                prefix_len: len,
            },
            gw,
        )]);
    }
    let mut out = Vec::new();
    for item in items {
        let (addr_part, gw) = match item.split_once(',') {
            Some((a, g)) => (a, Some(g.trim())),
            None => (item.as_str(), None),
        };
        let (addr, len) = match addr_part.split_once('/') {
            Some((a, l)) => (
                parse_ip_of(a.trim(), fam).map_err(|w| bad(format!("address {w}")))?,
                parse_prefix(l.trim(), fam).map_err(&bad)?,
            ),
            None => {
                let addr =
                    parse_ip_of(addr_part.trim(), fam).map_err(|w| bad(format!("address {w}")))?;
                let len = match fam {
                    Family::V4 => 24,
                    Family::V6 => 64,
                };
                warnings.push(Problem::warning(
                    path,
                    Some(e.line),
                    format!("{group}.{}: no prefix length; assuming /{len}", e.key),
                ));
                (addr, len)
            }
        };
        let gw = match gw.filter(|g| !g.is_empty() && !is_unspecified(g)) {
            Some(g) => Some(parse_ip_of(g, fam).map_err(|w| bad(format!("gateway {w}")))?),
            None => None,
        };
        out.push((
            IfaceAddr {
                addr,
                prefix_len: len,
            },
            gw,
        ));
    }
    Ok(out)
}

fn is_unspecified(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

fn parse_prefix(s: &str, fam: Family) -> Result<u8, String> {
    let max = match fam {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    s.parse::<u8>()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("prefix length {s:?} is not in 0..={max}"))
}

/// An address of the given family, or why not.
fn parse_ip_of(s: &str, fam: Family) -> Result<IpAddr, String> {
    let ip: IpAddr = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address"))?;
    match (Family::of(&ip), fam) {
        (Family::V4, Family::V4) | (Family::V6, Family::V6) => Ok(ip),
        (_, Family::V4) => Err(format!("{ip} is not an IPv4 address")),
        (_, Family::V6) => Err(format!("{ip} is not an IPv6 address")),
    }
}

/// Several profiles for one interface name or MAC: the one NetworkManager would activate wins
/// (autoconnect first, then the highest `autoconnect-priority`, then file-name order, which is
/// the order `profiles` is in); the others are marked `lost_to`. Type-matched profiles each
/// claim their own interface at run time and never collide here.
fn resolve_duplicates(profiles: &mut [LoadedProfile]) {
    for i in 0..profiles.len() {
        if matches!(profiles[i].profile.matches, IfaceMatch::ByType) {
            continue;
        }
        let rank = |p: &LoadedProfile| (p.profile.managed, p.autoconnect_priority);
        let winner = (0..profiles.len())
            .filter(|j| profiles[*j].profile.matches == profiles[i].profile.matches)
            .fold(None::<usize>, |best, j| match best {
                Some(b) if rank(&profiles[b]) >= rank(&profiles[j]) => Some(b),
                _ => Some(j),
            });
        if let Some(w) = winner.filter(|w| *w != i) {
            profiles[i].lost_to = Some(profiles[w].profile.file.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Option<LoadedProfile>, Vec<String>) {
        let mut problems = Vec::new();
        let p = parse_profile(
            text,
            Path::new("p"),
            Path::new("/nonexistent"),
            &mut problems,
        );
        (p, problems.iter().map(ToString::to_string).collect())
    }

    fn ok(text: &str) -> LoadedProfile {
        let (p, problems) = load(text);
        assert!(problems.is_empty(), "{problems:?}");
        p.expect("profile loads")
    }

    fn err(text: &str) -> String {
        let (p, problems) = load(text);
        assert!(p.is_none(), "expected rejection");
        problems.last().cloned().unwrap_or_default()
    }

    #[test]
    fn seed_route_metric_example() {
        let p = ok(
            "[connection]\nid=eth\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nroute-metric=40\n",
        );
        assert_eq!(p.profile.ipv4.metric.get(), 40);
        assert_eq!(p.ipv4_metric, MetricOrigin::RouteMetric { line: 6 });
        assert_eq!(p.profile.ipv6.metric.get(), 100);
        assert_eq!(
            p.profile.matches,
            IfaceMatch::Name(IfaceName::new("eth0").unwrap())
        );
    }

    #[test]
    fn ipv46_is_ipv6_with_a_warning() {
        let (p, problems) = load("[connection]\ntype=wifi\n[ipv46]\nroute-metric=40\n");
        assert_eq!(p.unwrap().profile.ipv6.metric.get(), 40);
        assert_eq!(
            problems,
            vec!["p:3: warning: [ipv46] is not a NetworkManager section; reading it as [ipv6]"]
        );
    }

    #[test]
    fn type_defaults_and_minus_one() {
        for (t, m) in [
            ("802-3-ethernet", 100),
            ("802-11-wireless", 600),
            ("gsm", 700),
            ("cdma", 700),
            ("vpn", 800),
        ] {
            let p = ok(&format!(
                "[connection]\ntype={t}\n[ipv4]\nroute-metric=-1\n"
            ));
            assert_eq!(p.profile.ipv4.metric.get(), m, "{t}");
            assert_eq!(p.ipv4_metric, MetricOrigin::TypeDefault);
            assert_eq!(p.profile.matches, IfaceMatch::ByType);
        }
    }

    #[test]
    fn manual_addresses_in_both_spellings() {
        let p = ok("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\ndns=192.0.2.53;\n");
        assert_eq!(p.profile.ipv4.method, Method::Manual);
        assert_eq!(p.profile.ipv4.addresses[0].to_string(), "192.0.2.10/24");
        assert_eq!(p.profile.ipv4.gateway, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(p.profile.dns, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        let p = ok("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\naddresses1=198.51.100.5;25;198.51.100.1;\n");
        assert_eq!(p.profile.ipv4.addresses[0].to_string(), "198.51.100.5/25");
        assert_eq!(
            p.profile.ipv4.gateway,
            Some("198.51.100.1".parse().unwrap())
        );
        let p = ok("[connection]\ntype=ethernet\n[ipv6]\nmethod=manual\naddress1=2001:db8::10/64\ngateway=2001:db8::1\n");
        assert_eq!(p.profile.ipv6.gateway, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn rejections_name_the_line() {
        assert_eq!(
            err("[connection]\ntype=ethernet\n[ipv4]\nroute-metric=abc\n"),
            "p:4: error: profile skipped: ipv4.route-metric \"abc\" is not a number"
        );
        assert_eq!(
            err("[connection]\ntype=ethernet\ninterface-name=averyveryverylongname\n"),
            "p:3: error: profile skipped: connection.interface-name: interface name \"averyveryverylongname\" is 21 bytes long; the kernel allows at most 15"
        );
        assert_eq!(
            err("[connection]\nid=x\n"),
            "p:1: error: profile skipped: connection.type is missing"
        );
        assert!(err("[connection]\ntype=ethernet\n[ipv4]\nroute-metric=4294967295\n")
            .starts_with("p:4: error: profile skipped: ipv4.route-metric: route metric 4294967295 is out of range"));
        assert!(err("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\n")
            .starts_with("p:4: error: profile skipped: ipv4.method=manual needs an address"));
    }

    #[test]
    fn mac_binding_and_never_default() {
        let p = ok("[connection]\ntype=ethernet\n[802-3-ethernet]\nmac-address=02:00:00:AA:bb:01\n[ipv6]\nnever-default=true\n");
        assert_eq!(p.profile.matches, IfaceMatch::Mac([2, 0, 0, 0xaa, 0xbb, 1]));
        assert!(p.profile.ipv4.manage_default);
        assert!(!p.profile.ipv6.manage_default);
        assert_eq!(
            parse_mac("2;0;0;170;187;1;"),
            Some([2, 0, 0, 0xaa, 0xbb, 1])
        );
        assert_eq!(parse_mac("02:00:00:aa:bb"), None);
    }

    #[test]
    fn gsm_control_device_maps_through_sysfs() {
        let sys = super::super::matching::tests::fake_sysfs();
        let mut problems = Vec::new();
        let p = parse_profile(
            "[connection]\ntype=gsm\ninterface-name=cdc-wdm0\n",
            Path::new("p"),
            sys.path(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(
            p.profile.matches,
            IfaceMatch::Name(IfaceName::new("wwan0").unwrap())
        );
        let p = parse_profile(
            "[connection]\ntype=gsm\ninterface-name=cdc-wdm7\n",
            Path::new("p"),
            sys.path(),
            &mut problems,
        )
        .unwrap();
        assert_eq!(p.profile.matches, IfaceMatch::ByType);
        assert!(problems.is_empty());
    }
}
