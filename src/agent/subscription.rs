//! [`Subscription`]: what an embedder (and the control socket's `follow`) reads of a running
//! engine, the snapshot first and then each change, with a fresh snapshot after a lag.

use std::sync::Arc;

use netfailover_actors::observe::{EngineEvent, Snapshot};
use netfailover_actors::EngineHandle;
use tokio::sync::broadcast;

/// One item of a [`Subscription`].
#[derive(Clone, PartialEq, Debug)]
pub enum Update {
    /// The whole view; always first, and again right after [`Update::Lagged`].
    Snapshot(Box<Snapshot>),
    /// One change, in the order it happened.
    Event(EngineEvent),
    /// The subscriber fell behind and `missed` events were dropped for it (the engine never
    /// waits for a subscriber); a fresh snapshot follows.
    Lagged { missed: u64 },
}

type Observe = dyn Fn() -> (Snapshot, broadcast::Receiver<EngineEvent>) + Send + Sync;

/// The state now, then every change: [`Update::Snapshot`] first, then [`Update::Event`]s.
/// The snapshot and the channel are taken atomically, so applying the events to the snapshot
/// ([`Snapshot::apply`]) tracks the engine exactly, however late the subscription.
///
/// ```
/// # use netfailover::agent::{Agent, Update};
/// # use netfailover::engine::{fake::FakeWorld, model::{Config, LinkKind}, ports::Verdict};
/// # let world = FakeWorld::new();
/// # world.kernel.add_link("eth0", LinkKind::Other);
/// actix_rt::System::new().block_on(async {
///     let agent = Agent::builder().config(Config::default()).ports(world.ports()).start()?;
///     let mut updates = agent.subscribe();
///     let Some(Update::Snapshot(mut view)) = updates.next().await else { unreachable!() };
///     agent.kill("link-watcher").await?; // a change: an actor restart
///     while let Some(Update::Event(event)) = updates.next().await {
///         view.apply(&event);
///         if view.status.actors.iter().any(|a| a.name == "link-watcher" && a.kills == 1) {
///             break;
///         }
///     }
///     agent.shutdown().await
/// })?;
/// # Ok::<(), netfailover::agent::AgentError>(())
/// ```
pub struct Subscription {
    observe: Arc<Observe>,
    snapshot: Option<Snapshot>,
    receiver: broadcast::Receiver<EngineEvent>,
}

impl Subscription {
    /// Subscribes to a running engine.
    pub fn of(engine: &EngineHandle) -> Self {
        let engine = engine.clone();
        Self::new(move || engine.observe())
    }

    /// Subscribes to any source of snapshots and events (`observe` is called now and again
    /// after a lag); the control socket's tests use it with a stub.
    pub fn new(
        observe: impl Fn() -> (Snapshot, broadcast::Receiver<EngineEvent>) + Send + Sync + 'static,
    ) -> Self {
        let (snapshot, receiver) = observe();
        Self {
            observe: Arc::new(observe),
            snapshot: Some(snapshot),
            receiver,
        }
    }

    /// The next update; `None` once the engine has stopped.
    pub async fn next(&mut self) -> Option<Update> {
        if let Some(snapshot) = self.snapshot.take() {
            return Some(Update::Snapshot(Box::new(snapshot)));
        }
        match self.receiver.recv().await {
            Ok(event) => Some(Update::Event(event)),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let (snapshot, receiver) = (self.observe)();
                self.snapshot = Some(snapshot);
                self.receiver = receiver;
                Some(Update::Lagged { missed })
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}
