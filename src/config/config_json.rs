//! balenaOS `config.json`: `apiEndpoint`, `os.network.connectivity.{uri, interval, response}`
//! and `dnsServers` (docs/semantics.md §1.1). Read with serde_json directly, not through the `config` crate,
//! so a malformed file is reported with its line and column. Unknown keys are ignored (the file
//! belongs to balenaOS and holds much more). A bad value is an error and its default is used; a
//! malformed file is an error and every default is used, so the uplinks stay managed.

use std::path::Path;
use std::time::Duration;

use netfailover_actors::model::DnsConfig;
use serde_json::Value;

use super::dns::apply_dns_servers;
use super::last_good::Versions;
use super::problems::{line_of_offset, Problem};
use super::settings::MAX_DURATION;
use super::uri::CheckUri;
use super::{read_text, Origin, ReadError};

pub const DEFAULT_API_ENDPOINT: &str = "https://api.balena-cloud.com";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

/// What config.json contributes, with where each value came from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JsonSettings {
    pub uri: CheckUri,
    pub uri_origin: Origin,
    pub response: String,
    pub interval: Duration,
    pub interval_origin: Origin,
    pub dns: DnsConfig,
    pub dns_origin: Origin,
    /// `os.network.connectivity.uri` is `"null"`: balenaOS's way to turn checks off (the
    /// interval is then 0).
    pub uri_disabled: bool,
}

/// Reads `path`; a missing file means "all defaults" (a plain Linux host has none). A file
/// with an error is read from its last good version in `versions` when there is one (a reload).
pub fn read(path: &Path, versions: &mut Versions, problems: &mut Vec<Problem>) -> JsonSettings {
    let read = match read_text(path) {
        Ok(text) => Ok(text.into_bytes()),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(b"{}".to_vec()),
        Err(e) => Err(Problem::error(
            path,
            e.line(),
            format!("{e}; using defaults"),
        )),
    };
    versions.parse(path, read, problems, |bytes, problems| {
        // Recorded versions are text `read_text` accepted, so they are UTF-8.
        let text = bytes.and_then(|b| std::str::from_utf8(b).ok());
        parse(text.unwrap_or("{}"), path, problems)
    })
}

/// Parses config.json text. Problems come in the order of the keys below (the document, then
/// `apiEndpoint`, `os.network.connectivity` and its `uri`, `interval`, `response`, then
/// `dnsServers`).
pub fn parse(text: &str, path: &Path, problems: &mut Vec<Problem>) -> JsonSettings {
    // balenaOS's own tooling reads a config.json that starts with a UTF-8 byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let doc = Doc {
        root: parse_root(text, path, problems),
        text,
        path,
    };
    let endpoint = parse_endpoint(&doc, problems);
    check_connectivity_object(&doc, problems);
    let (uri, uri_origin, uri_disabled) = parse_uri(&doc, &endpoint, problems);
    let (interval, interval_origin) = if uri_disabled {
        // Still read, so a bad value is reported even though checks are off.
        parse_interval_key(&doc, problems);
        (Duration::ZERO, doc.file_origin())
    } else {
        parse_interval_key(&doc, problems)
    };
    let response = parse_response(&doc, problems);
    let (dns, dns_origin) = parse_dns(&doc, problems);
    JsonSettings {
        uri,
        uri_origin,
        response,
        interval,
        interval_origin,
        dns,
        dns_origin,
        uri_disabled,
    }
}

/// The parsed document, with what each key group needs to report a problem at its line.
struct Doc<'a> {
    /// `Value::Null` when the file is malformed or not an object (every key then defaults).
    root: Value,
    text: &'a str,
    path: &'a Path,
}

impl Doc<'_> {
    /// The value at a JSON pointer; a JSON `null` counts as absent.
    fn field(&self, pointer: &str) -> Option<&Value> {
        self.root.pointer(pointer).filter(|v| !v.is_null())
    }

    /// `os.network.connectivity.KEY`; a JSON `null` counts as absent.
    fn sub(&self, key: &str) -> Option<&Value> {
        self.field("/os/network/connectivity")
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null())
    }

    /// An error pointing at the first line naming `key`.
    fn error(&self, key: &str, message: impl Into<String>) -> Problem {
        Problem::error(self.path, line_of_key(self.text, key), message)
    }

    fn file_origin(&self) -> Origin {
        Origin::File(self.path.to_path_buf())
    }
}

