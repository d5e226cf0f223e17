//! NetworkManager keyfiles in `system-connections/` → engine [`Profile`]s, read as
//! NetworkManager 1.42 loads them from `/etc/NetworkManager/system-connections` (where balenaOS
//! binds the boot partition's folder): the same files skipped, the same values accepted, the
//! same warnings for what NetworkManager only warns about, and never managed what its
//! `nm_connection_normalize()` refuses. `docs/config.md` lists every rule and each deliberate
//! difference; `tests/data/nm-corpus/` holds the differential test against libnm.
//!
//! Beyond reading, this file decides what is *managed*: an uplink type, `autoconnect`, not a
//! bridge/bond/team port, not a Wi-Fi hotspot, and the winner among several profiles for one
//! interface (or one Wi-Fi radio). The `[ipv4]`/`[ipv6]` sections are read by `ipconfig.rs`,
//! the type table is `nm_types.rs`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netfailover_actors::model::{Family, IfaceMatch, Profile, UplinkType};

use super::ipconfig::{self, FamilyRead};
use super::keyfile::{self, KeyFile};
use super::keyfile_reader::{reject, Reader, Reject};
use super::last_good::Versions;
use super::nm_types::{self, NmType, Role, Section};
use super::problems::Problem;
use super::read_bytes;

pub use super::ipconfig::MetricOrigin;

mod binding;
mod metered;
mod security;
mod values;
pub use binding::Binding;

/// A profile as loaded, with what check-config shows about where its values came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LoadedProfile {
    pub profile: Profile,
    /// The NetworkManager connection type.
    pub nm_type: &'static NmType,
    pub autoconnect_priority: i32,
    pub ipv4: FamilyRead,
    pub ipv6: FamilyRead,
    pub binding: Binding,
    /// Why the profile is loaded but not managed (autoconnect off, a port, not an uplink…).
    pub not_managed: Option<String>,
    /// Another profile for the same interface won; this one is not used.
    pub lost_to: Option<PathBuf>,
}

impl LoadedProfile {
    /// Managed: loaded, wanted, and not beaten by another profile for its interface.
    pub fn is_managed(&self) -> bool {
        self.profile.managed && self.lost_to.is_none()
    }
}

/// NetworkManager 1.42's `nm_keyfile_utils_ignore_filename(name, FALSE)`, the rule for its
/// `/etc` directory (no `.nmconnection` extension required): hidden files, names ending in `~`,
/// names ending in `.` plus exactly six ASCII letters or digits (the `mkstemp()` pattern of
/// temporary files, which balenaOS's `README.ignore` and `balena-sample.ignore` match), and
/// certificates ending in `.pem` / `.der` (any case). Everything else is read — `*.bak` and
/// `*.orig` included.
pub fn ignored_file_name(name: &str) -> bool {
    if name.is_empty() || name.starts_with('.') || name.ends_with('~') {
        return true;
    }
    if let Some((_, tail)) = name.rsplit_once('.') {
        if tail.len() == 6 && tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return true;
        }
    }
    let lower = name.to_ascii_lowercase();
    [".pem", ".der"]
        .iter()
        .any(|tag| lower.len() > tag.len() && lower.ends_with(tag))
}

/// Loads every profile in `dir` (missing directory: none), in file-name order. A file that fails
/// to parse is read from its last good version in `versions` when there is one (a reload).
pub fn load_dir(
    dir: &Path,
    sysfs_root: &Path,
    versions: &mut Versions,
    problems: &mut Vec<Problem>,
) -> Vec<LoadedProfile> {
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
        let read = read_bytes(&path)
            .map_err(|e| Problem::error(&path, e.line(), format!("profile skipped: {e}")));
        let parsed = versions.parse(&path, read, problems, |bytes, problems| {
            parse_profile_bytes(bytes?, &path, sysfs_root, problems)
        });
        profiles.extend(parsed);
    }
    resolve_duplicates(&mut profiles);
    profiles
}

/// Parses one keyfile. `None` (with one error in `problems`) when it is skipped.
pub fn parse_profile(
    text: &str,
    path: &Path,
    sysfs_root: &Path,
    problems: &mut Vec<Problem>,
) -> Option<LoadedProfile> {
    parse_profile_bytes(text.as_bytes(), path, sysfs_root, problems)
}

