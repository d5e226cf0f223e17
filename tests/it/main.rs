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
mod passive;
mod probe;
mod semantics;

/// Held by the long timing-sensitive end-to-end tests (the chaos storm, passive health's
/// figures, the lab timeline) so they never run at the same time on a 2-core CI machine: each
/// asserts bounds derived from the settings, and the others' load would eat that slack. A test
/// that panicked while holding it poisons it; the next one takes it anyway.
pub fn heavy_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
