//! In-memory fakes of every port (feature `fake`), for deterministic tests and benches in
//! virtual time: one file per fake port, and [`FakeWorld`], the `Ports` bundle over them.
//!
//! | fake | file | port(s) |
//! |---|---|---|
//! | [`FakeKernel`] | `kernel.rs` | `LinkSource`, `RouteTable`, `Sysctl` |
//! | [`FakeProbe`] | `probe.rs` | `Probe` |
//! | [`FakeTraffic`] | `traffic.rs` | `TrafficSource` |
//! | [`FakeScripts`] | `scripts.rs` | `ScriptRunner` |
//! | [`MemStore`] ([`MemJournal`], [`MemStateStore`]) | `store.rs` | `Store` |
//! | [`FakeFlows`] | `flows.rs` | `FlowTable` |
//! | [`FakeRecovery`] | `recovery.rs` | `Recovery` |
//! | [`FakeCalendar`] | `calendar.rs` | `Calendar` |
//! | [`MemAccounts`] | `store.rs` | `Store` of the accounts |

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::IfaceName;
use crate::ports::Ports;

mod calendar;
mod flows;
mod kernel;
mod probe;
mod recovery;
mod scripts;
mod store;
mod traffic;

pub use calendar::{FakeCalendar, FAKE_CALENDAR_START_MS};
pub use flows::{FakeFlows, FakeReset};
pub use kernel::{FakeKernel, RouteWrite};
pub use probe::{FakeProbe, ProbeBehaviour};
pub use recovery::{FakeCall, FakeRecovery};
pub use scripts::FakeScripts;
pub use store::{MemAccounts, MemJournal, MemStateStore, MemStore};
pub use traffic::{FakeFlow, FakeTraffic};

thread_local! {
    /// Calls into the fakes made on this thread (each test runs its engine on its own thread):
    /// what [`settle`] watches to know the engine is still at work.
    static ACTIVITY: Cell<u64> = const { Cell::new(0) };
}

/// Yields in a row without a call into any fake after which [`settle`] takes the engine as
/// idle: far more than the messages an engine passes between two port calls.
const QUIET_YIELDS: u32 = 100;

/// Yields after which [`settle`] gives up on an engine that never stops calling its ports.
const MAX_YIELDS: u32 = 1_000_000;

/// Lets every ready task run without moving the clock: yields until no fake has been called for
/// [`QUIET_YIELDS`] yields in a row, however long the engine's work takes before that (a start
/// with many uplinks, a backlog of events). An engine still calling its ports after
/// [`MAX_YIELDS`] yields fails the test rather than letting it assert on a world in motion.
pub async fn settle() {
    let activity = || ACTIVITY.with(Cell::get);
    let (mut last, mut quiet) = (activity(), 0);
    for _ in 0..MAX_YIELDS {
        tokio::task::yield_now().await;
        let now = activity();
        if now == last {
            quiet += 1;
            if quiet == QUIET_YIELDS {
                return;
            }
        } else {
            (last, quiet) = (now, 0);
        }
    }
    // A test helper: failing the test is the point.
    panic!("settle: the fakes were still being called after {MAX_YIELDS} yields");
}

/// Lets virtual time pass (timers fire in order as the paused clock auto-advances), then
/// settles.
pub async fn pass(d: std::time::Duration) {
    tokio::time::sleep(d).await;
    settle().await;
}

/// A dispatcher event of `kind` on `iface` (UNKNOWN → FULL), not yet numbered, for tests that
/// feed an `EventLog` directly.
pub fn event(kind: crate::model::EventKind, iface: &str) -> crate::model::Event {
    crate::model::Event {
        id: 0,
        kind,
        iface: Some(IfaceName::new(iface).expect("fake event: bad interface name in test")),
        state: crate::model::Connectivity::Full,
        previous: crate::model::Connectivity::Unknown,
        reason: String::new(),
        connection_id: None,
        connection_uuid: None,
        ip4_gateway: None,
        ip4_nameservers: vec![],
        at_unix_ms: 0,
        recovery: None,
        budget: None,
    }
}

