//! The code's shape, checked: no file in the engine (`actors/src`) or in the root crate (`src`)
//! longer than [`MAX_FILE_LINES`] lines and no function longer than [`MAX_FN_LINES`] lines,
//! except the entries of [`ALLOW`], each with its reason. An entry that is no longer needed fails
//! the test too, so the list only shrinks.
//!
//! How a function is measured (a heuristic, not a parser): the source is first blanked of
//! comments, string literals (plain, byte, raw `r#"…"#`) and char literals, keeping the line
//! breaks; then each `fn NAME` runs from its own line to the line of the `}` that brings the
//! brace depth back to where it was at its first `{`. A `fn` whose `;` comes before any `{`
//! (outside the signature's brackets, so `-> [u8; 4]` does not count) has no body and is
//! skipped (a trait method). Nested functions and closures count towards the function that
//! holds them; test functions count like any other.

use std::path::{Path, PathBuf};

/// Longest file, in lines (docs/testing.md, "How the shape is checked").
const MAX_FILE_LINES: usize = 600;
/// Longest function, from its `fn` line to its closing brace, in lines.
const MAX_FN_LINES: usize = 80;

/// The source trees measured, relative to the repository root.
const TREES: [&str; 3] = ["actors/src", "src", "tests/lab/src"];

/// What may stay over today, and why: (file relative to the repository root, function name or
/// `""` for the file's length, reason). Remove an entry when its file or function is split.
/// The entries below are the root crate as it stood when `src` was first measured: not split
/// yet, each a candidate for the next refactoring.
const ALLOW: &[(&str, &str, &str)] = &[
    (
        "tests/lab/src/apps.rs",
        "",
        "TCP echo, UDP sink and their device-side clients; lab tooling, to split per app",
    ),
    (
        "tests/lab/src/soak.rs",
        "run",
        "builds the world, starts the daemon, flaps uplinks round after round and prints the samples in one sequence; lab tooling, to split setup, rounds and report",
    ),
    (
        "tests/lab/src/timeline.rs",
        "play",
        "applies each step, waits for the daemon's answer and prints it inline; lab tooling, to split waiting from printing",
    ),
    (
        "tests/lab/src/timeline.rs",
        "run",
        "builds the world, starts the daemon, plays and summarises in one sequence; lab tooling, to split",
    ),
    (
        "src/os/flows/mod.rs",
        "destroy_sockets",
        "runtime, sock_diag dump and destroy in one function; to split dump from destroy",
    ),
];

/// One thing over the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Over {
    file: String,
    /// `""` for the file's own length.
    function: String,
    lines: usize,
}

