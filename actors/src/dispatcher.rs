//! Dispatcher: delivers events to the user's scripts, one event at a time, in production order.
//!
//! Owns: the delivery loop. It takes the oldest pending event from the engine's `EventLog` (which
//! has written it to the journal first), runs its scripts through the `ScriptRunner` port, and
//! only then removes it. The loop is a future of this actor's context: when the actor is
//! stopped or killed, the loop is dropped, and the port's contract kills the running script's
//! process group. The restarted Dispatcher delivers that event again (at-least-once; the id
//! stays the same, so a script can recognise a repeat).

use std::sync::Arc;

use actix::prelude::*;
use tracing::Instrument;

use crate::event_log::EventLog;
use crate::ports::ScriptRunner;

/// See the module doc.
pub struct Dispatcher {
    scripts: Arc<dyn ScriptRunner>,
    log: EventLog,
}

impl Dispatcher {
    pub fn new(scripts: Arc<dyn ScriptRunner>, log: EventLog) -> Self {
        Self { scripts, log }
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let scripts = self.scripts.clone();
        let log = self.log.clone();
        let delivery = async move {
            loop {
                let event = log.next().await;
                let id = event.id;
                let span =
                    tracing::info_span!("deliver", event_id = id, iface = tracing::field::Empty);
                if let Some(iface) = &event.iface {
                    span.record("iface", tracing::field::display(iface));
                }
                async {
                    tracing::debug!(event = %event.kind, "running scripts");
                    let outcomes = scripts.run(event).await;
                    log.complete(id, outcomes);
                    // The finished event leaves the journal now, not with the next event, so a
                    // restart does not run it again.
                    log.persisted().await;
                }
                .instrument(span)
                .await;
            }
        }
        .instrument(tracing::info_span!("dispatcher"));
        ctx.spawn(delivery.into_actor(self));
    }
}
