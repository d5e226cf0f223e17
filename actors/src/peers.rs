//! Stable addresses of the top-level actors.
//!
//! A restarted actor gets a new mailbox, so peers never keep an `Addr` of each other: they hold
//! a [`Slot`] that the supervisor fills on every (re)start and empties when the actor exits. A
//! message to an empty slot is dropped (and reported to the caller), which is safe because every
//! actor rebuilds its state level-triggered on start (see each actor's module doc).

use std::sync::{Arc, RwLock};

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};

use crate::dispatcher::Dispatcher;
use crate::flow_resetter::FlowResetter;
use crate::link_watcher::LinkWatcher;
use crate::probe_scheduler::ProbeScheduler;
use crate::route_manager::RouteManager;
use crate::traffic_watcher::TrafficWatcher;

/// The current address of an actor, if it is running.
pub struct Slot<A: Actor>(Arc<RwLock<Option<Addr<A>>>>);

impl<A: Actor> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A: Actor> Default for Slot<A> {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(None)))
    }
}

impl<A: Actor> Slot<A> {
    pub fn get(&self) -> Option<Addr<A>> {
        // Poisoning cannot leave an Option<Addr> half-written; take the value anyway.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, addr: Option<Addr<A>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Fire-and-forget; `false` if the actor is not running (the message is dropped).
    pub fn do_send<M>(&self, msg: M) -> bool
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match self.get() {
            Some(addr) if addr.connected() => {
                addr.do_send(msg);
                true
            }
            _ => false,
        }
    }
}

/// Slots of every top-level actor, shared by all of them.
#[derive(Clone, Default)]
pub struct Peers {
    pub link_watcher: Slot<LinkWatcher>,
    pub route_manager: Slot<RouteManager>,
    pub probe_scheduler: Slot<ProbeScheduler>,
    pub dispatcher: Slot<Dispatcher>,
    pub flow_resetter: Slot<FlowResetter>,
    pub traffic_watcher: Slot<TrafficWatcher>,
}
