//! [`FakeRecovery`]: the recovery ladder's actions recorded in memory (with the virtual time of
//! each call), outcomes chosen per action, and the persisted reboot times kept across engine
//! restarts (share one `FakeRecovery` between the engines of a test).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::time::Instant;

use super::lock;
use crate::model::IfaceName;
use crate::ports::{ActionOutcome, PortResult, Recovery, RecoveryAction, RecoveryTarget};

/// One recorded action: what, on which interface (`None` for `reboot`), and when.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FakeCall {
    pub action: RecoveryAction,
    pub iface: Option<IfaceName>,
    pub at: Instant,
    /// The reboot command it was given.
    pub command: Vec<String>,
}

#[derive(Default)]
struct Inner {
    calls: Vec<FakeCall>,
    outcomes: BTreeMap<RecoveryAction, ActionOutcome>,
    reboots: Vec<u64>,
}

/// See the module doc.
#[derive(Clone, Default)]
pub struct FakeRecovery {
    inner: Arc<Mutex<Inner>>,
}

impl FakeRecovery {
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        lock(&self.inner).calls.clone()
    }

    /// What `action` answers from now on (default `Done`).
    pub fn answer(&self, action: RecoveryAction, outcome: ActionOutcome) {
        lock(&self.inner).outcomes.insert(action, outcome);
    }

    /// The persisted reboot times.
    pub fn reboots(&self) -> Vec<u64> {
        lock(&self.inner).reboots.clone()
    }

    /// Sets the persisted reboot times (a reboot before this engine started).
    pub fn set_reboots(&self, reboots: Vec<u64>) {
        lock(&self.inner).reboots = reboots;
    }

    fn call(
        &self,
        action: RecoveryAction,
        iface: Option<IfaceName>,
        command: Vec<String>,
    ) -> BoxFuture<'static, ActionOutcome> {
        let mut inner = lock(&self.inner);
        inner.calls.push(FakeCall {
            action,
            iface,
            at: Instant::now(),
            command,
        });
        let outcome = inner
            .outcomes
            .get(&action)
            .cloned()
            .unwrap_or(ActionOutcome::Done);
        Box::pin(async move { outcome })
    }
}

impl Recovery for FakeRecovery {
    fn relink(&self, t: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        self.call(RecoveryAction::Relink, Some(t.iface), vec![])
    }
    fn reconnect(&self, t: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        self.call(RecoveryAction::Reconnect, Some(t.iface), vec![])
    }
    fn modem_reset(&self, t: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        self.call(RecoveryAction::ModemReset, Some(t.iface), vec![])
    }
    fn reboot(&self, command: Vec<String>) -> BoxFuture<'static, ActionOutcome> {
        self.call(RecoveryAction::Reboot, None, command)
    }
    fn load_reboots(&self) -> BoxFuture<'static, PortResult<Vec<u64>>> {
        let r = self.reboots();
        Box::pin(async move { Ok(r) })
    }
    fn save_reboots(&self, reboots: Vec<u64>) -> BoxFuture<'static, PortResult<()>> {
        self.set_reboots(reboots);
        Box::pin(async { Ok(()) })
    }
}
