//! netfailover's engine: the actor tree that keeps the route to the best healthy uplink first,
//! with every OS access behind the traits of [`ports`].
//!
//! # Actor map
//!
//! Every cross-actor message is in [`messages`]; a sender holds a [`peers::Slot`] per message it
//! sends, and only [`supervisor`] names the concrete actors (it fills the slots on each start).
//! The README's "Architecture" has the same table and how to add an actor.
//!
//! | actor | file | receives | sends (→ handler) | on failure |
//! |---|---|---|---|---|
//! | Supervisor | `supervisor.rs` | `Kill`, `CheckNowFor`, `Reload`, `StopTree` | `Reconfigure`/`Shutdown` → RouteManager; `ReconfigureChecks`/`KillProber`/`CheckIface` → ProbeScheduler; `ReconfigureFlows` → FlowResetter; `ReconfigurePassive` → TrafficWatcher; `ReconfigureRecovery` → RecoveryManager | root: its end ends `run()` |
//! | LinkWatcher | `link_watcher.rs` | `LinkUpdate` stream from `LinkSource` | `LinkChanged`, `LinkRemoved`, `LinkSnapshot`, `RoutesChanged` → RouteManager | restarted; resubscribes and dumps |
//! | RouteManager | `route_manager.rs` | link facts, `ConnectivityChanged`, `GetUplinks`, `Reconfigure`, `Shutdown` | routes → `RouteTable`; `UplinksChanged`, `ResetChecks` → ProbeScheduler; `RouteInUseMoved` → FlowResetter; events → `EventLog` | restarted; reloads `StateStore`, dumps links, reconciles |
//! | ProbeScheduler | `probe_scheduler.rs` | `UplinksChanged`, `ResetChecks`, `Confirm`, `ProbeDone`, `KillProber`, `CheckIface`, `ReconfigureChecks` | `ConnectivityChanged`, `GetUplinks` → RouteManager; `ConfirmCheck`/`Retarget`/`CheckNow` → its Probers | restarted; asks RouteManager, checks everything at once |
//! | Prober (one per interface) | `prober.rs` | its timer, `ConfirmCheck`, `Retarget`, `CheckNow` | `ProbeDone` → ProbeScheduler (a `Recipient<ProbeDone>`) | restarted by ProbeScheduler; checks at once |
//! | TrafficWatcher | `traffic_watcher.rs` | its sampling timer, `ReconfigurePassive` | `GetUplinks` → RouteManager; `Confirm` → ProbeScheduler; samples ← `TrafficSource` | restarted; trackers start empty |
//! | Dispatcher | `dispatcher.rs` | the `EventLog` | scripts → `ScriptRunner` | restarted; re-runs the interrupted event |
//! | FlowResetter | `flow_resetter.rs` | `RouteInUseMoved`, `ReconfigureFlows` | resets → `FlowTable`; `flows-reset` records → board | restarted; stateless |
//! | RecoveryManager | `recovery_manager.rs` | `UplinkStates`, `ReconfigureRecovery`, its timer | `GetUplinks` → RouteManager; actions → `Recovery`; `recovery` events → `EventLog` | restarted; asks RouteManager, reloads reboot times |
//!
//! Pure logic lives outside actors: `health.rs` (check state machine), `passive.rs` (passive
//! health's suspicion rule), and RouteManager's four parts, which the actor only sequences:
//! `plan.rs` (the planner; `assign.rs` picks the managed interfaces), `apply.rs` (the applier
//! and rp_filter policy), `transition.rs` (interface states and events in the contract's order)
//! and `route_model.rs` (its model and the projections: events, uplinks, status);
//! `flows.rs` (which flows are pinned to an interface); `recovery.rs` (the recovery ladder's
//! episodes and the reboot rule). The status board (`board.rs`) has one
//! writer per field: each actor publishes its own part (`iface_parts.rs` per interface) and
//! `EngineHandle::status()` joins them. The event queue (`event_log.rs`) is owned by the
//! engine, so events survive restarts of their producer and consumer; it is mirrored to the
//! `Journal` port for daemon restarts.
//!
//! [`start`] builds the tree inside a running actix System; [`run`] also waits for a shutdown
//! future. The `fake` feature provides in-memory ports for tests and benches.

pub mod apply;
pub mod assign;
pub mod board;
pub mod dispatcher;
pub mod engine;
pub mod error;
pub mod event_log;
#[cfg(feature = "fake")]
pub mod fake;
pub mod flow_resetter;
pub mod flows;
pub mod health;
pub mod iface_parts;
pub mod link_watcher;
pub mod messages;
pub mod model;
pub mod observe;
pub mod passive;
pub mod peers;
pub mod persist;
pub mod plan;
pub mod ports;
pub mod probe_scheduler;
pub mod prober;
pub mod recovery;
pub mod recovery_manager;
pub mod route_manager;
pub mod route_model;
pub mod status;
pub mod supervision;
pub mod supervisor;
pub mod traffic_watcher;
pub mod transition;

pub use engine::{run, start, EngineHandle};
pub use error::EngineError;
pub use observe::{EngineEvent, Snapshot};
