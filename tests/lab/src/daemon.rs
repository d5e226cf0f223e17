//! The daemon as the lab runs it: the child process in the device namespace
//! ([`DaemonProcess`]), its throw-away work directory, its status over the control socket, and
//! the Ctrl-C / SIGTERM watch that stops a run with the namespaces removed. Below the timeline,
//! the soak, the boot scenario and the application traffic, which all drive a daemon.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netfailover::control::{self, Request};
use netfailover_actors::status::EngineStatus;

use super::world::{LabError, World};

/// Set by the Ctrl-C / SIGTERM watcher; every wait checks it so the world is dropped (and its
/// namespaces deleted) promptly.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A temporary directory removed on drop (boot directory, socket, logs, state).
pub(crate) struct WorkDir(PathBuf);

impl WorkDir {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn new() -> Result<Self, LabError> {
        let path = std::env::temp_dir().join(format!("netfailover-lab-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|error| LabError::Write {
            path: path.clone(),
            error,
        })?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon child process, stopped with SIGTERM (then SIGKILL) on drop.
pub struct DaemonProcess {
    child: Child,
}

impl DaemonProcess {
    /// Starts `<exe> run` inside the world's device namespace: `exe` is the `netfailover`
    /// binary (the tests pass it), or the lab's own executable, whose hidden `run` verb is the
    /// product's `run` (`netfailover::daemon::run`), so `cargo run -p netfailover-lab` runs the
    /// daemon it was built with.
    pub fn start(
        exe: &Path,
        world: &World,
        boot_dir: &Path,
        socket: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self, LabError> {
        let log_file = std::fs::File::create(log).map_err(|error| LabError::Write {
            path: log.to_path_buf(),
            error,
        })?;
        let child = Command::new("ip")
            .args(["netns", "exec", world.device.name()])
            .arg(exe)
            .arg("run")
            .arg("--boot-dir")
            .arg(boot_dir)
            .arg("--socket")
            .arg(socket)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|error| LabError::Daemon { error })?;
        Ok(Self { child })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Has it exited?
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status when it could be reaped.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Reads the daemon's status over its control socket.
pub fn query_status(runtime: &tokio::runtime::Runtime, socket: &Path) -> Option<EngineStatus> {
    let data = runtime
        .block_on(control::request(socket, &Request::Status))
        .ok()?;
    serde_json::from_value(data).ok()
}

/// Starts a thread that sets [`INTERRUPTED`] on Ctrl-C or SIGTERM, so the timeline stops and
/// the world is dropped (namespaces deleted) instead of the process dying with them in place.
pub(crate) fn watch_interrupts() {
    super::netns::stops_on_signals();
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
        });
    });
}

pub(crate) fn interrupted() -> Result<(), LabError> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(LabError::Interrupted)
    } else {
        Ok(())
    }
}
