//! The value types of `netfailover.toml` that serde does not bring: durations written as whole
//! seconds or as human text, and the typed reasons a value is rejected ([`Invalid`]) with the
//! small checks the sections' `validate` functions are made of.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{de, Deserializer, Serializer};

use crate::config::{read_text, ReadError};

/// Longest accepted duration: keeps every `Instant + duration` in the engine far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why one key's value was rejected. Rendered only when printed (log, `check-config`,
/// `status`).
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// serde could not read the value as the key's type (wrong type, unknown word, bad duration).
    /// Printed as serde's message alone: the reader reports `FILE:LINE` itself.
    #[error("{}", .0.message())]
    Type(toml::de::Error),
    #[error("{value} is out of range ({min}..={max})")]
    OutOfRange { value: u64, min: u64, max: u64 },
    #[error("{} is too short (at least {})", human(*.value), human(*.min))]
    TooShort { value: Duration, min: Duration },
    #[error("{} is too long (at most {})", human(*.value), human(MAX_DURATION))]
    TooLong { value: Duration },
    #[error("{0} is reserved by the kernel or assigned to another routing daemon; pick an unassigned id (default 78)")]
    ReservedProtocol(u8),
    #[error("{:?} is not an absolute path", .0.display().to_string())]
    NotAbsolute(PathBuf),
    #[error("{}: {error}", path.display())]
    Unreadable { path: PathBuf, error: ReadError },
    /// The file reads but holds no usable PEM certificate (the reason is the PEM reader's).
    #[error("{}: {reason}", path.display())]
    NotPem { path: PathBuf, reason: String },
    /// A section name that holds a value instead of a table (`check = 3`).
    #[error("is not a table; write [{0}] and its keys under it")]
    NotATable(String),
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

/// `value` within `min..=max`.
pub fn in_range(value: impl Into<u64>, min: u64, max: u64) -> Result<(), Invalid> {
    let value = value.into();
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Invalid::OutOfRange { value, min, max })
    }
}

/// A duration of at least `min` and at most [`MAX_DURATION`].
pub fn at_least(value: Duration, min: Duration) -> Result<(), Invalid> {
    if value < min {
        Err(Invalid::TooShort { value, min })
    } else if value > MAX_DURATION {
        Err(Invalid::TooLong { value })
    } else {
        Ok(())
    }
}

/// An absolute path.
pub fn absolute(path: &Path) -> Result<(), Invalid> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(Invalid::NotAbsolute(path.to_path_buf()))
    }
}

/// A readable regular text file of at most 1 MiB (the same reader as every other input)
/// holding at least one PEM certificate, exactly as the probe will read it.
pub fn pem_file(path: &Path) -> Result<(), Invalid> {
    read_text(path).map_err(|error| Invalid::Unreadable {
        path: path.to_path_buf(),
        error,
    })?;
    use crate::os::probe::{load_ca_file, ProbeError};
    load_ca_file(path).map(|_| ()).map_err(|e| Invalid::NotPem {
        path: path.to_path_buf(),
        reason: match e {
            ProbeError::CaFile { reason, .. } => reason,
            other => other.to_string(),
        },
    })
}

/// A string that is neither whole seconds nor a human duration. serde prints it as the key's
/// message; the reader adds `FILE:LINE` where it reports the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{text:?} is not a duration ({source}); write e.g. 30, \"1500ms\" or \"2m\"")]
pub struct BadDuration {
    pub text: String,
    pub source: humantime::DurationError,
}

/// A duration string: whole seconds (`"30"`) or humantime (`"1500ms"`, `"2m 30s"`).
pub fn parse_duration(s: &str) -> Result<Duration, BadDuration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|source| BadDuration {
        text: s.to_string(),
        source,
    })
}

/// `#[serde(with = "duration")]`: an integer is seconds, a string is a human duration
/// (`"1500ms"`, `"2m"`); written back as human text (`1s 500ms`).
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Visitor)
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("whole seconds or a string such as \"1500ms\" or \"2m\"")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(n))
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
            u64::try_from(n)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("{n} is negative")))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
            parse_duration(s).map_err(E::custom)
        }
    }
}

/// A string that is not a byte count. serde prints it as the key's message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0:?} is not a byte count; write e.g. 20000000, \"20MB\" or \"1.5MiB\"")]
pub struct BadBytes(pub String);

