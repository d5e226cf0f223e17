//! The root crate's modules form one-way layers (docs/architecture.md), checked by the
//! workspace's one import checker (`actors/tests/support/module_graph.rs`): the library
//! (`src/lib.rs`) and the binary (`src/main.rs`, which alone owns the command line) each
//! without a circle at any level; the adapters under `os` never reach up into `config`; the
//! library never names clap.

#[path = "../../actors/tests/support/module_graph.rs"]
mod module_graph;

use std::path::Path;

fn load(root_file: &str) -> module_graph::Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    module_graph::load(&src, root_file).unwrap_or_else(|e| panic!("reading src/{root_file}: {e}"))
}

#[test]
fn library_modules_form_a_dag() {
    let lib = load("lib.rs");
    let top = lib.graph(&[]);
    assert!(top.len() >= 7, "found the modules: {:?}", top.keys());
    assert!(
        lib.graph(&["config"]).len() > 10,
        "{:?}",
        lib.graph(&["config"])
    );
    let circles = lib.circles();
    assert!(circles.is_empty(), "module import circles: {circles:#?}");
}

#[test]
fn binary_modules_form_a_dag_and_own_the_command_line() {
    let bin = load("main.rs");
    assert!(
        bin.modules().any(|m| m == &["cli".to_string()]),
        "main.rs declares cli"
    );
    let circles = bin.circles();
    assert!(circles.is_empty(), "module import circles: {circles:#?}");
    let lib = load("lib.rs");
    assert!(
        !lib.modules().any(|m| m.first().is_some_and(|s| s == "cli")),
        "the library has no cli module"
    );
    for (module, file) in lib.files() {
        let code = module_graph::blank_literals(&std::fs::read_to_string(file).unwrap_or_default());
        assert!(
            !code.contains("clap"),
            "library module {} ({}) names clap: argument types belong to the binary",
            module.join("::"),
            file.display()
        );
    }
}

#[test]
fn adapters_never_reach_up_into_config() {
    let lib = load("lib.rs");
    let up: Vec<String> = lib
        .names_from(&["os"])
        .into_iter()
        .filter(|m| m.first().is_some_and(|s| s == "config"))
        .map(|m| m.join("::"))
        .collect();
    assert!(up.is_empty(), "src/os names {up:?}");
    assert!(
        lib.names_from(&["os"]).len() > 3,
        "the adapters' imports were read"
    );
}
