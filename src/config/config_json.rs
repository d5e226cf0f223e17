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

/// Reads `path`; a missing file means "all defaults" (a plain Linux host has none).
pub fn read(path: &Path, problems: &mut Vec<Problem>) -> JsonSettings {
    match read_text(path) {
        Ok(text) => parse(&text, path, problems),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            parse("{}", path, problems)
        }
        Err(e) => {
            problems.push(Problem::error(
                path,
                e.line(),
                format!("{e}; using defaults"),
            ));
            parse("{}", path, problems)
        }
    }
}

/// Parses config.json text.
pub fn parse(text: &str, path: &Path, problems: &mut Vec<Problem>) -> JsonSettings {
    // balenaOS's own tooling reads a config.json that starts with a UTF-8 byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = match serde_json::from_str::<Value>(text) {
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
    };
    let field = |pointer: &str| root.pointer(pointer).filter(|v| !v.is_null());
    let line = |key: &str| line_of_key(text, key);
    let from_file = Origin::File(path.to_path_buf());

    let mut endpoint = DEFAULT_API_ENDPOINT.to_string();
    if let Some(v) = field("/apiEndpoint") {
        match v.as_str().map(CheckUri::new) {
            Some(Ok(_)) => endpoint = v.as_str().unwrap_or_default().trim().to_string(),
            Some(Err(e)) => problems.push(Problem::error(
                path,
                line("apiEndpoint"),
                format!("apiEndpoint: {e}; using {DEFAULT_API_ENDPOINT}"),
            )),
            None => problems.push(Problem::error(
                path,
                line("apiEndpoint"),
                format!("apiEndpoint must be a string; using {DEFAULT_API_ENDPOINT}"),
            )),
        }
    }
    let default_uri = || {
        let uri = format!("{}/connectivity-check", endpoint.trim_end_matches('/'));
        // An endpoint that passed CheckUri with a path appended still parses; the fallback
        // covers the impossible case without a panic.
        CheckUri::new(&uri).unwrap_or_else(|_| default_check_uri())
    };
    let connectivity = field("/os/network/connectivity");
    if let Some(c) = connectivity.filter(|c| !c.is_object()) {
        problems.push(Problem::error(
            path,
            line("connectivity"),
            format!("os.network.connectivity must be an object, not {}", kind(c)),
        ));
    }
    let sub = |key: &str| {
        connectivity
            .and_then(|c| c.get(key))
            .filter(|v| !v.is_null())
    };

    let (mut uri, mut uri_origin) = (default_uri(), Origin::Default);
    let uri_disabled = sub("uri").and_then(Value::as_str) == Some("null");
    if uri_disabled {
        uri_origin = from_file.clone();
    } else if let Some(v) = sub("uri") {
        match v.as_str().map(CheckUri::new) {
            Some(Ok(u)) => (uri, uri_origin) = (u, from_file.clone()),
            Some(Err(e)) => problems.push(Problem::error(
                path,
                line("uri"),
                format!("os.network.connectivity.uri: {e}; using {uri}"),
            )),
            None => problems.push(Problem::error(
                path,
                line("uri"),
                format!("os.network.connectivity.uri must be a string; using {uri}"),
            )),
        }
    } else if field("/apiEndpoint").is_some() {
        uri_origin = from_file.clone();
    }

    let (mut interval, mut interval_origin) = (DEFAULT_INTERVAL, Origin::Default);
    if let Some(v) = sub("interval") {
        match parse_interval(v).filter(|secs| *secs <= MAX_DURATION.as_secs()) {
            Some(secs) => {
                (interval, interval_origin) = (Duration::from_secs(secs), from_file.clone())
            }
            None => problems.push(Problem::error(
                path,
                line("interval"),
                format!(
                    "os.network.connectivity.interval {v} is not a whole number of seconds up to {} (30 days); using {}",
                    MAX_DURATION.as_secs(),
                    DEFAULT_INTERVAL.as_secs()
                ),
            )),
        }
    }

    if uri_disabled {
        (interval, interval_origin) = (Duration::ZERO, from_file.clone());
    }

    let mut response = String::new();
    if let Some(v) = sub("response") {
        match v.as_str() {
            Some(s) => response = s.to_string(),
            None => problems.push(Problem::error(
                path,
                line("response"),
                "os.network.connectivity.response must be a string; expecting 204 or an empty body",
            )),
        }
    }

    let mut dns = DnsConfig::default();
    let mut dns_origin = Origin::Default;
    let dns_value = match field("/dnsServers") {
        Some(Value::String(s)) => {
            dns_origin = from_file.clone();
            Some(s.as_str())
        }
        Some(other) => {
            problems.push(Problem::error(
                path,
                line("dnsServers"),
                format!(
                    "dnsServers must be a string, not {}; using 8.8.8.8",
                    kind(other)
                ),
            ));
            None
        }
        None => None,
    };
    apply_dns_servers(dns_value, &mut dns, path, line("dnsServers"), problems);

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
