//! [`ProcSysctl`]: the `Sysctl` port on `/proc/sys/net`.
//!
//! Keys are dotted sysctl names under `net.` (`net.ipv4.conf.eth0.rp_filter`). Dots become
//! slashes, except in the interface part of the per-interface trees (`net.ipv4.conf.`,
//! `net.ipv6.conf.`, `net.ipv4.neigh.`, `net.ipv6.neigh.`): an interface name may itself contain
//! dots (VLAN `eth0.100`), and the leaf names there never do, so the text between the known
//! prefix and the last dot is the interface (`net.ipv4.conf.eth0.100.rp_filter` →
//! `/proc/sys/net/ipv4/conf/eth0.100/rp_filter`). Keys in `sysctl(8)`'s slash form
//! (`net/ipv4/conf/eth0.100/rp_filter`) are taken as they are. Every path component is
//! validated, so a key can never leave `/proc/sys/net`.
//!
//! Namespaces: `/proc/sys/net` resolves to the network namespace of the *calling thread* when the
//! file is opened (not the process's, unlike `/proc/net` and `/sys`). So the file is opened and
//! read or written synchronously in `read()`/`write()` — on the caller's thread — and the
//! returned future is already complete. These files are tiny and in memory; the call takes
//! microseconds. (A `tokio::fs` call would run on a blocking-pool thread, which may be in another
//! namespace.)

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::{self, BoxFuture, FutureExt};
use netfailover_actors::model::IfaceName;
use netfailover_actors::ports::{PortError, PortErrorKind, PortResult, Sysctl};

/// Where network sysctls live.
const PROC_SYS: &str = "/proc/sys";

/// Per-interface trees whose next component is an interface name (which may contain dots).
const PER_INTERFACE_PREFIXES: [&str; 4] = [
    "net.ipv4.conf.",
    "net.ipv6.conf.",
    "net.ipv4.neigh.",
    "net.ipv6.neigh.",
];

/// A sysctl key that cannot be used, or a read/write that failed.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl key {key:?}: {why}")]
    BadKey { key: String, why: String },
    #[error("sysctl {key} ({path}): {error}")]
    Io {
        key: String,
        path: PathBuf,
        error: std::io::Error,
    },
}

impl From<SysctlError> for PortError {
    fn from(e: SysctlError) -> Self {
        match &e {
            SysctlError::Io { key, error, .. } if error.kind() == ErrorKind::NotFound => {
                let what = format!("sysctl {key}");
                PortError::new(PortErrorKind::NotFound, what, Some(Arc::new(e)))
            }
            SysctlError::BadKey { key, .. } | SysctlError::Io { key, .. } => {
                // The SysctlError is the cause, as typed data (`PortError::cause`, downcast it
                // for the io::Error and its errno) and as the text after `what`.
                PortError::failed(format!("sysctl {key}"), e)
            }
        }
    }
}

/// The sysctl port on `/proc/sys/net`, in the namespace of the calling thread.
#[derive(Clone, Debug, Default)]
pub struct ProcSysctl;

impl ProcSysctl {
    pub fn new() -> Self {
        Self
    }

    /// Reads a value, without the trailing newline.
    pub fn read_now(&self, key: &str) -> Result<String, SysctlError> {
        let path = key_path(key)?;
        std::fs::read_to_string(&path)
            .map(|value| value.trim_end_matches('\n').to_string())
            .map_err(|error| SysctlError::Io {
                key: key.to_string(),
                path,
                error,
            })
    }

    /// Writes a value (one write, as `sysctl -w` does).
    pub fn write_now(&self, key: &str, value: &str) -> Result<(), SysctlError> {
        let path = key_path(key)?;
        std::fs::write(&path, value).map_err(|error| SysctlError::Io {
            key: key.to_string(),
            path,
            error,
        })?;
        tracing::debug!(key, value, "sysctl written");
        Ok(())
    }
}

impl Sysctl for ProcSysctl {
    fn read(&self, key: String) -> BoxFuture<'static, PortResult<String>> {
        future::ready(self.read_now(&key).map_err(Into::into)).boxed()
    }

    fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>> {
        future::ready(self.write_now(&key, &value).map_err(Into::into)).boxed()
    }
}

/// The `/proc/sys` path of a key (see the module doc for the rules).
pub fn key_path(key: &str) -> Result<PathBuf, SysctlError> {
    let bad = |why: &str| SysctlError::BadKey {
        key: key.to_string(),
        why: why.to_string(),
    };
    let components: Vec<&str> = if key.contains('/') {
        key.split('/').collect()
    } else if let Some(prefix) = PER_INTERFACE_PREFIXES.iter().find(|p| key.starts_with(*p)) {
        let rest = &key[prefix.len()..];
        let (iface, leaf) = rest
            .rsplit_once('.')
            .ok_or_else(|| bad("expected <interface>.<setting> after the prefix"))?;
        // `all` and `default` are valid IfaceNames too, so one check covers every case.
        IfaceName::new(iface).map_err(|e| bad(&e.to_string()))?;
        let mut components: Vec<&str> = prefix.trim_end_matches('.').split('.').collect();
        components.extend([iface, leaf]);
        components
    } else {
        key.split('.').collect()
    };
    if components.first() != Some(&"net") {
        return Err(bad("only network sysctls (net.…) are supported"));
    }
    if components.len() < 2 {
        return Err(bad("names a directory, not a setting"));
    }
    let mut path = PathBuf::from(PROC_SYS);
    for component in components {
        if component.is_empty() || component == "." || component == ".." {
            return Err(bad("empty, `.` or `..` path component"));
        }
        if component.contains('\0') {
            return Err(bad("contains NUL"));
        }
        path.push(component);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(key: &str) -> String {
        key_path(key).unwrap().display().to_string()
    }

    #[test]
    fn dotted_keys_become_paths() {
        assert_eq!(
            path("net.ipv4.conf.eth0.rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0/rp_filter"
        );
        assert_eq!(
            path("net.ipv4.conf.eth0.100.rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            path("net.ipv6.conf.wwan0.ra_defrtr_metric"),
            "/proc/sys/net/ipv6/conf/wwan0/ra_defrtr_metric"
        );
        assert_eq!(
            path("net.ipv4.conf.all.rp_filter"),
            "/proc/sys/net/ipv4/conf/all/rp_filter"
        );
        assert_eq!(path("net.core.rmem_max"), "/proc/sys/net/core/rmem_max");
        assert_eq!(
            path("net/ipv4/conf/eth0.100/rp_filter"),
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter"
        );
    }

    #[test]
    fn keys_cannot_escape_proc_sys_net() {
        for bad in [
            "",
            "kernel.hostname",
            "net",
            "net..core",
            "net/../../etc/passwd",
            "net/ipv4/conf/../../../kernel/x",
            "net.ipv4.conf.rp_filter",
            "net.ipv4.conf..rp_filter",
            "net.ipv4.conf.a b.rp_filter",
            "net.ipv4.conf.a23456789012345678.rp_filter",
        ] {
            assert!(key_path(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn missing_key_is_not_found() {
        let got: PortError = ProcSysctl::new()
            .read_now("net.ipv4.conf.nf-absent0.rp_filter")
            .unwrap_err()
            .into();
        assert!(
            matches!(
                got,
                PortError {
                    kind: PortErrorKind::NotFound,
                    ..
                }
            ),
            "{got:?}"
        );
    }
}
