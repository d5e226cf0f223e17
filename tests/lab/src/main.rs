//! `netfailover-lab`: a test tool, do not ship. Builds a throw-away network of namespaces, runs
//! the netfailover daemon inside it and plays a fault timeline (tests/lab/src/timeline.rs).
//!
//! The daemon it runs is the product's: the lab re-executes itself with the hidden verb `run`,
//! which parses its arguments with `netfailover`'s own command line and calls
//! `netfailover::daemon::run`, exactly as `netfailover run` does. So `cargo run -p
//! netfailover-lab` on a fresh clone runs the daemon built from the same tree.

use std::process::ExitCode;

use clap::Parser as _;
use netfailover::cli::{Cli, Command};
use netfailover_lab::LabArgs;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|verb| verb == "run") {
        return daemon();
    }
    let args = LabArgs::parse();
    match netfailover_lab::timeline::run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("netfailover-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The hidden verb: `netfailover-lab run …` is `netfailover run …`.
fn daemon() -> ExitCode {
    let cli = Cli::parse_from(
        std::iter::once(std::ffi::OsString::from("netfailover")).chain(std::env::args_os().skip(1)),
    );
    let Command::Run(args) = cli.command else {
        eprintln!("netfailover-lab: only `run` is the daemon's verb here");
        return ExitCode::FAILURE;
    };
    match netfailover::daemon::run(&args, &cli.socket) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("netfailover: {e}");
            ExitCode::FAILURE
        }
    }
}
