//! [`Connectivity`]: the state of one interface or of the device, in the contract's order.

use std::fmt;

use serde::{Deserialize, Serialize};
/// Connectivity of one interface or of the device, as NetworkManager names it.
///
/// The derived order is the contract's (docs/semantics.md) "best" order: `None < Unknown < Limited < Portal < Full`,
/// so the global state is simply the maximum over interfaces.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Connectivity {
    None,
    #[default]
    Unknown,
    Limited,
    Portal,
    Full,
}

impl Connectivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Connectivity::None => "NONE",
            Connectivity::Unknown => "UNKNOWN",
            Connectivity::Limited => "LIMITED",
            Connectivity::Portal => "PORTAL",
            Connectivity::Full => "FULL",
        }
    }

    /// Global connectivity: the best state over all interfaces (NONE when there are none).
    pub fn global(states: impl IntoIterator<Item = Connectivity>) -> Connectivity {
        states.into_iter().max().unwrap_or(Connectivity::None)
    }
}

impl fmt::Display for Connectivity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectivity_order_is_the_specs() {
        use Connectivity::*;
        assert!(Full > Portal && Portal > Limited && Limited > Unknown && Unknown > None);
        assert_eq!(Connectivity::global([Limited, Full, None]), Full);
        assert_eq!(Connectivity::global([]), None);
    }
}
