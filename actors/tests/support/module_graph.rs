//! The workspace's one import checker: reads a crate's `src` directory from its root file
//! (`lib.rs` or `main.rs`) and tells whether its modules form one-way layers (a DAG).
//!
//! Shared by `#[path]` from each crate's own test (`actors/tests/imports.rs`,
//! `tests/it/imports.rs`, `tests/lab/tests/imports.rs`) rather than living in a crate: it needs
//! only `std`, and a crate of its own, or the lab, would be a dev-dependency of the engine that
//! itself depends on the engine.
//!
//! The rule, at every level of the tree: the children of one module (the crate root's top-level
//! modules, `config`'s files, `os`'s adapters, …) import each other without a circle, each child
//! counting with everything below it. A child naming its own ancestors (`super::Profile`, the
//! parent's types) or its own descendants is containment, not an edge between siblings.
//!
//! Read from the source text, not the compiler: comments, strings and char literals are blanked
//! first; then every `crate::`, `super::` and `self::` path (including `use …::{a, b::{C}}`
//! groups, over several lines) is resolved to the deepest module it names, following `pub use`
//! re-exports of the module it lands in. Which files make up a module follows the compiler: the
//! `mod x;` lines of the root file and of each module file, so `main.rs` and `lib.rs` in one
//! directory are two crates with separate trees.

#![allow(dead_code)] // Each crate's test uses its own part of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root, e.g. `["config", "report"]`; the root is `[]`.
pub type ModPath = Vec<String>;

/// One crate's modules as read from its files.
#[derive(Debug, Default)]
pub struct Crate {
    /// Module → the modules its file's code names (resolved, deepest module first found).
    refs: BTreeMap<ModPath, BTreeSet<ModPath>>,
    /// Module → the child modules it declares with `mod x;`.
    children: BTreeMap<ModPath, Vec<String>>,
    /// Module → name it re-exports with `pub use` → the path the name comes from (unresolved).
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Module → its file.
    files: BTreeMap<ModPath, PathBuf>,
}

/// Reads the crate whose root file is `src/<root_file>` and every module file it declares.
pub fn load(src: &Path, root_file: &str) -> Result<Crate, String> {
    let mut texts: BTreeMap<ModPath, String> = BTreeMap::new();
    let mut files: BTreeMap<ModPath, PathBuf> = BTreeMap::new();
    let mut children: BTreeMap<ModPath, Vec<String>> = BTreeMap::new();
    // (module, its file, the directory its children live in)
    let mut stack = vec![(Vec::new(), src.join(root_file), src.to_path_buf())];
    while let Some((module, file, dir)) = stack.pop() {
        if texts.len() > 2000 {
            return Err(format!(
                "more than 2000 module files under {}",
                src.display()
            ));
        }
        let source = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        let code = blank_literals(&source);
        let declared = declared_modules(&code);
        for name in &declared {
            let (child_file, child_dir) = child_location(&dir, name)?;
            let mut path = module.clone();
            path.push(name.clone());
            stack.push((path, child_file, child_dir));
        }
        children.insert(module.clone(), declared);
        files.insert(module.clone(), file);
        texts.insert(module, code);
    }
    let mut krate = Crate {
        children,
        files,
        ..Crate::default()
    };
    for (module, code) in &texts {
        let reexports = reexports(module, code, &krate.children);
        krate.reexports.insert(module.clone(), reexports);
    }
    for (module, code) in &texts {
        let mut refs = BTreeSet::new();
        for (context, region) in inline_modules(module, code) {
            for path in paths(&region, &context) {
                refs.insert(krate.resolve(&path));
            }
        }
        krate.refs.insert(module.clone(), refs);
    }
    Ok(krate)
}

