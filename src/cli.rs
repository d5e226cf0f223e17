//! The command line: argument types (clap derive) and the human-readable printers of `status`,
//! `events` and `check`. `main.rs` maps each verb to a library call; everything a person reads
//! on a terminal is formatted here.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use netfailover_actors::observe::EngineEvent;
use netfailover_actors::ports::{ProbeReport, ScriptResult};
use netfailover_actors::status::{
    EngineStatus, EventRecord, FlowResetRecord, HistoryEntry, JournalStatus,
};

use crate::control::DEFAULT_SOCKET;

/// Default boot directory: where balenaOS mounts its boot partition.
pub const DEFAULT_BOOT_DIR: &str = "/mnt/boot";

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
    },
    /// Check one interface's connectivity now.
    Check {
        /// Interface name, e.g. eth0.
        iface: String,
    },
    /// Kill one actor of the running daemon (resilience testing; it is restarted).
    Kill {
        /// Actor name as `status` shows it: link-watcher, route-manager, probe-scheduler,
        /// dispatcher, traffic-watcher, prober:IFACE.
        actor: String,
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
    },
    /// Build a throw-away network of namespaces, run the daemon in it and play faults (root).
    #[cfg(feature = "lab")]
    Lab(LabArgs),
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
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (journald adds the time).
    Plain,
    /// One JSON object per line.
    Json,
}

/// `netfailover lab` (feature `lab`, on by default).
#[cfg(feature = "lab")]
#[derive(Args, Debug, Clone)]
pub struct LabArgs {
    /// Scenario to play (`netfailover lab --scenario list` lists them).
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Keep the namespaces (and the daemon) after the timeline, until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Soak: the default timeline in a loop for MINUTES, with link flaps and actor kills,
    /// sampling the daemon's memory, fds, threads and state_dir size (a table at the end).
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub soak: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Printers
// ---------------------------------------------------------------------------------------------

/// Left-aligned columns sized to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `1.2 KiB`-style sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `42s`, `3m10s`, `2h05m`, `3d04h`.
pub fn human_age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// UTC `YYYY-MM-DD HH:MM:SS` from milliseconds since the epoch (civil-from-days, H. Hinnant).
pub fn utc_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The configuration problems `status` reports (nothing when there are none): the same
/// `FILE:LINE: error: …` lines as `check-config` and the log.
pub fn format_config_problems(problems: &[String]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut out = "\nconfiguration problems (see `netfailover check-config`):\n".to_string();
    for p in problems {
        let _ = writeln!(out, "  {p}");
    }
    out
}

/// The `status` table: one row per interface, the global state, then the actors.
pub fn format_status(status: &EngineStatus, now_ms: u64) -> String {
    let rows: Vec<Vec<String>> = status
        .interfaces
        .iter()
        .map(|i| {
            let effective = i
                .effective_metric
                .map_or_else(|| "no route".to_string(), |m| m.to_string());
            let last = i.last_check.as_ref().map_or_else(
                || "never".to_string(),
                |c| {
                    format!(
                        "{} ago {} ({})",
                        human_age(now_ms.saturating_sub(c.at_unix_ms)),
                        c.verdict.connectivity(),
                        c.reason
                    )
                },
            );
            vec![
                i.name.to_string(),
                i.link.clone(),
                i.connectivity.to_string(),
                format!("{} → {effective}", i.metric),
                last,
                human_bytes(i.probe_bytes),
                passive_summary(&i.passive, now_ms),
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        "no managed interfaces\n".to_string()
    } else {
        table(
            &[
                "INTERFACE",
                "LINK",
                "CONNECTIVITY",
                "METRIC → EFFECTIVE",
                "LAST CHECK",
                "PROBE BYTES",
                "PASSIVE",
            ],
            &rows,
        )
    };
    let _ = writeln!(
        out,
        "\nglobal connectivity: {}   events: {}   script failures: {}   pending: {}",
        status.connectivity, status.events_total, status.script_failures, status.pending_events
    );
    let f = &status.flows;
    let _ = writeln!(
        out,
        "flow resets: {}   sockets destroyed: {}   conntrack entries deleted: {}   failures: {}\n",
        f.resets, f.sockets_destroyed, f.conntrack_deleted, f.failures
    );
    if let Some(line) = journal_behind(&status.journal) {
        let _ = writeln!(out, "{line}\n");
    }
    let actors: Vec<Vec<String>> = status
        .actors
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                if a.running { "running" } else { "stopped" }.to_string(),
                a.restarts.to_string(),
                a.kills.to_string(),
                a.last_failure.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "ACTOR",
            "STATE",
            "RESTARTS",
            "OF WHICH KILLS",
            "LAST FAILURE",
        ],
        &actors,
    ));
    out
}

