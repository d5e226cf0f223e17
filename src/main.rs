//! The `netfailover` binary: parses the command line and calls the library. Errors are
//! reported here (anyhow only in this file) with a non-zero exit code.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use netfailover::cli::{self, CheckConfigArgs, Cli, Command};
use netfailover::config::report;
use netfailover::control::{self, Request};
use netfailover::wait_online;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netfailover: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One function per verb; each prints what the person asked for.
fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let socket = cli.socket.as_path();
    match cli.command {
        Command::Run(args) => {
            let code = netfailover::daemon::run(&args, socket)?;
            Ok(ExitCode::from(code))
        }
        Command::CheckConfig(args) => Ok(check_config(&args)),
        Command::Status { json } => status(socket, json),
        Command::Check { iface } => check(socket, iface),
        Command::Kill { actor } => {
            ask(
                socket,
                &Request::Kill {
                    actor: actor.clone(),
                },
            )?;
            println!("killed {actor}; the supervisor restarts it");
            Ok(ExitCode::SUCCESS)
        }
        Command::Events { json, follow: true } => follow_events(socket, json),
        Command::Events {
            json,
            follow: false,
        } => events(socket, json),
        Command::WaitOnline(args) => wait_online(socket, &args),
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
fn status(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let data = ask(socket, &Request::Status)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        let problems: Vec<String> = data
            .get("config_problems")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .context("decoding the configuration problems")?
            .unwrap_or_default();
        let status = serde_json::from_value(data).context("decoding the status")?;
        print!("{}", cli::format_status(&status, cli::now_unix_ms()));
        print!("{}", cli::format_config_problems(&problems));
    }
    Ok(ExitCode::SUCCESS)
}

/// `check IFACE`: one connectivity check run by the daemon now.
fn check(socket: &Path, iface: String) -> anyhow::Result<ExitCode> {
    let data = ask(
        socket,
        &Request::Check {
            iface: iface.clone(),
        },
    )?;
    let report = serde_json::from_value(data).context("decoding the check report")?;
    print!("{}", cli::format_check(&iface, &report));
    Ok(ExitCode::SUCCESS)
}

/// `events --follow`: the live stream, one line per event, until the daemon or stdout closes.
fn follow_events(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    let mut out = std::io::stdout().lock();
    runtime.block_on(control::follow_lines(socket, |line| {
        let text = if json {
            Some(format!("{line}\n"))
        } else {
            cli::format_follow_line(&line)
        };
        // A closed stdout (`| head`) ends the stream quietly.
        text.is_none_or(|t| {
            out.write_all(t.as_bytes())
                .and_then(|()| out.flush())
                .is_ok()
        })
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `events`: the recent history, as JSON or as a table.
fn events(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let data = ask(socket, &Request::Events)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
    } else {
        let events: Vec<_> = serde_json::from_value(data).context("decoding the events")?;
        print!("{}", cli::format_events(&events));
        // Say when these events are not all on disk yet (best effort: an older daemon's
        // status may not have it).
        let journal = ask(socket, &Request::Status)
            .ok()
            .and_then(|s| {
                serde_json::from_value::<netfailover::engine::status::EngineStatus>(s).ok()
            })
            .and_then(|s| cli::journal_behind(&s.journal));
        if let Some(line) = journal {
            println!("\n{line}");
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

/// One request to the daemon over the control socket.
fn ask(socket: &Path, request: &Request) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?;
    Ok(runtime.block_on(control::request(socket, request))?)
}