/// [`parse_profile`] from the file's bytes (a keyfile need not be UTF-8 everywhere: GLib
/// accepts any bytes in comments and refuses only the values that are read).
pub fn parse_profile_bytes(
    bytes: &[u8],
    path: &Path,
    sysfs_root: &Path,
    problems: &mut Vec<Problem>,
) -> Option<LoadedProfile> {
    let mut warnings = Vec::new();
    let result = build(bytes, path, sysfs_root, &mut warnings);
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

/// A port of a bridge, bond or team: `(controller, port type, spelling)`.
struct Port {
    controller: String,
    kind: String,
}

fn build(
    bytes: &[u8],
    path: &Path,
    sysfs_root: &Path,
    warnings: &mut Vec<Problem>,
) -> Result<LoadedProfile, Reject> {
    let kf = parse_keyfile(bytes, path, warnings)?;
    let mut r = Reader {
        kf: &kf,
        path,
        warnings,
    };
    let conn_line = kf.group_line("connection");
    let (nm_type, type_line) = connection_type(&mut r, conn_line)?;
    let id = r
        .string("connection", "id")
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| id_from_file_name(path));
    let uuid = match r
        .string("connection", "uuid")
        .filter(|(s, _)| !s.is_empty())
    {
        Some((text, line)) => Some(values::uuid(&mut r, text, line)?),
        None => None,
    };
    let autoconnect = r.bool("connection", "autoconnect", true);
    let autoconnect_priority = priority(&mut r);
    let port = port(&mut r, conn_line)?;
    required_section(&mut r, nm_type, type_line)?;
    let (matches, binding) = binding::binding(&mut r, nm_type, sysfs_root)?;

    let default_method = match nm_type.short {
        "wireguard" | "dummy" => "disabled",
        _ => "auto",
    };
    let ipv4 = ipconfig::read(&mut r, Family::V4, nm_type.metric, default_method)?;
    let ipv6 = ipconfig::read(&mut r, Family::V6, nm_type.metric, default_method)?;

    let wifi_mode = r.string("wifi", "mode").map(|(m, _)| m);
    let uplink_type = match nm_type.role {
        Role::Uplink(t) => t,
        Role::NotUplink(_) => UplinkType::Other,
    };
    let metered = metered::read(&mut r, uplink_type);
    let not_managed = not_managed(port.as_ref(), nm_type, wifi_mode.as_deref(), autoconnect);
    let dns: Vec<IpAddr> = ipv4.dns.iter().chain(&ipv6.dns).copied().collect();
    Ok(LoadedProfile {
        profile: Profile {
            id,
            uuid,
            file: path.to_path_buf(),
            uplink_type,
            matches,
            managed: not_managed.is_none(),
            ipv4: ipv4.config.clone(),
            ipv6: ipv6.config.clone(),
            dns,
            metered,
        },
        nm_type,
        autoconnect_priority,
        ipv4,
        ipv6,
        binding,
        not_managed,
        lost_to: None,
    })
}

/// `connection.type`, or when it is absent the type NetworkManager infers from the sections
/// (`[ethernet]`, `[wifi]`, …; a warning says which). The line is the one messages about the
/// type point at.
fn connection_type(
    r: &mut Reader<'_>,
    conn_line: Option<usize>,
) -> Result<(&'static NmType, usize), Reject> {
    let Some((type_name, type_line)) = r.string("connection", "type") else {
        let sections = r.kf.groups.iter().map(|g| g.name.as_str());
        let nm_type = nm_types::infer(sections).map_err(|why| {
            reject(
                conn_line,
                format!("connection.type is missing {why} (NetworkManager refuses the profile)"),
            )
        })?;
        let line =
            r.kf.group_line(section_of(nm_type))
                .or(conn_line)
                .unwrap_or(1);
        r.warn(
            line,
            format!(
                "connection.type is missing; type {} from the [{}] section, as NetworkManager infers it (add type={})",
                nm_type.short,
                section_of(nm_type),
                nm_type.short
            ),
        );
        return Ok((nm_type, line));
    };
    let nm_type = nm_types::lookup(&type_name).ok_or_else(|| {
        reject(
            type_line,
            format!("connection.type {type_name:?} is not a NetworkManager 1.42 connection type"),
        )
    })?;
    Ok((nm_type, type_line))
}

/// The group a type's own settings are read from (after the keyfile aliases).
fn section_of(t: &NmType) -> &'static str {
    nm_types::GROUP_ALIASES
        .iter()
        .find(|(setting, _)| *setting == t.setting)
        .map_or(t.setting, |(_, alias)| alias)
}

