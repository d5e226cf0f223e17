//! `netfailover wait-online`: blocks until an uplink (any, or every named one) is FULL — the
//! Internet verified through it, not merely a route — for services ordered after
//! `network-online.target` (contrib/netfailover-wait-online.service, docs/daemon.md).
//!
//! It waits on the control socket's `follow` stream (docs/control.md): the snapshot, then every
//! change as the daemon makes it, so it returns as soon as the connectivity line arrives. No
//! polling: when the daemon is not running yet, it watches the socket's directory with inotify
//! (with a slow retry as a safety net for a socket created but not yet listening) and connects
//! when the socket appears.

use std::path::Path;
use std::time::Duration;

use netfailover_actors::model::Connectivity;
use netfailover_actors::observe::{EngineEvent, Snapshot};
use netfailover_actors::status::{EngineStatus, IfaceStatus};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::time::Instant;

use crate::control::{self, ControlError, Request};

/// Default `--timeout`: as `nm-online` and `systemd-networkd-wait-online`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait between two connection attempts while the socket file exists but nobody
/// listens yet (bound, not yet listening; or a stale file a new daemon will replace). Every
/// appearance of the file wakes the wait at once; this only bounds the odd cases.
const RETRY: Duration = Duration::from_secs(1);

/// Longest wait for the one `status` request that fills in the reasons at the timeout.
const FINAL_STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What to wait for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Want {
    /// The uplinks that count; empty: every managed one.
    pub interfaces: Vec<String>,
    /// Every one of them FULL (default: any one).
    pub all: bool,
}

/// How the wait ended; [`Outcome::exit_code`] is the command's exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The condition holds: these uplinks are FULL.
    Online(Vec<String>),
    /// The timeout passed with a daemon answering: one line per uplink saying where it stands.
    TimedOut(Vec<String>),
    /// No daemon answered within the timeout (or it refused us): why.
    NoDaemon(String),
}

impl Outcome {
    /// 0 online, 1 timed out, 2 no daemon.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Online(_) => 0,
            Outcome::TimedOut(_) => 1,
            Outcome::NoDaemon(_) => 2,
        }
    }
}

/// The uplinks `want` is about: the named ones, or every managed one.
fn wanted(status: &EngineStatus, want: &Want) -> Vec<String> {
    if want.interfaces.is_empty() {
        status
            .interfaces
            .iter()
            .map(|i| i.name.to_string())
            .collect()
    } else {
        want.interfaces.clone()
    }
}

fn find<'a>(status: &'a EngineStatus, name: &str) -> Option<&'a IfaceStatus> {
    status.interfaces.iter().find(|i| i.name.as_str() == name)
}

/// The FULL uplinks when `want` holds in `status`, `None` while it does not.
pub fn satisfied(status: &EngineStatus, want: &Want) -> Option<Vec<String>> {
    let names = wanted(status, want);
    let full: Vec<String> = names
        .iter()
        .filter(|n| find(status, n).is_some_and(|i| i.connectivity == Connectivity::Full))
        .cloned()
        .collect();
    let holds = if want.all {
        !names.is_empty() && full.len() == names.len()
    } else {
        !full.is_empty()
    };
    holds.then_some(full)
}

/// Where each wanted uplink stands, one line each: `no link`, `checking`, `LIMITED: reason`…
pub fn standing(status: &EngineStatus, want: &Want) -> Vec<String> {
    let names = wanted(status, want);
    if names.is_empty() {
        return vec!["no uplink is managed (check-config says why)".to_string()];
    }
    names
        .iter()
        .map(|name| match find(status, name) {
            None => format!("{name}: not managed (no such interface, or no profile for it)"),
            Some(i) => format!("{name}: {}", stands(i, status.checks_disabled)),
        })
        .collect()
}

fn stands(i: &IfaceStatus, checks_disabled: bool) -> String {
    if i.link != "up" {
        return format!("no link ({})", i.link);
    }
    let reason = i
        .last_check
        .as_ref()
        .map(|c| c.reason.as_str())
        .filter(|r| !r.is_empty());
    match (i.connectivity, reason) {
        (Connectivity::Unknown, _) if checks_disabled => {
            "UNKNOWN: checks are disabled (interval 0 or uri \"null\"), nothing is verified FULL"
                .to_string()
        }
        (Connectivity::Unknown, _) => "checking".to_string(),
        (Connectivity::Full, _) => "FULL".to_string(),
        (state, Some(reason)) => format!("{}: {reason}", state.as_str()),
        (state, None) => state.as_str().to_string(),
    }
}

/// The view kept from the stream, and what ended it.
#[derive(Default)]
struct Follow {
    view: Option<Snapshot>,
    online: Option<Vec<String>>,
    stopped: bool,
}

