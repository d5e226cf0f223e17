//! Dry run: ports that log what they would do, record it as the plan, and change nothing.
//!
//! Reads go to the real adapters (routes, links, sysctls), so the engine plans against the live
//! device; writes are only recorded. [`DryRunRoutes`] keeps the recorded route operations as an
//! overlay on the real table, so the engine sees its own plan applied and settles instead of
//! planning the same change on every reconcile. Scripts are not run; the journal and the
//! interface state stay in memory (a dry run must not disturb a real daemon's state files).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::{BoxFuture, FutureExt};
use netfailover_actors::model::{Event, EventKind, IfaceAddr, IfaceName, KernelRoute};
use netfailover_actors::ports::{
    EngineState, FlowResetReport, FlowScope, FlowTable, JournalState, NoRecovery, PortResult,
    Ports, RouteTable, ScriptOutcome, ScriptRunner, Store, Sysctl,
};
use serde::Serialize;

/// Changes kept in the plan; older ones are dropped first.
pub const PLAN_LEN: usize = 1024;

/// One change a dry run would have made, in the order the engine asked for it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum PlannedChange {
    AddRoute {
        route: KernelRoute,
    },
    ReplaceRoute {
        route: KernelRoute,
    },
    DeleteRoute {
        route: KernelRoute,
    },
    AddAddress {
        ifindex: u32,
        addr: IfaceAddr,
    },
    WriteSysctl {
        key: String,
        value: String,
    },
    /// The dispatcher scripts of this event would have run.
    RunScripts {
        event_id: u64,
        kind: EventKind,
        iface: Option<IfaceName>,
    },
    /// The flows pinned to this interface would have been reset.
    ResetFlows {
        scope: FlowScope,
    },
}

/// The shared record of a dry run: what would have changed, oldest first.
#[derive(Clone, Default)]
pub struct Plan(Arc<Mutex<VecDeque<PlannedChange>>>);

impl Plan {
    fn lock(&self) -> MutexGuard<'_, VecDeque<PlannedChange>> {
        // Each critical section is one push or one copy: a panic cannot leave it half done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, change: PlannedChange) {
        tracing::info!(?change, "dry run: would change");
        let mut plan = self.lock();
        if plan.len() >= PLAN_LEN {
            plan.pop_front();
        }
        plan.push_back(change);
    }

    /// Every recorded change, oldest first.
    pub fn changes(&self) -> Vec<PlannedChange> {
        self.lock().iter().cloned().collect()
    }
}

/// A [`RouteTable`] that lists the real table (with the plan applied) and writes nothing.
pub struct DryRunRoutes {
    real: Arc<dyn RouteTable>,
    plan: Plan,
    /// Route writes so far, replayed on each listing of the real table.
    overlay: Mutex<Vec<PlannedChange>>,
}

impl DryRunRoutes {
    pub fn new(real: Arc<dyn RouteTable>, plan: Plan) -> Self {
        Self {
            real,
            plan,
            overlay: Mutex::new(Vec::new()),
        }
    }

    fn write(&self, change: PlannedChange) -> BoxFuture<'static, PortResult<()>> {
        {
            let mut overlay = self.overlay.lock().unwrap_or_else(|p| p.into_inner());
            if overlay.len() >= PLAN_LEN {
                overlay.remove(0);
            }
            overlay.push(change.clone());
        }
        self.plan.record(change);
        futures::future::ready(Ok(())).boxed()
    }
}

fn same_key(a: &KernelRoute, b: &KernelRoute) -> bool {
    a.family == b.family && a.metric == b.metric
}

/// The table after `ops`, with the semantics of the port (`replace` by key, `delete` exact).
fn apply(mut table: Vec<KernelRoute>, ops: &[PlannedChange]) -> Vec<KernelRoute> {
    for op in ops {
        match op {
            // `add` of an existing key fails with `Exists`: the table keeps the old route.
            PlannedChange::AddRoute { route } if !table.iter().any(|r| same_key(r, route)) => {
                table.push(route.clone());
            }
            PlannedChange::ReplaceRoute { route } => {
                table.retain(|r| !same_key(r, route));
                table.push(route.clone());
            }
            PlannedChange::DeleteRoute { route } => table.retain(|r| r != route),
            _ => {}
        }
    }
    table
}

