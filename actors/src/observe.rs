//! Observation: the typed change stream an embedder (or `netfailover events --follow`) reads.
//!
//! Owns: [`EngineEvent`] (what changed), [`Snapshot`] (the whole view at one instant), and the
//! diff that turns a new interface list on the status board into events. Every event is sent
//! on the board's broadcast channel *while the board is locked* (see `board.rs`), and a
//! subscription takes its snapshot under the same lock, so a subscriber's snapshot plus the
//! events that follow it are exactly the board's history from that instant: a late subscriber
//! misses nothing it needs to rebuild its view.
//!
//! Producers: RouteManager (interfaces, links, connectivity, routes), the supervisor and
//! ProbeScheduler (actor restarts, through `BoardData::upsert_actor`), the event log (dispatcher
//! events when produced, script results when the Dispatcher finishes them), FlowResetter (flow
//! resets).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Connectivity, Event, Family, IfaceName};
use crate::ports::{ScriptOutcome, ScriptResult};
use crate::status::{
    ActorStatus, EngineStatus, EventRecord, Exit, FlowResetRecord, IfaceStatus, LinkState,
    HISTORY_LEN,
};

/// Buffer of the observation channel. A subscriber that falls further behind is told how many
/// events it missed (`broadcast`'s `Lagged`) and should take a fresh snapshot; producers never
/// wait for subscribers.
pub const OBSERVER_BUFFER: usize = 1024;

/// One change in the engine, in the order it happened.
///
/// The JSON form (`type` tag, kebab-case) is the one `netfailover events --follow --json`
/// prints; `docs/control.md` lists it field by field.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EngineEvent {
    /// An interface became managed (a profile's interface appeared, or one was adopted).
    InterfaceAdded { status: Box<IfaceStatus> },
    /// An interface is no longer managed (it disappeared, or a reload dropped its profile).
    InterfaceRemoved { iface: IfaceName },
    /// The link of a managed interface changed: `up`, `down` (no carrier or admin down) or
    /// `absent`.
    Link {
        iface: IfaceName,
        link: LinkState,
        previous: LinkState,
    },
    /// The connectivity of one interface changed.
    Connectivity {
        iface: IfaceName,
        state: Connectivity,
        previous: Connectivity,
    },
    /// The device's global connectivity (the best over interfaces) changed.
    GlobalConnectivity {
        state: Connectivity,
        previous: Connectivity,
    },
    /// The default route of an interface changed metric; `None` means no route of ours.
    Route {
        iface: IfaceName,
        family: Family,
        old_metric: Option<u32>,
        new_metric: Option<u32>,
    },
    /// An actor joined the tree (at start, or a prober for a new interface).
    ActorAdded { status: ActorStatus },
    /// An actor left the tree for good (a prober whose interface is gone).
    ActorRemoved { actor: String },
    /// An actor was restarted (`reason`: `killed`, `panicked`, `stopped`).
    ActorRestarted {
        actor: String,
        reason: Exit,
        restarts: u32,
    },
    /// A dispatcher event was produced (before its scripts run), as `events --json` shows it.
    Event(Event),
    /// One script finished for a dispatcher event.
    Script {
        event_id: u64,
        script: String,
        #[serde(flatten)]
        result: ScriptResult,
        duration_ms: u64,
    },
    /// Every script of a dispatcher event has finished; the event left the journal.
    Delivered { event_id: u64 },
    /// The flows pinned to a demoted interface were reset (`flow_resetter.rs`); not a
    /// dispatcher event.
    FlowsReset(FlowResetRecord),
}

/// The whole view at one instant: the status (as `status --json`) and the recent dispatcher
/// events (as `events --json`, oldest first).
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub status: EngineStatus,
    pub events: Vec<EventRecord>,
}

