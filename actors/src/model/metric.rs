//! Route metrics ([`Metric`], [`PENALTY_MAX`]) and the kinds of uplink ([`UplinkType`]) that
//! set a profile's default metric.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::IfaceName;
/// A configured route metric (priority; lower wins).
///
/// Capped at [`Metric::MAX`] so that the penalty and the +1 bumps that keep metrics unique can
/// never overflow the kernel's u32.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Metric(u32);

/// Why a number is not a valid metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route metric {value} is out of range (0..={max})")]
pub struct MetricError {
    pub value: i64,
    pub max: u32,
}

impl Metric {
    /// Largest configurable metric: leaves headroom for the largest `route.penalty` plus
    /// uniqueness bumps.
    pub const MAX: u32 = 0x7fff_ffff;

    pub fn new(value: i64) -> Result<Self, MetricError> {
        if (0..=i64::from(Self::MAX)).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(MetricError {
                value,
                max: Self::MAX,
            })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for Metric {
    type Error = MetricError;
    fn try_from(v: u32) -> Result<Self, Self::Error> {
        Self::new(i64::from(v))
    }
}

impl From<Metric> for u32 {
    fn from(m: Metric) -> u32 {
        m.0
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Largest accepted `route.penalty` (keeps `Metric::MAX + penalty + bumps` inside u32).
pub const PENALTY_MAX: u32 = 0x3fff_ffff;

/// The kind of uplink a profile describes (`[connection] type=`), which sets its default metric
/// and the interface names it matches when the profile names no interface.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UplinkType {
    Ethernet,
    Wifi,
    Gsm,
    Cdma,
    Other,
}

impl UplinkType {
    /// NetworkManager's default route metric for this type.
    pub fn default_metric(self) -> Metric {
        Metric(match self {
            UplinkType::Ethernet => 100,
            UplinkType::Wifi => 600,
            UplinkType::Gsm | UplinkType::Cdma => 700,
            UplinkType::Other => 800,
        })
    }

    /// Interface-name prefixes a profile of this type matches when it names no interface.
    pub fn name_prefixes(self) -> &'static [&'static str] {
        match self {
            UplinkType::Ethernet => &["eth", "en"],
            UplinkType::Wifi => &["wl"],
            UplinkType::Gsm | UplinkType::Cdma => &["wwan", "ppp", "usb"],
            UplinkType::Other => &[],
        }
    }

    /// The type an adopted interface (no profile) is assumed to be, from its name.
    pub fn guess_from_name(name: &IfaceName) -> UplinkType {
        [UplinkType::Ethernet, UplinkType::Wifi, UplinkType::Gsm]
            .into_iter()
            .find(|t| name.has_prefix(t.name_prefixes()))
            .unwrap_or(UplinkType::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UplinkType::Ethernet => "ethernet",
            UplinkType::Wifi => "wifi",
            UplinkType::Gsm => "gsm",
            UplinkType::Cdma => "cdma",
            UplinkType::Other => "other",
        }
    }
}

/// Whether an uplink's traffic costs money (NetworkManager's `connection.metered`), and whether
/// that was guessed: a profile saying neither yes nor no is guessed as NetworkManager guesses,
/// cellular (`gsm`, `cdma`) metered and every other type not (`docs/config.md`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Metered {
    pub metered: bool,
    /// Not written in the profile (or no profile): derived from the type.
    pub guessed: bool,
}

impl Metered {
    /// NetworkManager's guess for a type when the profile leaves `metered` unknown.
    pub fn guess(t: UplinkType) -> Self {
        Metered {
            metered: matches!(t, UplinkType::Gsm | UplinkType::Cdma),
            guessed: true,
        }
    }
}

impl fmt::Display for Metered {
    /// `yes`, `no`, `yes (guessed)`, `no (guessed)`: as check-config and `status` show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.metered { "yes" } else { "no" })?;
        if self.guessed {
            f.write_str(" (guessed)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_leave_headroom() {
        assert!(Metric::new(-1).is_err());
        assert!(Metric::new(i64::from(Metric::MAX) + 1).is_err());
        assert_eq!(Metric::new(40).map(Metric::get), Ok(40));
        let worst = u64::from(Metric::MAX) + u64::from(PENALTY_MAX) + 100_000;
        assert!(worst < u64::from(u32::MAX));
    }

    #[test]
    fn type_guess_from_name() {
        let n = |s: &str| IfaceName::new(s).unwrap();
        assert_eq!(
            UplinkType::guess_from_name(&n("enp3s0")),
            UplinkType::Ethernet
        );
        assert_eq!(UplinkType::guess_from_name(&n("wlan0")), UplinkType::Wifi);
        assert_eq!(UplinkType::guess_from_name(&n("wwan0")), UplinkType::Gsm);
        assert_eq!(UplinkType::guess_from_name(&n("foo0")), UplinkType::Other);
    }
}
