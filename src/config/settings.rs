//! Our own tuning: `netfailover.toml` plus `NETFAILOVER_<SECTION>__<KEY>` environment overrides
//! (SPEC §7), layered with the `config` crate (file, then environment), validated key by key.
//!
//! The file is parsed once with `toml` first so a syntax error is reported with its line
//! (the `config` crate drops the position). A malformed file or an invalid value is fatal
//! ([`ConfigError::Settings`], every problem listed): these are the daemon's own knobs, and
//! running with a silently different penalty or protocol would be worse than not starting.
//! Unknown keys are warnings naming the key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Environment, File, FileFormat, Value, ValueKind};
use netfailover_actors::model::{
    CheckConfig, DeviceEvents, DispatcherConfig, RouteConfig, RpFilterPolicy, PENALTY_MAX,
};

use super::problems::{line_of_offset, Problem};
use super::{read_text, ConfigError, Origin, MAX_FILE_BYTES};

/// Environment prefix: `NETFAILOVER_STATE_DIR`, `NETFAILOVER_CHECK__DOWN_COUNT`, …
pub const ENV_PREFIX: &str = "NETFAILOVER";

/// Longest accepted duration: keeps every `Instant + duration` in the engine far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Every key we read, in the order check-config prints them.
pub const KEYS: [&str; 17] = [
    "check.down_count",
    "check.up_count",
    "check.failback_hold",
    "check.connect_timeout",
    "check.timeout",
    "check.recheck_max",
    "check.ca_file",
    "route.penalty",
    "route.protocol",
    "route.rp_filter",
    "route.reconcile_interval",
    "dispatcher.script_timeout",
    "dispatcher.device_events",
    "dispatcher.journal_limit",
    "state_dir",
    "netlink.rcvbuf",
    "adopt",
];

/// Route protocol ids the kernel reserves (0..=4) or that iproute2's `rt_protos` assigns to
/// other routing daemons: tagging our routes with one would make us delete theirs.
const TAKEN_PROTOCOLS: [u8; 23] = [
    0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 42, 99, 186, 187, 188, 189, 192,
];

/// The validated settings with where each came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Settings {
    /// Only the tuning fields are meaningful here; uri, response and interval come from
    /// config.json.
    pub check: CheckConfig,
    pub route: RouteConfig,
    pub dispatcher: DispatcherConfig,
    pub state_dir: PathBuf,
    pub netlink_rcvbuf: usize,
    pub adopt: bool,
    /// The settings file read, if any.
    pub file: Option<PathBuf>,
    /// Origin of every key in [`KEYS`] (absent = default).
    pub origins: BTreeMap<String, Origin>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            check: CheckConfig::default(),
            route: RouteConfig::default(),
            dispatcher: DispatcherConfig::default(),
            state_dir: PathBuf::from("/run/netfailover"),
            netlink_rcvbuf: 4 << 20,
            adopt: true,
            file: None,
            origins: BTreeMap::new(),
        }
    }
}

impl Settings {
    pub fn origin(&self, key: &str) -> Origin {
        self.origins.get(key).cloned().unwrap_or(Origin::Default)
    }
}