impl Snapshot {
    /// Folds one event into the view, so `snapshot` + `apply` of every following event tracks
    /// the engine (interfaces, links, metrics, connectivity, actor restarts, the event history
    /// and its scripts). Check results and probe counters are not streamed: they are as of the
    /// snapshot (ask `status` for fresh ones).
    pub fn apply(&mut self, event: &EngineEvent) {
        let status = &mut self.status;
        match event {
            EngineEvent::InterfaceAdded { status: added } => {
                status.interfaces.retain(|i| i.name != added.name);
                status.interfaces.push((**added).clone());
            }
            EngineEvent::InterfaceRemoved { iface } => {
                status.interfaces.retain(|i| &i.name != iface);
            }
            EngineEvent::Link { iface, link, .. } => {
                if let Some(i) = iface_mut(status, iface) {
                    i.link = *link;
                }
            }
            EngineEvent::Connectivity { iface, state, .. } => {
                if let Some(i) = iface_mut(status, iface) {
                    i.connectivity = *state;
                }
            }
            EngineEvent::GlobalConnectivity { state, .. } => status.connectivity = *state,
            EngineEvent::Route {
                iface,
                family,
                new_metric,
                ..
            } => {
                if let Some(i) = iface_mut(status, iface) {
                    match family {
                        Family::V4 => i.effective_metric = *new_metric,
                        Family::V6 => i.effective_metric6 = *new_metric,
                    }
                }
            }
            EngineEvent::ActorAdded { status: added } => {
                status.actors.retain(|a| a.name != added.name);
                status.actors.push(added.clone());
            }
            EngineEvent::ActorRemoved { actor } => status.actors.retain(|a| &a.name != actor),
            EngineEvent::ActorRestarted {
                actor,
                reason,
                restarts,
            } => actor_restarted(status, actor, *reason, *restarts),
            EngineEvent::Event(e) => self.event_produced(e),
            EngineEvent::Script {
                event_id,
                script,
                result,
                duration_ms,
            } => self.script_finished(*event_id, script, result, *duration_ms),
            EngineEvent::Delivered { event_id } => {
                status.pending_events = status.pending_events.saturating_sub(1);
                if let Some(r) = self.events.iter_mut().find(|r| r.event.id == *event_id) {
                    r.delivered = true;
                }
            }
            EngineEvent::FlowsReset(r) => status.flows.add(r),
        }
    }

    fn event_produced(&mut self, e: &Event) {
        self.status.events_total += 1;
        self.status.pending_events += 1;
        if self.events.len() >= HISTORY_LEN {
            self.events.remove(0);
        }
        self.events.push(EventRecord {
            event: e.clone(),
            delivered: false,
            scripts: vec![],
        });
    }

    fn script_finished(
        &mut self,
        event_id: u64,
        script: &str,
        result: &ScriptResult,
        duration_ms: u64,
    ) {
        if !matches!(
            result,
            ScriptResult::Exited { code: 0 } | ScriptResult::Skipped { .. }
        ) {
            self.status.script_failures += 1;
        }
        if let Some(r) = self.events.iter_mut().find(|r| r.event.id == event_id) {
            r.scripts.push(ScriptOutcome {
                script: script.to_string(),
                result: result.clone(),
                elapsed: Duration::from_millis(duration_ms),
            });
        }
    }
}

/// An actor restart: its counters, or a new entry when the snapshot did not know it yet.
fn actor_restarted(status: &mut EngineStatus, actor: &str, reason: Exit, restarts: u32) {
    match status.actors.iter_mut().find(|a| a.name == actor) {
        Some(a) => {
            a.restarts = restarts;
            a.running = true;
            if reason == Exit::Killed {
                a.kills += 1;
            } else {
                a.last_failure = Some(reason);
            }
        }
        None => status.actors.push(ActorStatus {
            name: actor.to_string(),
            running: true,
            restarts,
            kills: u32::from(reason == Exit::Killed),
            last_failure: (reason != Exit::Killed).then_some(reason),
        }),
    }
}

fn iface_mut<'a>(status: &'a mut EngineStatus, name: &IfaceName) -> Option<&'a mut IfaceStatus> {
    status.interfaces.iter_mut().find(|i| &i.name == name)
}

