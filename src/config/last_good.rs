//! The last good version of each file that a reload may find broken (config.json and each
//! keyfile in `system-connections/`): on SIGHUP, a file that now fails to parse is read from
//! the version that last parsed cleanly, so a typo never switches a running device to defaults
//! or drops the route of an uplink managed through a profile. Its errors are still reported,
//! plus a warning that its last good version stays in force. At start (and in `check-config`)
//! there is no earlier version: a broken file takes the documented fallback.
//!
//! `netfailover.toml` is the other half of the same rule, kept whole by the daemon: a reload
//! whose settings have anything rejected keeps the whole last good configuration
//! (`daemon.rs`, `reload`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::problems::Problem;

/// The message of the warning added when a file's last good version is used.
pub const KEPT: &str =
    "fails to parse; keeping its last good version (from the start or an earlier reload) until it is fixed";

/// Contents of the files that parsed without an error, by path.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct LastGood(BTreeMap<PathBuf, Vec<u8>>);

impl LastGood {
    /// How many files are recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One load's view: the versions of the previous load (empty at start) and the ones this load
/// found good, handed to the next reload.
#[derive(Debug, Default)]
pub struct Versions {
    previous: LastGood,
    current: LastGood,
}

impl Versions {
    pub fn new(previous: LastGood) -> Self {
        Self {
            previous,
            current: LastGood::default(),
        }
    }

    /// The versions to hand to the next reload.
    pub fn into_current(self) -> LastGood {
        self.current
    }

    /// Parses `path` from `read` (its bytes, or why it could not be read) with `parse`, which
    /// gets `None` for an unreadable file and pushes its problems. When that yields an error and
    /// an earlier version of the file parsed cleanly, the earlier version is parsed instead; the
    /// new errors are kept, followed by a warning saying so.
    pub fn parse<T>(
        &mut self,
        path: &Path,
        read: Result<Vec<u8>, Problem>,
        problems: &mut Vec<Problem>,
        parse: impl Fn(Option<&[u8]>, &mut Vec<Problem>) -> T,
    ) -> T {
        let mut fresh = Vec::new();
        let (bytes, value) = match read {
            Ok(bytes) => {
                let value = parse(Some(&bytes), &mut fresh);
                (Some(bytes), value)
            }
            Err(problem) => {
                fresh.push(problem);
                (None, parse(None, &mut fresh))
            }
        };
        let failed = fresh.iter().any(Problem::is_error);
        problems.extend(fresh);
        if !failed {
            if let Some(bytes) = bytes {
                self.current.0.insert(path.to_path_buf(), bytes);
            }
            return value;
        }
        match self.previous.0.get(path) {
            Some(good) if bytes.as_ref() != Some(good) => {
                let kept = parse(Some(good), &mut Vec::new());
                problems.push(Problem::warning(path, None, KEPT));
                self.current.0.insert(path.to_path_buf(), good.clone());
                kept
            }
            _ => value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parser of "numbers": an error for anything else, `None` when unreadable.
    fn number(bytes: Option<&[u8]>, problems: &mut Vec<Problem>) -> Option<u32> {
        let text = std::str::from_utf8(bytes?).ok()?;
        let n = text.trim().parse().ok();
        if n.is_none() {
            problems.push(Problem::error(Path::new("f"), Some(1), "not a number"));
        }
        n
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_version_and_says_so() {
        let path = Path::new("f");
        let mut first = Versions::default();
        let mut problems = Vec::new();
        assert_eq!(
            first.parse(path, Ok(b"7".to_vec()), &mut problems, number),
            Some(7)
        );
        assert!(problems.is_empty());

        let mut second = Versions::new(first.into_current());
        assert_eq!(
            second.parse(path, Ok(b"seven".to_vec()), &mut problems, number),
            Some(7)
        );
        let printed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            ["f:1: error: not a number", &format!("f: warning: {KEPT}")]
        );

        // Still broken at the next reload: the same good version stays.
        let mut third = Versions::new(second.into_current());
        let unreadable = Err(Problem::error(path, None, "cannot read"));
        assert_eq!(
            third.parse(path, unreadable, &mut Vec::new(), number),
            Some(7)
        );

        // Fixed: the new version applies and becomes the good one.
        let mut fourth = Versions::new(third.into_current());
        assert_eq!(
            fourth.parse(path, Ok(b"8".to_vec()), &mut Vec::new(), number),
            Some(8)
        );
        assert_eq!(fourth.into_current().len(), 1);
    }

    #[test]
    fn without_an_earlier_version_a_broken_file_takes_its_fallback() {
        let mut versions = Versions::default();
        let mut problems = Vec::new();
        let parsed = versions.parse(Path::new("f"), Ok(b"x".to_vec()), &mut problems, number);
        assert_eq!(parsed, None);
        assert_eq!(problems.len(), 1);
        assert!(versions.into_current().is_empty());
    }
}
