//! Throw-away network namespaces: create, wire with veth pairs, run commands in, enter from a
//! thread, and delete on drop (even when a test fails).
//!
//! Building the world shells out to iproute2 (`ip netns`, `ip link`, `ip addr`): this is test and
//! lab scaffolding, not the daemon's data path, which speaks netlink itself. Every command runs
//! under `timeout` so a wedged kernel call cannot hang a test.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Seconds any single scaffolding command may take.
const COMMAND_TIMEOUT_SECS: u64 = 20;

/// A scaffolding command failed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("running {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("entering namespace {name}: {message}")]
    Enter { name: String, message: String },
}

/// Runs `argv` under `timeout`, returning stdout.
pub fn run(argv: &[&str]) -> Result<String, NetnsError> {
    let cmd = argv.join(" ");
    let out = Command::new("timeout")
        .arg("-k")
        .arg("2")
        .arg(COMMAND_TIMEOUT_SECS.to_string())
        .args(argv)
        .output()
        .map_err(|source| NetnsError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetnsError::Command {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when this process may build namespaces (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Guard for namespace tests: `true` to go on. Not root: under `CI=true` this panics (a test
/// that cannot run in CI must fail loudly); elsewhere it prints why and the test returns early.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: namespace tests need root, and CI=true forbids skipping them");
    }
    eprintln!("SKIP {test}: needs root to create network namespaces");
    false
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name built from `tag`, with `lo` up.
    pub fn new(tag: &str) -> Result<Self, NetnsError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("nf-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.isolate_resolver()?;
        Ok(ns)
    }

    /// `ip netns exec` bind-mounts `/etc/netns/<name>/resolv.conf` over `/etc/resolv.conf`.
    /// Giving every test namespace one without nameservers means a daemon started in it never
    /// falls back to the host's (real) DNS servers: test traffic stays on test addresses.
    fn isolate_resolver(&self) -> Result<(), NetnsError> {
        let dir = resolver_dir(&self.name);
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join("resolv.conf"),
                "# netfailover test namespace: no system nameservers\n",
            )
        });
        written.map_err(|source| NetnsError::Spawn {
            cmd: format!("writing {}", dir.display()),
            source,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args…>`.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend_from_slice(args);
        run(&argv)
    }

    /// Runs a command inside the namespace (`ip netns exec`), returning stdout.
    pub fn exec(&self, argv: &[&str]) -> Result<String, NetnsError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(argv);
        run(&full)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Adds `count` throw-away bridges so the next interfaces get ifindexes that differ from
    /// their veth peers' (the kernel rate-limits link events of devices whose ifindex equals
    /// their peer's as if they were physical NICs; see docs/kernel-facts.md §3).
    pub fn pad_ifindex(&self, count: usize) -> Result<(), NetnsError> {
        for i in 0..count {
            self.ip(&["link", "add", &format!("nfpad{i}"), "type", "bridge"])?;
        }
        Ok(())
    }

    /// Moves the calling thread into this namespace. Only the thread moves: `/proc/net` and
    /// `/sys` still show the process's namespace (TESTING.md), netlink sockets opened afterwards
    /// by this thread see this one.
    pub fn enter_current_thread(&self) -> Result<(), NetnsError> {
        enter_named(&self.name)
    }

    /// The ifindex of `iface` inside this namespace.
    pub fn ifindex(&self, iface: &str) -> Result<u32, NetnsError> {
        let out = self.ip(&["-o", "link", "show", "dev", iface])?;
        out.split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| NetnsError::Command {
                cmd: format!("ip -n {} link show dev {iface}", self.name),
                status: "parse".into(),
                stderr: out.clone(),
            })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys its veth ends, and with them their peers.
        if let Err(e) = run(&["ip", "netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
        let _ = std::fs::remove_dir_all(resolver_dir(&self.name));
    }
}

fn resolver_dir(ns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(ns)
}

/// Moves the calling thread into the namespace called `name` (see
/// [`Netns::enter_current_thread`]); for threads that cannot borrow the [`Netns`] itself.
pub fn enter_named(name: &str) -> Result<(), NetnsError> {
    let path = format!("/run/netns/{name}");
    let enter_err = |message: String| NetnsError::Enter {
        name: name.to_string(),
        message,
    };
    let file = File::open(&path).map_err(|e| enter_err(format!("{path}: {e}")))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| enter_err(e.to_string()))
}

/// Creates a veth pair with one end in each namespace, both ends up.
pub fn veth(a: (&Netns, &str), b: (&Netns, &str)) -> Result<(), NetnsError> {
    run(&[
        "ip",
        "-n",
        a.0.name(),
        "link",
        "add",
        a.1,
        "type",
        "veth",
        "peer",
        "name",
        b.1,
        "netns",
        b.0.name(),
    ])?;
    a.0.ip(&["link", "set", a.1, "up"])?;
    b.0.ip(&["link", "set", b.1, "up"])?;
    Ok(())
}

/// Polls `probe` every 10 ms until it returns `Some` or `timeout` passes. For tests that wait on
/// the kernel or a child process; the bound is generous and never asserted as a speed.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
