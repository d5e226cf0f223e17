//! Interface-state transitions: the pure heart of RouteManager's event production.
//!
//! Given the per-interface record (connectivity, `up` announced, NONE from checks), the link
//! facts, the managed interfaces and the routes installed by the last reconcile, it computes
//! the new record and the events, returned in the contract's order (docs/semantics.md §5):
//! per interface `down` → `device-connectivity-change`, `up` before any connectivity event of
//! that interface, and the global `connectivity-change` last. `device-connectivity-change` is
//! raised when an interface leaves FULL, or on every change with `dispatcher.device_events =
//! "all"`. It also owns the record's life across restarts: a first start announces `up` again
//! for every live uplink; a restart resumes the record (no repeated `up`) and what was left of
//! each fail-back hold.
//!
//! No actix, no I/O, no clock (the caller passes `now`): RouteManager calls it and turns each
//! [`Change`] into a dispatcher event (profile, gateway, nameservers, time).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::assign::Assigned;
use crate::model::{
    Connectivity, DeviceEvents, EventKind, Family, IfaceName, KernelRoute, LinkInfo,
};
use crate::ports::{EngineState, IfaceRecord};

/// One event to raise, before RouteManager adds what scripts read about the interface.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Change {
    pub kind: EventKind,
    /// `None` for the device-wide `connectivity-change`.
    pub iface: Option<IfaceName>,
    pub state: Connectivity,
    pub previous: Connectivity,
    pub reason: String,
}

/// The interface states RouteManager keeps: the persisted record plus when each interface
/// became FULL (for the fail-back hold).
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct States {
    pub record: EngineState,
    pub full_since: HashMap<IfaceName, Instant>,
}

/// What one reconcile pass knows, after its routes were applied.
pub struct Facts<'a> {
    pub managed: &'a [Assigned],
    pub links: &'a BTreeMap<u32, LinkInfo>,
    /// Routes installed now, per interface and family.
    pub installed: &'a BTreeMap<(IfaceName, Family), KernelRoute>,
    /// Families with a known default route or gateway, per ifindex.
    pub routed: &'a BTreeMap<u32, BTreeSet<Family>>,
    /// Families of `routed` whose route waits for the interface's address (the kernel refused
    /// it: gateway not reachable on the link yet), per ifindex.
    pub waiting: &'a BTreeMap<u32, BTreeSet<Family>>,
    /// Interfaces whose link bounced inside one kernel message (merged flap).
    pub bounced: &'a BTreeSet<IfaceName>,
    pub checks_enabled: bool,
    pub device_events: DeviceEvents,
    pub now: Instant,
}

/// The result of a reconcile pass.
#[derive(Debug)]
pub struct Outcome {
    pub states: States,
    /// In the order they must be delivered.
    pub changes: Vec<Change>,
    /// Bounced interfaces still usable: their checks must start over.
    pub reset_checks: Vec<IfaceName>,
}

impl States {
    /// The connectivity recorded for `name` (NONE when unknown).
    pub fn connectivity(&self, name: &IfaceName) -> Connectivity {
        self.record
            .interfaces
            .get(name)
            .map(|r| r.connectivity)
            .unwrap_or(Connectivity::None)
    }

    /// An `up` was announced for `name` and no `down` since.
    fn announced(&self, name: &IfaceName) -> bool {
        self.record
            .interfaces
            .get(name)
            .is_some_and(|r| r.announced_up)
    }

    fn entry(&mut self, name: &IfaceName) -> &mut IfaceRecord {
        self.record
            .interfaces
            .entry(name.clone())
            .or_insert(IfaceRecord {
                connectivity: Connectivity::None,
                announced_up: false,
            })
    }

    /// Records a new connectivity for `name`, with the device event it calls for.
    fn set(
        &mut self,
        name: &IfaceName,
        new: Connectivity,
        reason: &str,
        device_events: DeviceEvents,
        now: Instant,
        out: &mut Vec<Change>,
    ) {
        let rec = self.entry(name);
        let previous = rec.connectivity;
        if previous == new {
            return;
        }
        rec.connectivity = new;
        if new == Connectivity::Full {
            self.full_since.insert(name.clone(), now);
        } else {
            self.full_since.remove(name);
        }
        tracing::info!(iface = %name, state = %new, previous = %previous, reason, "connectivity");
        let fire = match device_events {
            DeviceEvents::LeaveFull => previous == Connectivity::Full,
            DeviceEvents::All => true,
        };
        if fire {
            out.push(Change {
                kind: EventKind::DeviceConnectivityChange,
                iface: Some(name.clone()),
                state: new,
                previous,
                reason: reason.to_string(),
            });
        }
    }

