//! Reading the sections of `netfailover.toml` key by key: the file is parsed once into a table
//! that keeps every key's position (`toml::de::DeTable`, whose keys and values are
//! `toml::Spanned`), the `NETFAILOVER_<SECTION>__<KEY>` variables are laid over it, and then each
//! section is deserialized with serde. A key that serde cannot read, or that its section's
//! `validate` rejects, is taken out of the table so that it takes its default while every other
//! key keeps its value; unknown keys are found by `serde_ignored`. Each problem names the key's
//! `FILE:LINE` (or the environment variable).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, Deserializer};
use toml::Spanned;

use super::sections::{Context, Section};
use super::values::{field_names, Invalid};
use super::ENV_PREFIX;
use crate::config::problems::{line_of_offset, Problem};
use crate::config::Origin;

/// One key as `check-config` shows it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Dotted key (`check.down_count`, `state_dir`).
    pub key: String,
    /// The effective value, as a person writes it (`1s 500ms`, `keep`, `none`).
    pub value: String,
    pub origin: Origin,
}

/// The file and environment, merged, with what is needed to point at each key.
pub struct Reader<'a> {
    root: DeTable<'a>,
    text: &'a str,
    file: PathBuf,
    /// Dotted key → the variable that set it.
    env_keys: BTreeMap<String, String>,
    /// Every section name, so the top-level section does not take the tables for unknown keys.
    sections: &'a [&'a str],
    pub ctx: Context,
    pub entries: Vec<Entry>,
    /// One error per rejected key (it took its default).
    pub rejected: Vec<Problem>,
    /// Dotted key → where its rejected value was written (`netfailover.toml:3`).
    rejected_at: BTreeMap<String, String>,
    pub warnings: Vec<Problem>,
}

