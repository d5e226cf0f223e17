//! Configuration: everything a balenaOS device has in its boot partition (config.json,
//! NetworkManager keyfiles) plus our own `netfailover.toml` and `NETFAILOVER_*` environment,
//! into one validated engine [`Config`] and a list of [`Problem`]s a person can act on.
//!
//! [`load`] is idempotent and reads everything afresh, so the daemon calls it again on SIGHUP
//! and hands the new `Config` to the engine. Only an unreadable boot directory is a
//! [`ConfigError`]; everything else falls back and is reported in [`Loaded::problems`]: a broken
//! profile is skipped while the others load, a bad config.json value or `netfailover.toml` key
//! takes its default while the others keep theirs.

pub mod config_json;
pub mod dns;
pub mod ipconfig;
pub mod keyfile;
pub mod keyfile_reader;
pub mod last_good;
pub mod nm_types;
pub mod problems;
pub mod profiles;
pub mod report;
mod report_common;
mod report_json;
pub mod settings;
pub mod uri;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use netfailover_actors::model::{CheckConfig, Config};

pub use last_good::LastGood;
use last_good::Versions;
pub use problems::{Problem, Severity};
pub use uri::{CheckUri, CheckUriError};

/// Default boot directory: where balenaOS mounts its boot partition.
pub const DEFAULT_BOOT_DIR: &str = "/mnt/boot";

/// Largest input file we read: real ones are a few KiB; anything bigger is a mistake or an
/// attack, and refusing it keeps memory bounded.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Where a value came from, for check-config.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Origin {
    Default,
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// The default, because the value written there (`FILE:LINE` or a variable) was rejected.
    Rejected(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::Rejected(at) => write!(f, "default: the value at {at} was rejected"),
        }
    }
}

/// What [`load`] returns: the engine config plus what the daemon itself needs.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub state_dir: PathBuf,
    /// What outlives a reboot (the recovery ladder's reboot times).
    pub persist_dir: PathBuf,
    pub netlink_rcvbuf: usize,
    pub dispatcher_dir: PathBuf,
    /// Warnings and per-file or per-profile errors (rejected items were skipped).
    pub problems: Vec<Problem>,
    /// `netfailover.toml` or its environment had something rejected (it took its default): a
    /// reload keeps the last good configuration instead (docs/decisions.md).
    pub settings_rejected: bool,
    /// The version of config.json and of each keyfile used (the last good one of a file that
    /// failed to parse), for [`LoadOptions::last_good`] of the next reload.
    pub last_good: LastGood,
}

/// Everything [`load_with`] can be told; [`LoadOptions::new`] gives the production values.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub boot_dir: PathBuf,
    /// `None`: `<boot_dir>/netfailover.toml` if it exists. `Some`: that file (an error when it
    /// cannot be read; every setting then takes its default).
    pub settings_file: Option<PathBuf>,
    /// Root of sysfs, for modem control devices and interface existence (`/sys`).
    pub sysfs_root: PathBuf,
    /// The system resolver's file (`/etc/resolv.conf`); `None` = no system servers.
    pub resolv_conf: Option<PathBuf>,
    /// The environment to read `NETFAILOVER_*` overrides from; `None` = the process's.
    pub env: Option<BTreeMap<String, String>>,
    /// On a reload, the previous load's [`Loaded::last_good`]: config.json or a keyfile that
    /// fails to parse is read from its last good version instead (`last_good.rs`).
    pub last_good: LastGood,
}

impl LoadOptions {
    pub fn new(boot_dir: &Path) -> Self {
        Self {
            boot_dir: boot_dir.to_path_buf(),
            settings_file: None,
            sysfs_root: PathBuf::from("/sys"),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
            env: None,
            last_good: LastGood::default(),
        }
    }
}