/// A byte count: a whole number with an optional unit, `B`, SI `kB`/`KB`, `MB`, `GB` (powers
/// of 1000) or IEC `KiB`, `MiB`, `GiB` (powers of 1024); a fraction is allowed with a unit
/// (`"1.5MiB"`) and rounded down to whole bytes. Units are case-insensitive.
pub fn parse_bytes(s: &str) -> Result<u64, BadBytes> {
    let bad = || BadBytes(s.to_string());
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    if number.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(factor).ok_or_else(bad);
    }
    if factor == 1 {
        return Err(bad()); // a fraction of a byte
    }
    let f: f64 = number.parse().map_err(|_| bad())?;
    let bytes = f * factor as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// `#[serde(with = "bytes")]`: an integer is bytes, a string a byte count with a unit
/// ([`parse_bytes`]); written back as the number of bytes.
pub mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(Visitor)
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = u64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number of bytes or a string such as \"20MB\" or \"1.5MiB\"")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("{n} is negative")))
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
            parse_bytes(s).map_err(E::custom)
        }
    }
}

/// The field names of a derived `Deserialize` struct, in declaration order (serde hands them to
/// `deserialize_struct`), so `check-config` lists every key of a section without a second list.
pub fn field_names<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Captured(&'static [&'static str]);
    impl std::fmt::Display for Captured {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Captured {}
    impl de::Error for Captured {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Captured(&[])
        }
    }
    struct Probe;
    impl<'de> Deserializer<'de> for Probe {
        type Error = Captured;
        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
            Err(Captured(&[]))
        }
        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Captured> {
            Err(Captured(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Captured(fields)) => fields,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_si_and_iec_units() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("150000"), Ok(150_000));
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_bytes("150 kB"), Ok(150_000));
        assert_eq!(parse_bytes("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_bytes("2gib"), Ok(2 << 30));
        assert_eq!(parse_bytes("512B"), Ok(512));
        for bad in [
            "",
            "MB",
            "1.5",
            "-3MB",
            "20 furlongs",
            "1.2.3MB",
            "99999999999999GB",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct D {
        #[serde(with = "duration")]
        d: Duration,
    }

    fn d(toml: &str) -> Result<Duration, String> {
        toml::from_str::<D>(toml)
            .map(|v| v.d)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn durations_are_seconds_or_human_text() {
        assert_eq!(d("d = 7"), Ok(Duration::from_secs(7)));
        assert_eq!(d("d = \"1500ms\""), Ok(Duration::from_millis(1500)));
        assert_eq!(d("d = \"2m\""), Ok(Duration::from_secs(120)));
        assert_eq!(d("d = \"45\""), Ok(Duration::from_secs(45)));
        assert_eq!(d("d = -1"), Err("-1 is negative".to_string()));
        assert!(d("d = 1.5").unwrap_err().contains("whole seconds"));
        assert!(d("d = \"soon\"").unwrap_err().contains("is not a duration"));
        let written = toml::to_string(&D {
            d: Duration::from_millis(1500),
        })
        .unwrap();
        assert_eq!(written.trim(), "d = \"1s 500ms\"");
    }

    #[test]
    fn a_bad_duration_keeps_its_text_and_cause() {
        let e = parse_duration(" soon ").unwrap_err();
        assert_eq!(e.text, "soon");
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().starts_with("\"soon\" is not a duration ("));
    }

    #[test]
    fn limits() {
        assert!(at_least(Duration::ZERO, Duration::from_secs(1)).is_err());
        assert!(at_least(MAX_DURATION, Duration::ZERO).is_ok());
        assert!(at_least(MAX_DURATION + Duration::from_secs(1), Duration::ZERO).is_err());
        assert!(in_range(5u32, 1, 5).is_ok());
        assert_eq!(
            in_range(0u32, 1, 100).unwrap_err().to_string(),
            "0 is out of range (1..=100)"
        );
        assert!(absolute(Path::new("rel")).is_err());
    }

    #[test]
    fn field_names_in_declaration_order() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct S {
            b: u8,
            a: u8,
        }
        assert_eq!(field_names::<S>(), &["b", "a"]);
    }
}
