//! Interface names: [`IfaceName`], a name the kernel would accept.

use std::fmt;

use serde::{Deserialize, Serialize};
/// Longest interface name the kernel accepts (IFNAMSIZ 16, minus the terminating NUL).
pub const IFNAME_MAX: usize = 15;

/// A network interface name the kernel would accept (`dev_valid_name()` in net/core/dev.c):
/// 1..=15 bytes, not `.` or `..`, no `/`, `:`, NUL or whitespace.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfaceName(String);

/// Why a string is not a valid interface name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IfaceNameError {
    #[error("interface name is empty")]
    Empty,
    #[error("interface name {name:?} is {len} bytes long; the kernel allows at most 15")]
    TooLong { name: String, len: usize },
    #[error("interface name {name:?} contains {ch:?}, which the kernel refuses")]
    BadChar { name: String, ch: char },
    #[error("interface name {name:?} is reserved")]
    Reserved { name: String },
}

impl IfaceName {
    pub fn new(name: impl Into<String>) -> Result<Self, IfaceNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(IfaceNameError::Empty);
        }
        if name.len() > IFNAME_MAX {
            let len = name.len();
            return Err(IfaceNameError::TooLong { name, len });
        }
        if name == "." || name == ".." {
            return Err(IfaceNameError::Reserved { name });
        }
        if let Some(ch) = name
            .chars()
            .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
        {
            return Err(IfaceNameError::BadChar { name, ch });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True if the name starts with any of `prefixes`.
    pub fn has_prefix(&self, prefixes: &[&str]) -> bool {
        prefixes.iter().any(|p| self.0.starts_with(p))
    }
}

impl TryFrom<String> for IfaceName {
    type Error = IfaceNameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for IfaceName {
    type Error = IfaceNameError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<IfaceName> for String {
    fn from(n: IfaceName) -> String {
        n.0
    }
}

impl fmt::Display for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_names_follow_kernel_rules() {
        assert!(IfaceName::new("eth0").is_ok());
        assert!(IfaceName::new("a23456789012345").is_ok());
        assert!(matches!(
            IfaceName::new("a234567890123456"),
            Err(IfaceNameError::TooLong { len: 16, .. })
        ));
        assert_eq!(IfaceName::new(""), Err(IfaceNameError::Empty));
        for bad in ["a/b", "a:b", "a b", "a\tb"] {
            assert!(
                matches!(IfaceName::new(bad), Err(IfaceNameError::BadChar { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            IfaceName::new(".."),
            Err(IfaceNameError::Reserved { .. })
        ));
    }
}
