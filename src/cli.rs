//! The command line: argument types (clap derive), all in this file. A module of the binary
//! only (declared by `src/main.rs`, not by `src/lib.rs`): the library takes plain values
//! (`daemon::RunOptions`), and `main.rs` maps each verb to a library call; everything a person
//! reads on a terminal is formatted in the library's `print` module (`src/print.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use netfailover::config::DEFAULT_BOOT_DIR;
use netfailover::control::DEFAULT_SOCKET;
use netfailover::daemon::{self, ConfigSource, RunOptions};

/// Keeps a multi-uplink Linux device online: link and connectivity watching, route failover,
/// recovery scripts.
#[derive(Parser, Debug)]
#[command(name = "netfailover", version, about, propagate_version = true)]
pub struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon in the foreground (logs to stderr; sd_notify under systemd).
    Run(RunArgs),
    /// Print the effective configuration and every problem in it.
    CheckConfig(CheckConfigArgs),
    /// Interfaces, connectivity, metrics, last checks and actors of the running daemon.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check one interface's connectivity now.
    Check {
        /// Interface name, e.g. eth0.
        iface: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Kill one actor of the running daemon (resilience testing; it is restarted).
    Kill {
        /// Actor name as `status` shows it: link-watcher, route-manager, probe-scheduler,
        /// dispatcher, traffic-watcher, flow-resetter, recovery-manager, accountant, prober:IFACE.
        actor: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Recent dispatcher events with their reasons and scripts.
    Events {
        /// Print the events as JSON (with --follow: one JSON object per line).
        #[arg(long)]
        json: bool,
        /// Keep following: the current state first, then every change as it happens, until
        /// the daemon stops or Ctrl-C (docs/control.md describes each line).
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Wait until an uplink reaches the Internet (FULL), for network-online.target: exit 0 when
    /// online, 1 at the timeout (saying where each uplink stands), 2 when no daemon answers.
    WaitOnline(WaitOnlineArgs),
    /// Start the namespace lab, a separate test tool (`netfailover-lab`, tests/lab/): built by
    /// cargo under `cargo run`, else found beside this executable or on PATH
    /// (`src/lab_launcher.rs`). Hidden: not a device verb.
    #[command(hide = true, disable_help_flag = true)]
    Lab {
        /// The lab's own arguments (`--scenario list`, `--keep`, `--soak MINUTES`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// `wait-online` (docs/daemon.md): waits on the control socket's event stream, no polling.
#[derive(Args, Debug, Clone)]
pub struct WaitOnlineArgs {
    /// Give up after SECS seconds (0: wait forever); the wait for the daemon's socket to appear
    /// counts too.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// Only this uplink counts (repeatable); default: every managed uplink.
    #[arg(long, short, value_name = "IFACE")]
    pub interface: Vec<String>,
    /// Wait until every one of them is FULL (default: any one).
    #[arg(long)]
    pub all: bool,
}

/// How long a verb that talks to the daemon waits for it.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ClientArgs {
    /// Total time to wait for the daemon (connect, request and reply; with --follow, the first
    /// line): seconds or e.g. "1500ms". Default 5 s, 60 s for `check`.
    #[arg(long, value_name = "DURATION", value_parser = netfailover::config::settings::parse_duration)]
    pub timeout: Option<Duration>,
}

impl ClientArgs {
    /// The deadline for `request`: `--timeout`, or the request's default.
    pub fn timeout_for(&self, request: &netfailover::control::Request) -> Duration {
        self.timeout
            .unwrap_or_else(|| netfailover::control::default_timeout(request))
    }
}

#[derive(Args, Debug, Clone)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print the effective configuration as one JSON document (keys in docs/config.md).
    #[arg(long)]
    pub json: bool,
}

/// Where the configuration is read from (shared by `run` and `check-config`).
#[derive(clap::Args, Clone, Debug)]
pub struct ConfigArgs {
    /// Boot directory holding config.json, system-connections/ and dispatcher.d/.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_BOOT_DIR)]
    pub boot_dir: PathBuf,
    /// Own settings file (default: BOOT_DIR/netfailover.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics (an IP address and a port, e.g.
    /// `127.0.0.1:9101` or `[::1]:9101`).
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics: Option<SocketAddr>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

impl ConfigArgs {
    /// The library's plain form.
    pub fn source(&self) -> ConfigSource {
        ConfigSource {
            boot_dir: self.boot_dir.clone(),
            config: self.config.clone(),
        }
    }
}

impl RunArgs {
    /// What `daemon::run` takes: these arguments and the control socket.
    pub fn options(&self, socket: PathBuf) -> RunOptions {
        RunOptions {
            config: self.config.source(),
            metrics: self.metrics,
            log_format: match self.log_format {
                LogFormat::Plain => daemon::LogFormat::Plain,
                LogFormat::Json => daemon::LogFormat::Json,
            },
            socket,
        }
    }
}

/// `--metrics`: an IP address and a port (no host names: the listener binds before any
/// resolver is up).
fn parse_metrics_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!(
            "{text:?} is not an IP address and port; write e.g. 127.0.0.1:9101 or [::1]:9101 \
             (host names such as localhost are not resolved)"
        )
    })
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (journald adds the time).
    Plain,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["netfailover", "status", "--json", "--socket", "/tmp/s"]).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(cli.command, Command::Status { json: true, .. }));
        let cli = Cli::try_parse_from(["netfailover", "run"]).unwrap();
        match cli.command {
            Command::Run(r) => {
                assert_eq!(r.config.boot_dir, PathBuf::from(DEFAULT_BOOT_DIR));
                assert_eq!(r.log_format, LogFormat::Plain);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cli.socket, PathBuf::from(DEFAULT_SOCKET));
    }
}
