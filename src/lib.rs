//! netfailover: the daemon's library side. The engine lives in `netfailover-actors`; this crate
//! reads configuration, implements the engine's ports against the kernel, and hosts the control
//! socket. The namespace lab is a workspace member of its own (tests/lab/), not in here. The
//! command line is the binary's alone (`src/main.rs` declares `src/cli.rs`): nothing here
//! knows clap, and `daemon::run` takes a plain `daemon::RunOptions`.

pub use netfailover_actors as engine;

pub mod agent;
pub mod config;
pub mod control;
pub mod daemon;
pub mod metrics;
pub mod os;
pub mod print;
pub mod wait_online;
