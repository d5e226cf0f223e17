//! Our own tuning: `netfailover.toml` plus `NETFAILOVER_<SECTION>__<KEY>` environment
//! overrides (README, "Configuration"), read with serde into one struct per section and checked
//! key by key.
//!
//! - `sections.rs`: the sections (serde structs with their defaults, checks and place in the
//!   engine configuration);
//! - `reader.rs`: the per-key reading (file positions, environment overlay, unknown keys);
//! - `values.rs`: durations (an integer is seconds, a string is human text: `"1500ms"`, `"2m"`)
//!   and the typed reasons a value is rejected.
//!
//! A malformed file or an invalid value is fatal ([`ConfigError::Settings`], every problem
//! listed); unknown keys are warnings naming the key.
//!
//! ## Adding a section (`[passive]`, say)
//!
//! 1. In `sections.rs`, a struct `PassiveSection` with `#[derive(Serialize, Deserialize)]` and
//!    `#[serde(default)]`, one field per key (`#[serde(with = "duration")]` on durations), and a
//!    `Default` taken from the engine's own default (`PassiveConfig::default()`).
//! 2. `impl Section for PassiveSection`: `NAME = "passive"` and `validate`, one line per key
//!    that has a range (`("window", at_least(self.window, Duration::from_secs(1)))`). Values
//!    serde already refuses (a word where a number is due, an unknown enum value) need nothing.
//! 3. Its name in [`SECTIONS`], a field in [`Settings`] holding the engine's type, one
//!    `reader.section::<PassiveSection>()` line in [`load`] converting it, and its place in
//!    the engine `Config` in `config/mod.rs` (`load_effective`).
//! 4. A row per key in the README's configuration table.
//!
//! `check-config`, unknown-key warnings, `FILE:LINE` messages, environment overrides and the
//! per-key fallback then work for it with no further code.

mod reader;
pub mod sections;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netfailover_actors::model::{CheckConfig, DispatcherConfig, PassiveConfig, RouteConfig};

pub use reader::Entry;
use reader::Reader;
use sections::{
    CheckSection, Context, DaemonSection, DispatcherSection, NetlinkSection, PassiveSection,
    RouteSection,
};
pub use values::{parse_duration, Invalid, MAX_DURATION};

use super::problems::Problem;
use super::{read_text, ConfigError, Origin};

/// Environment prefix: `NETFAILOVER_STATE_DIR`, `NETFAILOVER_CHECK__DOWN_COUNT`, …
pub const ENV_PREFIX: &str = "NETFAILOVER";

/// Every table of the file, in the order check-config prints them (`""`: the top-level keys).
pub const SECTIONS: [&str; 6] = ["check", "route", "dispatcher", "passive", "netlink", ""];

/// The validated settings with where each came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Settings {
    /// Only the tuning fields are meaningful here; uri, response and interval come from
    /// config.json.
    pub check: CheckConfig,
    pub route: RouteConfig,
    pub dispatcher: DispatcherConfig,
    pub passive: PassiveConfig,
    pub state_dir: PathBuf,
    pub netlink_rcvbuf: usize,
    pub adopt: bool,
    /// The settings file read, if any.
    pub file: Option<PathBuf>,
    /// Every key with its effective value and origin, in [`SECTIONS`] order.
    pub entries: Vec<Entry>,
}

impl Default for Settings {
    fn default() -> Self {
        let daemon = DaemonSection::default();
        Self {
            check: CheckConfig::default(),
            route: RouteConfig::default(),
            dispatcher: DispatcherConfig::default(),
            passive: PassiveConfig::default(),
            state_dir: daemon.state_dir,
            netlink_rcvbuf: NetlinkSection::default().rcvbuf,
            adopt: daemon.adopt,
            file: None,
            entries: Vec::new(),
        }
    }
}

impl Settings {
    /// Where `key` (dotted) came from.
    pub fn origin(&self, key: &str) -> Origin {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map_or(Origin::Default, |e| e.origin.clone())
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
    let root = reader::parse(&text, &file_label).map_err(|problem| ConfigError::Settings {
        problems: vec![problem],
    })?;
    let ctx = Context {
        base_dir: path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(boot_dir)
            .to_path_buf(),
    };
    let mut reader = Reader::new(root, &text, file_label.clone(), env, &SECTIONS, ctx);
    let check: CheckSection = reader.section();
    let route: RouteSection = reader.section();
    let dispatcher: DispatcherSection = reader.section();
    let passive: PassiveSection = reader.section();
    let netlink: NetlinkSection = reader.section();
    let daemon: DaemonSection = reader.section();

    if check.connect_timeout > check.timeout {
        let (file, line, _) = reader.locate("check.connect_timeout");
        problems.push(Problem::warning(
            &file,
            line,
            "check.connect_timeout is longer than check.timeout; the total timeout cuts connects short",
        ));
    }
    let settings = Settings {
        check: check.apply(CheckConfig::default(), &reader.ctx),
        route: route.into(),
        dispatcher: dispatcher.into(),
        passive: passive.into(),
        state_dir: daemon.state_dir,
        netlink_rcvbuf: netlink.rcvbuf,
        adopt: daemon.adopt,
        file: path,
        entries: std::mem::take(&mut reader.entries),
    };
    // In reading order: the file's line by line, then the environment's.
    let order = |p: &Problem| (p.file != file_label, p.line);
    reader.warnings.sort_by_key(order);
    reader.rejected.sort_by_key(order);
    problems.append(&mut reader.warnings);
    if reader.rejected.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Settings {
            problems: reader.rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use netfailover_actors::model::{DeviceEvents, RpFilterPolicy};

    use super::*;
    use crate::config::MAX_FILE_BYTES;

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
            "environment: error: NETFAILOVER_ROUTE__PENALTY: route.penalty: invalid value: integer `-5`, expected u32"
        );
        assert_eq!(
            fatal("[check]\ndown_count = [\n", &[]),
            "netfailover.toml:2: error: malformed TOML: unclosed array, expected `]`"
        );
        assert!(fatal("state_dir = \"relative\"\n", &[]).contains("is not an absolute path"));
        assert!(fatal("[check]\nrecheck_max = \"100years\"\n", &[]).contains("too long"));
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
