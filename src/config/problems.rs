//! Problems found while reading the boot directory: one type for warnings and errors with the
//! file and line they point at, rendered the way compilers do (`FILE:LINE: error: message`) so
//! editors and people can jump to them. Collected, never thrown: one bad profile must not hide
//! the others' problems.

use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a problem is. `Error` means a file, profile or value was rejected (check-config exits
/// non-zero); `Warning` means it was read with a documented fallback.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem in one input file (or in the environment, whose "file" is `environment`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    pub fn error(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line,
            severity: Severity::Warning,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file.display(), line)?,
            None => write!(f, "{}: ", self.file.display())?,
        }
        write!(f, "{}: {}", self.severity.as_str(), self.message)
    }
}

/// 1-based line of byte `offset` in `text` (offsets past the end count as the last line).
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_compiler() {
        let p = Problem::error(Path::new("a/b"), Some(3), "bad");
        assert_eq!(p.to_string(), "a/b:3: error: bad");
        let p = Problem::warning(Path::new("a/b"), None, "meh");
        assert_eq!(p.to_string(), "a/b: warning: meh");
    }

    #[test]
    fn line_numbers_from_offsets() {
        let text = "a\nbb\nccc";
        assert_eq!(line_of_offset(text, 0), 1);
        assert_eq!(line_of_offset(text, 2), 2);
        assert_eq!(line_of_offset(text, 5), 3);
        assert_eq!(line_of_offset(text, 500), 3);
    }
}
