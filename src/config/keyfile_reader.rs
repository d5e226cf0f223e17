//! Reading one NetworkManager keyfile's values with GLib's and NetworkManager's rules: the
//! [`Reader`] that warns (and uses the default) where NetworkManager does, and [`Reject`], why
//! a profile is skipped. Shared by the profile reader (`profiles.rs` and its files) and the
//! `[ipv4]`/`[ipv6]` reader (`ipconfig.rs`), below both.

use std::path::Path;

use super::keyfile::KeyFile;
use super::problems::Problem;

/// Why a profile is skipped.
pub struct Reject {
    pub(super) line: Option<usize>,
    pub(super) message: String,
}

pub fn reject(line: impl Into<Option<usize>>, message: impl Into<String>) -> Reject {
    Reject {
        line: line.into(),
        message: message.into(),
    }
}

/// A keyfile with the file's path and the warnings found so far: reads values with GLib's
/// and NetworkManager's rules, warning (and using the default) where NetworkManager does.
pub struct Reader<'a> {
    pub kf: &'a KeyFile,
    pub(super) path: &'a Path,
    pub(super) warnings: &'a mut Vec<Problem>,
}

impl Reader<'_> {
    pub fn warn(&mut self, line: impl Into<Option<usize>>, message: impl Into<String>) {
        self.warnings
            .push(Problem::warning(self.path, line.into(), message));
    }

    /// `g_key_file_get_string`: `None` when absent, or (with a warning) when GLib refuses the
    /// value (not UTF-8, a bad escape); NetworkManager then ignores the key.
    pub fn string(&mut self, group: &str, key: &str) -> Option<(String, usize)> {
        let e = self.kf.get(group, key)?;
        match e.strict_string() {
            Ok(s) => Some((s, e.line)),
            Err(why) => {
                let line = e.line;
                self.warn(line, format!("{group}.{key}: {why}; ignored"));
                None
            }
        }
    }

    /// `g_key_file_get_boolean`: exactly `true`/`1` or `false`/`0` (trailing whitespace
    /// allowed); anything else (`yes`, `False`) is a warning and the default, as in NetworkManager.
    pub fn bool(&mut self, group: &str, key: &str, default: bool) -> bool {
        let Some(e) = self.kf.get(group, key) else {
            return default;
        };
        match (e.utf8, e.raw.trim_end()) {
            (true, "true" | "1") => true,
            (true, "false" | "0") => false,
            (_, other) => {
                let (line, other) = (e.line, other.to_string());
                self.warn(
                    line,
                    format!("{group}.{key} {other:?} is not a boolean (true, false, 1 or 0); NetworkManager uses {default}"),
                );
                default
            }
        }
    }
}
