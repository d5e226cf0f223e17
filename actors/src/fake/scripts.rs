//! [`FakeScripts`]: the fake of the `ScriptRunner` port, recording the events it "runs".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::model::Event;
use crate::ports::{ScriptOutcome, ScriptResult, ScriptRunner};

#[derive(Default)]
struct ScriptState {
    started: Vec<Event>,
    finished: Vec<Event>,
    duration: Duration,
    running: usize,
}

/// Records the events it "runs"; each run takes `duration` of (virtual) time.
#[derive(Clone, Default)]
pub struct FakeScripts {
    state: Arc<Mutex<ScriptState>>,
}

/// Decrements the running count even when the run is dropped (the Dispatcher was killed).
struct RunningGuard(Arc<Mutex<ScriptState>>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        lock(&self.0).running -= 1;
    }
}

impl FakeScripts {
    pub fn set_duration(&self, d: Duration) {
        lock(&self.state).duration = d;
    }

    /// Events whose scripts ran to the end, in order.
    pub fn finished(&self) -> Vec<Event> {
        lock(&self.state).finished.clone()
    }

    /// Events whose scripts were started (a killed run appears here twice).
    pub fn started(&self) -> Vec<Event> {
        lock(&self.state).started.clone()
    }

    /// Script runs in progress (0 after a kill: the run was stopped with its Dispatcher).
    pub fn running(&self) -> usize {
        lock(&self.state).running
    }
}

impl ScriptRunner for FakeScripts {
    fn run(&self, event: Event) -> BoxFuture<'static, Vec<ScriptOutcome>> {
        let state = self.state.clone();
        let duration = {
            let mut s = lock(&state);
            s.started.push(event.clone());
            s.running += 1;
            s.duration
        };
        async move {
            let _guard = RunningGuard(state.clone());
            tokio::time::sleep(duration).await;
            lock(&state).finished.push(event);
            vec![ScriptOutcome {
                script: "fake".into(),
                result: ScriptResult::Exited { code: 0 },
                elapsed: duration,
            }]
        }
        .boxed()
    }
}