/// The keyfile's groups, with `[ipv46]` read as `[ipv6]` (warned) and NetworkManager's group
/// aliases resolved.
fn parse_keyfile(
    bytes: &[u8],
    path: &Path,
    warnings: &mut Vec<Problem>,
) -> Result<KeyFile, Reject> {
    let mut kf = keyfile::parse_bytes(bytes).map_err(|e| reject(e.line, e.message))?;
    if let Some(line) = kf.group_line("ipv46") {
        warnings.push(Problem::warning(
            path,
            Some(line),
            "[ipv46] is not a NetworkManager section; reading it as [ipv6] (NetworkManager ignores it)",
        ));
        kf.rename_group("ipv46", "ipv6");
    }
    for (from, to) in nm_types::GROUP_ALIASES {
        kf.rename_group(from, to);
    }
    Ok(kf)
}

/// Why a loaded profile is not managed, if it is not: a port, a type that is no uplink, a
/// Wi-Fi mode that serves others, or `autoconnect=false`, in that order.
fn not_managed(
    port: Option<&Port>,
    nm_type: &NmType,
    wifi_mode: Option<&str>,
    autoconnect: bool,
) -> Option<String> {
    match (port, nm_type.role, wifi_mode) {
        (Some(p), ..) => Some(format!(
            "a {} port of {} has no IP configuration of its own",
            p.kind, p.controller
        )),
        (None, Role::NotUplink(why), _) => Some(format!("type {}: {why}", nm_type.short)),
        (None, _, Some(mode @ ("ap" | "adhoc" | "mesh"))) => Some(format!(
            "Wi-Fi mode={mode} serves other devices, not an uplink"
        )),
        _ if !autoconnect => {
            Some("autoconnect=false: loaded, not managed (not adopted either)".to_string())
        }
        _ => None,
    }
}

/// NetworkManager names a profile without `id` after its file, minus `.nmconnection`.
fn id_from_file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(".nmconnection") {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => name,
    }
}

/// `master=` + `slave-type=` (NetworkManager 1.42), or the newer `controller=` + `port-type=`
/// (1.46 and later; 1.42 ignores those keys — we read them as meant, a documented difference).
/// One without the other is refused, as NetworkManager refuses it.
fn port(r: &mut Reader<'_>, conn_line: Option<usize>) -> Result<Option<Port>, Reject> {
    let master = r
        .string("connection", "master")
        .or_else(|| r.string("connection", "controller"))
        .filter(|(s, _)| !s.is_empty());
    let kind = r
        .string("connection", "slave-type")
        .or_else(|| r.string("connection", "port-type"))
        .filter(|(s, _)| !s.is_empty());
    match (master, kind) {
        (None, None) => Ok(None),
        (Some((controller, _)), Some((kind, line))) => {
            // A [bridge-port] or [team-port] section belongs to that kind of port only.
            for (section, owner) in [("bridge-port", "bridge"), ("team-port", "team")] {
                if kind != owner && r.kf.group_line(section).is_some() {
                    return Err(reject(
                        line,
                        format!("connection.slave-type={kind} with a [{section}] section (NetworkManager refuses the profile)"),
                    ));
                }
            }
            Ok(Some(Port { controller, kind }))
        }
        (Some((controller, line)), None) => match detect_port_type(r.kf) {
            Ok((kind, section)) => {
                r.warn(
                    line,
                    format!("connection.master without connection.slave-type; a {kind} port from the [{section}] section, as NetworkManager infers it (add slave-type={kind})"),
                );
                Ok(Some(Port {
                    controller,
                    kind: kind.to_string(),
                }))
            }
            Err(why) => Err(reject(
                line,
                format!("connection.master without connection.slave-type{why} (NetworkManager refuses the profile)"),
            )),
        },
        (None, Some((_, line))) => Err(reject(
            line.max(conn_line.unwrap_or(0)),
            "connection.slave-type without connection.master (NetworkManager refuses the profile)",
        )),
    }
}

/// The port type NetworkManager infers for `master=` without `slave-type=`
/// (`_nm_connection_detect_slave_type()` in `nm-connection.c`): from the one port section
/// present, `(type, section)`; `Err` with why when there is none or more than one.
fn detect_port_type(kf: &KeyFile) -> Result<(&'static str, &'static str), String> {
    const PORT_SECTIONS: &[(&str, &str)] = &[
        ("bridge-port", "bridge"),
        ("bond-port", "bond"),
        ("team-port", "team"),
        ("ovs-port", "ovs-bridge"),
        ("ovs-interface", "ovs-port"),
    ];
    let found: Vec<_> = PORT_SECTIONS
        .iter()
        .filter(|(section, _)| kf.group_line(section).is_some())
        .collect();
    match found.as_slice() {
        [(section, kind)] => Ok((kind, section)),
        [] => Err(String::new()),
        _ => Err(" and several port sections".to_string()),
    }
}