/// `source` with comments, strings and char literals replaced by spaces (line breaks kept), so
/// that braces inside them do not count.
fn blank_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    // Pushes chars[from..to] as blanks, keeping line breaks.
    let blank = |out: &mut String, from: usize, to: usize| {
        for c in &chars[from..to.min(chars.len())] {
            out.push(if *c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < chars.len() {
        let end = literal_end(&chars, i);
        if end > i {
            blank(&mut out, i, end);
            i = end;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// If a comment, string or char literal starts at `i`, the index just past it; else `i`.
fn literal_end(c: &[char], i: usize) -> usize {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    match (at(i), at(i + 1)) {
        ('/', '/') => (i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len()),
        ('/', '*') => block_comment_end(c, i),
        ('"', _) => quoted_end(c, i + 1, '"'),
        ('b', '"') if !ident_char(at(i.wrapping_sub(1))) => quoted_end(c, i + 2, '"'),
        ('r', '"' | '#') | ('b', 'r') if !ident_char(at(i.wrapping_sub(1))) => raw_end(c, i),
        ('\'', '\\') => quoted_end(c, i + 1, '\''),
        // A char literal `'x'`; otherwise a lifetime or label (`'a`), left alone.
        ('\'', _) if at(i + 2) == '\'' => i + 3,
        _ => i,
    }
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Block comments nest in Rust.
fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i + 1 < c.len() {
        match (c[i], c[i + 1]) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    c.len()
}

/// Past the closing `close` of a literal whose body starts at `i` (backslash escapes).
fn quoted_end(c: &[char], mut i: usize, close: char) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            x if x == close => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// Past a raw string `r#…"…"#…` (or `br…`) starting at `i`; `i` itself when it is not one
/// (an identifier starting with `r`).
fn raw_end(c: &[char], i: usize) -> usize {
    let mut k = i + if c[i] == 'b' { 2 } else { 1 };
    let hashes = c[k..].iter().take_while(|&&x| x == '#').count();
    k += hashes;
    if c.get(k) != Some(&'"') {
        return i;
    }
    k += 1;
    while k < c.len() {
        if c[k] == '"'
            && c[k + 1..]
                .iter()
                .take(hashes)
                .filter(|&&x| x == '#')
                .count()
                == hashes
        {
            return k + 1 + hashes;
        }
        k += 1;
    }
    c.len()
}

/// (name, first line, line count) of every function with a body in `source`.
fn functions(source: &str) -> Vec<(String, usize, usize)> {
    let clean = blank_literals(source);
    let lines: Vec<&str> = clean.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        for name in fn_names(line) {
            if let Some(end) = body_end(&lines, start, line.find(&format!("fn {name}"))) {
                found.push((name, start + 1, end - start + 1));
            }
        }
    }
    found
}

/// The names after each `fn ` keyword on a (blanked) line.
fn fn_names(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = line.as_bytes();
    for (at, _) in line.match_indices("fn ") {
        if at > 0 && ident_char(bytes[at - 1] as char) {
            continue;
        }
        let name: String = line[at + 3..]
            .trim_start()
            .chars()
            .take_while(|c| ident_char(*c))
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

/// The (0-based) line where the body of the `fn` at `lines[start]`, column `col`, closes; `None`
/// for a `fn` without a body.
fn body_end(lines: &[&str], start: usize, col: Option<usize>) -> Option<usize> {
    let mut depth = 0i64;
    let mut opened = false;
    // `(`/`[` depth of the signature: a `;` inside it (`[u8; 4]`) does not end the item.
    let mut nesting = 0i64;
    for (n, line) in lines.iter().enumerate().skip(start) {
        let from = if n == start { col.unwrap_or(0) } else { 0 };
        for ch in line[from..].chars() {
            match ch {
                '(' | '[' if !opened => nesting += 1,
                ')' | ']' if !opened => nesting -= 1,
                ';' if !opened && nesting == 0 => return None,
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => {
                    depth -= 1;
                    if opened && depth == 0 {
                        return Some(n);
                    }
                    if depth < 0 {
                        return None;
                    }
                }
                _ => {}
            }
        }
    }
    None
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Everything in [`TREES`] over the limits, file names relative to the repository root.
fn over_limits() -> Vec<Over> {
    // The engine crate's manifest directory is `actors/` in the repository.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut over = Vec::new();
    for tree in TREES {
        over.extend(tree_over_limits(&repo, tree));
    }
    over
}

/// Everything in `repo/tree` over the limits.
fn tree_over_limits(repo: &Path, tree: &str) -> Vec<Over> {
    let root = repo.join(tree);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    assert!(files.len() > 10, "found only {files:?} under {root:?}");
    let mut over = Vec::new();
    for path in files {
        let source = std::fs::read_to_string(&path).expect("readable source file");
        let relative = path
            .strip_prefix(&root)
            .expect("found under root")
            .to_string_lossy()
            .replace('\\', "/");
        let file = format!("{tree}/{relative}");
        let lines = source.lines().count();
        if lines > MAX_FILE_LINES {
            over.push(Over {
                file: file.clone(),
                function: String::new(),
                lines,
            });
        }
        for (function, _, lines) in functions(&source) {
            if lines > MAX_FN_LINES {
                over.push(Over {
                    file: file.clone(),
                    function,
                    lines,
                });
            }
        }
    }
    over
}

fn allowed(entry: &(&str, &str, &str), o: &Over) -> bool {
    let (file, function, _) = *entry;
    file == o.file && function == o.function
}

#[test]
fn files_and_functions_stay_short() {
    let over = over_limits();
    let unexplained: Vec<&Over> = over
        .iter()
        .filter(|o| !ALLOW.iter().any(|a| allowed(a, o)))
        .collect();
    let stale: Vec<&(&str, &str, &str)> = ALLOW
        .iter()
        .filter(|a| !over.iter().any(|o| allowed(a, o)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "over {MAX_FILE_LINES} lines per file / {MAX_FN_LINES} per fn (split it, or add an \
         entry with its reason to ALLOW in actors/tests/shape.rs): {unexplained:#?}"
    );
    assert!(
        stale.is_empty(),
        "ALLOW entries no longer needed (remove them from actors/tests/shape.rs): {stale:#?}"
    );
}

#[test]
fn function_lengths_are_measured_by_braces_outside_literals() {
    let source = r####"
fn short() {
    let s = "}}}";
    // }
    /* { /* nested */ } */
    let c = '}';
    let r = r#"{"#;
    let l: &'static str = "x";
}

trait T {
    fn no_body(&self);
}

fn array() -> [u8; 2] {
    [0; 2]
}

fn longer(x: u32) -> u32 {
    if x > 0 {
        x
    } else {
        0
    }
}
"####;
    let found = functions(source);
    let want = [("short", 2, 8), ("array", 15, 3), ("longer", 19, 7)];
    let want: Vec<(String, usize, usize)> = want
        .iter()
        .map(|(n, a, b)| (n.to_string(), *a, *b))
        .collect();
    assert_eq!(found, want);
}