impl<'a> Reader<'a> {
    /// `root` is the parsed file (empty when there is none); `env` the process environment.
    pub fn new(
        mut root: DeTable<'a>,
        text: &'a str,
        file: PathBuf,
        env: &'a BTreeMap<String, String>,
        sections: &'a [&'a str],
        ctx: Context,
    ) -> Self {
        let env_keys = overlay_env(&mut root, env);
        Self {
            root,
            text,
            file,
            env_keys,
            sections,
            ctx,
            entries: Vec::new(),
            rejected: Vec::new(),
            rejected_at: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// Reads section `S`: every readable, valid key keeps its value, the others their default.
    pub fn section<S: Section>(&mut self) -> S {
        let mut table = self.table_of(S::NAME);
        // Each key alone first: serde stops at the first bad field, and we want them all.
        let keys: Vec<String> = table.keys().map(|k| k.get_ref().to_string()).collect();
        for key in keys {
            let Some((k, v)) = table.remove_entry(key.as_str()) else {
                continue;
            };
            let mut single = DeTable::new();
            single.insert(k.clone(), v.clone());
            match deserialize::<S>(single, &mut |_| {}) {
                Ok(_) => {
                    table.insert(k, v);
                }
                Err(e) => self.reject(S::NAME, &key, Invalid::Type(e)),
            }
        }
        let mut unknown = Vec::new();
        let mut section =
            deserialize::<S>(table.clone(), &mut |path| unknown.push(path.to_string()))
                .unwrap_or_else(|e| {
                    // Unreachable in practice (every key read alone); never worse than defaults.
                    self.reject(S::NAME, "", Invalid::Type(e));
                    S::default()
                });
        for path in unknown {
            self.unknown(S::NAME, &path);
        }
        let invalid = section.validate(&self.ctx);
        if !invalid.is_empty() {
            for (key, why) in invalid {
                table.remove(key);
                self.reject(S::NAME, key, why);
            }
            section = deserialize::<S>(table.clone(), &mut |_| {}).unwrap_or_default();
        }
        self.record(&section, &table);
        section
    }

    /// The section's table from the merged file and environment.
    fn table_of(&mut self, name: &str) -> DeTable<'a> {
        if name.is_empty() {
            return self
                .root
                .iter()
                .filter(|(k, _)| !self.sections.contains(&k.get_ref().as_ref()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        }
        match self.root.get(name).map(Spanned::get_ref) {
            Some(DeValue::Table(t)) => t.clone(),
            Some(_) => {
                self.reject(name, "", Invalid::NotATable(name.to_string()));
                DeTable::new()
            }
            None => DeTable::new(),
        }
    }

    /// Records the effective values of `section` and where each came from.
    fn record<S: Section>(&mut self, section: &S, table: &DeTable<'_>) {
        let written = toml::Table::try_from(section).unwrap_or_default();
        for field in field_names::<S>() {
            let key = dotted(S::NAME, field);
            let value = match written.get(*field) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "none".to_string(),
            };
            let origin = if let Some(at) = self.rejected_at.get(&key) {
                Origin::Rejected(at.clone())
            } else if let Some(var) = self.env_keys.get(&key) {
                Origin::Env(var.clone())
            } else if table.contains_key(*field) {
                Origin::File(self.file.clone())
            } else {
                Origin::Default
            };
            self.entries.push(Entry { key, value, origin });
        }
    }

    fn reject(&mut self, section: &str, key: &str, invalid: Invalid) {
        let key = if key.is_empty() {
            section.to_string()
        } else {
            dotted(section, key)
        };
        let (file, line, prefix) = self.locate(&key);
        let at = match (self.env_keys.get(&key), line) {
            (Some(var), _) => var.clone(),
            (None, Some(line)) => format!("{}:{line}", file.display()),
            (None, None) => file.display().to_string(),
        };
        self.rejected_at.insert(key.clone(), at);
        self.rejected.push(Problem::error(
            &file,
            line,
            format!("{prefix}{key}: {invalid}"),
        ));
    }

    /// A key serde ignored in `section` (`path` is relative to it): one warning per leaf, so an
    /// unknown table names the keys under it.
    fn unknown(&mut self, section: &str, path: &str) {
        let key = dotted(section, path);
        let mut leaves = Vec::new();
        match lookup(&self.root, &key) {
            Some(DeValue::Table(t)) => leaf_keys(&key, t, &mut leaves),
            _ => leaves.push(key),
        }
        for key in leaves {
            let (file, line, prefix) = self.locate(&key);
            let hint = if self.env_keys.contains_key(&key)
                && key.contains('_')
                && !key.contains('.')
            {
                " (separate section and key with a double underscore: NETFAILOVER_CHECK__DOWN_COUNT)"
            } else {
                ""
            };
            self.warnings.push(Problem::warning(
                &file,
                line,
                format!("{prefix}unknown setting {key:?} ignored{hint}"),
            ));
        }
    }

    /// Where a dotted key was written: the file and its line, or the variable.
    pub fn locate(&self, key: &str) -> (PathBuf, Option<usize>, String) {
        if let Some(var) = self.env_keys.get(key) {
            return (PathBuf::from("environment"), None, format!("{var}: "));
        }
        let line = key_span(&self.root, key).map(|s| line_of_offset(self.text, s.start));
        (self.file.clone(), line, String::new())
    }
}

/// Deserializes `S` from one section's table, telling `ignored` about unknown keys.
fn deserialize<S: DeserializeOwned>(
    table: DeTable<'_>,
    ignored: &mut dyn FnMut(serde_ignored::Path<'_>),
) -> Result<S, toml::de::Error> {
    serde_ignored::deserialize(Deserializer::from(Spanned::new(0..0, table)), ignored)
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

/// The value at a dotted key.
fn lookup<'t, 'i>(root: &'t DeTable<'i>, key: &str) -> Option<&'t DeValue<'i>> {
    let mut table = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let value = table.get(part)?.get_ref();
        if parts.peek().is_none() {
            return Some(value);
        }
        match value {
            DeValue::Table(t) => table = t,
            _ => return None,
        }
    }
    None
}

/// The span of a dotted key's name in the file.
fn key_span(root: &DeTable<'_>, key: &str) -> Option<std::ops::Range<usize>> {
    let (parent, last) = match key.rsplit_once('.') {
        Some((parent, last)) => match lookup(root, parent)? {
            DeValue::Table(t) => (t, last),
            _ => return None,
        },
        None => (root, key),
    };
    parent.get_key_value(last).map(|(k, _)| k.span())
}

fn leaf_keys(prefix: &str, table: &DeTable<'_>, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = format!("{prefix}.{}", k.get_ref());
        match v.get_ref() {
            DeValue::Table(t) => leaf_keys(&key, t, out),
            _ => out.push(key),
        }
    }
}

/// Lays `NETFAILOVER_<SECTION>__<KEY>` variables (prefix in any case) over `root`; returns
/// dotted key → variable. A value is read as a TOML value when it is one (`5`, `false`) and as a
/// string otherwise (`2m`, `/run/x`, `keep`).
fn overlay_env<'a>(
    root: &mut DeTable<'a>,
    env: &'a BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let prefix = format!("{ENV_PREFIX}_").to_lowercase();
    let mut keys = BTreeMap::new();
    for (var, raw) in env {
        let lower = var.to_lowercase();
        let Some(rest) = lower.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split("__").collect();
        let value = match DeValue::parse(raw) {
            Ok(v) => v.into_inner(),
            Err(_) => DeValue::String(Cow::Borrowed(raw.as_str())),
        };
        insert(root, &parts, value);
        keys.insert(parts.join("."), var.clone());
    }
    keys
}

/// Sets `parts` (a path of keys) to `value`, making tables on the way (a non-table in the way
/// is replaced: the variable wins).
fn insert<'a>(table: &mut DeTable<'a>, parts: &[&str], value: DeValue<'a>) {
    let Some((first, rest)) = parts.split_first() else {
        return;
    };
    let key = Spanned::new(0..0, Cow::Owned(first.to_string()));
    if rest.is_empty() {
        table.insert(key, Spanned::new(0..0, value));
        return;
    }
    let entry = table
        .entry(key)
        .or_insert_with(|| Spanned::new(0..0, DeValue::Table(DeTable::new())));
    if !matches!(entry.get_ref(), DeValue::Table(_)) {
        *entry = Spanned::new(0..0, DeValue::Table(DeTable::new()));
    }
    if let DeValue::Table(t) = entry.get_mut() {
        insert(t, rest, value);
    }
}

/// Parses the settings file into its table; `Err` is a problem pointing at the syntax error.
pub fn parse<'a>(text: &'a str, file: &Path) -> Result<DeTable<'a>, Problem> {
    DeTable::parse(text).map(Spanned::into_inner).map_err(|e| {
        let line = e.span().map(|s| line_of_offset(text, s.start));
        Problem::error(
            file,
            line,
            format!(
                "malformed TOML: {}; the whole file is ignored (every setting takes its default)",
                e.message().trim()
            ),
        )
    })
}
