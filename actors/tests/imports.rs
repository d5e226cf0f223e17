//! The engine's modules import each other without a circle (docs/architecture.md): every
//! `crate::x` path in `actors/src` is an edge from the file's module to `x`, and the graph must
//! be a DAG, so any actor can be built and tested with only what is below it.
//!
//! The checker is the workspace's one (`support/module_graph.rs`, also used by the root crate's
//! `tests/it/imports.rs` and the lab's `tests/lab/tests/imports.rs`); its own tests live here.

#[path = "support/module_graph.rs"]
mod module_graph;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use module_graph::find_cycle;

fn engine() -> module_graph::Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    module_graph::load(&src, "lib.rs").unwrap_or_else(|e| panic!("reading actors/src: {e}"))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    engine().graph(&[])
}

#[test]
fn module_imports_form_a_dag() {
    let g = graph();
    assert!(g.len() > 10, "found the modules: {:?}", g.keys());
    assert!(
        g.values().map(BTreeSet::len).sum::<usize>() > 20,
        "found the imports: {g:?}"
    );
    let circles = engine().circles();
    assert!(circles.is_empty(), "module import circles: {circles:#?}");
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
}

/// A crate written into a fresh temporary directory, removed on drop.
struct Planted(PathBuf);

impl Planted {
    fn new(name: &str, files: &[(&str, &str)]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("netfailover-imports-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("a file in a directory"))
                .expect("temp dir is writable");
            std::fs::write(&path, text).expect("temp file is writable");
        }
        Self(dir)
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_planted_circle_is_reported_with_its_modules() {
    // Top level: a -> b (a `use` group over lines) -> c (an expression path) -> a (from `c`'s
    // child file); `d` only imports and closes no circle; e <-> f is a second circle.
    let top = Planted::new(
        "top",
        &[
            (
                "lib.rs",
                "pub mod a;\npub mod b;\npub mod c;\nmod d;\nmod e;\nmod f;\n",
            ),
            ("a.rs", "use crate::{\n    b::{X,\n  Y},\n};\n"),
            (
                "b.rs",
                "fn f() { crate::c::g(); } // crate::d is a comment\n",
            ),
            (
                "c.rs",
                "pub fn g() { let _ = \"crate::d\"; }\npub use inner::Z;\nmod inner;\n",
            ),
            ("c/inner.rs", "pub struct Z(crate::a::A);\n"),
            ("d.rs", "use crate::a::A;\n"),
            ("e.rs", "use crate::f::F;\n"),
            ("f.rs", "use super::e::E;\n"),
        ],
    );
    let krate = module_graph::load(&top.0, "lib.rs").expect("the planted crate reads");
    let circles = krate.circles();
    let circle = circles.first().expect("a -> b -> c -> a is found");
    for m in ["a", "b", "c"] {
        assert!(circle.contains(m), "{circle}");
    }
    assert!(!circle.contains('d'), "{circle}");
    // A second circle at the same level (e <-> f) is listed too.
    assert_eq!(circles.len(), 2, "{circles:?}");
    assert!(
        circles[1].contains('e') && circles[1].contains('f'),
        "{circles:?}"
    );

    // Among siblings below the root: `config::x` and `config::y` through `super::`, while
    // `y` naming its parent's own type is containment, not a circle.
    let nested = Planted::new(
        "nested",
        &[
            ("main.rs", "mod config;\nfn main() {}\n"),
            ("config/mod.rs", "mod x;\nmod y;\npub struct Top;\n"),
            ("config/x.rs", "use super::y::Y;\npub struct X;\n"),
            (
                "config/y.rs",
                "pub struct Y;\nfn f(_: super::Top, _: super::x::X) {}\n",
            ),
        ],
    );
    let krate = module_graph::load(&nested.0, "main.rs").expect("the planted crate reads");
    let circles = krate.circles();
    assert_eq!(circles.len(), 1, "{circles:?}");
    assert!(
        circles[0].contains("config::x") && circles[0].contains("config::y"),
        "{circles:?}"
    );

    // The same tree with the edge back removed is one-way.
    std::fs::write(nested.0.join("config/y.rs"), "fn f(_: super::Top) {}\n").expect("rewrite");
    let krate = module_graph::load(&nested.0, "main.rs").expect("the planted crate reads");
    assert_eq!(krate.circles(), Vec::<String>::new());
    assert_eq!(krate.graph(&["config"])["x"], ["y".to_string()].into());
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
