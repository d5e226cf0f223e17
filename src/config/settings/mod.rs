//! Our own tuning: `netfailover.toml` plus `NETFAILOVER_<SECTION>__<KEY>` environment
//! overrides (docs/config.md), read with serde into one struct per section and checked
//! key by key.
//!
//! - `sections.rs`: the sections (serde structs with their defaults, checks and place in the
//!   engine configuration);
//! - `reader.rs`: the per-key reading (file positions, environment overlay, unknown keys);
//! - `values.rs`: durations (an integer is seconds, a string is human text: `"1500ms"`, `"2m"`)
//!   and the typed reasons a value is rejected.
//!
//! Nothing here stops the daemon (docs/decisions.md): a key that serde cannot read or that
//! its section's `validate` rejects takes its built-in default while every other key keeps its
//! value, and a file that is not TOML at all (or cannot be read) is ignored as a whole; each is
//! an error (`FILE:LINE: error: …`) in the problems, so `check-config` exits 1 and the daemon
//! logs it and shows it in `status`. Unknown keys are warnings naming the key.
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
//! 4. A row per key in the configuration table of docs/config.md.
//!
//! `check-config`, unknown-key warnings, `FILE:LINE` messages, environment overrides and the
//! per-key fallback then work for it with no further code.

mod reader;
pub mod sections;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netfailover_actors::model::{
    CheckConfig, DispatcherConfig, FlowsConfig, MeteredConfig, PassiveConfig, RecoveryConfig,
    RouteConfig,
};

pub use reader::Entry;
use reader::Reader;
use sections::{
    CheckSection, Context, DaemonSection, DispatcherSection, FlowsSection, MeteredSection,
    NetlinkSection, PassiveSection, RecoverySection, RouteSection,
};
pub use values::{parse_bytes, parse_duration, BadBytes, BadDuration, Invalid, MAX_DURATION};

use super::problems::Problem;
use super::{read_text, Origin};

/// Environment prefix: `NETFAILOVER_STATE_DIR`, `NETFAILOVER_CHECK__DOWN_COUNT`, …
pub const ENV_PREFIX: &str = "NETFAILOVER";

/// Every table of the file, in the order check-config prints them (`""`: the top-level keys).
pub const SECTIONS: [&str; 9] = [
    "check",
    "route",
    "dispatcher",
    "passive",
    "flows",
    "recovery",
    "metered",
    "netlink",
    "",
];

