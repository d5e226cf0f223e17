//! `netfailover check-config`: the effective configuration as a person reads it (docs/semantics.md §6) —
//! one line per profile with where each value came from and notes, then the check, route,
//! dispatcher, DNS and daemon settings with their origins, then every problem as
//! `FILE:LINE: warning|error: message` — and the exit code: 0 with warnings only, 1 if a file,
//! profile or value was rejected, 2 if there is no configuration to run with.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use netfailover_actors::model::{DnsConfig, IfaceMatch, IfaceName, Method, Profile, UplinkType};

use super::ipconfig::FamilyRead;
use super::profiles::{Binding, LoadedProfile, MetricOrigin};
use super::report_common::{all_problems, exit_code, mac, running};
use super::{load_effective, Effective, LoadOptions, Origin};
use crate::os::sysfs;

pub use super::report_common::{EXIT_FATAL, EXIT_REJECTED};

/// Output format of check-config.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    /// One JSON document (`docs/config.md`, "check-config --json").
    Json,
}

/// Prints the effective configuration of `boot_dir` to `out`; returns the exit code.
pub fn check_config(
    boot_dir: &Path,
    settings_file: Option<&Path>,
    format: Format,
    out: &mut dyn Write,
) -> i32 {
    let mut opts = LoadOptions::new(boot_dir);
    opts.settings_file = settings_file.map(Path::to_path_buf);
    check_config_as(&opts, format, out)
}

/// [`check_config`] as text with explicit options (tests use a fake sysfs and environment).
pub fn check_config_with(opts: &LoadOptions, out: &mut dyn Write) -> i32 {
    check_config_as(opts, Format::Text, out)
}

/// [`check_config`] with explicit options and format.
pub fn check_config_as(opts: &LoadOptions, format: Format, out: &mut dyn Write) -> i32 {
    let effective = match load_effective(opts) {
        Ok(effective) => effective,
        Err(e) => {
            // Exit 2 either way; a closed stdout only loses the explanation.
            let _ = match format {
                Format::Text => writeln!(out, "{e}\nno configuration loaded"),
                Format::Json => super::report_json::render_fatal(&e, out),
            };
            return EXIT_FATAL;
        }
    };
    let result = match format {
        Format::Text => render(&effective, opts, out),
        Format::Json => super::report_json::render(&effective, opts, out),
    };
    // A closed stdout (`check-config | head -1`) cuts the report short, not the verdict.
    result.unwrap_or_else(|_| exit_code(&all_problems(&effective)))
}

fn render(e: &Effective, opts: &LoadOptions, out: &mut dyn Write) -> io::Result<i32> {
    writeln!(out, "boot directory: {}", opts.boot_dir.display())?;
    writeln!(out, "profiles:")?;
    if e.profiles.is_empty() {
        writeln!(
            out,
            "  (none; interfaces holding a default route are adopted when adopt = true)"
        )?;
    }
    for i in 0..e.profiles.len() {
        writeln!(out, "  {}", profile_line(e, i, opts))?;
    }
    for note in shared_metric_notes(&e.profiles) {
        writeln!(out, "  note: {note}")?;
    }
    settings_section(e, out)?;
    dns_section(e, opts, out)?;
    scripts_section(&e.loaded.dispatcher_dir, out)?;
    let problems = &all_problems(e);
    let errors = problems.iter().filter(|p| p.is_error()).count();
    writeln!(out, "problems:")?;
    for p in problems {
        writeln!(out, "  {p}")?;
    }
    writeln!(
        out,
        "{errors} error(s), {} warning(s)",
        problems.len() - errors
    )?;
    Ok(exit_code(problems))
}

/// One line per family and metric that several managed profiles share (not one per pair: 500
/// copies of a profile give one line, not 125 000).
fn shared_metric_notes(profiles: &[LoadedProfile]) -> Vec<String> {
    let mut notes = Vec::new();
    for fam in ["ipv4", "ipv6"] {
        let mut by_metric: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
        for p in profiles.iter().filter(|p| p.is_managed()) {
            let f = if fam == "ipv4" { &p.ipv4 } else { &p.ipv6 };
            if f.has_default_route() {
                by_metric
                    .entry(f.config.metric.get())
                    .or_default()
                    .push(p.profile.file.display().to_string());
            }
        }
        for (metric, files) in by_metric.into_iter().filter(|(_, f)| f.len() > 1) {
            notes.push(format!(
                "{fam} metric {metric} is shared by {} profiles ({}): each interface with a higher ifindex gets +1",
                files.len(),
                files.join(", ")
            ));
        }
    }
    notes
}

