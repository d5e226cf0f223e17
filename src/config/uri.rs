//! `CheckUri`: the connectivity-check URI, validated at the boundary (http or https with a host,
//! parsed by the `url` crate) and kept in its normalised, percent-encoded form, which is what the
//! probe adapter hands to hyper.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An `http://` or `https://` URI with a host.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CheckUri(String);

/// Why a string is not a usable check URI.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CheckUriError {
    #[error("{uri:?} is not a valid URI: {reason}")]
    Parse { uri: String, reason: String },
    #[error("{uri:?} uses scheme {scheme:?}; only http and https are supported")]
    Scheme { uri: String, scheme: String },
    #[error("{uri:?} has no host")]
    NoHost { uri: String },
}

impl CheckUri {
    pub fn new(uri: &str) -> Result<Self, CheckUriError> {
        let uri = uri.trim();
        let parsed = url::Url::parse(uri).map_err(|e| CheckUriError::Parse {
            uri: uri.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(CheckUriError::Scheme {
                uri: uri.to_string(),
                scheme: parsed.scheme().to_string(),
            });
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(CheckUriError::NoHost {
                uri: uri.to_string(),
            });
        }
        Ok(Self(parsed.as_str().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CheckUri {
    type Error = CheckUriError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<CheckUri> for String {
    fn from(u: CheckUri) -> String {
        u.0
    }
}

impl fmt::Display for CheckUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_only() {
        assert_eq!(
            CheckUri::new("https://api.balena-cloud.com/connectivity-check")
                .unwrap()
                .as_str(),
            "https://api.balena-cloud.com/connectivity-check"
        );
        assert!(CheckUri::new("http://192.0.2.1:8080/x").is_ok());
        assert!(matches!(
            CheckUri::new("ftp://192.0.2.1/"),
            Err(CheckUriError::Scheme { .. })
        ));
        assert!(matches!(
            CheckUri::new("file:///etc/passwd"),
            Err(CheckUriError::Scheme { .. })
        ));
        assert!(matches!(
            CheckUri::new("not a uri"),
            Err(CheckUriError::Parse { .. })
        ));
        assert!(CheckUri::new("http://").is_err());
    }

    #[test]
    fn internationalised_hosts_only_in_their_ascii_form() {
        // No Unicode back end for IDNA (Cargo.toml, `idna_adapter`): the xn-- form is the way.
        assert_eq!(
            CheckUri::new("https://xn--bcher-kva.test/")
                .unwrap()
                .as_str(),
            "https://xn--bcher-kva.test/"
        );
        assert!(matches!(
            CheckUri::new("https://bücher.test/"),
            Err(CheckUriError::Parse { .. })
        ));
    }

    #[test]
    fn normalised_and_encoded() {
        assert_eq!(
            CheckUri::new("http://Example.TEST/a b").unwrap().as_str(),
            "http://example.test/a%20b"
        );
    }
}