/// The events that turn `old` into `new` (interfaces in `new`'s order; per interface: link,
/// routes, then connectivity, so a carrier loss reads link down → route penalised → NONE),
/// then the global connectivity.
pub fn diff_interfaces(
    old: &[IfaceStatus],
    old_global: Connectivity,
    new: &[IfaceStatus],
    new_global: Connectivity,
) -> Vec<EngineEvent> {
    let mut out = Vec::new();
    for gone in old.iter().filter(|o| !new.iter().any(|n| n.name == o.name)) {
        out.push(EngineEvent::InterfaceRemoved {
            iface: gone.name.clone(),
        });
    }
    for n in new {
        let Some(o) = old.iter().find(|o| o.name == n.name) else {
            out.push(EngineEvent::InterfaceAdded {
                status: Box::new(n.clone()),
            });
            continue;
        };
        if o.link != n.link {
            out.push(EngineEvent::Link {
                iface: n.name.clone(),
                link: n.link,
                previous: o.link,
            });
        }
        for (family, was, now) in [
            (Family::V4, o.effective_metric, n.effective_metric),
            (Family::V6, o.effective_metric6, n.effective_metric6),
        ] {
            if was != now {
                out.push(EngineEvent::Route {
                    iface: n.name.clone(),
                    family,
                    old_metric: was,
                    new_metric: now,
                });
            }
        }
        if o.connectivity != n.connectivity {
            out.push(EngineEvent::Connectivity {
                iface: n.name.clone(),
                state: n.connectivity,
                previous: o.connectivity,
            });
        }
    }
    if old_global != new_global {
        out.push(EngineEvent::GlobalConnectivity {
            state: new_global,
            previous: old_global,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UplinkType;
    use crate::status::{CheckCounters, IfaceRoute, IfaceSource};

    fn iface(name: &str, link: LinkState, c: Connectivity, metric: Option<u32>) -> IfaceStatus {
        let route = IfaceRoute {
            name: IfaceName::new(name).unwrap(),
            ifindex: Some(2),
            link,
            connectivity: c,
            metric: 100,
            effective_metric: metric,
            metric6: 100,
            effective_metric6: None,
            gateway4: None,
            gateway6: None,
            ipv6_penalty_unavailable: None,
            uplink_type: UplinkType::Ethernet,
            source: IfaceSource::Adopted,
            dns: vec![],
            metered: false,
            metered_guessed: true,
        };
        IfaceStatus {
            route,
            last_check: None,
            probe_bytes: 0,
            probe_dns_bytes: 0,
            checks: CheckCounters::default(),
            passive: Default::default(),
        }
    }

    #[test]
    fn carrier_loss_reads_link_route_connectivity_global() {
        let old = [iface("eth0", LinkState::Up, Connectivity::Full, Some(100))];
        let new = [iface(
            "eth0",
            LinkState::Down,
            Connectivity::None,
            Some(20100),
        )];
        let got = diff_interfaces(&old, Connectivity::Full, &new, Connectivity::Limited);
        let eth0 = IfaceName::new("eth0").unwrap();
        assert_eq!(
            got,
            vec![
                EngineEvent::Link {
                    iface: eth0.clone(),
                    link: LinkState::Down,
                    previous: LinkState::Up
                },
                EngineEvent::Route {
                    iface: eth0.clone(),
                    family: Family::V4,
                    old_metric: Some(100),
                    new_metric: Some(20100)
                },
                EngineEvent::Connectivity {
                    iface: eth0,
                    state: Connectivity::None,
                    previous: Connectivity::Full
                },
                EngineEvent::GlobalConnectivity {
                    state: Connectivity::Limited,
                    previous: Connectivity::Full
                },
            ]
        );
        assert!(
            diff_interfaces(&new, Connectivity::Limited, &new, Connectivity::Limited).is_empty()
        );
    }

    #[test]
    fn interfaces_come_and_go() {
        let a = [iface("eth0", LinkState::Up, Connectivity::Full, Some(100))];
        let b = [iface("wlan0", LinkState::Up, Connectivity::Unknown, None)];
        let got = diff_interfaces(&a, Connectivity::Full, &b, Connectivity::Full);
        assert!(
            matches!(&got[0], EngineEvent::InterfaceRemoved { iface } if iface.as_str() == "eth0")
        );
        assert!(
            matches!(&got[1], EngineEvent::InterfaceAdded { status } if status.name.as_str() == "wlan0")
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn json_form_is_tagged_and_flat() {
        let script = EngineEvent::Script {
            event_id: 7,
            script: "50-log".into(),
            result: ScriptResult::Exited { code: 3 },
            duration_ms: 12,
        };
        let v = serde_json::to_value(&script).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"script","event_id":7,"script":"50-log","result":"exited","code":3,"duration_ms":12})
        );
        assert_eq!(serde_json::from_value::<EngineEvent>(v).unwrap(), script);
        let route = EngineEvent::Route {
            iface: IfaceName::new("eth0").unwrap(),
            family: Family::V4,
            old_metric: Some(100),
            new_metric: None,
        };
        let v = serde_json::to_value(&route).unwrap();
        assert_eq!(v["type"], "route");
        assert_eq!(v["old_metric"], 100);
        assert!(v["new_metric"].is_null());
        assert_eq!(serde_json::from_value::<EngineEvent>(v).unwrap(), route);
    }
}
