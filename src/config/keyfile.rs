//! A line-oriented reader for NetworkManager keyfiles (GLib's GKeyFile format), keeping the line
//! of every group and key so each message can point at it.
//!
//! Why not a crate: the `config` crate's INI reader (rust-ini) and the other INI crates we
//! could find give no line numbers, and SPEC §1.2 wants `FILE:LINE` in every message. They also
//! read a slightly different dialect: GKeyFile has only `#` comments (a `;` is a list separator
//! inside values, never a comment), escapes `\s \n \t \r \\` in values, merges repeated groups
//! and lets the last repeated key win. The format is small enough that reading it exactly as
//! GLib does is less risk than adapting a generic INI parser.

use std::fmt;

/// One `key=value` line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub group: String,
    pub key: String,
    /// The raw value (escapes not yet decoded), leading and trailing whitespace removed.
    pub raw: String,
    pub line: usize,
}

impl Entry {
    /// The value as a GKeyFile string (escapes decoded).
    pub fn string(&self) -> String {
        unescape(&self.raw)
    }

    /// The value as a GKeyFile list: split on unescaped `;`, items unescaped, empty items (such
    /// as the one after a trailing `;`) dropped.
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
            .map(|s| unescape(s.trim()))
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
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut file = KeyFile::default();
    let mut current: Option<String> = None;
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = index + 1;
        let trimmed = raw_line.trim_end_matches('\r').trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| KeyFileError {
                line,
                message: format!("group header {trimmed:?} has no closing ']'"),
            })?;
            if name.is_empty() || name.contains(['[', ']']) || name.chars().any(char::is_control) {
                return Err(KeyFileError {
                    line,
                    message: format!("invalid group name {name:?}"),
                });
            }
            file.groups.push(Group {
                name: name.to_string(),
                line,
            });
            current = Some(name.to_string());
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(KeyFileError {
                line,
                message: format!(
                    "line {trimmed:?} is not `key=value`, a `[group]` header or a `#` comment"
                ),
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(KeyFileError {
                line,
                message: "empty key before '='".to_string(),
            });
        }
        let Some(group) = current.clone() else {
            return Err(KeyFileError {
                line,
                message: format!("key {key:?} comes before any [group] header"),
            });
        };
        file.entries.push(Entry {
            group,
            key: key.to_string(),
            raw: value.trim().to_string(),
            line,
        });
    }
    Ok(file)
}

/// Decodes GKeyFile escapes (`\s \n \t \r \\`); unknown escapes are kept as written, which is
/// what NetworkManager's readers end up with for the values we use.
fn unescape(raw: &str) -> String {
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
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
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
        assert_eq!(kf.get("connection", "id").unwrap().string(), "Wired");
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
    fn crlf_and_bom() {
        let kf = parse("\u{feff}[a]\r\nk=v\r\n").unwrap();
        assert_eq!(kf.get("a", "k").unwrap().raw, "v");
    }
}
