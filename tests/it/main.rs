//! Integration tests: one binary, one module per area. Namespace tests create their own
//! namespaces (see `netfailover_lab::netns`) and start with `test_setup!`
//! (`netfailover_lab::setup`): skipped with a one-line reason when they cannot build
//! namespaces, and failing instead under `CI=true`.

mod agent;
mod budget;
mod chaos;
mod config;
mod daemon;
mod dispatcher;
mod faults;
mod flows;
mod hostile;
mod imports;
mod lab;
mod lab_launcher;
mod metered;
mod netlink;
mod nm_dhcp;
mod operator;
mod passive;
mod probe;
mod recovery;
mod recovery_dbus;
mod reload;
mod semantics;
mod wait_online;

/// The lock of the long timing-sensitive end-to-end tests, shared with the lab's own tests
/// (tests/lab/src/lib.rs says why).
pub use netfailover_lab::heavy_test_lock;
