//! The recovery ladder's actions on a real device (the engine's `Recovery` port;
//! `docs/recovery.md`): `relink` through netlink (administrative down, then up), `reconnect`
//! and `modem-reset` over D-Bus (`dbus.rs`: NetworkManager, ModemManager; `dbus_wire.rs`: the client), `reboot` through
//! `reboot_command`, the balena supervisor (`balena.rs`) or logind (`dbus.rs`), and the reboot
//! times in `persist_dir` (`persist.rs`'s [`RebootTimes`]).
//!
//! Nothing here fails as a whole: an absent D-Bus service, or no modem behind the interface,
//! is `Skipped` with the reason; an error is `Failed` with the OS's words.

mod balena;
pub mod dbus;
mod dbus_wire;

use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use netfailover_actors::ports::{ActionOutcome, PortResult, Recovery, RecoveryTarget};
use rtnetlink::LinkUnspec;

use crate::os::netlink::open_request_connection;
use crate::os::persist::RebootTimes;

pub use balena::{supervisor_from_env, BalenaSupervisor};

/// Longest `reboot_command` may run before it counts as failed (a real reboot command may
/// never return: the system goes down under it).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the interface stays down in a `relink`: long enough for the peer (a switch, a
/// modem's network side, the ISP's end of a link) to see the carrier drop.
pub const RELINK_DOWN: Duration = Duration::from_millis(500);

/// See the module doc.
#[derive(Clone, Debug)]
pub struct OsRecovery {
    reboots: RebootTimes,
}

impl OsRecovery {
    /// Reboot times in `persist_dir/recovery.json`.
    pub fn new(persist_dir: &Path) -> Self {
        Self {
            reboots: RebootTimes::new(persist_dir),
        }
    }
}

/// Sets `ifindex` administratively down, waits [`RELINK_DOWN`], and up again (up is tried even
/// when down failed: the interface must never be left down by us).
pub async fn relink(ifindex: u32) -> ActionOutcome {
    let (handle, _conn) = match open_request_connection("relink") {
        Ok(c) => c,
        Err(e) => return ActionOutcome::Failed(e.to_string()),
    };
    let set = |up: bool| {
        let msg = if up {
            LinkUnspec::new_with_index(ifindex).up().build()
        } else {
            LinkUnspec::new_with_index(ifindex).down().build()
        };
        handle.link().set(msg).execute()
    };
    let down = set(false).await;
    tokio::time::sleep(RELINK_DOWN).await;
    let up = set(true).await;
    match (down, up) {
        (Ok(()), Ok(())) => ActionOutcome::Done,
        (Err(e), _) => ActionOutcome::Failed(format!("setting it down: {e}")),
        (_, Err(e)) => ActionOutcome::Failed(format!("setting it up again: {e}")),
    }
}

/// Runs `command` (no shell), bounded by [`COMMAND_TIMEOUT`]; exit 0 is done.
pub async fn run_command(command: Vec<String>) -> ActionOutcome {
    let Some((program, args)) = command.split_first() else {
        return ActionOutcome::Skipped("no reboot_command".into());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true);
    match tokio::time::timeout(COMMAND_TIMEOUT, cmd.status()).await {
        Err(_) => ActionOutcome::Failed(format!(
            "{program} still running after {} s",
            COMMAND_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => ActionOutcome::Failed(format!("cannot run {program}: {e}")),
        Ok(Ok(s)) if s.success() => ActionOutcome::Done,
        Ok(Ok(s)) => ActionOutcome::Failed(format!("{program} exited with {s}")),
    }
}

/// The reboot, by the first way this device offers: `reboot_command`, the balena supervisor
/// (inside a balena container), logind.
pub async fn reboot(command: Vec<String>) -> ActionOutcome {
    if !command.is_empty() {
        return run_command(command).await;
    }
    if let Some(supervisor) = supervisor_from_env() {
        return supervisor.reboot().await;
    }
    dbus::Bus::system().logind_reboot().await
}

impl Recovery for OsRecovery {
    fn relink(&self, t: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        relink(t.ifindex).boxed()
    }
    fn reconnect(&self, t: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        async move { dbus::Bus::system().nm_reconnect(t.iface.as_str()).await }.boxed()
    }
    fn modem_reset(&self, t: RecoveryTarget) -> BoxFuture<'static, ActionOutcome> {
        async move { dbus::Bus::system().mm_reset(t.iface.as_str()).await }.boxed()
    }
    fn reboot(&self, command: Vec<String>) -> BoxFuture<'static, ActionOutcome> {
        reboot(command).boxed()
    }
    fn load_reboots(&self) -> BoxFuture<'static, PortResult<Vec<u64>>> {
        self.reboots.load()
    }
    fn save_reboots(&self, reboots: Vec<u64>) -> BoxFuture<'static, PortResult<()>> {
        self.reboots.save(reboots)
    }
}
