//! The differential test against libnm: every file of `tests/data/nm-corpus/files/` is read by
//! NetworkManager's own library (`tests/tools/libnm_read.py`: `nm_keyfile_read()` then
//! `nm_connection_normalize()`, as NetworkManager 1.42 loads a file from `/etc`) and by the
//! built `netfailover check-config --json`, alone in a boot directory. For what NetworkManager
//! skips or refuses, netfailover must not manage anything; for what it accepts, the type,
//! interface, managed flag, metered flag and per family the method, metric, addresses, gateway, DNS servers and
//! default route must agree. Each deliberate difference is one line of
//! `tests/data/nm-corpus/KNOWN-DIFFERENCES` (`FILE FIELD reason`); any other difference fails,
//! and so does a listed difference that no longer occurs.
//!
//! Needs Debian's `/usr/bin/python3` with `python3-gi`, `gir1.2-nm-1.0` and `libnm0` (`.ci/run`
//! installs them). Without them the test fails under `CI=true` and is skipped, loudly, elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

const PYTHON: &str = "/usr/bin/python3";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nm-corpus")
}

fn helper() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/libnm_read.py")
}

/// Runs a command with a timeout (the helper loads GObject introspection: seconds, not minutes).
/// Its output is drained by threads while it runs: the corpus's JSON is larger than a pipe
/// buffer, and a child blocked on a full pipe would never exit.
fn run(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} ran over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn libnm_available() -> bool {
    Path::new(PYTHON).exists()
        && run(
            Command::new(PYTHON).args([
                "-c",
                "import gi; gi.require_version('NM', '1.0'); from gi.repository import NM",
            ]),
            Duration::from_secs(60),
        )
        .status
        .success()
}