/// Loads `explicit` (must exist) or `<boot_dir>/netfailover.toml` (if it exists), then the
/// `NETFAILOVER_*` variables of `env`. Warnings go to `problems`.
pub fn load(
    boot_dir: &Path,
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Result<Settings, ConfigError> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(boot_dir.join("netfailover.toml")).filter(|p| p.exists()),
    };
    let text = match &path {
        Some(p) => read_text(p).map_err(|source| ConfigError::SettingsFile {
            path: p.clone(),
            source,
        })?,
        None => String::new(),
    };
    let file_label = path
        .clone()
        .unwrap_or_else(|| boot_dir.join("netfailover.toml"));
    if let Err(e) = toml::from_str::<toml::Table>(&text) {
        let line = e.span().map(|s| line_of_offset(&text, s.start));
        return Err(ConfigError::Settings {
            problems: vec![Problem::error(
                &file_label,
                line,
                format!("malformed TOML: {}", e.message().trim()),
            )],
        });
    }

    // Ours, as the config crate will see them (it matches the prefix case-insensitively).
    let prefix = format!("{ENV_PREFIX}_").to_lowercase();
    let ours: HashMap<String, String> = env
        .iter()
        .filter(|(k, _)| k.to_lowercase().starts_with(&prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let env_key_of: BTreeMap<String, String> = ours
        .keys()
        .map(|k| {
            (
                k.to_lowercase()[prefix.len()..].replace("__", "."),
                k.clone(),
            )
        })
        .collect();

    let merged = config::Config::builder()
        .add_source(File::from_str(&text, FileFormat::Toml))
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(ours)),
        )
        .build()
        .and_then(|c| c.try_deserialize::<config::Map<String, Value>>())
        .map_err(|e| ConfigError::Settings {
            problems: vec![Problem::error(&file_label, None, e.to_string())],
        })?;
    let mut flat = BTreeMap::new();
    flatten("", merged, &mut flat);

    let lines = toml_key_lines(&text);
    let origin_of = |key: &str| match env_key_of.get(key) {
        Some(var) => Origin::Env(var.clone()),
        None => Origin::File(file_label.clone()),
    };
    let locate = |key: &str, origin: &Origin| match origin {
        Origin::Env(var) => (PathBuf::from("environment"), None, format!("{var}: ")),
        _ => (file_label.clone(), lines.get(key).copied(), String::new()),
    };

    let mut settings = Settings {
        file: path.clone(),
        ..Settings::default()
    };
    let mut errors = Vec::new();
    let base_dir = path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(boot_dir)
        .to_path_buf();
    for (key, value) in flat {
        let origin = origin_of(&key);
        let (file, line, prefix) = locate(&key, &origin);
        if !KEYS.contains(&key.as_str()) {
            let hint = if key.contains('_')
                && !key.contains('.')
                && matches!(origin, Origin::Env(_))
            {
                " (separate section and key with a double underscore: NETFAILOVER_CHECK__DOWN_COUNT)"
            } else {
                ""
            };
            problems.push(Problem::warning(
                &file,
                line,
                format!("{prefix}unknown setting {key:?} ignored{hint}"),
            ));
            continue;
        }
        match apply(&mut settings, &key, &value, &base_dir) {
            Ok(()) => {
                settings.origins.insert(key.clone(), origin);
            }
            Err(why) => errors.push(Problem::error(&file, line, format!("{prefix}{key}: {why}"))),
        }
    }
    if settings.check.connect_timeout > settings.check.timeout {
        problems.push(Problem::warning(
            &file_label,
            lines.get("check.connect_timeout").copied(),
            "check.connect_timeout is longer than check.timeout; the total timeout cuts connects short",
        ));
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Settings { problems: errors })
    }
}

/// Nested tables → dotted keys (`check.down_count`).
fn flatten(prefix: &str, table: config::Map<String, Value>, out: &mut BTreeMap<String, Value>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v.kind {
            ValueKind::Table(t) => flatten(&key, t, out),
            _ => {
                out.insert(key, v);
            }
        }
    }
}

