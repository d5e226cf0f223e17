//! A line-oriented reader for NetworkManager keyfiles (GLib's GKeyFile format), keeping the line
//! of every group and key so each message can point at it.
//!
//! Why not a crate: the `config` crate's INI reader (rust-ini) and the other INI crates we
//! could find give no line numbers, and docs/semantics.md §1.2 wants `FILE:LINE` in every message. They also
//! read a slightly different dialect: GKeyFile has only `#` comments (a `;` is a list separator
//! inside values, never a comment), escapes `\s \n \t \r \\` in values, merges repeated groups
//! and lets the last repeated key win. The format is small enough that reading it exactly as
//! GLib does is less risk than adapting a generic INI parser.

use std::fmt;

/// One `key=value` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub group: String,
    /// The group as the file writes it (`group` may be renamed from an alias; see
    /// [`KeyFile::rename_group`]).
    pub written_group: String,
    pub key: String,
    /// The raw value (escapes not yet decoded), leading whitespace removed (GKeyFile keeps the
    /// trailing whitespace). Invalid UTF-8 is replaced here; see `utf8`.
    pub raw: String,
    /// False when the value's bytes are not UTF-8: GLib refuses to read such a value as a
    /// string, so NetworkManager warns and ignores the key.
    pub utf8: bool,
    pub line: usize,
}

/// GLib's reason for refusing a value as a string; the reader prints it with the key and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadValue {
    #[error("value {0:?} is not UTF-8")]
    NotUtf8(String),
    #[error("value {raw:?} has the invalid escape \\{escape}")]
    BadEscape { raw: String, escape: char },
    #[error("value {0:?} ends with an escape")]
    TrailingEscape(String),
}

impl Entry {
    /// The value as a GKeyFile string (escapes decoded leniently: unknown escapes kept).
    pub fn string(&self) -> String {
        unescape(&self.raw)
    }

    /// The value as `g_key_file_get_string` returns it, or GLib's reason for refusing it (not
    /// UTF-8, an unknown escape, a `\\` at the end).
    pub fn strict_string(&self) -> Result<String, BadValue> {
        if !self.utf8 {
            return Err(BadValue::NotUtf8(self.raw.clone()));
        }
        decode(&self.raw, true)
    }

    /// The value as a GKeyFile list: split on unescaped `;`, items unescaped (not trimmed:
    /// GLib keeps the space of `a; b`, and NetworkManager then refuses ` b`), empty items
    /// (such as the one after a trailing `;`) dropped.
    pub fn list(&self) -> Vec<String> {
        let mut items = Vec::new();
        let mut current = String::new();
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    // Keep the escape for `unescape`, except `\;`, which is a literal `;`.
                    match chars.next() {
                        Some(';') => current.push(';'),
                        Some(other) => {
                            current.push('\\');
                            current.push(other);
                        }
                        None => current.push('\\'),
                    }
                }
                ';' => items.push(std::mem::take(&mut current)),
                other => current.push(other),
            }
        }
        items.push(current);
        items
            .iter()
            .map(|s| unescape(s))
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// A `[group]` header.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Group {
    pub name: String,
    pub line: usize,
}

/// A parsed keyfile: groups and entries in file order.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct KeyFile {
    pub groups: Vec<Group>,
    pub entries: Vec<Entry>,
}

/// A line GKeyFile would refuse; GLib rejects the whole file, and so do we.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{message}")]
pub struct KeyFileError {
    pub line: usize,
    pub message: String,
}

impl KeyFile {
    /// The last `key` in `group` (GKeyFile: a repeated key overrides the earlier one).
    pub fn get(&self, group: &str, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.group == group && e.key == key)
    }

    /// The last `key` in the group as the file writes it, before any alias was resolved.
    pub fn get_as_written(&self, group: &str, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.written_group == group && e.key == key)
    }

    /// Every entry of `group`, in file order (repeated groups merged).
    pub fn entries_in<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.group == group)
    }

    /// Line of the first header of `group`, if the file has it.
    pub fn group_line(&self, group: &str) -> Option<usize> {
        self.groups.iter().find(|g| g.name == group).map(|g| g.line)
    }

    /// Renames a group (used for spellings NetworkManager treats as aliases).
    pub fn rename_group(&mut self, from: &str, to: &str) {
        for g in self.groups.iter_mut().filter(|g| g.name == from) {
            g.name = to.to_string();
        }
        for e in self.entries.iter_mut().filter(|e| e.group == from) {
            e.group = to.to_string();
        }
    }
}