/// Passive health in one cell: `quiet`, `suspect 3s`, then the counters and the last trigger.
fn passive_summary(p: &netfailover_actors::status::PassiveStatus, now_ms: u64) -> String {
    let mut s = match (p.state.as_str(), p.suspect_since_unix_ms) {
        ("", _) => "off".to_string(),
        ("suspect", Some(since)) => format!("suspect {}", human_age(now_ms.saturating_sub(since))),
        (state, _) => state.to_string(),
    };
    if p.suspicions > 0 {
        let _ = write!(
            s,
            "; {} suspicions, {} confirmations ({} failed)",
            p.suspicions, p.confirmations, p.confirmations_failed
        );
    }
    if let (Some(what), Some(at)) = (&p.last_trigger, p.last_trigger_unix_ms) {
        let _ = write!(
            s,
            "; last {} ago: {what}",
            human_age(now_ms.saturating_sub(at))
        );
    }
    s
}

/// One script outcome as `name:code`.
fn script_summary(outcome: &netfailover_actors::ports::ScriptOutcome) -> String {
    let result = match &outcome.result {
        ScriptResult::Exited { code } => format!("exit {code}"),
        ScriptResult::Signalled { signal } => format!("signal {signal}"),
        ScriptResult::TimedOut => "timed out".to_string(),
        ScriptResult::Skipped { why } => format!("skipped: {why}"),
    };
    format!("{} ({result})", outcome.script)
}

/// One warning line when the event journal on disk is behind, for `status` and `events`.
pub fn journal_behind(journal: &JournalStatus) -> Option<String> {
    if !journal.behind {
        return None;
    }
    let mut line = format!(
        "journal behind: {} event(s) not on disk yet",
        journal.unsaved_events
    );
    if let Some(e) = &journal.last_error {
        line.push_str(&format!("; last write failed: {e}"));
    }
    Some(line)
}

/// One dispatcher event as a row of the `events` table.
fn event_row(r: &EventRecord) -> Vec<String> {
    let e = &r.event;
    let scripts = if !r.delivered {
        "pending".to_string()
    } else if r.scripts.is_empty() {
        "none".to_string()
    } else {
        r.scripts
            .iter()
            .map(script_summary)
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        e.id.to_string(),
        utc_time(e.at_unix_ms),
        e.iface
            .as_ref()
            .map_or_else(|| "-".to_string(), |i| i.to_string()),
        e.kind.to_string(),
        format!("{} → {}", e.previous, e.state),
        e.reason.clone(),
        scripts,
    ]
}

/// One flow reset as a row: no id and no scripts (it is not a dispatcher event).
fn flow_reset_row(r: &FlowResetRecord) -> Vec<String> {
    let family = match r.family {
        netfailover_actors::model::Family::V4 => "IPv4",
        netfailover_actors::model::Family::V6 => "IPv6",
    };
    let mut reason = format!(
        "{family} route moved to {}{}: {} TCP sockets destroyed, {} conntrack entries deleted in {:.0} ms",
        r.to,
        if r.failback { " (fail-back)" } else { "" },
        r.sockets_destroyed,
        r.conntrack_deleted,
        r.elapsed_ms
    );
    for f in &r.failures {
        reason.push_str(&format!("; FAILED {f}"));
    }
    vec![
        "-".to_string(),
        utc_time(r.at_unix_ms),
        r.iface.to_string(),
        "flows-reset".to_string(),
        "-".to_string(),
        reason,
        "-".to_string(),
    ]
}

/// The `events` table (dispatcher events and flow resets), oldest first.
pub fn format_events(events: &[HistoryEntry]) -> String {
    if events.is_empty() {
        return "no events yet\n".to_string();
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| match e {
            HistoryEntry::Event(r) => event_row(r),
            HistoryEntry::FlowsReset { flows_reset } => flow_reset_row(flows_reset),
        })
        .collect();
    table(
        &[
            "ID",
            "TIME (UTC)",
            "IFACE",
            "EVENT",
            "STATE",
            "REASON",
            "SCRIPTS",
        ],
        &rows,
    )
}