pub(super) fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join("files"))
        .expect("corpus exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// `check-config --json` of a boot directory holding only `file`.
fn ours(file: &Path) -> Value {
    let boot = tempfile::tempdir().unwrap();
    let dir = boot.path().join("system-connections");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_netfailover"))
            .args(["check-config", "--json", "--boot-dir"])
            .arg(boot.path())
            .env_remove("NETFAILOVER_CHECK__DOWN_COUNT"),
        Duration::from_secs(30),
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: check-config --json printed no JSON ({e}): {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Types that are never uplinks (netfailover's rule, `docs/config.md`).
const NOT_UPLINK: &[&str] = &[
    "wireguard",
    "vpn",
    "ip-tunnel",
    "tun",
    "veth",
    "vrf",
    "dummy",
    "loopback",
    "wpan",
    "wifi-p2p",
    "ovs-bridge",
    "ovs-port",
];

/// A parent naming a profile by UUID (`8-4-4-4-12` hexadecimal digits) rather than a device.
fn is_uuid(s: &str) -> bool {
    let lens: Vec<usize> = s.split('-').map(str::len).collect();
    lens == [8, 4, 4, 4, 12] && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
}

fn looks_like_control_device(name: &str) -> bool {
    ["cdc-wdm", "tty"].iter().any(|p| name.starts_with(p))
}

/// What netfailover should report for a file NetworkManager accepted, from libnm's reading.
fn expected(nm: &Value) -> BTreeMap<String, Value> {
    let mut want = BTreeMap::new();
    let ty = nm["type"].as_str().unwrap_or_default();
    let is_port = !nm["master"].is_null();
    let mode = nm["wifi_mode"].as_str().unwrap_or("infrastructure");
    let managed = nm["autoconnect"] == json!(true)
        && !is_port
        && !NOT_UPLINK.contains(&ty)
        && !matches!(mode, "ap" | "adhoc" | "mesh");
    want.insert("id".into(), nm["id"].clone());
    if !nm["uuid"].is_null() {
        want.insert("uuid".into(), nm["uuid"].clone());
    }
    want.insert("type".into(), json!(ty));
    want.insert("managed".into(), json!(managed));
    // NMMetered 1 yes, 2 no; unknown is guessed from the type as NetworkManager guesses.
    let (metered, guessed) = match nm["metered"].as_i64() {
        Some(1) => (true, false),
        Some(2) => (false, false),
        _ => (matches!(ty, "gsm" | "cdma"), true),
    };
    want.insert("metered".into(), json!(metered));
    want.insert("metered_guessed".into(), json!(guessed));
    let iface = match (nm["interface_name"].as_str(), nm["mac"].as_str()) {
        (Some(n), _)
            if matches!(ty, "gsm" | "cdma" | "bluetooth") && looks_like_control_device(n) =>
        {
            json!({ "control_device": n })
        }
        (Some(n), _) => json!({ "name": n }),
        // NetworkManager names the VLAN device PARENT.ID (nm_utils_new_vlan_name()).
        // A parent given as a profile UUID is only resolved when NetworkManager activates it.
        (None, _) if ty == "vlan" && nm["vlan_parent"].as_str().is_some_and(|p| !is_uuid(p)) => {
            let suffix = format!(".{}", nm["vlan_id"]);
            let parent = nm["vlan_parent"].as_str().unwrap_or_default();
            let keep = parent.len().min(15 - suffix.len());
            json!({ "name": format!("{}{suffix}", &parent[..keep]) })
        }
        (None, Some(mac)) if ty != "vlan" => json!({ "mac": mac }),
        _ => {
            let prefixes: &[&str] = match ty {
                _ if NOT_UPLINK.contains(&ty) => &[],
                "ethernet" => &["eth*", "en*"],
                "wifi" => &["wl*"],
                "gsm" | "cdma" => &["wwan*", "ppp*", "usb*"],
                _ => &[],
            };
            json!({ "by_type": prefixes })
        }
    };
    want.insert("iface".into(), iface);
    for fam in ["ipv4", "ipv6"] {
        let f = &nm[fam];
        if f.is_null() {
            // A port: NetworkManager removed its IP settings; nothing to compare.
            continue;
        }
        let method = f["method"].as_str().unwrap_or_default();
        let metric = match f["route_metric"].as_i64() {
            Some(-1) | None => nm["type_metric"].clone(),
            Some(m) => json!(m),
        };
        let never_default = f["never_default"] == json!(true);
        let default_dest = if fam == "ipv4" { "0.0.0.0/0" } else { "::/0" };
        let route_gw = f["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["dest"] == json!(default_dest))
            .and_then(|r| r["next_hop"].as_str().map(str::to_string));
        let gateway = match (f["gateway"].as_str(), never_default) {
            (_, true) => None,
            (Some(g), _) => Some(g.to_string()),
            (None, _) => route_gw,
        };
        let default_route = managed
            && !never_default
            && match method {
                "auto" | "dhcp" => true,
                "manual" => gateway.is_some(),
                _ => false,
            };
        want.insert(format!("{fam}.method"), json!(method));
        want.insert(format!("{fam}.metric"), metric);
        want.insert(format!("{fam}.addresses"), f["addresses"].clone());
        want.insert(format!("{fam}.gateway"), json!(gateway));
        want.insert(format!("{fam}.dns"), f["dns"].clone());
        want.insert(format!("{fam}.default_route"), json!(default_route));
    }
    want
}

/// The same fields from our JSON profile.
fn got(p: &Value) -> BTreeMap<String, Value> {
    let mut have = BTreeMap::new();
    for key in [
        "id",
        "uuid",
        "type",
        "managed",
        "iface",
        "metered",
        "metered_guessed",
    ] {
        have.insert(key.to_string(), p[key].clone());
    }
    for fam in ["ipv4", "ipv6"] {
        for key in [
            "method",
            "metric",
            "addresses",
            "gateway",
            "dns",
            "default_route",
        ] {
            have.insert(format!("{fam}.{key}"), p[fam][key].clone());
        }
    }
    have
}

/// `FILE FIELD reason…` lines.
fn known_differences() -> BTreeSet<(String, String)> {
    std::fs::read_to_string(corpus_dir().join("KNOWN-DIFFERENCES"))
        .expect("KNOWN-DIFFERENCES exists")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let file = parts.next().unwrap_or_default().to_string();
            let field = parts.next().unwrap_or_default().to_string();
            assert!(
                parts.next().is_some(),
                "KNOWN-DIFFERENCES line without a reason: {l}"
            );
            (file, field)
        })
        .collect()
}

/// Every difference between libnm and check-config over the corpus, as `(file, field, text)`.
fn differences(files: &[PathBuf]) -> Vec<(String, String, String)> {
    let out = run(
        Command::new(PYTHON).arg(helper()).args(files),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "libnm helper failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nm: Vec<Value> = serde_json::from_slice(&out.stdout).expect("helper prints JSON");
    assert_eq!(nm.len(), files.len());
    let mut diffs = Vec::new();
    for (file, nm) in files.iter().zip(&nm) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let doc = ours(file);
        let mine = doc["profiles"]
            .as_array()
            .and_then(|ps| ps.first())
            .cloned();
        let mut diff =
            |field: &str, text: String| diffs.push((name.clone(), field.to_string(), text));
        if nm["ignored"] == json!(true) {
            if mine.is_some() || !doc["problems"].as_array().is_some_and(|p| p.is_empty()) {
                diff(
                    "ignored",
                    format!("NetworkManager skips the file; check-config read it: {doc}"),
                );
            }
            continue;
        }
        if !nm["error"].is_null() {
            if mine.as_ref().is_some_and(|p| p["managed"] == json!(true)) {
                diff(
                    "refused",
                    format!(
                        "NetworkManager refuses it ({}); check-config manages it",
                        nm["error"]
                    ),
                );
            }
            continue;
        }
        let Some(mine) = mine else {
            diff(
                "loaded",
                format!(
                    "NetworkManager loads it; check-config rejected it: {}",
                    doc["problems"]
                ),
            );
            continue;
        };
        let have = got(&mine);
        for (field, want) in expected(nm) {
            let value = have.get(&field).cloned().unwrap_or(Value::Null);
            if value != want {
                diff(&field, format!("libnm {want}, check-config {value}"));
            }
        }
    }
    diffs
}

#[test]
fn check_config_reads_the_corpus_as_libnm_does() {
    if !libnm_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libnm is missing: install python3-gi gir1.2-nm-1.0 libnm0 (see .ci/run)"
        );
        eprintln!("SKIPPED (not CI): libnm for {PYTHON} is missing; apt-get install python3-gi gir1.2-nm-1.0 libnm0");
        return;
    }
    let files = corpus_files();
    assert!(files.len() >= 40, "corpus too small: {}", files.len());
    let known = known_differences();
    let diffs = differences(&files);
    let found: BTreeSet<(String, String)> = diffs
        .iter()
        .map(|(f, field, _)| (f.clone(), field.clone()))
        .collect();
    let unexpected: Vec<String> = diffs
        .iter()
        .filter(|(f, field, _)| !known.contains(&(f.clone(), field.clone())))
        .map(|(f, field, text)| format!("{f} {field}: {text}"))
        .collect();
    let stale: Vec<String> = known
        .difference(&found)
        .map(|(f, field)| format!("{f} {field}"))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "differences not in KNOWN-DIFFERENCES:\n{}\nlisted but gone:\n{}",
        unexpected.join("\n"),
        stale.join("\n")
    );
}

#[test]
fn sources_lists_every_corpus_file() {
    let sources = std::fs::read_to_string(corpus_dir().join("SOURCES")).expect("SOURCES exists");
    let listed: BTreeSet<&str> = sources
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let files: BTreeSet<String> = corpus_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let files: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(listed, files, "SOURCES and files/ disagree");
}
