//! Integration tests: one binary, one module per area. Namespace tests create their own
//! namespaces (see `netfailover::lab::netns`) and fail under `CI=true` when they cannot.

mod agent;
mod chaos;
mod config;
mod daemon;
mod dispatcher;
mod faults;
mod flows;
mod hostile;
mod lab;
mod netlink;
mod operator;
mod passive;
mod probe;
mod reload;
mod semantics;

/// Held by the long timing-sensitive end-to-end tests (the chaos storm, passive health's
/// figures, the lab timeline) so they never run at the same time on a 2-core CI machine: each
/// asserts bounds derived from the settings, and the others' load would eat that slack. A test
/// that panicked while holding it poisons it; the next one takes it anyway. Besides the
/// in-process mutex it holds an exclusive `flock` on a file in the temp directory, so two test
/// processes on one machine (two checkouts, a benchmark beside the suite) take turns as well; the
/// kernel drops that lock when the process dies, so a killed run never blocks the next.
pub fn heavy_test_lock() -> HeavyTestGuard {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let in_process = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("netfailover-heavy-test.lock");
    let across_processes = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ok()
        .and_then(|file| nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok());
    HeavyTestGuard {
        _across_processes: across_processes,
        _in_process: in_process,
    }
}

/// What [`heavy_test_lock`] returns: the process-wide lock and, when the lock file could be
/// opened, the machine-wide one; both are released on drop.
pub struct HeavyTestGuard {
    _across_processes: Option<nix::fcntl::Flock<std::fs::File>>,
    _in_process: std::sync::MutexGuard<'static, ()>,
}