/// A problem that leaves no configuration to run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: boot directory cannot be read: {error}", path.display())]
    BootDir {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS error is in the text (not also `source()`: see `actors/src/error.rs`).
    #[error("cannot read: {0}")]
    Io(std::io::Error),
    #[error("not a regular file")]
    NotAFile,
    #[error("file is {size} bytes; files over 1 MiB are refused")]
    TooLarge { size: u64 },
    #[error("not valid UTF-8")]
    NotUtf8 { line: usize },
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl ReadError {
    /// The line a read error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ReadError::NotUtf8 { line } => Some(*line),
            _ => None,
        }
    }
}

/// Reads a UTF-8 text file of at most [`MAX_FILE_BYTES`], refusing FIFOs and devices (which
/// could block or never end).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ReadError::NotUtf8 {
            line: valid.iter().filter(|b| **b == b'\n').count() + 1,
        }
    })
}

/// Reads a file of at most [`MAX_FILE_BYTES`] as bytes (keyfiles: GLib accepts any bytes in
/// comments), refusing FIFOs and devices.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge { size: meta.len() });
    }
    let mut bytes = Vec::new();
    // The file may grow between stat and read: the cap holds regardless.
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Loads the boot directory with the production defaults (sysfs at `/sys`, `/etc/resolv.conf`,
/// the process environment).
pub fn load(boot_dir: &Path, settings_file: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut opts = LoadOptions::new(boot_dir);
    opts.settings_file = settings_file.map(Path::to_path_buf);
    load_with(&opts)
}

/// Loads with explicit options (tests point sysfs, resolv.conf and the environment elsewhere).
pub fn load_with(opts: &LoadOptions) -> Result<Loaded, ConfigError> {
    load_effective(opts).map(|e| e.loaded)
}

/// The loaded configuration plus what check-config shows about how it was derived.
#[derive(Clone, Debug)]
pub(crate) struct Effective {
    pub loaded: Loaded,
    pub profiles: Vec<profiles::LoadedProfile>,
    pub json: config_json::JsonSettings,
    pub settings: settings::Settings,
}

pub(crate) fn load_effective(opts: &LoadOptions) -> Result<Effective, ConfigError> {
    let boot = &opts.boot_dir;
    std::fs::read_dir(boot).map_err(|error| ConfigError::BootDir {
        path: boot.clone(),
        error,
    })?;
    let env = match &opts.env {
        Some(env) => env.clone(),
        // `vars()` would panic on a variable that is not UTF-8; such a variable cannot be one
        // of ours anyway.
        None => std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let mut problems = Vec::new();
    let mut versions = Versions::new(opts.last_good.clone());
    let settings = settings::load(boot, opts.settings_file.as_deref(), &env, &mut problems);
    let json = config_json::read(&boot.join("config.json"), &mut versions, &mut problems);
    let profiles = profiles::load_dir(
        &boot.join("system-connections"),
        &opts.sysfs_root,
        &mut versions,
        &mut problems,
    );
    let mut dns = json.dns.clone();
    if let Some(resolv) = &opts.resolv_conf {
        dns.system = dns::read_resolv_conf(resolv);
    }
    let config = Config {
        profiles: profiles
            .iter()
            .filter(|p| p.lost_to.is_none())
            .map(|p| p.profile.clone())
            .collect(),
        adopt: settings.adopt,
        check: CheckConfig {
            uri: json.uri.to_string(),
            response: json.response.clone(),
            interval: json.interval,
            ..settings.check.clone()
        },
        route: settings.route.clone(),
        dispatcher: settings.dispatcher.clone(),
        dns,
        flows: settings.flows.clone(),
        passive: settings.passive.clone(),
        recovery: settings.recovery.clone(),
        metered: settings.metered.clone(),
    };
    let loaded = Loaded {
        config,
        state_dir: settings.state_dir.clone(),
        persist_dir: settings.persist_dir.clone(),
        netlink_rcvbuf: settings.netlink_rcvbuf,
        dispatcher_dir: boot.join("dispatcher.d"),
        problems,
        settings_rejected: settings.rejected,
        last_good: versions.into_current(),
    };
    Ok(Effective {
        loaded,
        profiles,
        json,
        settings,
    })
}