/// One line of `events --follow` for a person (`None` for lines without a human form).
pub fn format_follow_line(line: &serde_json::Value) -> Option<String> {
    let decode = |key: &str| line.get(key).cloned().unwrap_or_default();
    let text = match line.get("type")?.as_str()? {
        "snapshot" => {
            let status: EngineStatus = serde_json::from_value(decode("status")).ok()?;
            let events: Vec<HistoryEntry> = serde_json::from_value(decode("events")).ok()?;
            format!(
                "{}\n{}",
                format_status(&status, now_unix_ms()),
                format_events(&events)
            )
        }
        "lagged" => format!(
            "(fell behind: {} changes missed; a fresh snapshot follows)\n",
            line["count"]
        ),
        "stopped" => "(the daemon stopped)\n".to_string(),
        _ => {
            let event: EngineEvent = serde_json::from_value(line.clone()).ok()?;
            format!("{} {}\n", utc_time(now_unix_ms()), describe(&event))
        }
    };
    Some(text)
}

fn opt_metric(m: Option<u32>) -> String {
    m.map_or_else(|| "none".to_string(), |m| m.to_string())
}

/// One change in words.
pub fn describe(event: &EngineEvent) -> String {
    match event {
        EngineEvent::InterfaceAdded { status } => {
            format!(
                "{}: managed ({}, link {})",
                status.name, status.source, status.link
            )
        }
        EngineEvent::InterfaceRemoved { iface } => format!("{iface}: no longer managed"),
        EngineEvent::Link {
            iface,
            link,
            previous,
        } => format!("{iface}: link {previous} → {link}"),
        EngineEvent::Connectivity {
            iface,
            state,
            previous,
        } => format!("{iface}: connectivity {previous} → {state}"),
        EngineEvent::GlobalConnectivity { state, previous } => {
            format!("global connectivity {previous} → {state}")
        }
        EngineEvent::Route {
            iface,
            family,
            old_metric,
            new_metric,
        } => format!(
            "{iface}: {family:?} route metric {} → {}",
            opt_metric(*old_metric),
            opt_metric(*new_metric)
        ),
        EngineEvent::ActorAdded { status } => format!("actor {} started", status.name),
        EngineEvent::ActorRemoved { actor } => format!("actor {actor} removed"),
        EngineEvent::ActorRestarted {
            actor,
            reason,
            restarts,
        } => format!("actor {actor} restarted ({reason}; {restarts} restarts)"),
        EngineEvent::Event(e) => format!(
            "event {} {} {}: {} → {} ({})",
            e.id,
            e.kind,
            e.iface.as_ref().map_or("-", |i| i.as_str()),
            e.previous,
            e.state,
            e.reason
        ),
        EngineEvent::Script {
            event_id,
            script,
            result,
            duration_ms,
        } => format!(
            "event {event_id}: {} in {duration_ms} ms",
            script_summary(&netfailover_actors::ports::ScriptOutcome {
                script: script.clone(),
                result: result.clone(),
                elapsed: std::time::Duration::ZERO,
            })
        ),
        EngineEvent::Delivered { event_id } => format!("event {event_id}: delivered"),
        EngineEvent::FlowsReset(r) => flow_reset_row(r)[2..].join(" "),
    }
}

