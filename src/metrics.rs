//! Prometheus metrics: the `--metrics ADDR` listener (hyper, HTTP/1) serving `GET /metrics` in
//! the Prometheus text format, built from the engine's status board at scrape time.
//!
//! Nothing is counted here: the engine's board already keeps every counter (checks by result,
//! cumulative latency buckets, probe bytes, restarts, dispatcher totals), so a scrape takes one
//! snapshot and [`Exposition`] writes it in the text format (a few lines of our own instead of
//! `prometheus-client`: the device binary's size, docs/decisions.md). Exposed families (all prefixed
//! `netfailover_`):
//!
//! | family | type | labels | meaning |
//! |---|---|---|---|
//! | `connectivity` | gauge (state set) | `state` | 1 for the global state, 0 for the others |
//! | `interface_link_up` | gauge | `iface` | 1 when the link is up |
//! | `interface_connectivity` | gauge (state set) | `iface`, `state` | 1 for the interface's state |
//! | `interface_metric` | gauge | `iface` | configured IPv4 metric |
//! | `interface_effective_metric` | gauge | `iface` | metric of the installed IPv4 route (absent: none) |
//! | `checks_total` | counter | `iface`, `result` | finished checks by verdict |
//! | `checks_skipped_total` | counter | `iface`, `reason` | periodic checks of metered uplinks skipped (`traffic`) |
//! | `check_latency_seconds` | histogram | `iface` | check duration |
//! | `probe_bytes_total` | counter | `iface` | bytes spent on checks (DNS included) |
//! | `probe_dns_bytes_total` | counter | `iface` | of which DNS |
//! | `passive_suspect` | gauge | `iface` | 1 while passive health sees evidence of a stall |
//! | `passive_suspicions_total` | counter | `iface` | suspicions that asked for confirmation |
//! | `passive_confirmations_total` | counter | `iface`, `result` | confirmation checks (`passed`, `failed`) |
//! | `actor_running` | gauge | `actor` | 1 while the actor runs |
//! | `actor_restarts_total` | counter | `actor` | restarts after failures and kills |
//! | `dispatcher_events_total` | counter | | events produced |
//! | `dispatcher_script_failures_total` | counter | | scripts that failed, were killed or timed out |
//! | `dispatcher_pending_events` | gauge | | events not yet delivered |
//! | `flow_resets_total` | counter | | flow resets after the route in use moved |
//! | `flow_sockets_destroyed_total` | counter | | TCP sockets destroyed by them |
//! | `flow_conntrack_deleted_total` | counter | | conntrack entries deleted by them |
//! | `flow_reset_failures_total` | counter | | failed parts (no permission, missing kernel option, ...) |
//!
//! Connectivity is a state set (one series per state, value 0/1) rather than a number, so a
//! dashboard never has to know the enum's order.

use std::convert::Infallible;
use std::fmt::{Display, Write as _};
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use netfailover_actors::model::Connectivity;
use netfailover_actors::status::{ActorStatus, EngineStatus, IfaceStatus, LATENCY_BUCKETS};

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATES: [Connectivity; 5] = [
    Connectivity::Full,
    Connectivity::Portal,
    Connectivity::Limited,
    Connectivity::Unknown,
    Connectivity::None,
];

/// Metrics listener errors.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The cause is part of the message, not a `source` (which `{:#}` would print again).
    #[error("metrics listener on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// The Prometheus text exposition format (0.0.4) being written: `# HELP` and `# TYPE` per
/// family, then one line per series. Every name carries the `netfailover_` prefix, a counter's
/// also the `_total` suffix. Label values escape `\`, `"` and newlines, help texts `\` and
/// newlines (the format's rules).
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: &str) -> std::fmt::Result {
        let help = escape(help, &['\\', '\n']);
        write!(
            self.text,
            "# HELP netfailover_{name} {help}\n# TYPE netfailover_{name} {kind}\n"
        )
    }

    fn series(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) -> std::fmt::Result {
        write!(self.text, "netfailover_{name}")?;
        for (n, (key, value)) in labels.iter().enumerate() {
            let open = if n == 0 { "{" } else { "," };
            let value = escape(value, &['\\', '"', '\n']);
            write!(self.text, "{open}{key}=\"{value}\"")?;
        }
        if !labels.is_empty() {
            self.text.push('}');
        }
        writeln!(self.text, " {value}")
    }
}