/// Every fake reaches its state through here, which counts the call for [`settle`].
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    ACTIVITY.with(|a| a.set(a.get().wrapping_add(1)));
    // Test fakes: a poisoned lock still holds usable data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every fake, and the `Ports` bundle over them.
#[derive(Clone, Default)]
pub struct FakeWorld {
    pub kernel: FakeKernel,
    pub probe: FakeProbe,
    pub scripts: FakeScripts,
    pub journal: MemJournal,
    pub state: MemStateStore,
    pub flows: FakeFlows,
    pub traffic: FakeTraffic,
    pub recovery: FakeRecovery,
    pub accounts: MemAccounts,
    pub calendar: FakeCalendar,
}

impl FakeWorld {
    pub fn new() -> Self {
        let kernel = FakeKernel::new();
        Self {
            flows: FakeFlows::watching(kernel.clone()),
            kernel,
            ..Self::default()
        }
    }

    pub fn ports(&self) -> Ports {
        Ports {
            links: Arc::new(self.kernel.clone()),
            routes: Arc::new(self.kernel.clone()),
            sysctl: Arc::new(self.kernel.clone()),
            probe: Arc::new(self.probe.clone()),
            scripts: Arc::new(self.scripts.clone()),
            journal: Arc::new(self.journal.clone()),
            state: Arc::new(self.state.clone()),
            flows: Arc::new(self.flows.clone()),
            traffic: Arc::new(self.traffic.clone()),
            recovery: Arc::new(self.recovery.clone()),
            accounts: Arc::new(self.accounts.clone()),
            calendar: Arc::new(self.calendar.clone()),
        }
    }
}

/// A profile binding `iface` by name with a manual IPv4 gateway (IPv6 unmanaged), as a
/// NetworkManager keyfile would give: what examples and doctests configure a fake device with.
pub fn manual_profile(
    iface: &str,
    uplink_type: crate::model::UplinkType,
    metric: u32,
    gateway: std::net::IpAddr,
) -> Result<crate::model::Profile, crate::model::IfaceNameError> {
    use crate::model::{FamilyConfig, IfaceMatch, Method, Metric, Profile};
    let family = |manage_default, gateway| FamilyConfig {
        manage_default,
        method: Method::Manual,
        // Out of range (past the kernel's limit): the type's default instead.
        metric: Metric::new(i64::from(metric)).unwrap_or_else(|_| uplink_type.default_metric()),
        addresses: Vec::new(),
        gateway,
    };
    Ok(Profile {
        id: format!("fake-{iface}"),
        uuid: None,
        file: std::path::PathBuf::from(format!("system-connections/{iface}.nmconnection")),
        uplink_type,
        matches: IfaceMatch::Name(IfaceName::new(iface)?),
        managed: true,
        ipv4: family(true, Some(gateway)),
        ipv6: family(false, None),
        dns: Vec::new(),
        metered: crate::model::Metered::guess(uplink_type),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that keeps calling a fake, one call per yield, for far longer than any fixed number
    /// of yields: `settle` returns only once it is done, with the clock where it was.
    #[tokio::test(start_paused = true)]
    async fn settle_waits_for_work_that_outlasts_any_fixed_count_of_yields() {
        let kernel = FakeKernel::new();
        let done = Arc::new(Mutex::new(false));
        let (worker_kernel, worker_done) = (kernel.clone(), done.clone());
        tokio::spawn(async move {
            for _ in 0..5 * MAX_QUIET_CHECK {
                worker_kernel.routes();
                tokio::task::yield_now().await;
            }
            *lock(&worker_done) = true;
        });
        let before = tokio::time::Instant::now();
        settle().await;
        assert!(
            *lock(&done),
            "settle returned while the fake was still being called"
        );
        assert_eq!(
            tokio::time::Instant::now(),
            before,
            "no virtual time passed"
        );
    }

    /// Several times the quiet window: more than any fixed count a settle could have relied on.
    const MAX_QUIET_CHECK: u32 = 10 * QUIET_YIELDS;
}