impl Follow {
    /// Folds one stream line in; `false` ends the stream (online, or the daemon stops).
    fn line(&mut self, line: serde_json::Value, want: &Want) -> bool {
        match line.get("type").and_then(|t| t.as_str()) {
            Some("snapshot") => {
                let status = line.get("status").cloned().unwrap_or_default();
                let events = line.get("events").cloned().unwrap_or_default();
                if let (Ok(status), Ok(events)) = (
                    serde_json::from_value(status),
                    serde_json::from_value(events),
                ) {
                    self.view = Some(Snapshot { status, events });
                }
            }
            Some("stopped") => {
                self.stopped = true;
                return false;
            }
            _ => {
                if let (Some(view), Ok(event)) = (
                    self.view.as_mut(),
                    serde_json::from_value::<EngineEvent>(line),
                ) {
                    view.apply(&event);
                }
            }
        }
        self.online = self.view.as_ref().and_then(|v| satisfied(&v.status, want));
        self.online.is_none()
    }
}

/// Waits until `want` holds, the deadline passes (`None`: no deadline) or the daemon cannot be
/// reached by then.
pub async fn wait(socket: &Path, want: &Want, deadline: Option<Instant>) -> Outcome {
    let mut appear = SocketWatch::new(socket);
    let mut last_view: Option<EngineStatus> = None;
    let mut why = format!("no daemon at {}", socket.display());
    loop {
        let mut follow = Follow::default();
        // The snapshot is due within the CLI's usual deadline; the overall deadline (when it
        // is sooner) still cuts the whole wait below.
        let first_line = control::DEFAULT_TIMEOUT;
        let stream = control::follow_lines(socket, first_line, |line| follow.line(line, want));
        let ended = match deadline {
            Some(d) => tokio::time::timeout_at(d, stream).await.ok(),
            None => Some(stream.await),
        };
        if let Some(online) = follow.online.take() {
            return Outcome::Online(online);
        }
        if let Some(view) = follow.view.take() {
            last_view = Some(view.status);
        }
        match ended {
            // The deadline passed while the stream was open (or connecting).
            None => return timed_out(socket, want, last_view, why).await,
            Some(Err(ControlError::NotRunning { .. })) => {}
            Some(Err(
                e @ (ControlError::PermissionDenied { .. } | ControlError::Remote { .. }),
            )) => return Outcome::NoDaemon(e.to_string()),
            Some(Err(e)) => why = e.to_string(),
            Some(Ok(())) if follow.stopped => why = "the daemon stopped".to_string(),
            Some(Ok(())) => why = "the daemon closed the stream".to_string(),
        }
        if !appear.wait(deadline).await {
            return timed_out(socket, want, last_view, why).await;
        }
    }
}