/// Validates one known key and stores it.
fn apply(s: &mut Settings, key: &str, v: &Value, base_dir: &Path) -> Result<(), String> {
    match key {
        "check.down_count" => s.check.down_count = int_in(v, 1, 100)? as u32,
        "check.up_count" => s.check.up_count = int_in(v, 1, 100)? as u32,
        "check.failback_hold" => s.check.failback_hold = duration(v, Duration::ZERO)?,
        "check.connect_timeout" => s.check.connect_timeout = duration(v, Duration::from_millis(1))?,
        "check.timeout" => s.check.timeout = duration(v, Duration::from_millis(1))?,
        "check.recheck_max" => s.check.recheck_max = duration(v, Duration::from_secs(1))?,
        "check.ca_file" => s.check.ca_file = Some(ca_file(v, base_dir)?),
        "route.penalty" => s.route.penalty = int_in(v, 1, i64::from(PENALTY_MAX))? as u32,
        "route.protocol" => {
            let p = int_in(v, 0, 255)? as u8;
            if TAKEN_PROTOCOLS.contains(&p) {
                return Err(format!(
                    "{p} is reserved by the kernel or assigned to another routing daemon; pick an unassigned id (default 78)"
                ));
            }
            s.route.protocol = p;
        }
        "route.rp_filter" => {
            s.route.rp_filter = match string(v)?.as_str() {
                "loose" => RpFilterPolicy::Loose,
                "keep" => RpFilterPolicy::Keep,
                other => return Err(format!("{other:?} is not \"loose\" or \"keep\"")),
            }
        }
        "route.reconcile_interval" => {
            s.route.reconcile_interval = duration(v, Duration::from_millis(100))?
        }
        "dispatcher.script_timeout" => {
            s.dispatcher.script_timeout = duration(v, Duration::from_millis(1))?
        }
        "dispatcher.device_events" => {
            s.dispatcher.device_events = match string(v)?.as_str() {
                "leave-full" => DeviceEvents::LeaveFull,
                "all" => DeviceEvents::All,
                other => return Err(format!("{other:?} is not \"leave-full\" or \"all\"")),
            }
        }
        "dispatcher.journal_limit" => {
            s.dispatcher.journal_limit = int_in(v, 1, 1_000_000)? as usize
        }
        "state_dir" => {
            let dir = PathBuf::from(string(v)?);
            if !dir.is_absolute() {
                return Err(format!(
                    "{:?} is not an absolute path",
                    dir.display().to_string()
                ));
            }
            s.state_dir = dir;
        }
        "netlink.rcvbuf" => s.netlink_rcvbuf = int_in(v, 1024, i64::from(i32::MAX))? as usize,
        "adopt" => {
            s.adopt = v
                .clone()
                .into_bool()
                .map_err(|_| format!("{v} is not true or false"))?
        }
        _ => return Err("unknown setting".to_string()),
    }
    Ok(())
}

fn int_in(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    let n = match &v.kind {
        ValueKind::I64(n) => *n,
        ValueKind::U64(n) => i64::try_from(*n).unwrap_or(i64::MAX),
        ValueKind::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a whole number"))?,
        _ => return Err(format!("{v} is not a whole number")),
    };
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is out of range ({min}..={max})"))
    }
}

fn string(v: &Value) -> Result<String, String> {
    match &v.kind {
        ValueKind::String(s) => Ok(s.clone()),
        _ => Err(format!("{v} is not a string")),
    }
}

