//! Integration tests for the dispatcher area: real scripts written by the tests into a temporary
//! `dispatcher.d/` (they append what they saw to a file), run by the real `ScriptDirRunner`; the
//! state files under a temporary `state_dir`. Shared fixtures live here, the tests in the
//! submodules.

mod engine;
mod persist;
mod scripts;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netfailover::engine::model::{Connectivity, Event, EventKind, IfaceName};

/// A temporary `dispatcher.d/` and the file its scripts report to.
pub struct ScriptDir {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub out: PathBuf,
}

impl ScriptDir {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("dispatcher.d");
        fs::create_dir(&dir).expect("mkdir dispatcher.d");
        let out = tmp.path().join("out.log");
        Self {
            _tmp: tmp,
            dir,
            out,
        }
    }

    /// A scratch path beside `dispatcher.d/` (pid files and the like).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.parent().expect("tempdir parent").join(name)
    }

    /// Writes `body` after a `#!/bin/sh` line to `rel` (parents created) with `mode`.
    pub fn script(&self, rel: &str, body: &str, mode: u32) -> PathBuf {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// A script that appends `<its name> $2 $1` to the output file.
    pub fn reporter(&self, rel: &str) -> PathBuf {
        self.script(
            rel,
            &format!(
                "echo \"{rel} $2 $1 id=$NETFAILOVER_EVENT_ID\" >> '{}'",
                self.out.display()
            ),
            0o755,
        )
    }

    /// The output file's lines (none yet: empty).
    pub fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

pub fn iface(name: &str) -> IfaceName {
    IfaceName::new(name).expect("valid test interface name")
}

/// An event as RouteManager would produce it.
pub fn event(id: u64, kind: EventKind, iface_name: Option<&str>) -> Event {
    Event {
        id,
        kind,
        iface: iface_name.map(iface),
        state: Connectivity::Limited,
        previous: Connectivity::Full,
        reason: "test".into(),
        connection_id: iface_name.map(|i| format!("profile-{i}")),
        connection_uuid: iface_name.map(|_| "0b6f6c1e-4b1f-4c53-9e8d-2f6f3b1e7a10".into()),
        ip4_gateway: Some("192.0.2.1".parse().expect("addr")),
        ip4_nameservers: vec![
            "192.0.2.53".parse().expect("addr"),
            "198.51.100.53".parse().expect("addr"),
        ],
        at_unix_ms: 1_700_000_000_000,
        recovery: None,
        budget: None,
    }
}

/// True once `pid` has exited: gone from /proc, or a zombie waiting for a reaper (this
/// machine's pid 1 need not reap orphans; a zombie runs nothing).
pub fn pid_is_dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // Field 3, after the parenthesised command name, is the state.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s == "Z" || s == "X"))
            .unwrap_or(true),
    }
}

/// Reads a pid a script wrote, waiting up to 10 s for the file.
pub fn read_pid(path: &Path) -> u32 {
    netfailover_lab::netns::wait_for(Duration::from_secs(10), || {
        fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .unwrap_or_else(|| panic!("no pid in {}", path.display()))
}