/// The dispatcher scripts each event would run, and those that would be skipped and why
/// (the same discovery the daemon uses, `os::scripts::discover`).
fn scripts_section(dispatcher_dir: &Path, out: &mut dyn Write) -> io::Result<()> {
    use crate::os::scripts::{discover, mount_problem};
    use netfailover_actors::model::EventKind;
    writeln!(out, "dispatcher scripts ({}):", dispatcher_dir.display())?;
    if !dispatcher_dir.is_dir() {
        return writeln!(out, "  (no directory: no scripts run)");
    }
    if let Some(problem) = mount_problem(dispatcher_dir, Path::new(crate::os::scripts::MOUNTINFO)) {
        writeln!(out, "  warning: {problem}")?;
    }
    for event in EventKind::ALL {
        let found = discover(dispatcher_dir, event);
        let runs = running(&found);
        let list = if runs.is_empty() {
            "(none)".to_string()
        } else {
            runs.join(", ")
        };
        writeln!(out, "  {event}: {list}")?;
        for skipped in found.iter().filter(|s| !s.runs()) {
            if let Some(why) = &skipped.skip {
                writeln!(out, "    skipped {}: {why}", skipped.name)?;
            }
        }
    }
    Ok(())
}

/// The `iface` part of a profile's line: what it binds to, with a note when that binding
/// cannot work on this machine.
fn iface_column(p: &LoadedProfile, opts: &LoadOptions, notes: &mut Vec<String>) -> String {
    let prof = &p.profile;
    match (&prof.matches, &p.binding) {
        (IfaceMatch::ControlDevice(device), _) => {
            // What the engine would find now; it looks again whenever links appear.
            match sysfs::lookup(&opts.sysfs_root, device) {
                sysfs::ControlLookup::Mapped { iface, class } => {
                    format!("{iface} (network interface of control device {device}, sysfs {class})")
                }
                _ => {
                    notes.push(format!(
                        "control device {device} has no network interface on this machine (looked up again when interfaces appear)"
                    ));
                    "first unclaimed wwan* (control device fallback)".to_string()
                }
            }
        }
        (IfaceMatch::Name(n), Binding::VlanName) => format!("{n} (vlan parent.id)"),
        (IfaceMatch::Name(n), _) => format!("{n} (interface-name)"),
        (IfaceMatch::Mac(m), _) => format!("mac {} (mac-address)", mac(m)),
        (IfaceMatch::ByType, _) if prof.uplink_type == UplinkType::Other => {
            if prof.managed {
                notes.push(format!(
                    "type {} with no interface-name matches no interface: add interface-name=",
                    p.nm_type.short
                ));
            }
            "none".to_string()
        }
        (IfaceMatch::ByType, _) => format!("first unclaimed {} (by type)", prefixes(prof)),
    }
}

/// One line for profile `index` of `e.profiles`.
fn profile_line(e: &Effective, index: usize, opts: &LoadOptions) -> String {
    let all = &e.profiles;
    let p = &all[index];
    let dns = &e.loaded.config.dns;
    let prof = &p.profile;
    let mut notes = Vec::new();
    let iface = iface_column(p, opts, &mut notes);
    if let IfaceMatch::Name(n) = &prof.matches {
        if !sysfs::iface_exists(&opts.sysfs_root, n.as_str()) {
            let when = if prof.managed && p.lost_to.is_none() {
                "; managed when it appears"
            } else {
                ""
            };
            notes.push(format!("interface {n} absent on this machine{when}"));
        }
    }
    if let Some(why) = &p.not_managed {
        notes.push(why.clone());
    }
    if let Some(winner_file) = &p.lost_to {
        let why = match all.iter().find(|w| &w.profile.file == winner_file) {
            Some(w) if w.profile.managed && !prof.managed => "it is managed".to_string(),
            Some(w) if w.autoconnect_priority != p.autoconnect_priority => format!(
                "higher autoconnect-priority, {} > {}",
                w.autoconnect_priority, p.autoconnect_priority
            ),
            _ => "same autoconnect-priority, earlier file name".to_string(),
        };
        let what = if prof.matches == IfaceMatch::ByType {
            "the Wi-Fi radio"
        } else {
            "this interface"
        };
        notes.push(format!(
            "not used: {} wins for {what} ({why})",
            winner_file.display()
        ));
    }
    let servers = match &prof.matches {
        IfaceMatch::Name(n) => dns.servers_for(n, &prof.dns),
        IfaceMatch::ControlDevice(device) => {
            match sysfs::control_device_net(&opts.sysfs_root, device) {
                Some(n) => dns.servers_for(&n, &prof.dns),
                None => unbound_servers(dns, &prof.dns),
            }
        }
        _ => unbound_servers(dns, &prof.dns),
    };
    let mut line = format!(
        "{}: id {:?}, {}, metered {}, iface {iface}; ipv4 {}; ipv6 {}; dns {}",
        prof.file.display(),
        prof.id,
        p.nm_type.short,
        prof.metered,
        family(&p.ipv4, p),
        family(&p.ipv6, p),
        list(&servers),
    );
    if !notes.is_empty() {
        line.push_str("; notes: ");
        line.push_str(&notes.join("; "));
    }
    line
}