/// SPEC §7 durations: an integer is seconds, a string is a human duration (`"1500ms"`, `"2m"`,
/// parsed by `humantime`) or a number of seconds.
pub fn duration(v: &Value, min: Duration) -> Result<Duration, String> {
    let d = match &v.kind {
        ValueKind::I64(n) if *n >= 0 => Duration::from_secs(n.unsigned_abs()),
        ValueKind::U64(n) => Duration::from_secs(*n),
        ValueKind::I64(n) => return Err(format!("{n} is negative")),
        ValueKind::String(s) => parse_duration(s)?,
        _ => {
            return Err(format!(
            "{v} is not a duration; write whole seconds or a string such as \"1500ms\" or \"2m\""
        ))
        }
    };
    if d < min {
        return Err(format!(
            "{} is too short (at least {})",
            humantime::format_duration(d),
            humantime::format_duration(min)
        ));
    }
    if d > MAX_DURATION {
        return Err(format!(
            "{} is too long (at most {})",
            humantime::format_duration(d),
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// A duration string: whole seconds (`"30"`) or humantime (`"1500ms"`, `"2m 30s"`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30, \"1500ms\" or \"2m\""))
}

/// `check.ca_file`: relative paths are relative to the settings file's folder.
fn ca_file(v: &Value, base_dir: &Path) -> Result<PathBuf, String> {
    let p = PathBuf::from(string(v)?);
    let p = if p.is_relative() { base_dir.join(p) } else { p };
    match std::fs::metadata(&p) {
        Ok(m) if m.is_file() && m.len() <= MAX_FILE_BYTES => Ok(p),
        Ok(m) if m.is_file() => Err(format!(
            "{} is {} bytes; files over 1 MiB are refused",
            p.display(),
            m.len()
        )),
        Ok(_) => Err(format!("{} is not a regular file", p.display())),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// Line of each `key = …` in a TOML text, as dotted paths (`[check]` + `down_count` →
/// `check.down_count`). Only for messages: a key this misses gets a message without a line.
fn toml_key_lines(text: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let mut section = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            section = header
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .split('.')
                .map(|p| p.trim().trim_matches('"'))
                .collect::<Vec<_>>()
                .join(".");
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        if key.trim_start().starts_with('#') {
            continue;
        }
        let key: Vec<&str> = key.split('.').map(|p| p.trim().trim_matches('"')).collect();
        let key = key.join(".");
        let full = if section.is_empty() {
            key
        } else {
            format!("{section}.{key}")
        };
        out.entry(full).or_insert(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn with(toml: &str, vars: &[(&str, &str)]) -> (Result<Settings, ConfigError>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("netfailover.toml"), toml).unwrap();
        let mut problems = Vec::new();
        let r = load(dir.path(), None, &env(vars), &mut problems);
        let dir_prefix = format!("{}/", dir.path().display());
        let problems = problems
            .iter()
            .map(|p| p.to_string().replace(&dir_prefix, ""))
            .collect();
        let r = r.map_err(|e| match e {
            ConfigError::Settings { problems } => ConfigError::Settings {
                problems: problems
                    .into_iter()
                    .map(|mut p| {
                        p.file = PathBuf::from(p.file.to_string_lossy().replace(&dir_prefix, ""));
                        p
                    })
                    .collect(),
            },
            other => other,
        });
        (r, problems)
    }

    fn fatal(toml: &str, vars: &[(&str, &str)]) -> String {
        match with(toml, vars).0 {
            Err(e) => e.to_string(),
            Ok(s) => panic!("expected an error, got {s:?}"),
        }
    }

    #[test]
    fn defaults_match_spec_section_7() {
        let (s, problems) = with("", &[]);
        let s = s.unwrap();
        assert!(problems.is_empty());
        assert_eq!(s.check.down_count, 2);
        assert_eq!(s.check.up_count, 2);
        assert_eq!(s.check.failback_hold, Duration::ZERO);
        assert_eq!(s.check.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.check.timeout, Duration::from_secs(20));
        assert_eq!(s.check.recheck_max, Duration::from_secs(60));
        assert_eq!(s.check.ca_file, None);
        assert_eq!(s.route.penalty, 20_000);
        assert_eq!(s.route.protocol, 78);
        assert_eq!(s.route.rp_filter, RpFilterPolicy::Loose);
        assert_eq!(s.route.reconcile_interval, Duration::from_secs(10));
        assert_eq!(s.dispatcher.script_timeout, Duration::from_secs(600));
        assert_eq!(s.dispatcher.device_events, DeviceEvents::LeaveFull);
        assert_eq!(s.dispatcher.journal_limit, 1024);
        assert_eq!(s.state_dir, PathBuf::from("/run/netfailover"));
        assert_eq!(s.netlink_rcvbuf, 4 << 20);
        assert!(s.adopt);
    }

    #[test]
    fn file_values_and_durations() {
        let (s, problems) = with(
            "adopt = false\nstate_dir = \"/tmp/nf\"\n[check]\ndown_count = 3\ntimeout = \"1500ms\"\nconnect_timeout = 1\nrecheck_max = \"2m\"\nfailback_hold = 30\n[route]\nrp_filter = \"keep\"\n[dispatcher]\ndevice_events = \"all\"\n[netlink]\nrcvbuf = 8192\n",
            &[],
        );
        let s = s.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!s.adopt);
        assert_eq!(s.state_dir, PathBuf::from("/tmp/nf"));
        assert_eq!(s.check.down_count, 3);
        assert_eq!(s.check.timeout, Duration::from_millis(1500));
        assert_eq!(s.check.recheck_max, Duration::from_secs(120));
        assert_eq!(s.check.failback_hold, Duration::from_secs(30));
        assert_eq!(s.route.rp_filter, RpFilterPolicy::Keep);
        assert_eq!(s.dispatcher.device_events, DeviceEvents::All);
        assert_eq!(s.netlink_rcvbuf, 8192);
        assert!(matches!(s.origin("check.down_count"), Origin::File(_)));
        assert_eq!(s.origin("check.up_count"), Origin::Default);
    }

    #[test]
    fn env_overrides_file() {
        let (s, problems) = with(
            "[check]\ndown_count = 3\n",
            &[
                ("NETFAILOVER_CHECK__DOWN_COUNT", "5"),
                ("NETFAILOVER_STATE_DIR", "/tmp/x"),
                ("NETFAILOVER_ADOPT", "false"),
                ("NETFAILOVER_CHECK__TIMEOUT", "2m"),
                ("OTHER_CHECK__DOWN_COUNT", "9"),
            ],
        );
        let s = s.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.check.down_count, 5);
        assert_eq!(s.state_dir, PathBuf::from("/tmp/x"));
        assert!(!s.adopt);
        assert_eq!(s.check.timeout, Duration::from_secs(120));
        assert_eq!(
            s.origin("check.down_count"),
            Origin::Env("NETFAILOVER_CHECK__DOWN_COUNT".into())
        );
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let (s, problems) = with(
            "[check]\ndown_cuont = 3\n",
            &[("NETFAILOVER_CHECK_DOWN_COUNT", "5")],
        );
        assert!(s.is_ok());
        assert_eq!(
            problems,
            vec![
                "netfailover.toml:2: warning: unknown setting \"check.down_cuont\" ignored",
                "environment: warning: NETFAILOVER_CHECK_DOWN_COUNT: unknown setting \"check_down_count\" ignored (separate section and key with a double underscore: NETFAILOVER_CHECK__DOWN_COUNT)",
            ]
        );
    }

    #[test]
    fn bad_values_are_fatal_with_file_and_line() {
        assert_eq!(
            fatal("[check]\n\ndown_count = 0\ntimeout = \"soon\"\n", &[]),
            "netfailover.toml:3: error: check.down_count: 0 is out of range (1..=100)\nnetfailover.toml:4: error: check.timeout: \"soon\" is not a duration (expected number at 0); write e.g. 30, \"1500ms\" or \"2m\""
        );
        assert_eq!(
            fatal("[route]\nprotocol = 42\n", &[]),
            "netfailover.toml:2: error: route.protocol: 42 is reserved by the kernel or assigned to another routing daemon; pick an unassigned id (default 78)"
        );
        assert_eq!(
            fatal("", &[("NETFAILOVER_ROUTE__PENALTY", "-5")]),
            "environment: error: NETFAILOVER_ROUTE__PENALTY: route.penalty: -5 is out of range (1..=1073741823)"
        );
        assert_eq!(
            fatal("[check]\ndown_count = [\n", &[]),
            "netfailover.toml:2: error: malformed TOML: unclosed array, expected `]`"
        );
        assert!(fatal("state_dir = \"relative\"\n", &[]).contains("is not an absolute path"));
        assert!(fatal("[check]\nrecheck_max = \"100years\"\n", &[]).contains("too long"));
    }

    #[test]
    fn durations() {
        let v = |k: ValueKind| Value::new(None, k);
        assert_eq!(
            duration(&v(ValueKind::I64(7)), Duration::ZERO),
            Ok(Duration::from_secs(7))
        );
        assert_eq!(
            duration(&v(ValueKind::String("1500ms".into())), Duration::ZERO),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            duration(&v(ValueKind::String("2m".into())), Duration::ZERO),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            duration(&v(ValueKind::String("45".into())), Duration::ZERO),
            Ok(Duration::from_secs(45))
        );
        assert!(duration(&v(ValueKind::I64(-1)), Duration::ZERO).is_err());
        assert!(duration(&v(ValueKind::Float(1.5)), Duration::ZERO).is_err());
        assert!(duration(&v(ValueKind::I64(0)), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn explicit_settings_file_must_exist_and_stay_small() {
        let dir = tempfile::tempdir().unwrap();
        let mut problems = Vec::new();
        let missing = dir.path().join("nope.toml");
        assert!(matches!(
            load(dir.path(), Some(&missing), &BTreeMap::new(), &mut problems),
            Err(ConfigError::SettingsFile { .. })
        ));
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let e = load(dir.path(), Some(&big), &BTreeMap::new(), &mut problems).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("big.toml: file is 1048577 bytes; files over 1 MiB are refused"),
            "{e}"
        );
    }
}