/// The document's root object; `Value::Null` (all defaults) with an error when it is malformed
/// or not an object.
fn parse_root(text: &str, path: &Path, problems: &mut Vec<Problem>) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => {
            problems.push(Problem::error(
                path,
                Some(1),
                "top level is not a JSON object; using defaults",
            ));
            Value::Null
        }
        Err(e) => {
            problems.push(Problem::error(
                path,
                Some(e.line()),
                format!(
                    "malformed JSON (column {}): {}; using defaults",
                    e.column(),
                    without_position(&e)
                ),
            ));
            Value::Null
        }
    }
}

/// `apiEndpoint`, trimmed, or the default.
fn parse_endpoint(doc: &Doc, problems: &mut Vec<Problem>) -> String {
    let mut endpoint = DEFAULT_API_ENDPOINT.to_string();
    if let Some(v) = doc.field("/apiEndpoint") {
        match v.as_str().map(CheckUri::new) {
            Some(Ok(_)) => endpoint = v.as_str().unwrap_or_default().trim().to_string(),
            Some(Err(e)) => problems.push(doc.error(
                "apiEndpoint",
                format!("apiEndpoint: {e}; using {DEFAULT_API_ENDPOINT}"),
            )),
            None => problems.push(doc.error(
                "apiEndpoint",
                format!("apiEndpoint must be a string; using {DEFAULT_API_ENDPOINT}"),
            )),
        }
    }
    endpoint
}

/// `os.network.connectivity` must be an object (its keys are then read by [`Doc::sub`]).
fn check_connectivity_object(doc: &Doc, problems: &mut Vec<Problem>) {
    if let Some(c) = doc
        .field("/os/network/connectivity")
        .filter(|c| !c.is_object())
    {
        problems.push(doc.error(
            "connectivity",
            format!("os.network.connectivity must be an object, not {}", kind(c)),
        ));
    }
}

/// `os.network.connectivity.uri`: (URI, origin, checks turned off by `"null"`). Without it the
/// URI derives from `endpoint`, and comes from the file when `apiEndpoint` is set there.
fn parse_uri(doc: &Doc, endpoint: &str, problems: &mut Vec<Problem>) -> (CheckUri, Origin, bool) {
    let uri = format!("{}/connectivity-check", endpoint.trim_end_matches('/'));
    // An endpoint that passed CheckUri with a path appended still parses; the fallback
    // covers the impossible case without a panic.
    let default = CheckUri::new(&uri).unwrap_or_else(|_| default_check_uri());
    let disabled = doc.sub("uri").and_then(Value::as_str) == Some("null");
    if disabled {
        return (default, doc.file_origin(), true);
    }
    let Some(v) = doc.sub("uri") else {
        let origin = match doc.field("/apiEndpoint") {
            Some(_) => doc.file_origin(),
            None => Origin::Default,
        };
        return (default, origin, false);
    };
    match v.as_str().map(CheckUri::new) {
        Some(Ok(u)) => return (u, doc.file_origin(), false),
        Some(Err(e)) => problems.push(doc.error(
            "uri",
            format!("os.network.connectivity.uri: {e}; using {default}"),
        )),
        None => problems.push(doc.error(
            "uri",
            format!("os.network.connectivity.uri must be a string; using {default}"),
        )),
    }
    (default, Origin::Default, false)
}

/// `os.network.connectivity.interval`, or the default.
fn parse_interval_key(doc: &Doc, problems: &mut Vec<Problem>) -> (Duration, Origin) {
    let Some(v) = doc.sub("interval") else {
        return (DEFAULT_INTERVAL, Origin::Default);
    };
    match parse_interval(v).filter(|secs| *secs <= MAX_DURATION.as_secs()) {
        Some(secs) => (Duration::from_secs(secs), doc.file_origin()),
        None => {
            problems.push(doc.error(
                "interval",
                format!(
                    "os.network.connectivity.interval {v} is not a whole number of seconds up to {} (30 days); using {}",
                    MAX_DURATION.as_secs(),
                    DEFAULT_INTERVAL.as_secs()
                ),
            ));
            (DEFAULT_INTERVAL, Origin::Default)
        }
    }
}

/// `os.network.connectivity.response`, or empty.
fn parse_response(doc: &Doc, problems: &mut Vec<Problem>) -> String {
    match doc.sub("response").map(Value::as_str) {
        None => String::new(),
        Some(Some(s)) => s.to_string(),
        Some(None) => {
            problems.push(doc.error(
                "response",
                "os.network.connectivity.response must be a string; expecting 204 or an empty body",
            ));
            String::new()
        }
    }
}

