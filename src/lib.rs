//! netfailover: the daemon's library side. The engine lives in `netfailover-actors`; this crate
//! reads configuration, implements the engine's ports against the kernel, and hosts the control
//! socket and the namespace lab.

pub use netfailover_actors as engine;

pub mod agent;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
/// The namespace lab behind `netfailover lab`, the namespace tests and the benches (feature
/// `lab`, on by default; a device image builds with `--no-default-features`).
#[cfg(feature = "lab")]
pub mod lab;
pub mod metrics;
pub mod os;
