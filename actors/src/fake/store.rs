//! [`MemStore`]: the in-memory `Store` port, for the event journal ([`MemJournal`]) and the
//! interface records ([`MemStateStore`]) alike.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::ports::{EngineState, JournalState, PortError, PortResult, Store};

/// In-memory store of one `T`; clones share it (a "daemon restart" is a new engine on the same
/// one).
#[derive(Clone, Default)]
pub struct MemStore<T> {
    state: Arc<Mutex<T>>,
    stalled: Arc<Mutex<bool>>,
    id_floor: Arc<Mutex<u64>>,
    corrupt: Arc<Mutex<bool>>,
}

/// The fake event journal.
pub type MemJournal = MemStore<JournalState>;
/// The fake store of RouteManager's interface records.
pub type MemStateStore = MemStore<EngineState>;
/// The fake store of the Accountant's monthly accounts.
pub type MemAccounts = MemStore<crate::accounting::Accounts>;

impl<T: Clone> MemStore<T> {
    pub fn get(&self) -> T {
        lock(&self.state).clone()
    }

    /// Replaces what the store holds (a file left by an earlier run).
    pub fn set(&self, value: T) {
        *lock(&self.state) = value;
    }

    /// The id floor the store reports (a boot-time clock in production's journal).
    pub fn set_id_floor(&self, floor: u64) {
        *lock(&self.id_floor) = floor;
    }

    /// While corrupt, loads fail (an unreadable file).
    pub fn set_corrupt(&self, corrupt: bool) {
        *lock(&self.corrupt) = corrupt;
    }

    /// While stalled, saves never finish (a stuck disk).
    pub fn set_stalled(&self, stalled: bool) {
        *lock(&self.stalled) = stalled;
    }
}

impl<T: Clone + Send + 'static> Store<T> for MemStore<T> {
    fn load(&self) -> BoxFuture<'static, PortResult<T>> {
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

    fn save(&self, state: T) -> BoxFuture<'static, PortResult<()>> {
        if *lock(&self.stalled) {
            return futures::future::pending().boxed();
        }
        *lock(&self.state) = state;
        async move { Ok(()) }.boxed()
    }
}
