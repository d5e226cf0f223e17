//! Throw-away network namespaces: create, wire with veth pairs, run commands in, enter from a
//! thread, and delete on drop (even when a test fails).
//!
//! Deleted on SIGTERM and SIGINT too: the first namespace a process creates installs a watcher
//! that deletes the namespaces still alive (and stops the processes inside them) and exits
//! 128 + the signal, unless the program stops by itself on those signals and drops its world
//! ([`stops_on_signals`], the lab timeline). A process killed outright (SIGKILL) cannot clean
//! up: its namespaces carry its pid (`nf-{tag}-{pid}-{n}`), and the first namespace of the next
//! process removes those whose process is gone ([`remove_stale_namespaces`]).
//!
//! Building the world shells out to iproute2 (`ip netns`, `ip link`, `ip addr`): this is test and
//! lab scaffolding, not the daemon's data path, which speaks netlink itself. Every command runs
//! under `timeout` so a wedged kernel call cannot hang a test.

use std::fs::File;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
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

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Namespaces this process created and has not deleted yet.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Set by a program that stops by itself on SIGINT/SIGTERM and drops its namespaces.
static STOPS_ON_SIGNALS: AtomicBool = AtomicBool::new(false);

/// Tells the signal watcher that this program stops by itself on SIGINT/SIGTERM (dropping its
/// namespaces), so the watcher leaves the signal to it.
pub fn stops_on_signals() {
    STOPS_ON_SIGNALS.store(true, Ordering::SeqCst);
}

/// The namespaces this process created and has not deleted yet.
pub fn live_namespaces() -> Vec<String> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Deletes the lab namespaces (`nf-{tag}-{pid}-{n}`) whose process is gone, with any process
/// still inside them; returns their names. Namespaces of live processes (another test run,
/// another lab) are left alone.
pub fn remove_stale_namespaces() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for name in entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
    {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("lab: removing namespace {name}, left behind by process {pid} (gone)");
        delete(&name);
        removed.push(name);
    }
    removed
}

/// The pid a lab namespace name embeds (`nf-{tag}-{pid}-{n}`).
fn owner_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix("nf-")?.rsplitn(3, '-');
    parts.next()?.parse::<u32>().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|tag| !tag.is_empty())?;
    Some(pid)
}

/// Stops the processes inside namespace `name`, then deletes it and its resolver folder.
fn delete(name: &str) {
    let pids = run(&["ip", "netns", "pids", name]).unwrap_or_default();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if let Err(e) = run(&["ip", "netns", "del", name]) {
        eprintln!("cleanup: {e}");
    }
    let _ = std::fs::remove_dir_all(resolver_dir(name));
}

/// Once per process, before its first namespace: removes stale namespaces and installs the
/// SIGTERM/SIGINT watcher (registered here, so no signal slips between this call and the
/// watcher thread's start).
fn prepare_process() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        remove_stale_namespaces();
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signals = {
            let _entered = rt.enter();
            use tokio::signal::unix::{signal, SignalKind};
            signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
        };
        let Ok((mut term, mut int)) = signals else {
            return;
        };
        std::thread::spawn(move || {
            let code = rt.block_on(async {
                tokio::select! {
                    _ = term.recv() => 128 + 15,
                    _ = int.recv() => 128 + 2,
                }
            });
            if STOPS_ON_SIGNALS.load(Ordering::SeqCst) {
                return;
            }
            for name in live_namespaces() {
                delete(&name);
            }
            std::process::exit(code);
        });
    });
}

/// A named network namespace (`/run/netns/<name>`), deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name built from `tag`, with `lo` up.
    pub fn new(tag: &str) -> Result<Self, NetnsError> {
        prepare_process();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("nf-{tag}-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
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
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| *n != self.name);
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