    /// The interface lost its link (or left management): `down` if `up` was announced, then
    /// NONE (with its device event).
    fn lose(&mut self, name: &IfaceName, reason: &str, f: &Facts<'_>, out: &mut Vec<Change>) {
        if self.announced(name) {
            out.push(Change {
                kind: EventKind::Down,
                iface: Some(name.clone()),
                state: Connectivity::None,
                previous: self.connectivity(name),
                reason: reason.into(),
            });
            if let Some(r) = self.record.interfaces.get_mut(name) {
                r.announced_up = false;
            }
        }
        self.record.none_from_checks.remove(name);
        self.set(
            name,
            Connectivity::None,
            reason,
            f.device_events,
            f.now,
            out,
        );
    }

    /// A usable interface with an installed route and no `up` yet: `up`, in the state it has
    /// once up (UNKNOWN until its first check, set by the caller after this event, so `up`
    /// precedes its device event).
    fn announce(&mut self, a: &Assigned, f: &Facts<'_>, out: &mut Vec<Change>) {
        let previous = self.connectivity(&a.name);
        let state =
            if previous == Connectivity::None && !self.record.none_from_checks.contains(&a.name) {
                Connectivity::Unknown
            } else {
                previous
            };
        let metric = f
            .installed
            .get(&(a.name.clone(), Family::V4))
            .or_else(|| f.installed.get(&(a.name.clone(), Family::V6)))
            .map(|r| r.metric)
            .unwrap_or_default();
        out.push(Change {
            kind: EventKind::Up,
            iface: Some(a.name.clone()),
            state,
            previous,
            reason: format!("link up, route installed (metric {metric})"),
        });
        self.entry(&a.name).announced_up = true;
    }

    /// One managed interface: lost (or bounced) → `down`/NONE; usable → `up` once its route
    /// is installed, then NONE without a route to check through, else UNKNOWN until checked.
    fn step(
        &mut self,
        a: &Assigned,
        f: &Facts<'_>,
        changes: &mut Vec<Change>,
        reset_checks: &mut Vec<IfaceName>,
    ) {
        let link = a.ifindex.and_then(|i| f.links.get(&i));
        let usable = link.is_some_and(LinkInfo::usable);
        let bounced = f.bounced.contains(&a.name);
        let lost_reason = match link {
            None => "interface gone",
            Some(l) if !l.admin_up => "admin down",
            Some(l) if !l.carrier => "carrier lost",
            Some(_) => "carrier flapped (changes merged by the kernel)",
        };
        if (!usable || bounced)
            && (self.announced(&a.name) || self.connectivity(&a.name) != Connectivity::None)
        {
            self.lose(&a.name, lost_reason, f, changes);
        }
        if !usable {
            return;
        }
        if bounced {
            reset_checks.push(a.name.clone());
        }
        let has_route = f.installed.keys().any(|(n, _)| n == &a.name);
        if has_route && !self.announced(&a.name) {
            self.announce(a, f, changes);
        }
        let routed = a.ifindex.and_then(|i| f.routed.get(&i));
        let waiting = a.ifindex.and_then(|i| f.waiting.get(&i));
        let routed = routed.filter(|fams| !fams.is_empty());
        if routed.is_some() && routed == waiting {
            // Every route waits for the interface's address (a lease not back yet after a
            // carrier return, or lost): nothing can be checked through it, and a check's NONE
            // or failure from before says nothing about it any more. It is a link that just came
            // back: UNKNOWN, and its first result once the address is there decides
            // (docs/semantics.md §9.2).
            self.record.none_from_checks.remove(&a.name);
            let reason = "link up, waiting for its address (gateway not reachable yet)";
            let unknown = Connectivity::Unknown;
            self.set(&a.name, unknown, reason, f.device_events, f.now, changes);
        } else if routed.is_none() {
            // No route to check through: NONE (docs/semantics.md: no link or no route), not UNKNOWN.
            let reason = "no default route or gateway";
            self.set(
                &a.name,
                Connectivity::None,
                reason,
                f.device_events,
                f.now,
                changes,
            );
        } else if !f.checks_enabled && self.connectivity(&a.name) != Connectivity::Unknown {
            // Checks off (`interval` 0, `uri` "null"): a state that came from checks — saved by
            // an earlier run, or from before a reload turned them off — says nothing any more.
            // UNKNOWN, as with no result yet (docs/semantics.md §2).
            self.record.none_from_checks.remove(&a.name);
            let unknown = Connectivity::Unknown;
            let reason = "link up, checks disabled";
            self.set(&a.name, unknown, reason, f.device_events, f.now, changes);
        } else if self.connectivity(&a.name) == Connectivity::None
            && !self.record.none_from_checks.contains(&a.name)
        {
            let reason = "link up, not checked yet";
            let unknown = Connectivity::Unknown;
            self.set(&a.name, unknown, reason, f.device_events, f.now, changes);
        }
    }

