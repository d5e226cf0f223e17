//! `netfailover-lab`: a test tool, do not ship. Builds a throw-away network of namespaces, runs
//! the netfailover daemon inside it and plays a fault timeline (tests/lab/src/timeline.rs).
//!
//! The daemon it runs is the product's: the lab re-executes itself with the hidden verb `run`
//! (`run --boot-dir DIR --socket PATH`, what `daemon::DaemonProcess` passes) and calls
//! `netfailover::daemon::run` with those values, as `netfailover run` does. So `cargo run -p
//! netfailover-lab` on a fresh clone runs the daemon built from the same tree. The product's
//! command line is its binary's own; the lab parses the few arguments it passes itself.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser as _;
use netfailover::daemon::{ConfigSource, LogFormat, RunOptions};
use netfailover_lab::LabArgs;

/// The hidden verb's arguments: the daemon's, as far as the lab sets them.
#[derive(clap::Parser, Debug)]
#[command(name = "netfailover-lab run")]
struct DaemonArgs {
    #[arg(long, value_name = "DIR", default_value = netfailover::config::DEFAULT_BOOT_DIR)]
    boot_dir: PathBuf,
    #[arg(long, value_name = "PATH", default_value = netfailover::control::DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|verb| verb == "run") {
        return daemon();
    }
    let args = LabArgs::parse();
    match netfailover_lab::run(&args) {
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
    // Skips the program name and `run`.
    let args = DaemonArgs::parse_from(std::env::args_os().skip(1));
    let options = RunOptions {
        config: ConfigSource {
            boot_dir: args.boot_dir,
            config: None,
        },
        metrics: None,
        log_format: LogFormat::Plain,
        socket: args.socket,
    };
    match netfailover::daemon::run(&options) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("netfailover: {e}");
            ExitCode::FAILURE
        }
    }
}