/// Parses keyfile text. Fails on the first line GKeyFile would refuse.
pub fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
    parse_bytes(text.as_bytes())
}

/// GLib's `g_ascii_isspace`: what GKeyFile trims (note `\x0b`, which Rust's
/// `is_ascii_whitespace` leaves out).
fn glib_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn trim_start_glib(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !glib_space(*b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_end_glib(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !glib_space(*b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// An integer as NetworkManager reads every integer property of a keyfile
/// (`_nm_utils_ascii_str_to_int64(value, 0, …)`, i.e. `g_ascii_strtoll` with base 0): GLib
/// whitespace around it is ignored, an optional sign, then `0x`/`0X` and hexadecimal digits,
/// a leading `0` and octal digits, or decimal digits — nothing else (`08`, `0x`, `1e3`, `1 2`
/// and the empty string are not numbers). `None` also on overflow of i64; the caller checks the
/// property's range.
pub fn nm_int(text: &str) -> Option<i64> {
    let s = std::str::from_utf8(trim_end_glib(trim_start_glib(text.as_bytes()))).ok()?;
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, hex)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Parses keyfile bytes as GLib 2.74's `g_key_file_load_from_data` does: lines end at `\n`
/// (one `\r` before it dropped), leading whitespace of a line is skipped, `#` starts a comment
/// (comments may hold any bytes: a Latin-1 comment is fine), a group header may be followed by
/// spaces or tabs only, a key loses its trailing whitespace and a value its leading whitespace
/// — but not its trailing whitespace. A UTF-8 byte-order mark is not skipped: GKeyFile refuses
/// such a file, and so does NetworkManager. A value that is not UTF-8 is kept (marked) so the
/// reader can warn and ignore just that key, as NetworkManager does.
pub fn parse_bytes(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
    let mut file = KeyFile::default();
    let mut current: Option<String> = None;
    for (index, raw_line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = index + 1;
        let raw_line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let trimmed = trim_start_glib(raw_line);
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        let shown = || String::from_utf8_lossy(trim_end_glib(trimmed)).into_owned();
        if let Some(name) = group_header(trimmed) {
            if name.is_empty() || name.iter().any(|b| b.is_ascii_control()) {
                return Err(KeyFileError {
                    line,
                    message: format!("invalid group name {:?}", String::from_utf8_lossy(name)),
                });
            }
            let name = String::from_utf8_lossy(name).into_owned();
            file.groups.push(Group {
                name: name.clone(),
                line,
            });
            current = Some(name);
            continue;
        }
        let Some(eq) = trimmed.iter().position(|b| *b == b'=') else {
            return Err(KeyFileError {
                line,
                message: format!(
                    "line {:?} is not `key=value`, a `[group]` header or a `#` comment",
                    shown()
                ),
            });
        };
        let key = trim_end_glib(&trimmed[..eq]);
        if key.is_empty() {
            return Err(KeyFileError {
                line,
                message: "empty key before '='".to_string(),
            });
        }
        let key = String::from_utf8_lossy(key).into_owned();
        let Some(group) = current.clone() else {
            return Err(KeyFileError {
                line,
                message: format!("key {key:?} comes before any [group] header"),
            });
        };
        let value = trim_start_glib(&trimmed[eq + 1..]);
        let (raw, utf8) = match std::str::from_utf8(value) {
            Ok(v) => (v.to_string(), true),
            Err(_) => (String::from_utf8_lossy(value).into_owned(), false),
        };
        file.entries.push(Entry {
            written_group: group.clone(),
            group,
            key,
            raw,
            utf8,
            line,
        });
    }
    Ok(file)
}

/// The name inside `[name]` when the line is a group header (GLib: `[`, anything but `]`, `]`,
/// then only spaces or tabs).
fn group_header(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"[")?;
    let close = rest.iter().position(|b| *b == b']')?;
    rest[close + 1..]
        .iter()
        .all(|b| matches!(b, b' ' | b'\t'))
        .then_some(&rest[..close])
}

/// Decodes GKeyFile escapes (`\s \n \t \r \\`); unknown escapes are kept as written, which is
/// what NetworkManager's readers end up with for the values we use.
fn unescape(raw: &str) -> String {
    decode(raw, false).unwrap_or_else(|_| raw.to_string())
}

/// GKeyFile escapes; `strict`: an unknown escape or a trailing `\\` is an error (as in
/// `g_key_file_get_string`), otherwise it is kept as written.
fn decode(raw: &str, strict: bool) -> Result<String, BadValue> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some(other) if strict => {
                return Err(BadValue::BadEscape {
                    raw: raw.to_string(),
                    escape: other,
                })
            }
            None if strict => return Err(BadValue::TrailingEscape(raw.to_string())),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(out)
}

impl fmt::Display for KeyFile {
    /// Writes the file back in canonical form (used by the property tests to mutate valid files).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last: Option<&str> = None;
        for e in &self.entries {
            if last != Some(e.group.as_str()) {
                writeln!(f, "[{}]", e.group)?;
                last = Some(e.group.as_str());
            }
            writeln!(f, "{}={}", e.key, e.raw)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_groups_keys_and_lines() {
        let kf =
            parse("# c\n[connection]\nid = Wired \ntype=ethernet\n\n[ipv4]\ndns=192.0.2.1;x;;\n")
                .unwrap();
        // GKeyFile keeps a value's trailing whitespace.
        assert_eq!(kf.get("connection", "id").unwrap().string(), "Wired ");
        assert_eq!(kf.get("connection", "type").unwrap().line, 4);
        assert_eq!(
            kf.get("ipv4", "dns").unwrap().list(),
            vec!["192.0.2.1", "x"]
        );
        assert_eq!(kf.group_line("ipv4"), Some(6));
    }

    #[test]
    fn semicolons_are_not_comments_and_last_key_wins() {
        let kf = parse("[a]\nk=1;2\nk=3\n").unwrap();
        assert_eq!(kf.get("a", "k").unwrap().raw, "3");
        let kf = parse("[a]\nk=x\\;y;z\\s\n").unwrap();
        assert_eq!(kf.get("a", "k").unwrap().list(), vec!["x;y", "z "]);
    }

    #[test]
    fn refuses_what_gkeyfile_refuses_with_the_line() {
        assert_eq!(parse("k=v\n").unwrap_err().line, 1);
        assert_eq!(parse("[a]\n\njunk\n").unwrap_err().line, 3);
        assert_eq!(parse("[a\n").unwrap_err().line, 1);
        assert_eq!(parse("[a]\n=v\n").unwrap_err().line, 2);
    }

    #[test]
    fn strict_strings_refuse_bad_escapes_as_glib_does() {
        let kf = parse("[a]\nok=x\\sy\nbad=x\\qy\nend=x\\\n").unwrap();
        assert_eq!(kf.get("a", "ok").unwrap().strict_string(), Ok("x y".into()));
        assert_eq!(
            kf.get("a", "bad").unwrap().strict_string(),
            Err(BadValue::BadEscape {
                raw: "x\\qy".into(),
                escape: 'q'
            })
        );
        assert_eq!(
            kf.get("a", "end").unwrap().strict_string(),
            Err(BadValue::TrailingEscape("x\\".into()))
        );
        // The lenient reading keeps what it cannot decode.
        assert_eq!(kf.get("a", "bad").unwrap().string(), "x\\qy");
    }

    #[test]
    fn integers_as_networkmanager_reads_them() {
        // Each pair checked against libnm 1.42 (route-metric, autoconnect-priority, vlan.id).
        for (text, want) in [
            ("40", Some(40)),
            (" 7", Some(7)),
            ("7 ", Some(7)),
            ("+5", Some(5)),
            ("-1", Some(-1)),
            ("-0", Some(0)),
            ("0x10", Some(16)),
            ("0X10", Some(16)),
            (" +0x10", Some(16)),
            ("-0x5", Some(-5)),
            ("010", Some(8)),
            ("00", Some(0)),
            ("0xffffffff", Some(4_294_967_295)),
            ("08", None),
            ("0x", None),
            ("0x1_0", None),
            ("1e3", None),
            ("1 2", None),
            ("", None),
            ("+", None),
            ("99999999999999999999", None),
        ] {
            assert_eq!(nm_int(text), want, "{text:?}");
        }
    }

    #[test]
    fn crlf_and_bom() {
        let kf = parse("[a]\r\nk=v\r\n").unwrap();
        assert_eq!(kf.get("a", "k").unwrap().raw, "v");
        // GKeyFile does not skip a byte-order mark: NetworkManager refuses such a file.
        assert_eq!(parse("\u{feff}[a]\nk=v\n").unwrap_err().line, 1);
    }
}