/// The timeout's outcome: where each uplink stands when a daemon answers (one fresh `status`
/// for the checks' reasons, which the stream does not carry), else no daemon.
async fn timed_out(
    socket: &Path,
    want: &Want,
    last_view: Option<EngineStatus>,
    why: String,
) -> Outcome {
    let fresh = tokio::time::timeout(
        FINAL_STATUS_TIMEOUT,
        control::request(socket, &Request::Status),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .and_then(|v| serde_json::from_value::<EngineStatus>(v).ok());
    match fresh.or(last_view) {
        Some(status) => match satisfied(&status, want) {
            Some(online) => Outcome::Online(online),
            None => Outcome::TimedOut(standing(&status, want)),
        },
        None => Outcome::NoDaemon(why),
    }
}

/// inotify on the socket's directory: wakes when a file of the socket's name is created, moved
/// there or has its mode set. A thread blocks on the inotify descriptor and signals each appearance; it ends
/// with the process, or at the next event in the directory once this watch is dropped.
struct SocketWatch {
    appeared: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

impl SocketWatch {
    /// Watches `socket`'s directory; without inotify (or the directory) every wait is [`RETRY`].
    fn new(socket: &Path) -> Self {
        let dir = match socket.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = socket.file_name().map(|n| n.to_os_string());
        let watch = Inotify::init(InitFlags::IN_CLOEXEC).ok().filter(|i| {
            // IN_CREATE comes at bind(), possibly before listen(); the daemon's chmod right
            // after (IN_ATTRIB, src/control.rs `bind`) comes once it listens.
            let flags =
                AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ATTRIB;
            i.add_watch(dir, flags).is_ok()
        });
        let appeared = watch.map(|inotify| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            std::thread::spawn(move || {
                while let Ok(events) = inotify.read_events() {
                    if events.iter().any(|e| e.name == name) && tx.send(()).is_err() {
                        return;
                    }
                }
            });
            rx
        });
        Self { appeared }
    }

    /// Until the socket's name appears, [`RETRY`] passes, or the deadline; `false` at the
    /// deadline.
    async fn wait(&mut self, deadline: Option<Instant>) -> bool {
        let retry = Instant::now() + RETRY;
        let until = deadline.map_or(retry, |d| d.min(retry));
        let appeared = async {
            match self.appeared.as_mut() {
                Some(rx) => {
                    if rx.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        let _ = tokio::time::timeout_at(until, appeared).await;
        deadline.is_none_or(|d| Instant::now() < d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netfailover_actors::model::IfaceName;
    use netfailover_actors::ports::Verdict;
    use netfailover_actors::status::CheckSummary;

    fn iface(name: &str, link: &str, connectivity: Connectivity) -> IfaceStatus {
        let mut status: IfaceStatus = serde_json::from_value(serde_json::json!({
            "name": name, "ifindex": 2, "link": link, "connectivity": "UNKNOWN",
            "metric": 100, "effective_metric": null, "metric6": 100, "effective_metric6": null,
            "gateway4": null, "gateway6": null, "uplink_type": "ethernet", "source": "adopted",
            "dns": [], "last_check": null, "probe_bytes": 0, "probe_dns_bytes": 0,
            "checks": {"by_verdict": {}, "latency_buckets": [], "latency_sum_seconds": 0.0,
                       "latency_count": 0}
        }))
        .unwrap();
        status.name = IfaceName::new(name).unwrap();
        status.connectivity = connectivity;
        status
    }

    fn status(ifaces: Vec<IfaceStatus>) -> EngineStatus {
        EngineStatus {
            interfaces: ifaces,
            ..Default::default()
        }
    }

    fn want(names: &[&str], all: bool) -> Want {
        Want {
            interfaces: names.iter().map(|n| n.to_string()).collect(),
            all,
        }
    }

    #[test]
    fn any_uplink_full_is_online_and_all_needs_every_named_one() {
        let s = status(vec![
            iface("eth0", "up", Connectivity::Limited),
            iface("wwan0", "up", Connectivity::Full),
        ]);
        assert_eq!(satisfied(&s, &want(&[], false)), Some(vec!["wwan0".into()]));
        assert_eq!(satisfied(&s, &want(&["eth0"], false)), None);
        assert_eq!(satisfied(&s, &want(&["eth0", "wwan0"], true)), None);
        assert_eq!(
            satisfied(&s, &want(&["wwan0"], true)),
            Some(vec!["wwan0".into()])
        );
        // A named uplink that is not managed never counts as FULL.
        assert_eq!(satisfied(&s, &want(&["wwan0", "wlan0"], true)), None);
        // Nothing managed: never online, even with --all.
        assert_eq!(satisfied(&status(vec![]), &want(&[], true)), None);
    }

    #[test]
    fn standing_says_no_link_checking_or_the_reason() {
        let mut limited = iface("eth0", "up", Connectivity::Limited);
        limited.last_check = Some(CheckSummary {
            at_unix_ms: 1,
            verdict: Verdict::Limited,
            reason: "connect timed out".into(),
            latency_ms: 1000.0,
            skipped: None,
        });
        let s = status(vec![
            limited,
            iface("wlan0", "down", Connectivity::None),
            iface("wwan0", "up", Connectivity::Unknown),
        ]);
        assert_eq!(
            standing(&s, &want(&[], false)),
            vec![
                "eth0: LIMITED: connect timed out",
                "wlan0: no link (down)",
                "wwan0: checking",
            ]
        );
        assert_eq!(
            standing(&s, &want(&["eth1"], false)),
            vec!["eth1: not managed (no such interface, or no profile for it)"]
        );
        assert_eq!(standing(&status(vec![]), &want(&[], false)).len(), 1);
        let disabled = EngineStatus {
            checks_disabled: true,
            ..status(vec![iface("wwan0", "up", Connectivity::Unknown)])
        };
        assert_eq!(
            standing(&disabled, &want(&[], false)),
            vec![
                "wwan0: UNKNOWN: checks are disabled (interval 0 or uri \"null\"), nothing is verified FULL"
            ]
        );
    }

    #[test]
    fn the_stream_ends_on_the_first_full_line_and_on_stopped() {
        let w = want(&[], false);
        let mut f = Follow::default();
        let snap = Snapshot {
            status: status(vec![iface("eth0", "up", Connectivity::Unknown)]),
            events: vec![],
        };
        let mut line = serde_json::to_value(&snap).unwrap();
        line["type"] = "snapshot".into();
        assert!(f.line(line, &w), "not online yet: keep following");
        let full = serde_json::json!({"type": "connectivity", "iface": "eth0",
                                      "state": "FULL", "previous": "UNKNOWN"});
        assert!(!f.line(full, &w), "online: stop");
        assert_eq!(f.online, Some(vec!["eth0".to_string()]));
        let mut f = Follow::default();
        assert!(!f.line(serde_json::json!({"type": "stopped"}), &w));
        assert!(f.stopped && f.online.is_none());
    }
}
