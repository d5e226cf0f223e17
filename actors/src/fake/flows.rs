//! [`FakeFlows`]: the fake of the `FlowTable` port (local sockets and conntrack entries).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{lock, FakeKernel};
use crate::flows::{merge_addresses, ConntrackFlow, Pinned, SocketFlow};
use crate::model::IfaceAddr;
use crate::ports::{FlowFailure, FlowResetReport, FlowScope, FlowTable};

#[derive(Default)]
struct FlowsState {
    addresses: BTreeMap<u32, Vec<IfaceAddr>>,
    sockets: Vec<SocketFlow>,
    conntrack: Vec<ConntrackFlow>,
    resets: Vec<FakeReset>,
    failure: Option<FlowFailure>,
    delay: Duration,
    /// The kernel whose route in use each reset records.
    kernel: Option<FakeKernel>,
}

/// One reset the engine asked for.
#[derive(Clone, Debug)]
pub struct FakeReset {
    pub scope: FlowScope,
    /// Virtual time it started.
    pub at: tokio::time::Instant,
    /// The interface of the kernel's route in use for the scope's family when it started
    /// (the routes must have moved already).
    pub route_in_use: Option<String>,
}

/// Local sockets and conntrack entries in memory; a reset removes what [`Pinned`] selects,
/// exactly as the OS adapter does. Clones share the same tables.
#[derive(Clone, Default)]
pub struct FakeFlows {
    inner: Arc<Mutex<FlowsState>>,
}

impl FakeFlows {
    /// Flows whose resets record `kernel`'s route in use at the moment they start.
    pub fn watching(kernel: FakeKernel) -> Self {
        let flows = Self::default();
        lock(&flows.inner).kernel = Some(kernel);
        flows
    }

    /// The addresses of interface `ifindex` now (the adapter reads them from the kernel; a reset
    /// also matches the scope's remembered ones).
    pub fn set_addresses(&self, ifindex: u32, addresses: Vec<IfaceAddr>) {
        lock(&self.inner).addresses.insert(ifindex, addresses);
    }

    pub fn add_socket(&self, s: SocketFlow) {
        lock(&self.inner).sockets.push(s);
    }

    pub fn add_conntrack(&self, c: ConntrackFlow) {
        lock(&self.inner).conntrack.push(c);
    }

    pub fn sockets(&self) -> Vec<SocketFlow> {
        lock(&self.inner).sockets.clone()
    }

    pub fn conntrack(&self) -> Vec<ConntrackFlow> {
        lock(&self.inner).conntrack.clone()
    }

    /// Every reset asked for, oldest first.
    pub fn resets(&self) -> Vec<FakeReset> {
        lock(&self.inner).resets.clone()
    }

    /// Every later reset also reports this failure (and still removes what it can).
    pub fn set_failure(&self, failure: Option<FlowFailure>) {
        lock(&self.inner).failure = failure;
    }

    /// Every later reset takes this long.
    pub fn set_delay(&self, delay: Duration) {
        lock(&self.inner).delay = delay;
    }
}

impl FlowTable for FakeFlows {
    fn reset(&self, scope: FlowScope) -> BoxFuture<'static, FlowResetReport> {
        let inner = self.inner.clone();
        let delay = {
            let mut st = lock(&inner);
            let route_in_use = st
                .kernel
                .as_ref()
                .and_then(|k| k.best_iface_of(scope.family));
            st.resets.push(FakeReset {
                scope: scope.clone(),
                at: tokio::time::Instant::now(),
                route_in_use,
            });
            st.delay
        };
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut st = lock(&inner);
            let mut addresses = st
                .addresses
                .get(&scope.ifindex)
                .cloned()
                .unwrap_or_default();
            merge_addresses(&mut addresses, &scope.last_addresses);
            let pinned = Pinned::new(scope.family, &addresses);
            let (sockets, conntrack) = (st.sockets.len(), st.conntrack.len());
            st.sockets.retain(|s| !pinned.socket(s));
            st.conntrack.retain(|c| !pinned.conntrack(c));
            FlowResetReport {
                addresses: pinned.addresses().to_vec(),
                sockets_destroyed: (sockets - st.sockets.len()) as u64,
                conntrack_deleted: (conntrack - st.conntrack.len()) as u64,
                failures: st.failure.clone().into_iter().collect(),
            }
        }
        .boxed()
    }
}
