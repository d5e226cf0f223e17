//! The engine's modules import each other without a circle (README, "Architecture"): every
//! `crate::x` path in `actors/src` is an edge from the file's module to `x`, and the graph must
//! be a DAG, so any actor can be built and tested with only what is below it.
//!
//! Read from the source text, not the compiler: a `use crate::a::B`, a `crate::a::f()` in an
//! expression and a `use crate::{a, b}` group all count; comments do not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the source text of its file(s) (`x.rs`, or every file under `x/`).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut stack = vec![(src.clone(), None::<String>)];
    // Bounded: the tree is a few dozen files; a link loop could not make this spin forever.
    let mut visited = 0;
    while let Some((dir, top)) = stack.pop() {
        visited += 1;
        assert!(
            visited < 1000,
            "too many directories under {}",
            src.display()
        );
        for entry in std::fs::read_dir(&dir).expect("actors/src is readable") {
            let path = entry.expect("directory entry").path();
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("UTF-8 file names")
                .to_string();
            if path.is_dir() {
                stack.push((path, Some(top.clone().unwrap_or(stem))));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = top.clone().unwrap_or(stem);
                let text = std::fs::read_to_string(&path).expect("source is readable");
                out.entry(module).or_default().push_str(&text);
            }
        }
    }
    out.remove("lib");
    out
}

/// The modules a source text names through `crate::`.
fn references(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.trim()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string()
    };
    let mut refs = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            refs.insert(ident(rest));
            continue;
        };
        // `use crate::{a::{B, C}, d}` (possibly over several lines): the first segment of each
        // item at depth 0.
        let mut depth = 0;
        let mut item_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    refs.insert(ident(&group[item_start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    refs.insert(ident(&group[item_start..i]));
                    item_start = i + 1;
                }
                _ => {}
            }
        }
    }
    refs.remove("");
    refs
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, text)| {
            let edges = references(text)
                .into_iter()
                .filter(|r| r != m && names.contains(r))
                .collect();
            (m.clone(), edges)
        })
        .collect()
}

/// One cycle of the graph, if there is any (iterative DFS with colours).
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&str, Colour> =
        g.keys().map(|k| (k.as_str(), Colour::White)).collect();
    for root in g.keys() {
        if colour[root.as_str()] != Colour::White {
            continue;
        }
        // Path of (module, its remaining successors).
        let mut path: Vec<(&str, Vec<&str>)> =
            vec![(root, g[root].iter().map(|s| s.as_str()).collect())];
        colour.insert(root, Colour::Grey);
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            match next.pop() {
                None => {
                    colour.insert(node, Colour::Black);
                    path.pop();
                }
                Some(succ) => match colour[succ] {
                    Colour::White => {
                        colour.insert(succ, Colour::Grey);
                        path.push((succ, g[succ].iter().map(|s| s.as_str()).collect()));
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

#[test]
fn module_imports_form_a_dag() {
    let g = graph();
    assert!(g.len() > 10, "found the modules: {:?}", g.keys());
    if let Some(cycle) = find_cycle(&g) {
        panic!("module import circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_a_circle() {
    // The checker itself can fail: a made-up graph with a circle is reported.
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    g.insert("d".into(), ["a".to_string()].into());
    let cycle = find_cycle(&g).expect("a -> b -> c -> a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
    assert_eq!(
        references("use crate::{a::{X, Y},\n  b};\nlet x = crate::c::f(); // crate::d\n"),
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn only_the_supervisor_names_the_top_level_actors() {
    // Actors talk through `Recipient` slots typed by message (`peers.rs`); only tree
    // construction (`supervisor.rs`) may name a concrete top-level actor. ProbeScheduler is the
    // Probers' own supervisor, so it alone names `prober`.
    let actors = [
        "dispatcher",
        "flow_resetter",
        "link_watcher",
        "probe_scheduler",
        "route_manager",
        "traffic_watcher",
    ];
    let g = graph();
    for (m, edges) in &g {
        if m == "supervisor" {
            continue;
        }
        let named: Vec<&String> = edges
            .iter()
            .filter(|e| actors.contains(&e.as_str()))
            .collect();
        assert!(named.is_empty(), "{m} names actors {named:?}");
    }
    for (m, edges) in &g {
        if edges.contains("prober") {
            assert_eq!(m, "probe_scheduler", "{m} names the Prober");
        }
    }
}
