//! The lab's modules form one-way layers, checked by the workspace's one import checker
//! (`actors/tests/support/module_graph.rs`): its library and its binary each without a circle.

#[path = "../../../actors/tests/support/module_graph.rs"]
mod module_graph;

use std::path::Path;

#[test]
fn lab_modules_form_a_dag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for root in ["lib.rs", "main.rs"] {
        let krate = module_graph::load(&src, root).unwrap_or_else(|e| panic!("{root}: {e}"));
        let circles = krate.circles();
        assert!(
            circles.is_empty(),
            "{root}: module import circles: {circles:#?}"
        );
    }
    let lib = module_graph::load(&src, "lib.rs").unwrap_or_else(|e| panic!("lib.rs: {e}"));
    assert!(
        lib.graph(&[]).len() > 8,
        "found the modules: {:?}",
        lib.graph(&[])
    );
}