fn family(read: &FamilyRead, p: &LoadedProfile) -> String {
    let f = &read.config;
    let origin = match read.metric_origin {
        MetricOrigin::RouteMetric { line } => format!("route-metric, line {line}"),
        MetricOrigin::TypeDefault => format!("{} default", p.nm_type.short),
    };
    let mut s = format!("metric {} ({origin})", f.metric);
    match (f.method, read.method.as_str()) {
        (Method::Auto, "auto") => s.push_str(" auto"),
        (Method::Auto, other) => s.push_str(&format!(" {other}")),
        (Method::Manual, _) => {
            s.push_str(" manual");
            for a in &f.addresses {
                s.push_str(&format!(" {a}"));
            }
            if let Some(gw) = f.gateway {
                s.push_str(&format!(" gw {gw}"));
                if read.gateway_from_route {
                    s.push_str(" (default route)");
                }
            }
        }
    }
    if !f.manage_default {
        s.push_str(", default route not managed");
    }
    s
}

/// docs/semantics.md §3 order for an interface not known by name (type or MAC binding): the same as
/// `servers_for` without any `@IFACE` servers.
fn unbound_servers(dns: &DnsConfig, profile_dns: &[IpAddr]) -> Vec<SocketAddr> {
    let unbound = DnsConfig {
        bound: Default::default(),
        ..dns.clone()
    };
    // With no bound servers the name is never looked at; any valid one will do.
    IfaceName::new("unbound")
        .map(|name| unbound.servers_for(&name, profile_dns))
        .unwrap_or_default()
}

fn settings_section(e: &Effective, out: &mut dyn Write) -> io::Result<()> {
    let j = &e.json;
    writeln!(out, "connectivity check:")?;
    let interval = if j.interval.is_zero() {
        "0 (checks disabled: no penalty, states stay UNKNOWN)".to_string()
    } else {
        secs(j.interval)
    };
    writeln!(out, "  uri = {}  ({})", j.uri, j.uri_origin)?;
    writeln!(out, "  interval = {interval}  ({})", j.interval_origin)?;
    let response = if j.response.is_empty() {
        "\"\" (expects 204 or an empty body)".to_string()
    } else {
        format!("{:?}", j.response)
    };
    writeln!(out, "  response = {response}")?;
    writeln!(out, "settings:")?;
    for entry in &e.settings.entries {
        writeln!(out, "  {} = {}  ({})", entry.key, entry.value, entry.origin)?;
    }
    Ok(())
}

fn dns_section(e: &Effective, opts: &LoadOptions, out: &mut dyn Write) -> io::Result<()> {
    let dns = &e.loaded.config.dns;
    writeln!(out, "dns:")?;
    let origin = match &e.json.dns_origin {
        Origin::Default => "default: dnsServers absent or empty".to_string(),
        other => format!("dnsServers in {other}"),
    };
    writeln!(out, "  global = {}  ({origin})", list(&dns.global))?;
    for (iface, servers) in &dns.bound {
        writeln!(out, "  @{iface} = {}", list(servers))?;
    }
    let system = opts
        .resolv_conf
        .as_ref()
        .map_or("none".to_string(), |p| p.display().to_string());
    writeln!(out, "  system = {}  ({system})", list(&dns.system))?;
    Ok(())
}

fn list(servers: &[SocketAddr]) -> String {
    if servers.is_empty() {
        "none".to_string()
    } else {
        servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn secs(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn prefixes(p: &Profile) -> String {
    p.uplink_type
        .name_prefixes()
        .iter()
        .map(|p| format!("{p}*"))
        .collect::<Vec<_>>()
        .join("/")
}
