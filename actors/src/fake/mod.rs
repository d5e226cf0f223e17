//! In-memory fakes of every port (feature `fake`), for deterministic tests and benches in
//! virtual time: one file per fake port, and [`FakeWorld`], the `Ports` bundle over them.
//!
//! | fake | file | port(s) |
//! |---|---|---|
//! | [`FakeKernel`] | `kernel.rs` | `LinkSource`, `RouteTable`, `Sysctl` |
//! | [`FakeProbe`] | `probe.rs` | `Probe` |
//! | [`FakeTraffic`] | `traffic.rs` | `TrafficSource` |
//! | [`FakeScripts`] | `scripts.rs` | `ScriptRunner` |
//! | [`MemJournal`] | `journal.rs` | `Journal` |
//! | [`MemStateStore`] | `state_store.rs` | `StateStore` |
//! | [`FakeFlows`] | `flows.rs` | `FlowTable` |
//! | [`FakeRecovery`] | `recovery.rs` | `Recovery` |

use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::IfaceName;
use crate::ports::Ports;

mod flows;
mod journal;
mod kernel;
mod probe;
mod recovery;
mod scripts;
mod state_store;
mod traffic;

pub use flows::{FakeFlows, FakeReset};
pub use journal::MemJournal;
pub use kernel::{FakeKernel, RouteWrite};
pub use probe::{FakeProbe, ProbeBehaviour};
pub use recovery::{FakeCall, FakeRecovery};
pub use scripts::FakeScripts;
pub use state_store::MemStateStore;
pub use traffic::{FakeFlow, FakeTraffic};

/// Lets every ready task run without moving the clock (a bounded number of yields).
pub async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
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
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
    })
}
