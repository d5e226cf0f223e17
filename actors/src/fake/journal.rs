//! [`MemJournal`]: the in-memory `Journal` port (the event queue's mirror across restarts).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::ports::{Journal, JournalState, PortError, PortResult};

/// In-memory journal; clones share it (a "daemon restart" is a new engine on the same one).
#[derive(Clone, Default)]
pub struct MemJournal {
    state: Arc<Mutex<JournalState>>,
    saves: Arc<Mutex<VecDeque<usize>>>,
    stalled: Arc<Mutex<bool>>,
    id_floor: Arc<Mutex<u64>>,
    corrupt: Arc<Mutex<bool>>,
}

impl MemJournal {
    pub fn get(&self) -> JournalState {
        lock(&self.state).clone()
    }

    /// The id floor the journal reports (a boot-time clock in production).
    pub fn set_id_floor(&self, floor: u64) {
        *lock(&self.id_floor) = floor;
    }

    /// While corrupt, loads fail (an unreadable journal file).
    pub fn set_corrupt(&self, corrupt: bool) {
        *lock(&self.corrupt) = corrupt;
    }

    /// While stalled, saves never finish (a stuck disk).
    pub fn set_stalled(&self, stalled: bool) {
        *lock(&self.stalled) = stalled;
    }
}

impl Journal for MemJournal {
    fn load(&self) -> BoxFuture<'static, PortResult<JournalState>> {
        if *lock(&self.corrupt) {
            let e = PortError::failed("journal", "not valid JSON");
            return async move { Err(e) }.boxed();
        }
        let s = lock(&self.state).clone();
        async move { Ok(s) }.boxed()
    }

    fn id_floor(&self) -> u64 {
        *lock(&self.id_floor)
    }

    fn save(&self, state: JournalState) -> BoxFuture<'static, PortResult<()>> {
        if *lock(&self.stalled) {
            return futures::future::pending().boxed();
        }
        lock(&self.saves).push_back(state.pending.len());
        *lock(&self.state) = state;
        async move { Ok(()) }.boxed()
    }
}
