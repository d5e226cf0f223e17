//! What both renderings of `check-config` share (text in `report.rs`, JSON in
//! `report_json.rs`): the full problem list, the exit codes, a MAC address as text, the scripts
//! that run. Below both,
//! so each imports it and neither the other.

use std::path::Path;

use super::{Effective, Problem};
use crate::os::scripts::DiscoveredScript;

/// Exit code: no configuration could be built.
pub const EXIT_FATAL: i32 = 2;
/// Exit code: something was rejected (and skipped).
pub const EXIT_REJECTED: i32 = 1;

/// Every problem check-config reports: the configuration's, then the dispatcher scripts that
/// would be skipped (and a mount that stops them all), as warnings naming the file, the reason
/// and the fix (docs/dispatcher.md, "Security checks"). The daemon reads `dispatcher.d/` again
/// for every event, and logs a skipped script each time it would have run it.
pub(crate) fn all_problems(e: &Effective) -> Vec<Problem> {
    use crate::os::scripts::{discover, mount_problem, MOUNTINFO};
    use netfailover_actors::model::EventKind;
    let mut problems = e.loaded.problems.clone();
    let dir = &e.loaded.dispatcher_dir;
    if !dir.is_dir() {
        return problems;
    }
    if let Some(mount) = mount_problem(dir, Path::new(MOUNTINFO)) {
        problems.push(Problem::warning(dir, None, mount.to_string()));
    }
    let mut seen = std::collections::BTreeSet::new();
    for event in EventKind::ALL {
        for script in discover(dir, event) {
            if let Some(why) = script.skip.filter(|_| seen.insert(script.path.clone())) {
                let message = format!("dispatcher script skipped: it {why}");
                problems.push(Problem::warning(&script.path, None, message));
            }
        }
    }
    problems
}

/// The exit code for a list of problems: 1 when anything was rejected, else 0.
pub(crate) fn exit_code(problems: &[Problem]) -> i32 {
    if problems.iter().any(|p| p.is_error()) {
        EXIT_REJECTED
    } else {
        0
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub(super) fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The names of the scripts that run, in order, of those found for one event.
pub(super) fn running(found: &[DiscoveredScript]) -> Vec<&str> {
    found
        .iter()
        .filter(|s| s.runs())
        .map(|s| s.name.as_str())
        .collect()
}