impl RouteTable for DryRunRoutes {
    fn list_defaults(&self) -> BoxFuture<'static, PortResult<Vec<KernelRoute>>> {
        let ops = self
            .overlay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.real
            .list_defaults()
            .map(move |real| real.map(|table| apply(table, &ops)))
            .boxed()
    }

    fn add(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        self.write(PlannedChange::AddRoute { route })
    }

    fn replace(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        self.write(PlannedChange::ReplaceRoute { route })
    }

    fn delete(&self, route: KernelRoute) -> BoxFuture<'static, PortResult<()>> {
        self.write(PlannedChange::DeleteRoute { route })
    }

    fn list_addresses(&self) -> BoxFuture<'static, PortResult<Vec<(u32, IfaceAddr)>>> {
        self.real.list_addresses()
    }

    fn ensure_address(&self, ifindex: u32, addr: IfaceAddr) -> BoxFuture<'static, PortResult<()>> {
        self.plan
            .record(PlannedChange::AddAddress { ifindex, addr });
        futures::future::ready(Ok(())).boxed()
    }
}

/// A [`Sysctl`] that reads the real value and only records writes.
pub struct DryRunSysctl {
    pub real: Arc<dyn Sysctl>,
    pub plan: Plan,
}

impl Sysctl for DryRunSysctl {
    fn read(&self, key: String) -> BoxFuture<'static, PortResult<String>> {
        self.real.read(key)
    }

    fn write(&self, key: String, value: String) -> BoxFuture<'static, PortResult<()>> {
        self.plan.record(PlannedChange::WriteSysctl { key, value });
        futures::future::ready(Ok(())).boxed()
    }
}

/// A [`ScriptRunner`] that records the event and runs nothing.
pub struct DryRunScripts(pub Plan);

impl ScriptRunner for DryRunScripts {
    fn run(&self, event: Event) -> BoxFuture<'static, Vec<ScriptOutcome>> {
        self.0.record(PlannedChange::RunScripts {
            event_id: event.id,
            kind: event.kind,
            iface: event.iface,
        });
        futures::future::ready(Vec::new()).boxed()
    }
}

/// A [`FlowTable`] that records the reset and touches no socket or conntrack entry.
pub struct DryRunFlows(pub Plan);

impl FlowTable for DryRunFlows {
    fn reset(&self, scope: FlowScope) -> BoxFuture<'static, FlowResetReport> {
        self.0.record(PlannedChange::ResetFlows { scope });
        futures::future::ready(FlowResetReport::default()).boxed()
    }
}

/// The journal or the interface state of a dry run: in memory only.
#[derive(Default)]
pub struct MemoryStore<T>(Mutex<T>);

impl<T: Clone + Send + 'static> Store<T> for MemoryStore<T> {
    fn load(&self) -> BoxFuture<'static, PortResult<T>> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        futures::future::ready(Ok(s)).boxed()
    }

    fn save(&self, state: T) -> BoxFuture<'static, PortResult<()>> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = state;
        futures::future::ready(Ok(())).boxed()
    }
}

/// Wraps `ports` for a dry run: routes, sysctls, scripts and flow resets only recorded in the
/// returned plan, journal, state and the monthly accounts kept in memory.
pub(super) fn dry_run_ports(ports: &mut Ports) -> Plan {
    let plan = Plan::default();
    ports.routes = Arc::new(DryRunRoutes::new(ports.routes.clone(), plan.clone()));
    ports.sysctl = Arc::new(DryRunSysctl {
        real: ports.sysctl.clone(),
        plan: plan.clone(),
    });
    ports.scripts = Arc::new(DryRunScripts(plan.clone()));
    ports.flows = Arc::new(DryRunFlows(plan.clone()));
    ports.recovery = Arc::new(NoRecovery);
    ports.journal = Arc::new(MemoryStore::<JournalState>::default());
    ports.state = Arc::new(MemoryStore::<EngineState>::default());
    ports.accounts = Arc::new(MemoryStore::<netfailover_actors::accounting::Accounts>::default());
    tracing::info!("dry run: no route, address, sysctl or script will be touched");
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use netfailover_actors::model::Family;

    fn route(ifindex: u32, metric: u32, protocol: u8) -> KernelRoute {
        KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: None,
            metric,
            protocol,
        }
    }

    #[test]
    fn the_overlay_follows_the_port_semantics() {
        let real = vec![route(2, 100, 16), route(3, 600, 16)];
        let ops = [
            PlannedChange::ReplaceRoute {
                route: route(2, 100, 99),
            },
            PlannedChange::AddRoute {
                route: route(3, 600, 99),
            },
            PlannedChange::AddRoute {
                route: route(3, 700, 99),
            },
            PlannedChange::DeleteRoute {
                route: route(3, 700, 99),
            },
        ];
        let got = apply(real, &ops);
        assert_eq!(got, vec![route(3, 600, 16), route(2, 100, 99)]);
    }
}
