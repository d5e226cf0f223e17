//! Supervision machinery, independent of any particular tree: restart policies as data, restart
//! bookkeeping (intensity window, exponential back-off), containment of panics, kills, and the
//! per-child record a parent keeps ([`ChildSlot`]). The top-level tree is built in
//! `supervisor.rs`; ProbeScheduler uses the same machinery for its Probers.
//!
//! `actix::Supervisor` does not restart an actor that panicked (docs/kernel-facts.md §2), so every
//! child runs as its own task ([`spawn_actor`]): a panic ends only that task, the task's
//! `JoinHandle` reports how it ended, and the parent restarts a fresh actor from its factory.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::messages::KillHow;
use crate::status::ActorStatus;

pub use crate::status::Exit;

/// Restart intensity and back-off of one child.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RestartPolicy {
    /// More than `intensity` failures within `period` escalate.
    pub intensity: u32,
    pub period: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// What to do after a child exited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Decision {
    Restart(Duration),
    Escalate,
}

/// Restart bookkeeping of one child.
#[derive(Clone, Debug, Default)]
pub struct RestartTracker {
    recent: VecDeque<Instant>,
    pub restarts: u32,
    pub kills: u32,
    pub last_failure: Option<Exit>,
}

impl RestartTracker {
    pub fn on_exit(&mut self, policy: &RestartPolicy, exit: Exit, now: Instant) -> Decision {
        if exit == Exit::Killed {
            self.restarts += 1;
            self.kills += 1;
            return Decision::Restart(Duration::ZERO);
        }
        self.last_failure = Some(match exit {
            Exit::Panicked => Exit::Panicked,
            _ => Exit::Stopped,
        });
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.period)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() > policy.intensity as usize {
            return Decision::Escalate;
        }
        self.restarts += 1;
        let exponent = (self.recent.len() as u32).saturating_sub(1).min(16);
        let delay = policy
            .backoff_min
            .saturating_mul(1 << exponent)
            .min(policy.backoff_max);
        Decision::Restart(delay)
    }
}

/// Handle to a child's task.
pub struct Running {
    /// Aborting drops the actor and everything it spawned (e.g. a running script).
    abort: AbortHandle,
    /// Test hook (feature `fake`): makes the task panic.
    #[cfg(feature = "fake")]
    tripwire: std::sync::Arc<tokio::sync::Notify>,
}

impl Running {
    /// Ends the task on request; its exit is reported as usual.
    pub fn kill(&self, how: KillHow) {
        match how {
            // The exit arrives as Exit::Killed, which the tracker does not count as a failure.
            KillHow::Abort => self.abort.abort(),
            #[cfg(feature = "fake")]
            KillHow::Panic => self.tripwire.notify_one(),
        }
    }
}

/// Runs `actor` as its own task; `on_exit` learns how it ended.
pub fn spawn_actor<A>(actor: A, on_exit: impl FnOnce(Exit) + 'static) -> (Addr<A>, Running)
where
    A: Actor<Context = Context<A>>,
{
    let ctx = Context::new();
    let addr = ctx.address();
    let run = ctx.into_future(actor);
    #[cfg(feature = "fake")]
    let tripwire = std::sync::Arc::new(tokio::sync::Notify::new());
    #[cfg(feature = "fake")]
    let run = {
        // The panic unwinds through the actor's task exactly like one from a handler: the actor
        // and its futures are dropped and the parent sees `Exit::Panicked`.
        let tripped = tripwire.clone();
        async move {
            tokio::select! {
                () = run => {}
                () = tripped.notified() => panic!("crash requested by a test"),
            }
        }
    };
    let task = actix_rt::spawn(run);
    let abort = task.abort_handle();
    actix_rt::spawn(async move {
        let exit = match task.await {
            Ok(()) => Exit::Stopped,
            Err(e) if e.is_panic() => Exit::Panicked,
            Err(_) => Exit::Killed,
        };
        on_exit(exit);
    });
    let running = Running {
        abort,
        #[cfg(feature = "fake")]
        tripwire,
    };
    (addr, running)
}

/// What a parent keeps about one supervised child: whether an incarnation runs, which one it
/// is (an exit report from an older one is ignored), and its restart record.
#[derive(Default)]
pub struct ChildSlot {
    running: Option<Running>,
    generation: u64,
    pub tracker: RestartTracker,
}

impl ChildSlot {
    /// Starts a new incarnation (aborting the running one); `on_exit` gets the incarnation's
    /// generation and how it ended.
    pub fn start<A>(&mut self, actor: A, on_exit: impl FnOnce(u64, Exit) + 'static) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
    {
        self.stop();
        self.generation += 1;
        let generation = self.generation;
        let (addr, running) = spawn_actor(actor, move |exit| on_exit(generation, exit));
        self.running = Some(running);
        addr
    }

    /// True once an incarnation was started (the next start is a restart).
    pub fn started_before(&self) -> bool {
        self.generation > 0
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Aborts the running incarnation, if any (its exit report will be ignored).
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.abort.abort();
        }
    }

    /// Ends the running incarnation on request; false if none is running.
    pub fn kill(&self, how: KillHow) -> bool {
        self.running.as_ref().map(|r| r.kill(how)).is_some()
    }

    /// The incarnation `generation` ended: the decision, or `None` if that report is stale.
    pub fn on_exit(
        &mut self,
        generation: u64,
        exit: Exit,
        policy: &RestartPolicy,
        now: Instant,
    ) -> Option<Decision> {
        if generation != self.generation || self.running.is_none() {
            return None;
        }
        self.running = None;
        Some(self.tracker.on_exit(policy, exit, now))
    }

    /// The child's line in `status`.
    pub fn status(&self, name: String) -> ActorStatus {
        ActorStatus {
            name,
            running: self.running.is_some(),
            restarts: self.tracker.restarts,
            kills: self.tracker.kills,
            last_failure: self.tracker.last_failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intensity_and_backoff() {
        let p = RestartPolicy {
            intensity: 3,
            period: Duration::from_secs(10),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        };
        let mut t = RestartTracker::default();
        let now = Instant::now();
        assert_eq!(
            t.on_exit(&p, Exit::Panicked, now),
            Decision::Restart(Duration::from_millis(100))
        );
        assert_eq!(
            t.on_exit(&p, Exit::Stopped, now),
            Decision::Restart(Duration::from_millis(200))
        );
        assert_eq!(
            t.on_exit(&p, Exit::Killed, now),
            Decision::Restart(Duration::ZERO),
            "kills don't count"
        );
        assert_eq!(
            t.on_exit(&p, Exit::Panicked, now),
            Decision::Restart(Duration::from_millis(300)),
            "capped"
        );
        assert_eq!(t.on_exit(&p, Exit::Panicked, now), Decision::Escalate);
        assert_eq!((t.restarts, t.kills), (4, 1));
        // Failures older than the period are forgotten.
        let mut t = RestartTracker::default();
        for i in 0..10 {
            let at = now + Duration::from_secs(11 * i);
            assert!(matches!(
                t.on_exit(&p, Exit::Panicked, at),
                Decision::Restart(_)
            ));
        }
    }
}