/// `s` with each of `special` backslash-escaped (a newline as `\n`).
fn escape<'a>(s: &'a str, special: &[char]) -> std::borrow::Cow<'a, str> {
    if !s.contains(special) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            c if special.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.into()
}

fn gauge(
    enc: &mut Exposition,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, i64)],
) -> std::fmt::Result {
    enc.family(name, help, "gauge")?;
    for (labels, value) in series {
        enc.series(name, labels, value)?;
    }
    Ok(())
}

fn counter(
    enc: &mut Exposition,
    name: &str,
    help: &str,
    series: &[(Labels<'_>, u64)],
) -> std::fmt::Result {
    let name = format!("{name}_total");
    enc.family(&name, help, "counter")?;
    for (labels, value) in series {
        enc.series(&name, labels, value)?;
    }
    Ok(())
}

/// The families in their published order (the golden test in this file pins it).
fn encode(enc: &mut Exposition, status: &EngineStatus) -> std::fmt::Result {
    let ifaces = &status.interfaces;
    encode_global(enc, status)?;
    encode_interfaces(enc, ifaces)?;
    encode_checks(enc, ifaces)?;
    encode_skipped(enc, ifaces)?;
    encode_latency(enc, ifaces)?;
    encode_probe_bytes(enc, ifaces)?;
    encode_passive(enc, ifaces)?;
    encode_actors(enc, &status.actors)?;
    encode_dispatcher_and_flows(enc, status)?;
    encode_recovery(enc, status)?;
    encode_accounting(enc, status)
}

/// The month's accounts (docs/semantics.md §10): `probe_bytes_month` and
/// `interface_bytes_month` by direction. Gauges: they start over with each calendar month.
fn encode_accounting(enc: &mut Exposition, status: &EngineStatus) -> std::fmt::Result {
    let accounts = &status.accounting.interfaces;
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let probe: Vec<(Labels<'_>, i64)> = accounts
        .iter()
        .map(|(name, a)| (vec![("iface", name.as_str())], clamp(a.probe_bytes)))
        .collect();
    gauge(
        enc,
        "probe_bytes_month",
        "Bytes of this calendar month's (UTC) checks at L3, both directions, DNS included",
        &probe,
    )?;
    let link: Vec<(Labels<'_>, i64)> = accounts
        .iter()
        .flat_map(|(name, a)| {
            [("rx", a.rx_bytes), ("tx", a.tx_bytes)]
                .into_iter()
                .map(move |(dir, n)| (vec![("iface", name.as_str()), ("direction", dir)], clamp(n)))
        })
        .collect();
    gauge(
        enc,
        "interface_bytes_month",
        "Bytes through the interface this calendar month (UTC), by direction (link counters)",
        &link,
    )
}

/// The recovery ladder's actions by action and result (`docs/recovery.md`).
fn encode_recovery(enc: &mut Exposition, status: &EngineStatus) -> std::fmt::Result {
    let series: Vec<(Labels<'_>, u64)> = status
        .recovery
        .actions
        .iter()
        .flat_map(|(action, results)| {
            results.iter().map(move |(result, n)| {
                (
                    vec![("action", action.as_str()), ("result", result.as_str())],
                    *n,
                )
            })
        })
        .collect();
    counter(
        enc,
        "recovery_actions",
        "Recovery ladder actions taken, by action and result (done, skipped, failed)",
        &series,
    )
}

/// One (state, 0/1) pair per connectivity state, 1 for `state`.
fn state_set(state: Connectivity) -> impl Iterator<Item = (Connectivity, i64)> {
    STATES.into_iter().map(move |s| (s, i64::from(s == state)))
}

/// One series per interface labelled `iface`, for the interfaces where `f` has a value.
fn per_iface<T>(
    ifaces: &[IfaceStatus],
    f: impl Fn(&IfaceStatus) -> Option<T>,
) -> Vec<(Labels<'_>, T)> {
    ifaces
        .iter()
        .filter_map(|i| f(i).map(|v| (vec![("iface", i.name.as_str())], v)))
        .collect()
}

/// `connectivity`: the global state set.
fn encode_global(enc: &mut Exposition, status: &EngineStatus) -> std::fmt::Result {
    let global: Vec<_> = state_set(status.connectivity)
        .map(|(s, v)| (vec![("state", s.as_str())], v))
        .collect();
    gauge(
        enc,
        "connectivity",
        "Global connectivity (best over interfaces), one series per state",
        &global,
    )
}

/// `interface_link_up`, `interface_connectivity`, `interface_metric`,
/// `interface_effective_metric`.
fn encode_interfaces(enc: &mut Exposition, ifaces: &[IfaceStatus]) -> std::fmt::Result {
    gauge(
        enc,
        "interface_link_up",
        "1 when the interface has link (admin up and carrier)",
        &per_iface(ifaces, |i| Some(i64::from(i.link == "up"))),
    )?;
    let connectivity: Vec<_> = ifaces
        .iter()
        .flat_map(|i| {
            state_set(i.connectivity)
                .map(move |(s, v)| (vec![("iface", i.name.as_str()), ("state", s.as_str())], v))
        })
        .collect();
    gauge(
        enc,
        "interface_connectivity",
        "Connectivity of the interface, one series per state",
        &connectivity,
    )?;
    gauge(
        enc,
        "interface_metric",
        "Configured IPv4 route metric",
        &per_iface(ifaces, |i| Some(i64::from(i.metric))),
    )?;
    gauge(
        enc,
        "interface_effective_metric",
        "Metric of the installed IPv4 default route (penalty and uniqueness bump included)",
        &per_iface(ifaces, |i| i.effective_metric.map(i64::from)),
    )
}

/// `checks_total` by interface and verdict.
fn encode_checks(enc: &mut Exposition, ifaces: &[IfaceStatus]) -> std::fmt::Result {
    let checks: Vec<_> = ifaces
        .iter()
        .flat_map(|i| {
            i.checks.by_verdict.iter().map(move |(result, n)| {
                (
                    vec![("iface", i.name.as_str()), ("result", result.as_str())],
                    *n,
                )
            })
        })
        .collect();
    counter(
        enc,
        "checks",
        "Finished connectivity checks by result",
        &checks,
    )
}

/// `checks_skipped_total` by interface and reason (metered uplinks, docs/semantics.md §9.11).
fn encode_skipped(enc: &mut Exposition, ifaces: &[IfaceStatus]) -> std::fmt::Result {
    let skipped: Vec<_> = ifaces
        .iter()
        .flat_map(|i| {
            i.checks.skipped.iter().map(move |(reason, n)| {
                (
                    vec![("iface", i.name.as_str()), ("reason", reason.as_str())],
                    *n,
                )
            })
        })
        .collect();
    counter(
        enc,
        "checks_skipped",
        "Periodic checks of metered uplinks skipped, by reason",
        &skipped,
    )
}

/// `check_latency_seconds`: one histogram per interface; the board's bucket counts are already
/// cumulative (`le`), as the format wants them.
fn encode_latency(enc: &mut Exposition, ifaces: &[IfaceStatus]) -> std::fmt::Result {
    let name = "check_latency_seconds";
    enc.family(name, "Duration of connectivity checks", "histogram")?;
    for i in ifaces {
        let iface = i.name.as_str();
        let counts = &i.checks.latency_buckets;
        // Never decreasing, whatever the board holds.
        let mut cumulative = 0;
        for (n, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative = counts.get(n).copied().unwrap_or(0).max(cumulative);
            // Bounds print as Go clients print them: `5`, `0.005`.
            let le = bound.to_string();
            enc.series(
                &format!("{name}_bucket"),
                &[("iface", iface), ("le", &le)],
                cumulative,
            )?;
        }
        cumulative = counts
            .get(LATENCY_BUCKETS.len())
            .copied()
            .unwrap_or(0)
            .max(cumulative);
        enc.series(
            &format!("{name}_bucket"),
            &[("iface", iface), ("le", "+Inf")],
            cumulative,
        )?;
        // `{:?}` keeps the decimal point of a whole number (`0.0`), like other clients.
        enc.series(
            &format!("{name}_sum"),
            &[("iface", iface)],
            format!("{:?}", i.checks.latency_sum_seconds),
        )?;
        enc.series(
            &format!("{name}_count"),
            &[("iface", iface)],
            i.checks.latency_count,
        )?;
    }
    Ok(())
}

/// `probe_bytes_total`, `probe_dns_bytes_total`.
fn encode_probe_bytes(enc: &mut Exposition, ifaces: &[IfaceStatus]) -> std::fmt::Result {
    counter(
        enc,
        "probe_bytes",
        "Bytes on the wire spent on checks, DNS included",
        &per_iface(ifaces, |i| Some(i.probe_bytes)),
    )?;
    counter(
        enc,
        "probe_dns_bytes",
        "Bytes on the wire spent on the checks' DNS lookups",
        &per_iface(ifaces, |i| Some(i.probe_dns_bytes)),
    )
}

/// `passive_suspect`, `passive_suspicions_total`, `passive_confirmations_total`.
fn encode_passive(enc: &mut Exposition, ifaces: &[IfaceStatus]) -> std::fmt::Result {
    gauge(
        enc,
        "passive_suspect",
        "1 while passive health sees evidence of a stall on the interface",
        &per_iface(ifaces, |i| Some(i64::from(i.passive.state == "suspect"))),
    )?;
    counter(
        enc,
        "passive_suspicions",
        "Passive-health suspicions that asked for a confirmation",
        &per_iface(ifaces, |i| Some(i.passive.suspicions)),
    )?;
    let confirmations: Vec<_> = ifaces
        .iter()
        .flat_map(|i| {
            let p = &i.passive;
            [
                (
                    "passed",
                    p.confirmations.saturating_sub(p.confirmations_failed),
                ),
                ("failed", p.confirmations_failed),
            ]
            .map(|(r, v)| (vec![("iface", i.name.as_str()), ("result", r)], v))
        })
        .collect();
    counter(
        enc,
        "passive_confirmations",
        "Confirmation checks run for passive-health suspicions, by result",
        &confirmations,
    )
}

/// `actor_running`, `actor_restarts_total`.
fn encode_actors(enc: &mut Exposition, actors: &[ActorStatus]) -> std::fmt::Result {
    gauge(
        enc,
        "actor_running",
        "1 while the actor runs",
        &actors
            .iter()
            .map(|a| (vec![("actor", a.name.as_str())], i64::from(a.running)))
            .collect::<Vec<_>>(),
    )?;
    counter(
        enc,
        "actor_restarts",
        "Actor restarts after failures and kills",
        &actors
            .iter()
            .map(|a| (vec![("actor", a.name.as_str())], u64::from(a.restarts)))
            .collect::<Vec<_>>(),
    )
}

/// The unlabelled totals: dispatcher counters, flow resets, then the pending-events gauge.
fn encode_dispatcher_and_flows(enc: &mut Exposition, status: &EngineStatus) -> std::fmt::Result {
    let flows = &status.flows;
    for (name, help, value) in [
        (
            "dispatcher_events",
            "Dispatcher events produced",
            status.events_total,
        ),
        (
            "dispatcher_script_failures",
            "Dispatcher scripts that exited non-zero, were signalled or timed out",
            status.script_failures,
        ),
        (
            "flow_resets",
            "Flow resets after the route in use moved off an interface",
            flows.resets,
        ),
        (
            "flow_sockets_destroyed",
            "TCP sockets pinned to a demoted interface destroyed",
            flows.sockets_destroyed,
        ),
        (
            "flow_conntrack_deleted",
            "Conntrack entries pinned to a demoted interface deleted",
            flows.conntrack_deleted,
        ),
        (
            "flow_reset_failures",
            "Failed parts of flow resets (no permission, missing kernel option, ...)",
            flows.failures,
        ),
    ] {
        counter(enc, name, help, &[(vec![], value)])?;
    }
    gauge(
        enc,
        "dispatcher_pending_events",
        "Dispatcher events not yet delivered",
        &[(
            vec![],
            i64::try_from(status.pending_events).unwrap_or(i64::MAX),
        )],
    )
}

/// Renders `status` in the Prometheus text format.
pub fn render(status: &EngineStatus) -> String {
    let mut enc = Exposition::default();
    // Writing into a String cannot fail: an error here would be a bug in this file.
    if let Err(e) = encode(&mut enc, status) {
        tracing::error!(error = %e, "metrics: encoding failed");
    }
    enc.text
}

/// Binds the metrics listener (done before the engine starts so a bad address fails fast).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, MetricsError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| MetricsError::Bind { addr, error })
}

/// Serves `/metrics` on `listener` until dropped; `status` takes the snapshot at each scrape.
/// Runs inside a tokio `LocalSet` (one local task per connection).
pub async fn serve(listener: tokio::net::TcpListener, status: Rc<dyn Fn() -> EngineStatus>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let status = status.clone();
                async move { Ok::<_, Infallible>(respond(&req, &*status)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            // A scrape that times out or disconnects is the scraper's problem, not ours.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

fn respond<B>(req: &Request<B>, status: &dyn Fn() -> EngineStatus) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, ctype: &str, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = code;
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        resp
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => reply(StatusCode::OK, CONTENT_TYPE, render(&status())),
        (_, "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "netfailover: metrics are at /metrics\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests;
