//! The `netfailover` binary: parses the command line and calls the library. Errors are
//! reported here (anyhow only in this file) with a non-zero exit code. Output goes through
//! [`out`]: a reader that closed stdout (`status | head -1`) ends the command quietly with
//! status 0, as `head` expects.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _};
use netfailover::config::report;
use netfailover::control::{self, Request};
use netfailover::print;
use netfailover::wait_online;

mod cli;
mod lab_launcher;

use cli::{CheckConfigArgs, Cli, ClientArgs, Command};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let explicit_socket = matches.value_source("socket") == Some(ValueSource::CommandLine);
    match dispatch(cli, explicit_socket) {
        Ok(code) => code,
        Err(e) if stdout_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netfailover: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, like `{:#}`, leaving out a cause whose text the line
/// already holds (an error that prints its source in its own message).
fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1).map(ToString::to_string) {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The error is a write to a stdout its reader closed.
fn stdout_closed(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Writes `text` to stdout (flushed); a closed stdout is an `io::Error` that [`main`] turns
/// into a quiet exit.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// One function per verb; each prints what the person asked for.
fn dispatch(cli: Cli, explicit_socket: bool) -> anyhow::Result<ExitCode> {
    let socket = cli.socket.as_path();
    match cli.command {
        Command::Run(args) => {
            let code = netfailover::daemon::run(&args.options(socket.to_path_buf()))?;
            Ok(ExitCode::from(code))
        }
        Command::CheckConfig(_) if explicit_socket => {
            anyhow::bail!("check-config reads the files and never talks to the daemon: --socket has no meaning here")
        }
        Command::CheckConfig(args) => Ok(check_config(&args)),
        Command::Status { json, client } => status(socket, json, client),
        Command::Check { iface, client } => check(socket, iface, client),
        Command::Kill { actor, client } => {
            let request = Request::Kill {
                actor: actor.clone(),
            };
            ask(socket, &request, client)?;
            out(&format!("killed {actor}; the supervisor restarts it\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            json,
            follow: true,
            client,
        } => follow_events(socket, json, client),
        Command::Events {
            json,
            follow: false,
            client,
        } => events(socket, json, client),
        Command::WaitOnline(args) => wait_online(socket, &args),
        Command::Lab { args } => lab_launcher::run(&args),
    }
}

/// `check-config`: the report on stdout; the exit code says whether there were errors.
fn check_config(args: &CheckConfigArgs) -> ExitCode {
    let format = if args.json {
        report::Format::Json
    } else {
        report::Format::Text
    };
    let code = report::check_config(
        &args.config.boot_dir,
        args.config.config.as_deref(),
        format,
        &mut std::io::stdout().lock(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `status`: the daemon's board, as JSON or as tables followed by the configuration problems.
fn status(socket: &Path, json: bool, client: ClientArgs) -> anyhow::Result<ExitCode> {
    let data = ask(socket, &Request::Status, client)?;
    if json {
        out(&format!("{}\n", serde_json::to_string_pretty(&data)?))?;
    } else {
        let problems: Vec<String> = data
            .get("config_problems")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .context("decoding the configuration problems")?
            .unwrap_or_default();
        let status = serde_json::from_value(data).context("decoding the status")?;
        out(&format!(
            "{}{}",
            print::format_status(&status, print::now_unix_ms()),
            print::format_config_problems(&problems)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `check IFACE`: one connectivity check run by the daemon now.
fn check(socket: &Path, iface: String, client: ClientArgs) -> anyhow::Result<ExitCode> {
    let request = Request::Check {
        iface: iface.clone(),
    };
    let data = ask(socket, &request, client)?;
    let report = serde_json::from_value(data).context("decoding the check report")?;
    out(&print::format_check(&iface, &report))?;
    Ok(ExitCode::SUCCESS)
}

/// `events --follow`: the live stream, one line per event, until the daemon or stdout closes.
fn follow_events(socket: &Path, json: bool, client: ClientArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let first_line = client.timeout_for(&Request::Follow);
    runtime.block_on(control::follow_lines(socket, first_line, |line| {
        let text = if json {
            Some(format!("{line}\n"))
        } else {
            print::format_follow_line(&line)
        };
        // A closed stdout (`| head`) ends the stream quietly.
        text.is_none_or(|t| out(&t).is_ok())
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `events`: the recent history, as JSON or as a table.
fn events(socket: &Path, json: bool, client: ClientArgs) -> anyhow::Result<ExitCode> {
    let data = ask(socket, &Request::Events, client)?;
    if json {
        out(&format!("{}\n", serde_json::to_string_pretty(&data)?))?;
    } else {
        let events: Vec<_> = serde_json::from_value(data).context("decoding the events")?;
        out(&print::format_events(&events))?;
        // Say when these events are not all on disk yet (best effort: an older daemon's
        // status may not have it).
        let journal = ask(socket, &Request::Status, client)
            .ok()
            .and_then(|s| {
                serde_json::from_value::<netfailover::engine::status::EngineStatus>(s).ok()
            })
            .and_then(|s| print::journal_behind(&s.journal));
        if let Some(line) = journal {
            out(&format!("\n{line}\n"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `wait-online`: 0 online, 1 at the timeout with one line per uplink, 2 without a daemon.
fn wait_online(socket: &Path, args: &cli::WaitOnlineArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let want = wait_online::Want {
        interfaces: args.interface.clone(),
        all: args.all,
    };
    let timeout = std::time::Duration::from_secs(args.timeout);
    let outcome = runtime.block_on(async {
        let deadline = (args.timeout > 0).then(|| tokio::time::Instant::now() + timeout);
        wait_online::wait(socket, &want, deadline).await
    });
    match &outcome {
        wait_online::Outcome::Online(full) => println!("online: {} FULL", full.join(", ")),
        wait_online::Outcome::TimedOut(lines) => {
            eprintln!("netfailover: not online after {} s:", args.timeout);
            for line in lines {
                eprintln!("  {line}");
            }
        }
        wait_online::Outcome::NoDaemon(why) => {
            eprintln!(
                "netfailover: no daemon answered within {} s: {why}",
                args.timeout
            )
        }
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

/// One request to the daemon over the control socket, within `--timeout`.
fn ask(socket: &Path, request: &Request, client: ClientArgs) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let total = client.timeout_for(request);
    Ok(runtime.block_on(control::request_within(socket, request, total))?)
}