/// `x.rs` or `x/mod.rs` in `dir`, and the directory `x`'s own children live in.
fn child_location(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    let flat = dir.join(format!("{name}.rs"));
    if flat.is_file() {
        return Ok((flat, dir.join(name)));
    }
    let nested = dir.join(name).join("mod.rs");
    if nested.is_file() {
        return Ok((nested, dir.join(name)));
    }
    Err(format!(
        "module {name}: neither {} nor {}",
        flat.display(),
        nested.display()
    ))
}

impl Crate {
    /// Every module of the crate (the root `[]` included).
    pub fn modules(&self) -> impl Iterator<Item = &ModPath> {
        self.children.keys()
    }

    /// The file of each module.
    pub fn files(&self) -> impl Iterator<Item = (&ModPath, &PathBuf)> {
        self.files.iter()
    }

    /// The graph among the children of `parent`: child name → the sibling names it imports
    /// (itself and everything below it counted as one).
    pub fn graph(&self, parent: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        let parent: ModPath = parent.iter().map(|s| s.to_string()).collect();
        let siblings = self.children.get(&parent).cloned().unwrap_or_default();
        let sibling_of = |path: &ModPath| -> Option<String> {
            (path.len() > parent.len() && path.starts_with(&parent))
                .then(|| path[parent.len()].clone())
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = siblings
            .iter()
            .map(|s| (s.clone(), BTreeSet::new()))
            .collect();
        for (module, refs) in &self.refs {
            let Some(from) = sibling_of(module) else {
                continue;
            };
            for target in refs {
                if let Some(to) = sibling_of(target).filter(|to| *to != from) {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        graph
    }

    /// Every module a module's subtree names (resolved), for rules such as "nothing under `os`
    /// names `config`".
    pub fn names_from(&self, under: &[&str]) -> BTreeSet<ModPath> {
        let under: ModPath = under.iter().map(|s| s.to_string()).collect();
        self.refs
            .iter()
            .filter(|(m, _)| m.starts_with(&under))
            .flat_map(|(_, refs)| refs.iter().cloned())
            .collect()
    }

    /// The circles of every level (a level: the children of one module), as `a::b -> a::c ->
    /// a::b` (full module paths): each one found, then
    /// its closing edge set aside and the level searched again, so two circles at one level
    /// are both listed.
    pub fn circles(&self) -> Vec<String> {
        let mut out = Vec::new();
        for parent in self.children.keys() {
            let p: Vec<&str> = parent.iter().map(String::as_str).collect();
            let mut graph = self.graph(&p);
            // Bounded: each round removes an edge.
            while let Some(cycle) = find_cycle(&graph) {
                let [.., from, to] = cycle.as_slice() else {
                    break;
                };
                if let Some(edges) = graph.get_mut(from) {
                    edges.remove(to);
                }
                let full: Vec<String> = cycle
                    .iter()
                    .map(|m| {
                        let mut path = parent.clone();
                        path.push(m.clone());
                        path.join("::")
                    })
                    .collect();
                out.push(full.join(" -> "));
            }
        }
        out
    }

    /// The deepest module `path` names, following re-exports (`config::Problem` is
    /// `config::problems`).
    fn resolve(&self, path: &[String]) -> ModPath {
        let mut path: ModPath = path.to_vec();
        let mut module: ModPath = Vec::new();
        // Bounded: a re-export loop would not compile, but never spin here.
        for _ in 0..16 {
            module.clear();
            let mut followed = None;
            for (i, segment) in path.iter().enumerate() {
                if self
                    .children
                    .get(&module)
                    .is_some_and(|c| c.contains(segment))
                {
                    module.push(segment.clone());
                    continue;
                }
                if let Some(target) = self.reexports.get(&module).and_then(|r| r.get(segment)) {
                    let mut next = target.clone();
                    next.extend(path[i + 1..].iter().cloned());
                    followed = Some(next);
                }
                break;
            }
            match followed {
                Some(next) if next != path => path = next,
                _ => break,
            }
        }
        module
    }
}

/// The names declared by `mod x;` (file modules, not inline `mod x { … }`).
fn declared_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<&str> = code
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        if pair[0] == "mod" {
            if let Some(name) = pair[1].strip_suffix(';') {
                if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    out.push(name.to_string());
                }
            }
        }
    }
    out
}

/// The file's code split into (module path the code is in, code): the file itself with its
/// inline `mod x { … }` blocks blanked, and each such block with `x` appended, so that
/// `super::` inside `mod tests { … }` means the file's own module.
fn inline_modules(module: &ModPath, code: &str) -> Vec<(ModPath, String)> {
    let mut outer = code.to_string();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = find_word(code, "mod", from) {
        from = at + 3;
        let after = &code[from..];
        let name: String = after
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let rest = after.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !rest.starts_with('{') {
            continue;
        }
        let open = code.len() - rest.len();
        let Some(close) = matching_brace(code, open) else {
            continue;
        };
        let mut inner = module.clone();
        inner.push(name);
        out.push((inner, code[open..=close].to_string()));
        outer.replace_range(open..=close, &" ".repeat(close + 1 - open));
        from = close;
    }
    out.push((module.clone(), outer));
    out
}

/// Byte index of `word` at or after `from`, standing alone (not part of a longer identifier).
fn find_word(code: &str, word: &str, from: usize) -> Option<usize> {
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut start = from;
    while let Some(i) = code.get(start..)?.find(word) {
        let at = start + i;
        let end = at + word.len();
        let before_ok = at == 0 || !ident(bytes[at - 1]);
        let after_ok = end >= bytes.len() || !ident(bytes[end]);
        if before_ok && after_ok {
            return Some(at);
        }
        start = end;
    }
    None
}

/// Index of the `}` closing the `{` at `open`.
fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every absolute path the code names through `crate::`, `super::` or `self::`, written in
/// module `context`.
fn paths(code: &str, context: &ModPath) -> Vec<ModPath> {
    let mut out = Vec::new();
    for keyword in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(at) = find_word(code, keyword, from) {
            from = at + keyword.len();
            // `foo::self`, or `$crate`, is not a path start of its own.
            let before = code[..at].trim_end();
            if before.ends_with("::") || before.ends_with('$') {
                continue;
            }
            let (relative, _) = path_tree(&code[at..]);
            for p in relative {
                if let Some(abs) = absolute(&p, context) {
                    out.push(abs);
                }
            }
        }
    }
    out
}

