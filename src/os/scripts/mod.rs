//! Dispatcher scripts (docs/semantics.md §5): the user's recovery actions in `dispatcher.d/`, found and
//! checked as NetworkManager does ([`discover`]) and run safely ([`ScriptDirRunner`], the real
//! `ScriptRunner` port: clean environment, own process group, timeout with TERM then KILL of the
//! whole group, output to the log). When and in which order events happen is the engine's
//! business; this module only runs what an event asks for.

mod discover;
mod run;

pub use discover::{
    check_metadata, discover, is_ignored, mount_problem, mount_problem_in, DiscoveredScript,
    MountProblem, ScriptFolder, SkipReason,
};
pub use run::{
    script_environment, LineSplitter, ScriptDirRunner, DEFAULT_KILL_GRACE, DRAIN_GRACE,
    MAX_LINE_BYTES, MOUNTINFO, SCRIPT_PATH,
};