    /// The global state from the managed interfaces' states: `connectivity-change` when it
    /// differs from the last one announced.
    fn update_global(&mut self, managed: &[Assigned], out: &mut Vec<Change>) {
        let global = Connectivity::global(managed.iter().map(|a| self.connectivity(&a.name)));
        let previous = self.record.global;
        if previous == Some(global) {
            return;
        }
        self.record.global = Some(global);
        // Before the first announcement the device had no connectivity to speak of.
        let previous = previous.unwrap_or(Connectivity::None);
        out.push(Change {
            kind: EventKind::ConnectivityChange,
            iface: None,
            state: global,
            previous,
            reason: format!("global connectivity {previous} -> {global}"),
        });
    }
}

/// Level-triggered pass after a reconcile: interfaces that left management get `down`/NONE,
/// then each managed one in plan order, then the global state. Records of interfaces no longer
/// managed are dropped (their events are in the returned changes).
pub fn reconcile(mut states: States, f: &Facts<'_>) -> Outcome {
    let mut changes = Vec::new();
    let mut reset_checks = Vec::new();
    // A vanished link matched by type, by MAC or adopted (a named profile stays managed without
    // its link), or a profile removed on reload: their scripts get `down` like any lost link.
    let departed: Vec<IfaceName> = states
        .record
        .interfaces
        .keys()
        .filter(|n| !f.managed.iter().any(|a| &a.name == *n))
        .cloned()
        .collect();
    for name in departed {
        if states.announced(&name) || states.connectivity(&name) != Connectivity::None {
            let present = f.links.values().any(|l| l.name == name);
            let reason = if present {
                "no longer managed"
            } else {
                "interface gone"
            };
            states.lose(&name, reason, f, &mut changes);
        }
    }
    for a in f.managed {
        states.step(a, f, &mut changes, &mut reset_checks);
    }
    let names: BTreeSet<&IfaceName> = f.managed.iter().map(|a| &a.name).collect();
    states.record.interfaces.retain(|n, _| names.contains(n));
    states.record.none_from_checks.retain(|n| names.contains(n));
    states.update_global(f.managed, &mut changes);
    Outcome {
        states,
        changes,
        reset_checks,
    }
}

/// A check verdict for a usable managed interface: the new connectivity, with its device event.
/// A NONE from the checks (an interface with no route to check through) is a result, not the
/// lack of one: it stays NONE until the checks say otherwise.
pub fn checked(
    mut states: States,
    iface: &IfaceName,
    state: Connectivity,
    reason: &str,
    device_events: DeviceEvents,
    now: Instant,
) -> (States, Vec<Change>) {
    if state == Connectivity::None {
        states.record.none_from_checks.insert(iface.clone());
    } else {
        states.record.none_from_checks.remove(iface);
    }
    let mut out = Vec::new();
    states.set(iface, state, reason, device_events, now, &mut out);
    (states, out)
}

/// The states a (re)started RouteManager resumes from the saved record, and the fail-back holds
/// still running (their ends need a reconcile). On the daemon's first start every `up` is
/// announced again; after a restart they are not repeated. Resumed FULL interfaces keep what was
/// left of a running hold; the others have proven themselves already: no new hold.
pub fn resume(
    mut record: EngineState,
    first_start: bool,
    hold: Duration,
    now: Instant,
) -> (States, Vec<Duration>) {
    if first_start {
        for r in record.interfaces.values_mut() {
            r.announced_up = false;
        }
    }
    let mut full_since = HashMap::new();
    let mut holds = Vec::new();
    for (name, r) in &record.interfaces {
        if r.connectivity != Connectivity::Full {
            continue;
        }
        let left = record
            .failback_hold_ms
            .get(name)
            .map(|ms| Duration::from_millis(*ms).min(hold))
            .unwrap_or_default();
        // Clock too young to go back that far: start the hold now (errs on holding).
        let since = now.checked_sub(hold - left).unwrap_or(now);
        full_since.insert(name.clone(), since);
        if !left.is_zero() {
            holds.push(left);
        }
    }
    (States { record, full_since }, holds)
}

/// Puts what is left of every running fail-back hold into the record, so a restart resumes it.
/// Saved with each reconcile: after a crash the hold may last up to one reconcile interval
/// longer, never shorter.
pub fn record_holds(states: &mut States, hold: Duration, now: Instant) {
    let record = &mut states.record;
    record.failback_hold_ms = states
        .full_since
        .iter()
        .filter(|(name, _)| {
            record
                .interfaces
                .get(*name)
                .is_some_and(|r| r.connectivity == Connectivity::Full)
        })
        .filter_map(|(name, since)| {
            let left = (*since + hold).checked_duration_since(now)?;
            (!left.is_zero()).then(|| (name.clone(), left.as_millis() as u64))
        })
        .collect();
}
