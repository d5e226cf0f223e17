//! The recovery port: the actions of the recovery ladder (`recovery_manager.rs`,
//! `docs/recovery.md`) and the reboot times that must outlive a reboot (`persist_dir`).
//!
//! The root crate implements it in `src/os/recovery/` (netlink, D-Bus, the balena supervisor, a
//! command), `fake/recovery.rs` in memory. An action never fails as a whole: what happened is an
//! [`ActionOutcome`], and an absent service (no NetworkManager, no ModemManager, no modem behind
//! the interface) is `Skipped` with the reason, not an error.

use std::fmt;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::model::IfaceName;

/// The rungs of the ladder, in order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecoveryAction {
    /// Administrative down/up of the interface (netlink).
    Relink,
    /// NetworkManager re-activates the interface's active connection (D-Bus).
    Reconnect,
    /// ModemManager resets the modem behind the interface (D-Bus; cellular only).
    ModemReset,
    /// The device reboots (logind, the balena supervisor, or `reboot_command`).
    Reboot,
}

impl RecoveryAction {
    pub const ALL: [RecoveryAction; 4] = [
        RecoveryAction::Relink,
        RecoveryAction::Reconnect,
        RecoveryAction::ModemReset,
        RecoveryAction::Reboot,
    ];

    /// `NETFAILOVER_RECOVERY_ACTION`, the metric label, `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryAction::Relink => "relink",
            RecoveryAction::Reconnect => "reconnect",
            RecoveryAction::ModemReset => "modem-reset",
            RecoveryAction::Reboot => "reboot",
        }
    }

    /// `NETFAILOVER_RECOVERY_RUNG`: 1 to 4.
    pub fn rung(self) -> u32 {
        match self {
            RecoveryAction::Relink => 1,
            RecoveryAction::Reconnect => 2,
            RecoveryAction::ModemReset => 3,
            RecoveryAction::Reboot => 4,
        }
    }
}

impl fmt::Display for RecoveryAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one action did.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "result", content = "reason", rename_all = "kebab-case")]
pub enum ActionOutcome {
    /// Done (for `reboot`: requested).
    Done,
    /// Not applicable here: the service is absent, the interface has no modem, … (why).
    Skipped(String),
    /// Tried and failed (the error).
    Failed(String),
}

impl ActionOutcome {
    /// The metric label: `done`, `skipped` or `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            ActionOutcome::Done => "done",
            ActionOutcome::Skipped(_) => "skipped",
            ActionOutcome::Failed(_) => "failed",
        }
    }
}

impl fmt::Display for ActionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionOutcome::Done => f.write_str("done"),
            ActionOutcome::Skipped(why) => write!(f, "skipped: {why}"),
            ActionOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// The interface a rung acts on.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecoveryTarget {
    pub iface: IfaceName,
    pub ifindex: u32,
}

/// What the ladder needs from the OS.
pub trait Recovery: Send + Sync + 'static {
    /// Sets the interface administratively down, then up again.
    fn relink(&self, target: RecoveryTarget) -> BoxFuture<'static, ActionOutcome>;
    /// Asks NetworkManager to re-activate the interface's active connection.
    fn reconnect(&self, target: RecoveryTarget) -> BoxFuture<'static, ActionOutcome>;
    /// Asks ModemManager to reset the modem whose ports include the interface.
    fn modem_reset(&self, target: RecoveryTarget) -> BoxFuture<'static, ActionOutcome>;
    /// Requests a reboot: `command` when not empty, else the balena supervisor inside a balena
    /// container, else logind.
    fn reboot(&self, command: Vec<String>) -> BoxFuture<'static, ActionOutcome>;
    /// The reboot times the ladder requested (Unix ms, oldest first), as persisted; none saved
    /// is an empty list.
    fn load_reboots(&self) -> BoxFuture<'static, PortResult<Vec<u64>>>;
    /// Atomically replaces the persisted reboot times (written before a reboot is requested).
    fn save_reboots(&self, reboots: Vec<u64>) -> BoxFuture<'static, PortResult<()>>;
}

/// No recovery at all: every action is skipped, nothing persists (an embedder that brings no
/// adapter, dry runs).
#[derive(Clone, Copy, Default, Debug)]
pub struct NoRecovery;

impl Recovery for NoRecovery {
    fn relink(&self, _: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        Box::pin(async { ActionOutcome::Skipped("no recovery adapter".into()) })
    }
    fn reconnect(&self, _: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        Box::pin(async { ActionOutcome::Skipped("no recovery adapter".into()) })
    }
    fn modem_reset(&self, _: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        Box::pin(async { ActionOutcome::Skipped("no recovery adapter".into()) })
    }
    fn reboot(&self, _: Vec<String>) -> BoxFuture<'static, ActionOutcome> {
        Box::pin(async { ActionOutcome::Skipped("no recovery adapter".into()) })
    }
    fn load_reboots(&self) -> BoxFuture<'static, PortResult<Vec<u64>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn save_reboots(&self, _: Vec<u64>) -> BoxFuture<'static, PortResult<()>> {
        Box::pin(async { Ok(()) })
    }
}
