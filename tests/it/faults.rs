//! Daemon-level storage faults: `state_dir` on a tiny tmpfs that fills up, then read-only.
//! Routing must go on (routes and `ip route get` follow the links as usual), every event must
//! still reach the scripts, the problem must show in the log and in `status`, and the journal
//! must catch up once the space (or write access) is back. (A SIGKILL of the whole daemon in
//! the middle of a storm is part of the chaos test, `tests/it/chaos/`.)

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netfailover_lab::netns::{run, wait_for};
use netfailover_lab::test_setup;

use crate::chaos::{
    delivered_events, delivery_problems, raised_events, state_problems, strip_ansi, Chaos,
    UplinkFaults,
};

/// Longest wait for a state change; the lab settings bound every transition at 5 s.
const STEP_LIMIT: Duration = Duration::from_secs(30);

/// A tmpfs mounted for the test, lazily unmounted on drop (even when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let target = path.to_str().expect("a UTF-8 path");
        run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
            target,
        ])
        .expect("mounting a tmpfs");
        Self(path.to_path_buf())
    }

    fn remount(&self, how: &str) {
        let target = self.0.to_str().expect("a UTF-8 path");
        run(&["mount", "-o", &format!("remount,{how}"), target]).expect("remounting");
    }

    /// Fills the file system with one file; returns its size.
    fn fill(&self) -> u64 {
        let mut file = std::fs::File::create(self.0.join("filler")).expect("filler file");
        let chunk = [0u8; 4096];
        let mut written = 0u64;
        // Bounded by the tmpfs size; ENOSPC ends it.
        while written < 1 << 30 && file.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        let _ = file.sync_all();
        written
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).expect("removing the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(target) = self.0.to_str() {
            let _ = run(&["umount", "-l", target]);
        }
    }
}

/// The journal write error `status` reports, if any.
fn journal_trouble(chaos: &Chaos) -> Option<String> {
    chaos.status()?.journal.last_error
}

/// Whether `status` says the journal is behind the events produced.
fn journal_behind(chaos: &Chaos) -> Option<bool> {
    Some(chaos.status()?.journal.behind)
}

/// The journal's `next_id` on disk.
fn journal_next_id(chaos: &Chaos) -> Option<u64> {
    let bytes = std::fs::read(chaos.journal()).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["next_id"].as_u64()
}

/// Waits until routes and status match `faults`; panics with the difference and the log.
fn wait_state(chaos: &Chaos, faults: &[UplinkFaults], what: &str) {
    let mut last = Vec::new();
    let ok = wait_for(STEP_LIMIT, || {
        last = state_problems(chaos, faults);
        last.is_empty().then_some(())
    });
    assert!(ok.is_some(), "{what}: {last:?}\n{}", tail(chaos));
}

fn tail(chaos: &Chaos) -> String {
    let log = strip_ansi(&chaos.log(chaos.incarnation));
    let lines: Vec<&str> = log.lines().rev().take(30).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Waits until the daemon's log mentions `text`.
fn wait_log(chaos: &Chaos, text: &str) {
    let seen = wait_for(STEP_LIMIT, || {
        strip_ansi(&chaos.log(chaos.incarnation))
            .contains(text)
            .then_some(())
    });
    assert!(
        seen.is_some(),
        "the log never said {text:?}:\n{}",
        tail(chaos)
    );
}

/// Waits until the journal is written again: `status` clear and the file holding every event
/// raised so far.
fn wait_journal_caught_up(chaos: &Chaos, what: &str) {
    let caught_up = wait_for(STEP_LIMIT, || {
        let raised = raised_events(&chaos.log(chaos.incarnation));
        let last = raised.iter().map(|r| r.id).max()?;
        let on_disk = journal_next_id(chaos)?;
        (on_disk > last && journal_trouble(chaos).is_none() && journal_behind(chaos) == Some(false))
            .then_some(())
    });
    assert!(
        caught_up.is_some(),
        "{what}: journal next_id {:?}, status {:?}\n{}",
        journal_next_id(chaos),
        journal_trouble(chaos),
        tail(chaos)
    );
}

/// Every event raised so far reached the scripts, in order.
fn assert_all_delivered(chaos: &Chaos, what: &str) {
    let mut last = Vec::new();
    let ok = wait_for(STEP_LIMIT, || {
        let raised = raised_events(&chaos.log(chaos.incarnation));
        let delivered =
            delivered_events(&std::fs::read_to_string(chaos.script_log()).unwrap_or_default());
        last = delivery_problems(&raised, &delivered);
        last.is_empty().then_some(())
    });
    assert!(ok.is_some(), "{what}: {last:?}");
}

#[test]
fn full_or_read_only_state_dir_keeps_routing_and_journalling_resumes() {
    test_setup!();
    let mut chaos = Chaos::prepare("statefs");
    let tmpfs = Tmpfs::mount(&chaos.state_dir(), "64k");
    chaos.spawn();
    let mut faults = vec![UplinkFaults::default(); 3];
    wait_state(&chaos, &faults, "start");
    wait_journal_caught_up(&chaos, "start");

    // Full: the journal cannot be written.
    let filled = tmpfs.fill();
    assert!(filled > 0 && filled < 1 << 20, "filled {filled} B");
    chaos.world.pull_cable("eth0").expect("pull eth0");
    faults[0].cable_pulled = true;
    wait_state(&chaos, &faults, "eth0 pulled on a full disk");
    wait_log(&chaos, "No space left on device");
    let trouble = wait_for(STEP_LIMIT, || journal_trouble(&chaos));
    assert!(
        trouble
            .as_deref()
            .is_some_and(|t| t.contains("No space left")),
        "status: {trouble:?}"
    );
    assert_eq!(
        journal_behind(&chaos),
        Some(true),
        "status says the journal is behind"
    );
    assert_all_delivered(&chaos, "full disk");

    // Space back: the next event is journalled, and with it everything pending.
    tmpfs.free();
    chaos.world.plug_cable("eth0").expect("plug eth0");
    faults[0].cable_pulled = false;
    wait_state(&chaos, &faults, "eth0 back after space returned");
    wait_journal_caught_up(&chaos, "space returned");

    // Read-only.
    tmpfs.remount("ro");
    chaos.world.pull_cable("wwan0").expect("pull wwan0");
    faults[2].cable_pulled = true;
    wait_state(&chaos, &faults, "wwan0 pulled on a read-only disk");
    wait_log(&chaos, "Read-only file system");
    let trouble = wait_for(STEP_LIMIT, || journal_trouble(&chaos));
    assert!(
        trouble.as_deref().is_some_and(|t| t.contains("Read-only")),
        "status: {trouble:?}"
    );
    assert_eq!(
        journal_behind(&chaos),
        Some(true),
        "status says the journal is behind"
    );
    assert_all_delivered(&chaos, "read-only disk");

    tmpfs.remount("rw");
    chaos.world.plug_cable("wwan0").expect("plug wwan0");
    faults[2].cable_pulled = false;
    wait_state(&chaos, &faults, "wwan0 back after write access returned");
    wait_journal_caught_up(&chaos, "write access returned");
    assert_all_delivered(&chaos, "the end");
    let log = strip_ansi(&chaos.log(chaos.incarnation));
    assert!(!log.contains("panicked"), "{}", tail(&chaos));
}
