//! The human-readable printers of `status`, `events` and `check`, and the small formatters they
//! share (tables, sizes, ages, UTC times). Library side, so an embedder or the lab prints the
//! same; the argument types live in the binary (`src/cli.rs`, declared by `src/main.rs`).

use std::fmt::Write as _;

use netfailover_actors::model::{IfaceName, Metered};
use netfailover_actors::observe::EngineEvent;
use netfailover_actors::ports::{ProbeReport, ScriptResult};
use netfailover_actors::status::{
    AccountingStatus, EngineStatus, EventRecord, FlowResetRecord, HistoryEntry, IfaceStatus,
    JournalStatus,
};

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

/// UTC `YYYY-MM-DD HH:MM:SS` from milliseconds since the epoch: humantime's RFC 3339 date with a
/// space for the `T` and no `Z`. A time past what it writes (after the year 9999: a corrupt
/// answer, not a clock) shows as its raw milliseconds.
pub fn utc_time(unix_ms: u64) -> String {
    let mut rfc3339 = String::new();
    let written = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_millis(unix_ms))
        .is_some_and(|t| write!(rfc3339, "{}", humantime::format_rfc3339_seconds(t)).is_ok());
    match rfc3339.strip_suffix('Z') {
        Some(text) if written => text.replacen('T', " ", 1),
        _ => format!("{unix_ms} ms after the epoch"),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The global lines under the interfaces: connectivity and events, whether checks are off,
/// flow resets.
fn write_totals(out: &mut String, status: &EngineStatus) {
    let _ = writeln!(
        out,
        "\nglobal connectivity: {}   events: {}   script failures: {}   pending: {}",
        status.connectivity, status.events_total, status.script_failures, status.pending_events
    );
    if status.checks_disabled {
        let _ = writeln!(
            out,
            "checks disabled (interval 0 or uri \"null\"): no uplink is verified FULL"
        );
    }
    let f = &status.flows;
    let _ = writeln!(
        out,
        "flow resets: {}   sockets destroyed: {}   conntrack entries deleted: {}   failures: {}\n",
        f.resets, f.sockets_destroyed, f.conntrack_deleted, f.failures
    );
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
            let mut row = iface_row(i, now_ms);
            row.push(recovery_summary(status, &i.name, now_ms));
            row
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
                "METERED",
                "METRIC → EFFECTIVE",
                "LAST CHECK",
                "PROBE BYTES",
                "PASSIVE",
                "RECOVERY",
            ],
            &rows,
        )
    };
    write_totals(&mut out, status);
    for i in &status.interfaces {
        if let Some(why) = &i.ipv6_penalty_unavailable {
            let _ = writeln!(out, "{}: IPv6 penalty unavailable: {why}\n", i.name);
        }
    }
    if let Some(line) = journal_behind(&status.journal) {
        let _ = writeln!(out, "{line}\n");
    }
    if !matches!(status.recovery.reboot.as_str(), "" | "off") {
        let _ = writeln!(out, "recovery reboot: {}\n", status.recovery.reboot);
    }
    out.push_str(&format_accounting(&status.accounting));
    let actors: Vec<Vec<String>> = status
        .actors
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                if a.running { "running" } else { "stopped" }.to_string(),
                a.restarts.to_string(),
                a.kills.to_string(),
                a.last_failure.map(|f| f.to_string()).unwrap_or_default(),
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

/// What checking cost this month, one row per interface (nothing before the first count): check
/// bytes and checks, the share of the budget (metered uplinks), the link's bytes.
pub fn format_accounting(a: &AccountingStatus) -> String {
    if a.interfaces.is_empty() {
        return String::new();
    }
    let budget = if a.budget_month == 0 {
        "no budget".to_string()
    } else {
        format!("budget {} per metered uplink", human_bytes(a.budget_month))
    };
    let rows: Vec<Vec<String>> = a
        .interfaces
        .iter()
        .map(|(name, i)| {
            let share = match (i.metered, a.budget_month) {
                (false, _) => "-".to_string(),
                (true, 0) => "no cap".to_string(),
                (true, b) => {
                    let pct = (u128::from(i.probe_bytes) * 100 / u128::from(b)).min(999);
                    let stop = if i.budget_exhausted {
                        ", periodic checks stopped"
                    } else {
                        ""
                    };
                    format!("{pct} %{stop}")
                }
            };
            vec![
                name.to_string(),
                i.month.clone(),
                if i.metered { "yes" } else { "no" }.to_string(),
                i.checks.to_string(),
                human_bytes(i.probe_bytes),
                share,
                human_bytes(i.rx_bytes),
                human_bytes(i.tx_bytes),
            ]
        })
        .collect();
    let mut out = format!("this month (UTC), {budget}:\n");
    out.push_str(&table(
        &[
            "INTERFACE",
            "MONTH",
            "METERED",
            "CHECKS",
            "CHECK BYTES",
            "OF BUDGET",
            "LINK RX",
            "LINK TX",
        ],
        &rows,
    ));
    out.push('\n');
    out
}

/// The `RECOVERY` column: the next rung of the interface's episode and when (`-` when it is
/// in none: FULL, no link, or the ladder off).
fn recovery_summary(status: &EngineStatus, iface: &IfaceName, now_ms: u64) -> String {
    let Some(r) = status.recovery.interfaces.get(iface) else {
        return "-".into();
    };
    match (&r.next, r.next_at_unix_ms) {
        (Some(next), Some(at)) if at > now_ms => {
            format!("{next} in {}", human_age(at - now_ms))
        }
        (Some(next), _) => format!("{next} due"),
        (None, _) => "ladder done".into(),
    }
}

/// One interface's row of the `status` table.
fn iface_row(i: &IfaceStatus, now_ms: u64) -> Vec<String> {
    let effective = i
        .effective_metric
        .map_or_else(|| "no route".to_string(), |m| m.to_string());
    let last = i.last_check.as_ref().map_or_else(
        || "never".to_string(),
        |c| {
            let ago = human_age(now_ms.saturating_sub(c.at_unix_ms));
            match c.skipped {
                Some(why) => format!("{ago} ago skipped ({why})"),
                None => format!("{ago} ago {} ({})", c.verdict.connectivity(), c.reason),
            }
        },
    );
    vec![
        i.name.to_string(),
        i.link.to_string(),
        i.connectivity.to_string(),
        Metered {
            metered: i.metered,
            guessed: i.metered_guessed,
        }
        .to_string(),
        format!("{} → {effective}", i.metric),
        last,
        human_bytes(i.probe_bytes),
        passive_summary(&i.passive, now_ms),
    ]
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
    if p.held_by_ceiling > 0 {
        let _ = write!(s, "; {} held by the hourly ceiling", p.held_by_ceiling);
    }
    // Only a partial view is worth a word (nothing sampled yet, or everything, is not).
    if p.sees == netfailover_actors::status::Sees::SocketsOnly {
        let _ = write!(s, "; sees {}", p.sees);
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
mod tests;