/// The result of `check <iface>`.
pub fn format_check(iface: &str, report: &ProbeReport) -> String {
    format!(
        "{iface}: {} ({}) in {} ms, {} on the wire ({} DNS)\n",
        report.verdict.connectivity(),
        report.reason,
        report.elapsed.as_millis(),
        human_bytes(report.bytes),
        human_bytes(report.dns_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use netfailover_actors::model::{Connectivity, Event, EventKind, IfaceName, UplinkType};
    use netfailover_actors::ports::{ScriptOutcome, Verdict};
    use netfailover_actors::status::{ActorStatus, CheckCounters, CheckSummary, IfaceStatus};
    use std::time::Duration;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["netfailover", "status", "--json", "--socket", "/tmp/s"]).unwrap();
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(cli.command, Command::Status { json: true }));
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

    #[test]
    fn times_and_sizes() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(1_709_251_199_000), "2024-02-29 23:59:59");
        assert_eq!(human_age(59_999), "59s");
        assert_eq!(human_age(61_000), "1m01s");
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn config_problems_end_the_status_only_when_there_are_some() {
        assert_eq!(format_config_problems(&[]), "");
        let text = format_config_problems(&[
            "/mnt/boot/netfailover.toml:3: error: check.down_count: bad".into(),
        ]);
        assert!(text.contains("configuration problems"), "{text}");
        assert!(
            text.ends_with("  /mnt/boot/netfailover.toml:3: error: check.down_count: bad\n"),
            "{text}"
        );
    }

    #[test]
    fn status_table_reads_at_a_glance() {
        let status = EngineStatus {
            connectivity: Connectivity::Full,
            interfaces: vec![IfaceStatus {
                name: IfaceName::new("eth0").unwrap(),
                ifindex: Some(2),
                link: "up".into(),
                connectivity: Connectivity::Limited,
                metric: 100,
                effective_metric: Some(20100),
                metric6: 100,
                effective_metric6: None,
                gateway4: None,
                gateway6: None,
                uplink_type: UplinkType::Ethernet,
                source: "adopted".into(),
                dns: vec![],
                last_check: Some(CheckSummary {
                    at_unix_ms: 10_000,
                    verdict: Verdict::Limited,
                    reason: "connect timeout".into(),
                    latency_ms: 1000.0,
                }),
                probe_bytes: 2048,
                probe_dns_bytes: 0,
                checks: CheckCounters::default(),
                passive: netfailover_actors::status::PassiveStatus {
                    state: "suspect".into(),
                    suspect_since_unix_ms: Some(11_000),
                    last_trigger: Some("TCP to 203.0.113.7 stalled".into()),
                    last_trigger_unix_ms: Some(12_000),
                    suspicions: 1,
                    confirmations: 2,
                    confirmations_failed: 2,
                },
            }],
            actors: vec![ActorStatus {
                name: "dispatcher".into(),
                running: true,
                restarts: 2,
                kills: 1,
                last_failure: None,
            }],
            ..Default::default()
        };
        let text = format_status(&status, 13_000);
        let row = text.lines().nth(1).unwrap();
        for part in [
            "eth0",
            "up",
            "LIMITED",
            "100 → 20100",
            "3s ago LIMITED (connect timeout)",
            "2.0 KiB",
            "suspect 2s; 1 suspicions, 2 confirmations (2 failed); last 1s ago: TCP to 203.0.113.7 stalled",
        ] {
            assert!(row.contains(part), "{part:?} not in {row:?}");
        }
        assert!(text.contains("global connectivity: FULL"));
        assert!(text
            .lines()
            .any(|l| l.starts_with("dispatcher") && l.contains("running  2")));
        assert!(!text.contains("journal behind"), "not behind: no line");
        let mut behind = status.clone();
        behind.journal = JournalStatus {
            behind: true,
            unsaved_events: 3,
            last_error: Some("state_dir: disk full".into()),
        };
        let text = format_status(&behind, 13_000);
        assert!(
            text.contains(
                "journal behind: 3 event(s) not on disk yet; last write failed: state_dir: disk full"
            ),
            "{text}"
        );
    }

    #[test]
    fn events_table_has_scripts_and_codes() {
        let record = EventRecord {
            event: Event {
                id: 7,
                kind: EventKind::Down,
                iface: Some(IfaceName::new("eth0").unwrap()),
                state: Connectivity::None,
                previous: Connectivity::Full,
                reason: "carrier lost".into(),
                connection_id: None,
                connection_uuid: None,
                ip4_gateway: None,
                ip4_nameservers: vec![],
                at_unix_ms: 0,
            },
            delivered: true,
            scripts: vec![ScriptOutcome {
                script: "50-log".into(),
                result: ScriptResult::Exited { code: 3 },
                elapsed: Duration::from_millis(5),
            }],
        };
        let reset = FlowResetRecord {
            at_unix_ms: 1,
            family: netfailover_actors::model::Family::V4,
            iface: IfaceName::new("eth0").unwrap(),
            to: IfaceName::new("wlan0").unwrap(),
            failback: false,
            sockets_destroyed: 3,
            conntrack_deleted: 4,
            failures: vec![netfailover_actors::ports::FlowFailure {
                kind: netfailover_actors::ports::FlowFailureKind::Unsupported,
                what: "destroying TCP sockets".into(),
                message: "no CONFIG_INET_DIAG_DESTROY".into(),
            }],
            elapsed_ms: 12.0,
        };
        let entries = [
            HistoryEntry::Event(record),
            HistoryEntry::FlowsReset { flows_reset: reset },
        ];
        let text = format_events(&entries);
        let reset_row = text.lines().nth(2).unwrap();
        for part in [
            "flows-reset",
            "eth0",
            "wlan0",
            "3 TCP sockets destroyed",
            "4 conntrack entries",
            "FAILED destroying TCP sockets: no CONFIG_INET_DIAG_DESTROY",
        ] {
            assert!(reset_row.contains(part), "{part:?} not in {reset_row:?}");
        }
        // The JSON round-trips both kinds of entries.
        let json = serde_json::to_string(&entries).unwrap();
        let back: Vec<HistoryEntry> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entries);
        let row = text.lines().nth(1).unwrap();
        for part in [
            "7",
            "eth0",
            "down",
            "FULL → NONE",
            "carrier lost",
            "50-log (exit 3)",
        ] {
            assert!(row.contains(part), "{part:?} not in {row:?}");
        }
    }
}
