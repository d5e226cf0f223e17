//! netfailover-lab: the throw-away namespace world, the fixture of the namespace tests and the
//! benches, and the `netfailover-lab` binary that plays fault timelines against the real daemon.
//!
//! A test tool, do not ship: it is a workspace member of its own (`publish = false`), a
//! dev-dependency of `netfailover`, and nothing of it is in the `netfailover` binary.

pub mod apps;
pub mod bench;
pub mod boot;
pub mod compare;
pub mod container;
pub mod daemon;
pub mod dbus;
pub mod hostile;
pub mod internet;
pub mod netns;
pub mod router;
pub mod setup;
pub mod soak;
pub mod timeline;
pub mod uplinks;
pub mod wedge;
pub mod world;

/// The `netfailover-lab` command line (besides its hidden `run` verb, which is the daemon's).
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "netfailover-lab",
    version,
    about = "Build a throw-away network of namespaces, run the netfailover daemon in it and play \
             faults (root; a test tool, do not ship)"
)]
pub struct LabArgs {
    /// Scenario to play (`netfailover-lab --scenario list` lists them).
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Keep the namespaces (and the daemon) after the timeline, until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Soak: the default timeline in a loop for MINUTES, with link flaps and actor kills,
    /// sampling the daemon's memory, fds, threads and state_dir size (a table at the end).
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub soak: Option<u64>,
    /// Compare with NetworkManager 1.42 (installed, run in its own namespace and D-Bus): the
    /// same faults for both, one after the other, and a Markdown table on stdout
    /// (`scripts/compare-nm.sh` runs this).
    #[arg(long)]
    pub compare_nm: bool,
    /// With --compare-nm: n = 8 per series and a 20 s idle window (a check in minutes).
    #[arg(long, requires = "compare_nm")]
    pub quick: bool,
    /// With --compare-nm: runs per series (default 20, --quick 8).
    #[arg(long, value_name = "N", requires = "compare_nm",
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub runs: Option<u64>,
    /// With --compare-nm: the idle window in seconds (default 60, --quick 20; 0 skips it).
    #[arg(long, value_name = "SECS", requires = "compare_nm",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub idle_secs: Option<u64>,
}

/// `netfailover-lab`: the soak, the scenario list, the boot scenario or a timeline; returns
/// whether every step passed.
pub fn run(args: &LabArgs) -> Result<bool, world::LabError> {
    if let Some(minutes) = args.soak {
        return soak::run(minutes);
    }
    if args.compare_nm {
        // The daemon is this executable's hidden `run` verb, as for the timeline.
        let exe = std::env::current_exe().map_err(|error| world::LabError::Daemon { error })?;
        let mut options = compare::CompareOptions::new(exe, args.quick);
        if let Some(runs) = args.runs {
            options.runs = usize::try_from(runs).unwrap_or(usize::MAX);
        }
        if let Some(secs) = args.idle_secs {
            options.idle = std::time::Duration::from_secs(secs);
        }
        return compare::run_cli(&options);
    }
    if args.scenario == "list" {
        println!(
            "{}\n{}\n{}",
            timeline::SCENARIOS.join("\n"),
            boot::SCENARIO,
            wedge::SCENARIO
        );
        return Ok(true);
    }
    if args.scenario == boot::SCENARIO {
        return boot::run();
    }
    if args.scenario == wedge::SCENARIO {
        return wedge::run();
    }
    timeline::run(args)
}

/// Held only by the end-to-end tests that assert a wall-clock bound, so they never run at the
/// same time on a 2-core CI machine (the others' load would eat their slack): a time measured
/// against a bound derived from the settings (`// Measured:` where they take it), or a window
/// in which the product's own short timers, a 1 s check timeout or the passive stall timer,
/// must not fire (`// Timed by the product:`). A test whose only deadlines are generous waits
/// for an outcome does not take it. A test that panicked while holding it poisons it; the next one takes it anyway. Besides the
/// in-process mutex it holds an exclusive `flock` on a file in the temp directory, so two test
/// processes on one machine (two checkouts, a benchmark beside the suite, the lab's own tests
/// beside `netfailover`'s) take turns as well; the kernel drops that lock when the process dies,
/// so a killed run never blocks the next.
pub fn heavy_test_lock() -> HeavyTestGuard {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let in_process = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let path = std::env::temp_dir().join("netfailover-heavy-test.lock");
    let across_processes = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ok()
        .and_then(|file| nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok());
    HeavyTestGuard {
        _across_processes: across_processes,
        _in_process: in_process,
    }
}

/// What [`heavy_test_lock`] returns: the process-wide lock and, when the lock file could be
/// opened, the machine-wide one; both are released on drop.
pub struct HeavyTestGuard {
    _across_processes: Option<nix::fcntl::Flock<std::fs::File>>,
    _in_process: std::sync::MutexGuard<'static, ()>,
}
