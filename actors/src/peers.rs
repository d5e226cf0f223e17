//! Restart-safe, typed addresses: how an actor reaches the handler of a message it sends
//! without naming that actor.
//!
//! A restarted actor gets a new mailbox, so peers never keep an `Addr` of each other: a sender
//! holds a [`Slot`] per message type it sends (a shared `Recipient<M>`), and the supervisor
//! points every slot at the handler's current incarnation on each (re)start and empties it when
//! the handler exits. A message to an empty slot is dropped (and reported to the caller), which
//! is safe because every actor rebuilds its state level-triggered on start (see each actor's
//! module doc). In a unit test, a slot is filled with a collector's recipient.
//!
//! [`Peers`] is the whole tree's set of slots, one per message that crosses actors
//! (`messages.rs` says who handles each); the supervisor hands each actor the slots it sends to.

use std::sync::{Arc, RwLock};

use actix::{Message, Recipient};

use crate::messages::{
    AnsweredSince, BudgetExhausted, Confirm, ConnectivityChanged, GetUplinks, LinkChanged,
    LinkRemoved, LinkSnapshot, ProbeSpent, ResetChecks, RouteInUseMoved, RoutesChanged,
    TwoWayTraffic, UplinkStates, UplinksChanged,
};

/// The current recipient of messages `M`, if its handler is running.
pub struct Slot<M>(Arc<RwLock<Option<Recipient<M>>>>)
where
    M: Message + Send,
    M::Result: Send;

impl<M> Clone for Slot<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<M> Default for Slot<M>
where
    M: Message + Send,
    M::Result: Send,
{
    fn default() -> Self {
        Self(Arc::new(RwLock::new(None)))
    }
}

impl<M> Slot<M>
where
    M: Message + Send,
    M::Result: Send,
{
    /// A slot already pointing at `to` (tests, fixed wiring).
    pub fn to(to: Recipient<M>) -> Self {
        let slot = Self::default();
        slot.set(Some(to));
        slot
    }

    pub fn get(&self) -> Option<Recipient<M>> {
        // Poisoning cannot leave an Option<Recipient> half-written; take the value anyway.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, to: Option<Recipient<M>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = to;
    }

    /// Fire-and-forget; `false` if the handler is not running (the message is dropped).
    pub fn do_send(&self, msg: M) -> bool {
        match self.get() {
            Some(to) if to.connected() => {
                to.do_send(msg);
                true
            }
            _ => false,
        }
    }
}

/// Every slot of the tree, by message (see the module doc).
#[derive(Clone, Default)]
pub struct Peers {
    // Handled by RouteManager.
    pub link_changed: Slot<LinkChanged>,
    pub link_removed: Slot<LinkRemoved>,
    pub link_snapshot: Slot<LinkSnapshot>,
    pub routes_changed: Slot<RoutesChanged>,
    pub connectivity_changed: Slot<ConnectivityChanged>,
    pub get_uplinks: Slot<GetUplinks>,
    // Handled by ProbeScheduler.
    pub uplinks_changed: Slot<UplinksChanged>,
    pub reset_checks: Slot<ResetChecks>,
    pub confirm: Slot<Confirm>,
    pub two_way_traffic: Slot<TwoWayTraffic>,
    pub budget_exhausted: Slot<BudgetExhausted>,
    // Handled by FlowResetter.
    pub route_in_use_moved: Slot<RouteInUseMoved>,
    // Handled by TrafficWatcher.
    pub answered_since: Slot<AnsweredSince>,
    // Handled by RecoveryManager.
    pub uplink_states: Slot<UplinkStates>,
    // Handled by the Accountant.
    pub probe_spent: Slot<ProbeSpent>,
}
