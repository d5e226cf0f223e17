//! Real D-Bus peers for tests: a private `dbus-daemon` playing the system bus
//! ([`PrivateBus`]), and NetworkManager 1.42 running inside a test's device namespace on it
//! ([`NetworkManagerInNetns`]), without touching the host: its own bus, its own `/run` and
//! `/var/lib` (bind mounts inside `ip netns exec`'s private mount namespace) and a read-only
//! `/sys` view. Both are killed on drop, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::netns::{wait_for, Netns};

/// Whether `programs` (`dbus-daemon`, `NetworkManager`, `nmcli`) can run here. Missing: under
/// `CI=true` this panics (`.ci/run` installs them), elsewhere it prints `SKIP <test>: …` and
/// returns `false`.
pub fn have_programs(test: &str, programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| {
            Command::new("sh")
                .args(["-c", &format!("command -v {p}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "needs {} (Debian: dbus, network-manager)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {why}, and CI=true forbids skipping it");
    }
    eprintln!("SKIP {test}: {why}");
    false
}

/// A private bus with an allow-all policy; `address` is what `DBUS_SYSTEM_BUS_ADDRESS` takes.
pub struct PrivateBus {
    child: Child,
    pub address: String,
    pub socket: PathBuf,
}

impl PrivateBus {
    /// Starts `dbus-daemon` with its config and socket in `dir`.
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("system_bus_socket");
        let config = dir.join("dbus.conf");
        std::fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n\
                 <type>system</type>\n<listen>unix:path={}</listen>\n<auth>EXTERNAL</auth>\n\
                 <policy context=\"default\">\n<allow user=\"*\"/>\n<allow own=\"*\"/>\n\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/>\n<allow receive_sender=\"*\"/>\n\
                 </policy>\n</busconfig>\n",
                socket.display()
            ),
        )?;
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let address = format!("unix:path={}", socket.display());
        let bus = Self {
            child,
            address,
            socket,
        };
        if wait_for(Duration::from_secs(10), || {
            bus.socket.exists().then_some(())
        })
        .is_none()
        {
            return Err(std::io::Error::other(
                "dbus-daemon did not create its socket",
            ));
        }
        Ok(bus)
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// NetworkManager in `netns`, on `bus`, managing `ifaces`, with the keyfiles given to
/// [`NetworkManagerInNetns::start`] (file name, contents) in its own connections folder.
pub struct NetworkManagerInNetns {
    child: Child,
    dir: PathBuf,
    created_run_dir: bool,
    pub bus_address: String,
}

impl NetworkManagerInNetns {
    /// NetworkManager with its connectivity check off (`[connectivity] enabled=false`), as
    /// beside netfailover.
    pub fn start(
        netns: &Netns,
        bus: &PrivateBus,
        dir: &Path,
        ifaces: &[&str],
        keyfiles: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        Self::start_with(netns, bus, dir, ifaces, keyfiles, "enabled=false\n")
    }

    /// [`NetworkManagerInNetns::start`] with `connectivity` as the body of its
    /// `[connectivity]` section (`uri=…\ninterval=5\n…`: NetworkManager alone, checking).
    pub fn start_with(
        netns: &Netns,
        bus: &PrivateBus,
        dir: &Path,
        ifaces: &[&str],
        keyfiles: &[(&str, &str)],
        connectivity: &str,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        for sub in ["run", "varlib", "connections", "conf.d", "sysconf.d"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let names: Vec<String> = ifaces
            .iter()
            .map(|i| format!("interface-name:{i}"))
            .collect();
        std::fs::write(
            dir.join("NetworkManager.conf"),
            format!(
                "[main]\nplugins=keyfile\nno-auto-default=*\ndns=none\nrc-manager=unmanaged\n\
                 hostname-mode=none\nauth-polkit=false\ndhcp=internal\n\n[keyfile]\npath={}\n\
                 unmanaged-devices=none\n\n[device-test]\nmatch-device={}\nmanaged=1\n\n\
                 [connectivity]\n{connectivity}",
                dir.join("connections").display(),
                names.join(",")
            ),
        )?;
        for (name, text) in keyfiles {
            let path = dir.join("connections").join(name);
            std::fs::write(&path, text)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        let run_dir = Path::new("/run/NetworkManager");
        let created_run_dir = !run_dir.exists();
        std::fs::create_dir_all(run_dir)?;
        let d = dir.display();
        let script = format!(
            "mount -o remount,ro /sys && mount --bind {d}/run /run/NetworkManager && \
             mount --bind {d}/varlib /var/lib/NetworkManager && exec NetworkManager \
             --config={d}/NetworkManager.conf --config-dir={d}/conf.d \
             --system-config-dir={d}/sysconf.d --state-file={d}/state --pid-file={d}/pid \
             --no-daemon --debug"
        );
        std::fs::create_dir_all("/var/lib/NetworkManager")?;
        let log = std::fs::File::create(dir.join("nm.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns.name(), "bash", "-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let nm = Self {
            child,
            dir: dir.to_path_buf(),
            created_run_dir,
            bus_address: bus.address.clone(),
        };
        let ready = wait_for(Duration::from_secs(20), || {
            nm.nmcli(&["-t", "general", "status"]).ok().map(drop)
        });
        if ready.is_none() {
            return Err(std::io::Error::other(format!(
                "NetworkManager did not answer; its log:\n{}",
                nm.log()
            )));
        }
        Ok(nm)
    }

    /// Runs `nmcli` against this NetworkManager (bounded), returning stdout.
    pub fn nmcli(&self, args: &[&str]) -> std::io::Result<String> {
        let out = Command::new("timeout")
            .arg("10")
            .arg("nmcli")
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// NetworkManager's process id (`ip netns exec` and `bash` exec it in place).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Has it exited?
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nm.log")).unwrap_or_default()
    }
}

impl Drop for NetworkManagerInNetns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.created_run_dir {
            let _ = std::fs::remove_dir("/run/NetworkManager");
        }
    }
}
