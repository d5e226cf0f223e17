//! `netfailover check-config --json`: the effective configuration as one JSON document for
//! tools and tests (`docs/config.md`, "check-config --json", documents every key). Same loading
//! and exit codes as the text report (`report.rs`); paths are relative to the boot directory.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use netfailover_actors::model::IfaceMatch;
use serde_json::{json, Map, Value};

use super::ipconfig::{FamilyRead, MetricOrigin};
use super::profiles::{Binding, LoadedProfile};
use super::report_common::{all_problems, exit_code, mac, running};
use super::{ConfigError, Effective, LoadOptions};

/// Writes the document; returns the exit code.
pub(super) fn render(e: &Effective, opts: &LoadOptions, out: &mut dyn Write) -> io::Result<i32> {
    let boot = &opts.boot_dir;
    let all_problems = all_problems(e);
    let doc = json!({
        "profiles": e.profiles.iter().map(|p| profile(p, boot)).collect::<Vec<_>>(),
        "connectivity": connectivity(e),
        "dns": dns(e),
        "settings": settings(e),
        "scripts": scripts(&e.loaded.dispatcher_dir, boot),
        "problems": problems(&all_problems, boot),
    });
    write_doc(&doc, out)?;
    Ok(exit_code(&all_problems))
}

/// The document for a fatal error: no configuration, the problem listed.
pub(super) fn render_fatal(err: &ConfigError, out: &mut dyn Write) -> io::Result<()> {
    let problems = vec![json!({
        "file": Value::Null,
        "line": Value::Null,
        "severity": "error",
        "message": err.to_string(),
    })];
    write_doc(&json!({ "profiles": [], "problems": problems }), out)
}

fn write_doc(doc: &Value, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)
}

fn rel(path: &Path, boot: &Path) -> String {
    path.strip_prefix(boot)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn profile(p: &LoadedProfile, boot: &Path) -> Value {
    let prof = &p.profile;
    let iface = match (&prof.matches, &p.binding) {
        (_, Binding::ControlDevice { device, .. }) => json!({ "control_device": device }),
        (IfaceMatch::Name(n), _) => json!({ "name": n.as_str() }),
        (IfaceMatch::Mac(m), _) => json!({ "mac": mac(m) }),
        (IfaceMatch::ControlDevice(device), _) => json!({ "control_device": device }),
        (IfaceMatch::ByType, _) => {
            let prefixes: Vec<String> =
                if matches!(p.nm_type.role, super::nm_types::Role::Uplink(_)) {
                    prof.uplink_type
                        .name_prefixes()
                        .iter()
                        .map(|p| format!("{p}*"))
                        .collect()
                } else {
                    Vec::new()
                };
            json!({ "by_type": prefixes })
        }
    };
    let reason = match (&p.not_managed, &p.lost_to) {
        (Some(why), _) => Some(why.clone()),
        (None, Some(winner)) => Some(format!(
            "another profile wins for this interface: {}",
            rel(winner, boot)
        )),
        (None, None) => None,
    };
    json!({
        "file": rel(&prof.file, boot),
        "id": prof.id,
        "uuid": prof.uuid,
        "type": p.nm_type.short,
        "metered": prof.metered.metered,
        "metered_guessed": prof.metered.guessed,
        "iface": iface,
        "managed": p.is_managed(),
        "reason": reason,
        "ipv4": family(&p.ipv4, p),
        "ipv6": family(&p.ipv6, p),
    })
}

fn family(f: &FamilyRead, p: &LoadedProfile) -> Value {
    json!({
        "default_route": p.is_managed() && f.has_default_route(),
        "method": f.method,
        "metric": f.config.metric.get(),
        "metric_from": match f.metric_origin {
            MetricOrigin::RouteMetric { .. } => "route-metric",
            MetricOrigin::TypeDefault => "type default",
        },
        "addresses": f.config.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "gateway": f.config.gateway.map(|g| g.to_string()),
        "dns": f.dns.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn connectivity(e: &Effective) -> Value {
    let j = &e.json;
    json!({
        "enabled": !j.interval.is_zero(),
        "uri": if j.uri_disabled { Value::Null } else { Value::from(j.uri.as_str()) },
        "interval_s": j.interval.as_secs(),
        "response": j.response,
    })
}

fn servers(list: &[SocketAddr]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

fn dns(e: &Effective) -> Value {
    let d = &e.loaded.config.dns;
    let bound: Map<String, Value> = d
        .bound
        .iter()
        .map(|(iface, list)| (iface.to_string(), json!(servers(list))))
        .collect();
    json!({
        "global": servers(&d.global),
        "bound": bound,
        "system": servers(&d.system),
    })
}

fn settings(e: &Effective) -> Value {
    let map: Map<String, Value> = e
        .settings
        .entries
        .iter()
        .map(|entry| {
            (
                entry.key.clone(),
                json!({
                    "value": entry.value,
                    "origin": entry.origin.to_string(),
                }),
            )
        })
        .collect();
    Value::Object(map)
}

fn scripts(dir: &Path, boot: &Path) -> Value {
    use crate::os::scripts::discover;
    use netfailover_actors::model::EventKind;
    let mut events = Map::new();
    if dir.is_dir() {
        for event in EventKind::ALL {
            let found = discover(dir, event);
            let runs = running(&found);
            let skipped: Vec<Value> = found
                .iter()
                .filter_map(|s| {
                    s.skip
                        .as_ref()
                        .map(|why| json!({ "name": s.name, "reason": why.to_string() }))
                })
                .collect();
            events.insert(
                event.to_string(),
                json!({ "runs": runs, "skipped": skipped }),
            );
        }
    }
    json!({ "dir": rel(dir, boot), "events": events })
}

fn problems(list: &[super::Problem], boot: &Path) -> Vec<Value> {
    list.iter()
        .map(|p| {
            json!({
                "file": rel(&p.file, boot),
                "line": p.line,
                "severity": p.severity.as_str(),
                "message": p.message,
            })
        })
        .collect()
}