/// `dnsServers`, applied over the default DNS settings.
fn parse_dns(doc: &Doc, problems: &mut Vec<Problem>) -> (DnsConfig, Origin) {
    let mut dns = DnsConfig::default();
    let mut dns_origin = Origin::Default;
    let dns_value = match doc.field("/dnsServers") {
        Some(Value::String(s)) => {
            dns_origin = doc.file_origin();
            Some(s.as_str())
        }
        Some(other) => {
            problems.push(doc.error(
                "dnsServers",
                format!(
                    "dnsServers must be a string, not {}; using 8.8.8.8",
                    kind(other)
                ),
            ));
            None
        }
        None => None,
    };
    let line = line_of_key(doc.text, "dnsServers");
    apply_dns_servers(dns_value, &mut dns, doc.path, line, problems);
    (dns, dns_origin)
}

/// The check URI balenaOS uses when config.json says nothing.
pub fn default_check_uri() -> CheckUri {
    // A constant that passes CheckUri's rules (tested below).
    CheckUri::new(&format!("{DEFAULT_API_ENDPOINT}/connectivity-check"))
        .expect("the default check URI is valid")
}

/// `interval` as balenaOS writes it: a number or a string of digits, in seconds.
fn parse_interval(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message without its " at line L column C" tail (we print those ourselves).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&tail).unwrap_or(&text).to_string()
}

/// Line of the first `"key"` in the text: good enough to point a person at a bad value.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.find(&format!("\"{key}\""))
        .map(|offset| line_of_offset(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn parse_ok(text: &str) -> JsonSettings {
        let mut problems = Vec::new();
        let s = parse(text, Path::new("config.json"), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        s
    }

    fn parse_problems(text: &str) -> (JsonSettings, Vec<String>) {
        let mut problems = Vec::new();
        let s = parse(text, Path::new("config.json"), &mut problems);
        (s, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn defaults() {
        let s = parse_ok("{}");
        assert_eq!(s.uri, default_check_uri());
        assert_eq!(
            s.uri.as_str(),
            "https://api.balena-cloud.com/connectivity-check"
        );
        assert_eq!(s.interval, Duration::from_secs(3600));
        assert_eq!(s.response, "");
        assert_eq!(
            s.dns.global,
            vec!["8.8.8.8:53".parse::<SocketAddr>().unwrap()]
        );
    }

    #[test]
    fn api_endpoint_sets_the_default_uri() {
        let s = parse_ok(r#"{"apiEndpoint": "https://api.example.test/"}"#);
        assert_eq!(
            s.uri.as_str(),
            "https://api.example.test/connectivity-check"
        );
    }

    #[test]
    fn interval_string_or_number() {
        let j = |v: &str| {
            parse_ok(&format!(
                r#"{{"os": {{"network": {{"connectivity": {{"interval": {v}}}}}}}}}"#
            ))
            .interval
        };
        assert_eq!(j("60"), Duration::from_secs(60));
        assert_eq!(j("\"300\""), Duration::from_secs(300));
        assert_eq!(j("0"), Duration::ZERO);
        assert_eq!(j("2592000"), Duration::from_secs(2_592_000));
        let (s, problems) = parse_problems(
            r#"{"os": {"network": {"connectivity": {"interval": 99999999999999}}}}"#,
        );
        assert_eq!(s.interval, DEFAULT_INTERVAL, "{problems:?}");
    }

    #[test]
    fn bad_values_fall_back_with_errors() {
        let text = "{\n \"os\": {\"network\": {\"connectivity\": {\n  \"uri\": \"ftp://192.0.2.1/\",\n  \"interval\": \"soon\"\n }}}\n}";
        let (s, problems) = parse_problems(text);
        assert_eq!(s.uri, default_check_uri());
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("config.json:3: error: os.network.connectivity.uri: \"ftp://192.0.2.1/\" uses scheme \"ftp\""));
        assert!(problems[1]
            .starts_with("config.json:4: error: os.network.connectivity.interval \"soon\""));
    }

    #[test]
    fn uri_null_disables_checks_and_a_bom_is_accepted() {
        let s = parse_ok("\u{feff}{\"os\": {\"network\": {\"connectivity\": {\"uri\": \"null\", \"interval\": 60}}}}");
        assert!(s.uri_disabled);
        assert_eq!(s.interval, Duration::ZERO);
    }

    #[test]
    fn malformed_json_has_line_and_column() {
        let (s, problems) = parse_problems("{\n  \"apiEndpoint\": \"x\",\n  oops\n}");
        assert_eq!(s.uri, default_check_uri());
        assert_eq!(
            problems,
            vec!["config.json:3: error: malformed JSON (column 3): key must be a string; using defaults"]
        );
    }
}