/// `crate::a::b` → `[a, b]`; `super::x` from `[m, n]` → `[m, x]`; `self::x` → `[m, n, x]`.
fn absolute(path: &[String], context: &ModPath) -> Option<ModPath> {
    let mut base = context.clone();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &path[1..];
        }
        Some("self") => rest = &path[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(base)
}

/// The paths written at the start of `text`: `a::b::{c, d::{E}}` → `[a,b,c]`, `[a,b,d,E]`.
/// Returns them and the number of bytes read.
fn path_tree(text: &str) -> (Vec<ModPath>, usize) {
    let mut prefix: ModPath = Vec::new();
    let mut i = 0;
    let bytes = text.as_bytes();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if text[i..].starts_with('{') {
            let mut out = Vec::new();
            i += 1;
            loop {
                let (items, used) = path_tree(&text[i..]);
                i += used;
                for item in items {
                    let mut p = prefix.clone();
                    p.extend(item);
                    out.push(p);
                }
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                match bytes.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => return (out, i + 1),
                    _ => return (out, i),
                }
            }
        }
        let ident: String = text[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*')
            .collect();
        if ident.is_empty() {
            return (vec![prefix], i);
        }
        i += ident.len();
        prefix.push(ident);
        let after = text[i..].trim_start();
        if let Some(next) = after.strip_prefix("::") {
            i = text.len() - next.len();
        } else {
            // `a::b as c`: the alias is not part of the path.
            return (vec![prefix], i);
        }
    }
}

