//! [`MemStateStore`]: the in-memory `StateStore` port.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::ports::{EngineState, PortResult, StateStore};

/// In-memory state store; clones share it.
#[derive(Clone, Default)]
pub struct MemStateStore {
    state: Arc<Mutex<EngineState>>,
}

impl MemStateStore {
    pub fn get(&self) -> EngineState {
        lock(&self.state).clone()
    }
}

impl StateStore for MemStateStore {
    fn load(&self) -> BoxFuture<'static, PortResult<EngineState>> {
        let s = lock(&self.state).clone();
        async move { Ok(s) }.boxed()
    }

    fn save(&self, state: EngineState) -> BoxFuture<'static, PortResult<()>> {
        *lock(&self.state) = state;
        async move { Ok(()) }.boxed()
    }
}
