//! netfailover's engine: the actor tree that keeps the route to the best healthy uplink first,
//! with every OS access behind the traits of [`ports`].
//!
//! # Actor map
//!
//! This table is the one copy of the actor map (`docs/architecture.md` links here and walks one
//! link-down event through these actors, file by file). Every cross-actor message is in
//! [`messages`], grouped by the actor that handles it; a sender holds a [`peers::Slot`] per
//! message it sends, and only [`supervisor`] names the concrete actors (it points the slots at
//! each child's current incarnation on every start and empties them when it exits, one
//! `wire_*` function per actor). Actor names are data in [`actor_name`]. The restart policies
//! are in [`supervisor`]'s module doc.
//!
//! | actor | file | receives | sends (→ handler) | on failure |
//! |---|---|---|---|---|
//! | Supervisor | `supervisor.rs` | `Kill`, `CheckNowFor`, `Reload`, `StopTree` (from `EngineHandle`); `ChildExited` (its children's exit watchers) | `Reconfigure` → RouteManager, ProbeScheduler, FlowResetter, TrafficWatcher, RecoveryManager, Accountant; `Shutdown` → RouteManager; `FlushAccounts` → Accountant (on `StopTree`); `KillProber`, `CheckIface` → ProbeScheduler; points every slot of `Peers` | root: its end ends `run()` |
//! | LinkWatcher | `link_watcher.rs` | the `LinkUpdate` stream of `LinkSource` | `LinkChanged`, `LinkRemoved`, `LinkSnapshot`, `RoutesChanged` → RouteManager | restarted: resubscribes, dumps |
//! | RouteManager | `route_manager.rs` | `LinkChanged`, `LinkRemoved`, `LinkSnapshot`, `RoutesChanged`, `ConnectivityChanged`, `GetUplinks`, `Reconfigure`, `Shutdown` | route writes → `RouteTable`, `Sysctl`; `UplinksChanged`, `ResetChecks` → ProbeScheduler; `RouteInUseMoved` → FlowResetter; events → `EventLog` | restarted: reloads its saved record, dumps links, reconciles |
//! | ProbeScheduler | `probe_scheduler.rs` | `UplinksChanged`, `ResetChecks`, `Confirm`, `TwoWayTraffic`, `ProbeDone`, `PeriodicDue`, `BudgetExhausted`, `KillProber`, `CheckIface`, `Reconfigure`; `ProberExited` (its Probers' exit watchers) | `ConnectivityChanged`, `GetUplinks` → RouteManager; `ProbeSpent` → Accountant; `ConfirmCheck`, `Retarget`, `CheckNow`, `CheckAfter` → its Probers (it is their supervisor) | restarted: asks RouteManager for the uplinks, checks everything at once |
//! | Prober (one per interface) | `prober.rs` | its timer, `ConfirmCheck`, `Retarget`, `CheckNow`, `CheckAfter` | `ProbeDone` (reply `NextCheck`), `PeriodicDue` (when its timer fires; reply: check now or skip) → ProbeScheduler, through recipients; `AnsweredSince` → TrafficWatcher (a confirmation past its short deadline, not yet connected) | restarted by ProbeScheduler; checks at once |
//! | TrafficWatcher | `traffic_watcher.rs` | its sampling timer, `Reconfigure`, `AnsweredSince` | `GetUplinks` → RouteManager; `Confirm`, `TwoWayTraffic` → ProbeScheduler; samples ← `TrafficSource` | restarted: trackers start empty (one window of history lost) |
//! | Dispatcher | `dispatcher.rs` | no messages: it drains the `EventLog` | scripts → `ScriptRunner` | restarted: re-runs the interrupted event |
//! | FlowResetter | `flow_resetter.rs` | `RouteInUseMoved` (from RouteManager after the routes are applied, before the reconcile's events; a move off a still-UNKNOWN interface only once its state is known), `Reconfigure` | resets → `FlowTable`; `flows-reset` records → board | restarted: stateless; a move that arrived while it was down is not replayed |
//! | Accountant | `accountant.rs` | `ProbeSpent` (from ProbeScheduler), `FlushAccounts`, `Reconfigure`, its sampling timer | `GetUplinks` → RouteManager; `BudgetExhausted` → ProbeScheduler; `budget` events → `EventLog`; counters ← `TrafficSource`; accounts → `Store<Accounts>`; month ← `Calendar` | restarted: reloads the saved accounts, asks RouteManager |
//! | RecoveryManager | `recovery_manager.rs` | `UplinkStates` (from RouteManager, with `UplinksChanged`), `Reconfigure`, its timer | `GetUplinks` → RouteManager; actions → `Recovery`; `recovery` events → `EventLog` | restarted: asks RouteManager, reloads the reboot times; episodes start over |
//!
//! Pure logic lives outside actors: `health.rs` (check state machine), `metered.rs` (metered
//! uplinks: skipped checks, standby cadence), `accounting.rs` (the monthly accounts and the
//! budget rule), `passive.rs` (passive
//! health's suspicion rule), `flows.rs` (which flows are pinned to an interface), `recovery.rs`
//! (the recovery ladder's episodes and the reboot rule), and
//! RouteManager's four parts, which the actor only sequences: `plan.rs` (the planner;
//! `assign.rs` picks the managed interfaces), `apply.rs` (the applier and rp_filter policy;
//! `ra_solicit.rs`: router advertisements still owed, and when to ask again),
//! `transition.rs` (interface states and events in the contract's order) and `route_model.rs`
//! (its model and the projections: events, uplinks, route-in-use moves, status). The status
//! board (`board.rs`) has one writer per field: each actor publishes its own part
//! (`iface_parts.rs` per interface) and `EngineHandle::status()` joins them. The event queue
//! (`event_log.rs`) is owned by the engine, so events survive restarts of their producer and
//! consumer; it is mirrored to the journal, through a port, for daemon restarts.
//!
//! [`start`] builds the tree inside a running actix System; [`run`] also waits for a shutdown
//! future. The `fake` feature provides in-memory ports for tests and benches.

pub mod accountant;
pub mod accounting;
pub mod actor_name;
pub mod apply;
pub mod assign;
pub mod board;
pub mod counters;
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
pub mod metered;
pub mod model;
pub mod observe;
pub mod passive;
pub mod peers;
pub mod persist;
pub mod plan;
pub mod ports;
pub mod probe_scheduler;
pub mod prober;
pub mod ra_solicit;
pub mod recovery;
pub mod recovery_manager;
pub mod route_manager;
pub mod route_model;
pub mod status;
pub mod supervision;
pub mod supervisor;
pub mod traffic_watcher;
pub mod transition;

pub use actor_name::{ActorName, ToActorName};
pub use engine::{run, start, EngineHandle};
pub use error::EngineError;
pub use observe::{EngineEvent, Snapshot};