/// Module → `pub use` name → the absolute path it re-exports (`pub use report::Format` in
/// `config` → `Format` ↦ `config::report::Format`).
fn reexports(
    module: &ModPath,
    code: &str,
    children: &BTreeMap<ModPath, Vec<String>>,
) -> BTreeMap<String, ModPath> {
    let own = children.get(module).cloned().unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = find_word(code, "use", from) {
        from = at + 3;
        let before = code[..at].trim_end();
        if !(before.ends_with("pub") || before.ends_with(')')) {
            continue;
        }
        let (written, _) = path_tree(&code[from..]);
        for path in written {
            let abs = match path.first().map(String::as_str) {
                Some("crate" | "super" | "self") => absolute(&path, module),
                Some(first) if own.iter().any(|c| c == first) => {
                    let mut p = module.clone();
                    p.extend(path.iter().cloned());
                    Some(p)
                }
                _ => None,
            };
            if let (Some(abs), Some(name)) = (abs, path.last()) {
                if name != "*" && name != "self" {
                    out.insert(name.clone(), abs);
                }
            }
        }
    }
    out
}

/// One cycle of the graph, if there is any (iterative DFS with colours), as `[a, b, …, a]`.
pub fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&str, Colour> =
        g.keys().map(|k| (k.as_str(), Colour::White)).collect();
    let successors = |n: &str| -> Vec<&str> {
        g.get(n)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    };
    for root in g.keys() {
        if colour.get(root.as_str()) != Some(&Colour::White) {
            continue;
        }
        // Path of (module, its remaining successors).
        let mut path: Vec<(&str, Vec<&str>)> = vec![(root, successors(root))];
        colour.insert(root, Colour::Grey);
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            match next.pop() {
                None => {
                    colour.insert(node, Colour::Black);
                    path.pop();
                }
                Some(succ) => match colour.get(succ).copied().unwrap_or(Colour::White) {
                    Colour::White => {
                        colour.insert(succ, Colour::Grey);
                        path.push((succ, successors(succ)));
                    }
                    Colour::Grey => {
                        let start = path.iter().position(|(n, _)| *n == succ).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(succ.to_string());
                        return Some(cycle);
                    }
                    Colour::Black => {}
                },
            }
        }
    }
    None
}

/// `source` with comments, strings and char literals replaced by spaces (line breaks kept).
pub fn blank_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, run: &[char]| {
        for c in run {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let end = if c == '/' && next == Some('/') {
            (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len())
        } else if c == '/' && next == Some('*') {
            block_comment_end(&chars, i)
        } else if c == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&chars, i) {
            raw_string_end(&chars, i).unwrap_or(i + 1)
        } else if c == '"' {
            quoted_end(&chars, i, '"')
        } else if c == '\'' && is_char_literal(&chars, i) {
            quoted_end(&chars, i, '\'')
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        if end == i + 1 && c == 'r' {
            out.push(c);
        } else {
            blank(&mut out, &chars[i..end]);
        }
        i = end;
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// End (exclusive) of the `/* … */` starting at `i`, nested comments included.
fn block_comment_end(chars: &[char], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < chars.len() {
        if chars[j] == '/' && chars[j + 1] == '*' {
            depth += 1;
            j += 2;
        } else if chars[j] == '*' && chars[j + 1] == '/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    chars.len()
}

/// End (exclusive) of `r"…"` / `r#"…"#` starting at `i`, if it is one.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    if chars.get(i + 1 + hashes) != Some(&'"') {
        return None;
    }
    let mut j = i + 2 + hashes;
    while j < chars.len() {
        if chars[j] == '"'
            && chars[j + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// End (exclusive) of the literal opened by `quote` at `i`, escapes honoured.
fn quoted_end(chars: &[char], i: usize, quote: char) -> usize {
    let mut j = i + 1;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    chars.len()
}

/// `'x'` or `'\n'` rather than a lifetime `'a`.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}