/// The sections `nm_connection_normalize()` insists on, and the keys it cannot do without.
fn required_section(r: &mut Reader<'_>, t: &NmType, type_line: usize) -> Result<(), Reject> {
    let has_name = binding::interface_name(r, t).is_some();
    let missing = match t.section {
        Section::Optional => None,
        Section::NeedsInterfaceName if !has_name => {
            Some("connection.interface-name is missing".to_string())
        }
        Section::NeedsInterfaceName => None,
        // A VLAN found by its parent's MAC address needs no [vlan] section.
        Section::Required("vlan") if r.kf.get("ethernet", "mac-address").is_some() => None,
        Section::Required(s) => {
            r.kf.group_line(s)
                .is_none()
                .then(|| format!("a [{s}] section is missing"))
        }
    };
    if let Some(what) = missing {
        return Err(reject(
            type_line,
            format!(
                "type {}: {what} (NetworkManager refuses the profile)",
                t.short
            ),
        ));
    }
    let refuse = |line: Option<usize>, what: &str| {
        Err(reject(
            line,
            format!("{what} (NetworkManager refuses the profile)"),
        ))
    };
    if t.short == "wifi" && r.string("wifi", "ssid").is_none_or(|(s, _)| s.is_empty()) {
        return refuse(r.kf.group_line("wifi"), "wifi.ssid is missing");
    }
    security::check(r, t)?;
    values::check(r, t)?;
    if t.short == "vlan"
        && r.string("vlan", "parent").is_none_or(|(s, _)| s.is_empty())
        && r.kf.get("ethernet", "mac-address").is_none()
    {
        return refuse(r.kf.group_line("vlan"), "vlan.parent is missing");
    }
    if let Some((id, line)) = r.string("vlan", "id") {
        // NetworkManager reads the id as a 32-bit number (what it cannot read: a warning and
        // 0) and refuses one above 4094.
        match keyfile::nm_int(&id).filter(|v| (0..=i64::from(u32::MAX)).contains(v)) {
            Some(v) if v > 4094 => {
                return refuse(Some(line), &format!("vlan.id {v} is not in 0..=4094"))
            }
            Some(_) => {}
            None => r.warn(
                line,
                format!("vlan.id {id:?} is not a number; NetworkManager uses 0"),
            ),
        }
    }
    if t.short == "gsm" {
        if let Some((_, line)) = r.string("gsm", "username").filter(|(u, _)| u.is_empty()) {
            return refuse(
                Some(line),
                "gsm.username is empty (leave the key out instead)",
            );
        }
    }
    if t.short == "vpn"
        && r.string("vpn", "service-type")
            .is_none_or(|(s, _)| s.is_empty())
    {
        return refuse(r.kf.group_line("vpn"), "vpn.service-type is missing");
    }
    Ok(())
}

/// `autoconnect-priority` (NetworkManager's range is -999..=999; otherwise a warning and 0).
fn priority(r: &mut Reader<'_>) -> i32 {
    let Some((text, line)) = r.string("connection", "autoconnect-priority") else {
        return 0;
    };
    match keyfile::nm_int(&text).and_then(|p| i32::try_from(p).ok()) {
        Some(p) if (-999..=999).contains(&p) => p,
        _ => {
            r.warn(
                line,
                format!("connection.autoconnect-priority {text:?} is not a number in -999..=999; using 0"),
            );
            0
        }
    }
}

/// Several profiles for one interface name or MAC — or several Wi-Fi profiles without a
/// binding, which all compete for the one radio: the one NetworkManager would activate wins
/// (managed first, then the highest `autoconnect-priority`, then file-name order, which is the
/// order `profiles` is in); the others are marked `lost_to`. Other type-matched profiles each
/// claim their own interface at run time and never collide here.
fn resolve_duplicates(profiles: &mut [LoadedProfile]) {
    let key = |p: &LoadedProfile| match &p.profile.matches {
        IfaceMatch::ByType if p.profile.uplink_type == UplinkType::Wifi => Some(IfaceMatch::ByType),
        IfaceMatch::ByType => None,
        other => Some(other.clone()),
    };
    for i in 0..profiles.len() {
        let Some(mine) = key(&profiles[i]) else {
            continue;
        };
        let rank = |p: &LoadedProfile| (p.profile.managed, p.autoconnect_priority);
        let winner = (0..profiles.len())
            .filter(|j| key(&profiles[*j]).as_ref() == Some(&mine))
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
mod tests;