/// The validated settings with where each came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Settings {
    /// Only the tuning fields are meaningful here; uri, response and interval come from
    /// config.json.
    pub check: CheckConfig,
    pub route: RouteConfig,
    pub dispatcher: DispatcherConfig,
    pub passive: PassiveConfig,
    pub flows: FlowsConfig,
    pub recovery: RecoveryConfig,
    pub metered: MeteredConfig,
    pub state_dir: PathBuf,
    pub persist_dir: PathBuf,
    pub netlink_rcvbuf: usize,
    pub adopt: bool,
    /// The settings file read, if any.
    pub file: Option<PathBuf>,
    /// Every key with its effective value and origin, in [`SECTIONS`] order.
    pub entries: Vec<Entry>,
    /// Something was rejected (a key, or the whole file) and took its default; the errors are
    /// in the problems [`load`] was given.
    pub rejected: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let daemon = DaemonSection::default();
        Self {
            check: CheckConfig::default(),
            route: RouteConfig::default(),
            dispatcher: DispatcherConfig::default(),
            passive: PassiveConfig::default(),
            flows: FlowsConfig::default(),
            recovery: RecoveryConfig::default(),
            metered: MeteredConfig::default(),
            state_dir: daemon.state_dir,
            persist_dir: daemon.persist_dir,
            netlink_rcvbuf: NetlinkSection::default().rcvbuf,
            adopt: daemon.adopt,
            file: None,
            entries: Vec::new(),
            rejected: false,
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

/// Loads `explicit` or `<boot_dir>/netfailover.toml` (if it exists), then the `NETFAILOVER_*`
/// variables of `env`. Never fails: a key that cannot be read or validated takes its default
/// (an error in `problems`) while the others keep their values; a file that cannot be read or
/// is not TOML at all is ignored as a whole (one error), the environment still applies.
pub fn load(
    boot_dir: &Path,
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<Problem>,
) -> Settings {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(boot_dir.join("netfailover.toml")).filter(|p| p.exists()),
    };
    let file_label = path
        .clone()
        .unwrap_or_else(|| boot_dir.join("netfailover.toml"));
    let mut whole_file = None;
    let text = match &path {
        Some(p) => read_text(p).unwrap_or_else(|e| {
            whole_file = Some(Problem::error(
                p,
                e.line(),
                format!("{e}; every setting of this file takes its default"),
            ));
            String::new()
        }),
        None => String::new(),
    };
    let root = reader::parse(&text, &file_label).unwrap_or_else(|problem| {
        whole_file = Some(problem);
        Default::default()
    });
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
    let flows: FlowsSection = reader.section();
    let recovery: RecoverySection = reader.section();
    let metered: MeteredSection = reader.section();
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
    // In reading order: the file's line by line, then the environment's.
    let order = |p: &Problem| (p.file != file_label, p.line);
    reader.warnings.sort_by_key(order);
    reader.rejected.sort_by_key(order);
    let rejected = whole_file.is_some() || !reader.rejected.is_empty();
    problems.extend(whole_file);
    problems.append(&mut reader.rejected);
    problems.append(&mut reader.warnings);
    Settings {
        check: check.apply(CheckConfig::default(), &reader.ctx),
        route: route.into(),
        dispatcher: dispatcher.into(),
        passive: passive.into(),
        flows: flows.into(),
        recovery: recovery.into(),
        metered: metered.into(),
        state_dir: daemon.state_dir,
        persist_dir: daemon.persist_dir,
        netlink_rcvbuf: netlink.rcvbuf,
        adopt: daemon.adopt,
        file: path,
        entries: reader.entries,
        rejected,
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

    /// Loads `toml` as `<tmp>/netfailover.toml` with `vars`; problems as printed, the folder
    /// left out.
    fn with(toml: &str, vars: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("netfailover.toml"), toml).unwrap();
        let mut problems = Vec::new();
        let s = load(dir.path(), None, &env(vars), &mut problems);
        let dir_prefix = format!("{}/", dir.path().display());
        let problems = problems
            .iter()
            .map(|p| p.to_string().replace(&dir_prefix, ""))
            .collect();
        (s, problems)
    }

    /// The errors of `toml` with `vars`, one per line.
    fn errors(toml: &str, vars: &[(&str, &str)]) -> String {
        let (s, problems) = with(toml, vars);
        assert!(s.rejected, "expected a rejection: {problems:?}");
        problems
            .into_iter()
            .filter(|p| p.contains(": error: "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn defaults_match_the_readme() {
        let (s, problems) = with("", &[]);
        assert!(problems.is_empty());
        assert!(!s.rejected);
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
        assert!(s.flows.enabled);
        assert!(s.flows.on_failback);
        // One entry per key of every section, all defaults.
        assert!(s.entries.len() >= 17, "{:?}", s.entries);
        assert!(s.entries.iter().all(|e| e.origin == Origin::Default));
    }

    #[test]
    fn file_values_and_durations() {
        let (s, problems) = with(
            "adopt = false\nstate_dir = \"/tmp/nf\"\n[check]\ndown_count = 3\ntimeout = \"1500ms\"\nconnect_timeout = 1\nrecheck_max = \"2m\"\nfailback_hold = 30\n[route]\nrp_filter = \"keep\"\n[dispatcher]\ndevice_events = \"all\"\n[netlink]\nrcvbuf = 8192\n",
            &[],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!s.adopt);
        assert_eq!(s.state_dir, PathBuf::from("/tmp/nf"));
        assert_eq!(s.check.down_count, 3);
        assert_eq!(s.check.timeout, Duration::from_millis(1500));
        assert_eq!(s.check.connect_timeout, Duration::from_secs(1));
        assert_eq!(s.check.recheck_max, Duration::from_secs(120));
        assert_eq!(s.check.failback_hold, Duration::from_secs(30));
        assert_eq!(s.route.rp_filter, RpFilterPolicy::Keep);
        assert_eq!(s.dispatcher.device_events, DeviceEvents::All);
        assert_eq!(s.netlink_rcvbuf, 8192);
        assert!(matches!(s.origin("check.down_count"), Origin::File(_)));
        assert_eq!(s.origin("check.up_count"), Origin::Default);
    }

    /// `[metered] budget_month`: bytes as an integer or with a unit, from the file or the
    /// environment; a bad value falls back to 0 (no cap) with its FILE:LINE.
    #[test]
    fn metered_budget_reads_units_and_falls_back() {
        let read = |toml: &str, env: &[(&str, &str)]| {
            let (s, problems) = with(toml, env);
            (s.metered.budget_month, problems)
        };
        assert_eq!(read("", &[]), (0, vec![]));
        assert_eq!(
            read("[metered]\nbudget_month = \"20MB\"\n", &[]).0,
            20_000_000
        );
        assert_eq!(read("[metered]\nbudget_month = 150000\n", &[]).0, 150_000);
        assert_eq!(
            read("", &[("NETFAILOVER_METERED__BUDGET_MONTH", "1.5MiB")]).0,
            1_572_864
        );
        let (budget, problems) = read("[metered]\nbudget_month = \"lots\"\n", &[]);
        assert_eq!(budget, 0);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("netfailover.toml:2: error: metered.budget_month"),
            "{problems:?}"
        );
    }

    /// `[recovery]` and `persist_dir`: read, and a bad key falls back alone with its FILE:LINE.
    #[test]
    fn recovery_section_reads_and_falls_back_per_key() {
        let toml = "persist_dir = \"/data/nf\"\n[recovery]\nrelink_after = \"90s\"\n\
                    reboot_after = \"2h\"\nreboot_command = [\"reboot\", \"-f\"]\n";
        let (s, problems) = with(toml, &[("NETFAILOVER_RECOVERY__ENABLED", "false")]);
        assert_eq!(s.persist_dir, PathBuf::from("/data/nf"));
        assert_eq!(s.recovery.relink_after, Duration::from_secs(90));
        assert_eq!(s.recovery.reboot_after, Duration::from_secs(7200));
        assert!(!s.recovery.enabled, "from the environment");
        assert!(
            s.recovery.reboot_command.is_empty(),
            "rejected: not an absolute path"
        );
        assert_eq!(
            problems,
            vec!["netfailover.toml:5: error: recovery.reboot_command: \"reboot\" is not an absolute path"]
        );
    }

    /// `[metered] standby_interval`: file, environment; below 1 s: its default, with FILE:LINE.
    #[test]
    fn metered_section_reads_and_falls_back_per_key() {
        let (s, problems) = with("[metered]\nstandby_interval = \"2h\"\n", &[]);
        assert_eq!(
            (s.metered.standby_interval, problems),
            (Duration::from_secs(7200), vec![])
        );
        let (s, _) = with("", &[("NETFAILOVER_METERED__STANDBY_INTERVAL", "90")]);
        assert_eq!(s.metered.standby_interval, Duration::from_secs(90));
        let (s, problems) = with("\n[metered]\nstandby_interval = \"0s\"\n", &[]);
        assert_eq!(s.metered, MeteredConfig::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("netfailover.toml:3: error: metered.standby_interval"),
            "{problems:?}"
        );
    }

    /// `[flows]`: read from the file and the environment; a value that is not a boolean takes
    /// its default alone, with the file's line.
    #[test]
    fn flows_section_reads_and_falls_back_per_key() {
        let (s, problems) = with("[flows]\nenabled = false\non_failback = false\n", &[]);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!s.flows.enabled);
        assert!(!s.flows.on_failback);
        assert!(matches!(s.origin("flows.enabled"), Origin::File(_)));

        let (s, _) = with(
            "[flows]\nenabled = false\n",
            &[("NETFAILOVER_FLOWS__ON_FAILBACK", "false")],
        );
        assert!(!s.flows.enabled);
        assert!(!s.flows.on_failback);
        assert_eq!(
            s.origin("flows.on_failback"),
            Origin::Env("NETFAILOVER_FLOWS__ON_FAILBACK".into())
        );

        let toml = "[flows]\non_failback = false\n\nenabled = \"no\"\n";
        assert_eq!(
            errors(toml, &[]),
            "netfailover.toml:4: error: flows.enabled: invalid type: string \"no\", expected a boolean"
        );
        let (s, _) = with(toml, &[]);
        assert!(s.flows.enabled, "default");
        assert!(!s.flows.on_failback, "the other key keeps its value");
        let (_, problems) = with("[flows]\nreset = true\n", &[]);
        assert_eq!(
            problems,
            vec!["netfailover.toml:2: warning: unknown setting \"flows.reset\" ignored"]
        );
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
                ("netfailover_route__rp_filter", "keep"),
                ("NETFAILOVER_DISPATCHER__SCRIPT_TIMEOUT", "90"),
                ("OTHER_CHECK__DOWN_COUNT", "9"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.check.down_count, 5);
        assert_eq!(s.state_dir, PathBuf::from("/tmp/x"));
        assert!(!s.adopt);
        assert_eq!(s.check.timeout, Duration::from_secs(120));
        assert_eq!(s.route.rp_filter, RpFilterPolicy::Keep);
        assert_eq!(s.dispatcher.script_timeout, Duration::from_secs(90));
        assert_eq!(
            s.origin("check.down_count"),
            Origin::Env("NETFAILOVER_CHECK__DOWN_COUNT".into())
        );
    }

    #[test]
    fn unknown_keys_are_warnings() {
        let (s, problems) = with(
            "[check]\ndown_cuont = 3\n[extra]\ncolour = \"blue\"\n",
            &[("NETFAILOVER_CHECK_DOWN_COUNT", "5")],
        );
        assert!(!s.rejected);
        assert_eq!(
            problems,
            vec![
                "netfailover.toml:2: warning: unknown setting \"check.down_cuont\" ignored",
                "netfailover.toml:4: warning: unknown setting \"extra.colour\" ignored",
                "environment: warning: NETFAILOVER_CHECK_DOWN_COUNT: unknown setting \"check_down_count\" ignored (separate section and key with a double underscore: NETFAILOVER_CHECK__DOWN_COUNT)",
            ]
        );
    }

    #[test]
    fn bad_values_are_errors_with_file_and_line() {
        assert_eq!(
            errors("[check]\n\ndown_count = 0\ntimeout = \"soon\"\n", &[]),
            "netfailover.toml:3: error: check.down_count: 0 is out of range (1..=100)\nnetfailover.toml:4: error: check.timeout: \"soon\" is not a duration (expected number at 0); write e.g. 30, \"1500ms\" or \"2m\""
        );
        assert_eq!(
            errors("[route]\nprotocol = 42\n", &[]),
            "netfailover.toml:2: error: route.protocol: 42 is reserved by the kernel or assigned to another routing daemon; pick an unassigned id (default 78)"
        );
        assert_eq!(
            errors("", &[("NETFAILOVER_ROUTE__PENALTY", "-5")]),
            "environment: error: NETFAILOVER_ROUTE__PENALTY: route.penalty: invalid value: integer `-5`, expected u32"
        );
        assert!(errors("state_dir = \"relative\"\n", &[]).contains("is not an absolute path"));
        assert!(errors("[check]\nrecheck_max = \"100years\"\n", &[]).contains("too long"));
        assert!(errors("check = 3\n", &[]).contains("check: is not a table"));
    }

    /// A bad key takes its default; every other key, in its section and elsewhere, keeps its
    /// value.
    #[test]
    fn a_bad_key_falls_back_alone() {
        let (s, problems) = with(
            "state_dir = \"/var/lib/nf\"\n[check]\ndown_count = \"two\"\nup_count = 4\ntimeout = \"6s\"\n[route]\npenalty = 0\nprotocol = 200\n",
            &[],
        );
        assert!(s.rejected);
        assert_eq!(s.check.down_count, 2, "default");
        assert_eq!(s.check.up_count, 4);
        assert_eq!(s.check.timeout, Duration::from_secs(6));
        assert_eq!(s.route.penalty, 20_000, "default");
        assert_eq!(s.route.protocol, 200);
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/nf"));
        assert_eq!(
            problems,
            vec![
                "netfailover.toml:3: error: check.down_count: invalid type: string \"two\", expected u32",
                "netfailover.toml:7: error: route.penalty: 0 is out of range (1..=1073741823)",
            ]
        );
        assert_eq!(
            s.origin("check.down_count").to_string(),
            format!(
                "default: the value at {} was rejected",
                s.file
                    .as_ref()
                    .unwrap()
                    .with_file_name("netfailover.toml:3")
                    .display()
            )
        );
        assert!(matches!(s.origin("check.up_count"), Origin::File(_)));
    }

    #[test]
    fn a_bad_environment_value_falls_back_to_the_default_not_the_file() {
        let (s, problems) = with(
            "[check]\ndown_count = 3\nup_count = 3\n",
            &[
                ("NETFAILOVER_CHECK__DOWN_COUNT", "lots"),
                ("NETFAILOVER_CHECK__UP_COUNT", "4"),
            ],
        );
        assert_eq!(s.check.down_count, 2);
        assert_eq!(s.check.up_count, 4);
        assert_eq!(
            problems,
            vec!["environment: error: NETFAILOVER_CHECK__DOWN_COUNT: check.down_count: invalid type: string \"lots\", expected u32"]
        );
        assert_eq!(
            s.origin("check.down_count"),
            Origin::Rejected("NETFAILOVER_CHECK__DOWN_COUNT".into())
        );
    }

    /// Not TOML at all: the whole file falls back, with one error at the syntax error's line;
    /// the environment still applies.
    #[test]
    fn a_file_that_is_not_toml_falls_back_as_a_whole() {
        let (s, problems) = with(
            "state_dir = \"/var/lib/nf\"\n[check\ndown_count = 3\n",
            &[("NETFAILOVER_ROUTE__PENALTY", "500")],
        );
        assert!(s.rejected);
        assert_eq!(s.state_dir, PathBuf::from("/run/netfailover"));
        assert_eq!(s.check.down_count, 2);
        assert_eq!(s.route.penalty, 500);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("netfailover.toml:2: error: malformed TOML: "),
            "{problems:?}"
        );
        assert!(
            problems[0].ends_with("the whole file is ignored (every setting takes its default)")
        );
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_rejected_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-pem.pem"), "hello\n").unwrap();
        for (ca, why) in [
            ("missing.pem", "No such file"),
            ("not-pem.pem", "no PEM certificate"),
            (".", "not a regular file"),
        ] {
            std::fs::write(
                dir.path().join("netfailover.toml"),
                format!("[check]\nca_file = \"{ca}\"\ndown_count = 4\n"),
            )
            .unwrap();
            let mut problems = Vec::new();
            let s = load(dir.path(), None, &BTreeMap::new(), &mut problems);
            assert!(s.rejected);
            assert_eq!(s.check.ca_file, None);
            assert_eq!(s.check.down_count, 4);
            assert_eq!(problems.len(), 1, "{problems:?}");
            let p = problems[0].to_string();
            assert!(
                p.contains("netfailover.toml:2: error: check.ca_file: "),
                "{p}"
            );
            assert!(p.contains(why), "{p}");
        }
    }

    #[test]
    fn an_explicit_settings_file_that_cannot_be_read_falls_back_as_a_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut problems = Vec::new();
        let missing = dir.path().join("nope.toml");
        let s = load(dir.path(), Some(&missing), &BTreeMap::new(), &mut problems);
        assert!(s.rejected);
        assert_eq!(s.state_dir, PathBuf::from("/run/netfailover"));
        assert!(problems[0].is_error());
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        let mut problems = Vec::new();
        let s = load(dir.path(), Some(&big), &BTreeMap::new(), &mut problems);
        assert!(s.rejected);
        assert!(
            problems[0]
                .to_string()
                .ends_with("big.toml: error: file is 1048577 bytes; files over 1 MiB are refused; every setting of this file takes its default"),
            "{problems:?}"
        );
    }
}
