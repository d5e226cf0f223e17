//! What every namespace test starts with, in one line: [`test_setup!`](crate::test_setup) checks
//! that this process may build network namespaces (root, and a namespace that can really be
//! created), then builds the test's world. When it may not, the test fails under `CI=true` (a
//! test that cannot run in CI must fail loudly) and elsewhere it is skipped with one line that
//! names the test and the reason.

use std::sync::OnceLock;

use crate::netns::{is_root, Netns};

/// Why this process cannot build network namespaces, or `None` when it can. Asked once per
/// process: effective uid 0, then one throw-away namespace (a root shell in a container without
/// `CAP_SYS_ADMIN`, or without iproute2, is root and still cannot).
pub fn namespaces_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        if !is_root() {
            return Some("needs root to create network namespaces".to_string());
        }
        Netns::new("setup")
            .err()
            .map(|e| format!("cannot create a network namespace: {e}"))
    })
    .as_deref()
}

/// Guard behind [`test_setup!`](crate::test_setup): `true` to go on. Cannot build namespaces:
/// under `CI=true` this panics; elsewhere it prints `SKIP <test>: <reason>` and returns `false`.
pub fn may_build_namespaces(test: &str) -> bool {
    let Some(why) = namespaces_unavailable() else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true forbids skipping namespace tests");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// Guard for a test (or part of one) that needs a program the README's Quick start does not
/// name (`python3`, `systemd-analyze`): `true` to go on when `tool` runs. Missing: under
/// `CI=true` this panics (`.ci/run` installs it); elsewhere it prints one line, `SKIP test: …`,
/// and the caller skips.
pub fn require_tool(test: &str, tool: &str) -> bool {
    let runs = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if runs {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs {tool}, and CI=true forbids skipping it");
    }
    eprintln!("SKIP {test}: {tool} is not installed");
    false
}

/// The path of the function this expands in, without the crate's name and any trailing
/// `{{closure}}` (an async test's body): `daemon::lifecycle::daemon_sigterm_...`, as the test
/// harness names the test.
#[macro_export]
macro_rules! test_name {
    () => {{
        fn here() {}
        fn name_of<T>(_: T) -> &'static str {
            ::std::any::type_name::<T>()
        }
        $crate::setup::trim_test_name(name_of(here))
    }};
}

/// `krate::module::test::{{closure}}::here` → `module::test` (see [`test_name!`](crate::test_name)).
pub fn trim_test_name(path: &'static str) -> &'static str {
    let mut name = path.strip_suffix("::here").unwrap_or(path);
    while let Some(outer) = name.strip_suffix("::{{closure}}") {
        name = outer;
    }
    name.split_once("::").map_or(name, |(_, rest)| rest)
}

/// The first line of a namespace test: returns from the test (skip, or a panic under `CI=true`;
/// see [`may_build_namespaces`]) when this process cannot build namespaces.
///
/// - `test_setup!();` only the check;
/// - `let world = test_setup!(World::new("tag"));` the check, then the world (any expression,
///   evaluated only when the check passed).
#[macro_export]
macro_rules! test_setup {
    () => {
        if !$crate::setup::may_build_namespaces($crate::test_name!()) {
            return;
        }
    };
    ($world:expr) => {{
        $crate::test_setup!();
        $world
    }};
}

#[cfg(test)]
mod tests {
    use super::trim_test_name;

    #[test]
    fn test_names_lose_the_crate_the_closures_and_the_marker() {
        assert_eq!(trim_test_name("it::daemon::t::here"), "daemon::t");
        assert_eq!(
            trim_test_name("it::daemon::t::{{closure}}::{{closure}}::here"),
            "daemon::t"
        );
        assert_eq!(trim_test_name("cli::t::here"), "t");
        assert_eq!(
            crate::test_name!(),
            "setup::tests::test_names_lose_the_crate_the_closures_and_the_marker"
        );
    }
}
