//! The state files: journal and state store round trips, atomic replacement, save ordering,
//! corrupt and oversized files, a missing `state_dir` created with mode 0700.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use netfailover::engine::model::{Connectivity, EventKind};
use netfailover::engine::ports::{EngineState, IfaceRecord, JournalState, Store};
use netfailover::os::persist::{FileJournal, FileStateStore, MAX_STATE_FILE_BYTES};

use super::{event, iface};

fn journal_with(ids: std::ops::Range<u64>) -> JournalState {
    JournalState {
        next_id: ids.end,
        pending: ids
            .map(|id| event(id, EventKind::Down, Some("eth0")))
            .collect(),
    }
}

#[tokio::test]
async fn a_missing_state_dir_loads_empty_and_is_created_0700_on_save() {
    let tmp = tempfile::tempdir().unwrap();
    let state_dir = tmp.path().join("run").join("netfailover");
    let journal = FileJournal::new(&state_dir);
    assert_eq!(journal.load().await.unwrap(), JournalState::default());
    let store = FileStateStore::new(&state_dir);
    assert_eq!(store.load().await.unwrap(), EngineState::default());

    journal.save(journal_with(1..3)).await.unwrap();
    let dir_mode = fs::metadata(&state_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let file_mode = fs::metadata(journal.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(file_mode, 0o600);
}

#[tokio::test]
async fn journal_and_state_round_trip_and_replace_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(tmp.path());
    let first = journal_with(1..4);
    journal.save(first.clone()).await.unwrap();
    assert_eq!(journal.load().await.unwrap(), first);
    let second = journal_with(3..11);
    journal.save(second.clone()).await.unwrap();
    assert_eq!(journal.load().await.unwrap(), second);

    let store = FileStateStore::new(tmp.path());
    let mut state = EngineState::default();
    state.interfaces.insert(
        iface("eth0"),
        IfaceRecord {
            connectivity: Connectivity::Limited,
            announced_up: true,
        },
    );
    state.global = Some(Connectivity::Full);
    state
        .learned_gateways
        .insert(iface("wlan0"), vec!["198.51.100.1".parse().unwrap()]);
    store.save(state.clone()).await.unwrap();
    assert_eq!(store.load().await.unwrap(), state);
    // The two stores do not step on each other.
    assert_eq!(journal.load().await.unwrap(), second);

    // Only the two files are left: no temporary file survives a completed save.
    let mut names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["journal.json", "state.json"]);
}

#[tokio::test]
async fn the_latest_call_wins_even_when_saves_complete_out_of_order() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(tmp.path());
    let older = journal.save(journal_with(1..2));
    let newer = journal.save(journal_with(1..5));
    // Run the newer save first: the older one must not overwrite it afterwards.
    newer.await.unwrap();
    older.await.unwrap();
    assert_eq!(journal.load().await.unwrap(), journal_with(1..5));
}

#[tokio::test]
async fn many_concurrent_saves_leave_one_complete_file() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(tmp.path());
    let saves: Vec<_> = (1..=50u64)
        .map(|n| tokio::spawn(journal.save(journal_with(0..n))))
        .collect();
    for s in saves {
        s.await.unwrap().unwrap();
    }
    assert_eq!(journal.load().await.unwrap(), journal_with(0..50));
}

#[tokio::test]
async fn a_corrupt_or_oversized_file_is_an_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(tmp.path());
    let path = journal.path().to_path_buf();

    fs::write(&path, b"{\"next_id\": 3, \"pending\": [tru").unwrap();
    let err = journal.load().await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("not valid JSON"), "{err}");

    fs::write(&path, b"{\"next_id\": \"three\"}").unwrap();
    let err = journal.load().await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");

    let huge = vec![b' '; MAX_STATE_FILE_BYTES as usize + 1];
    fs::write(&path, huge).unwrap();
    let err = journal.load().await.unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("limit"), "{err}");

    // A save over a bad file repairs it.
    journal.save(journal_with(1..2)).await.unwrap();
    assert_eq!(journal.load().await.unwrap(), journal_with(1..2));

    let store = FileStateStore::new(tmp.path());
    fs::write(store.path(), b"\x00\x01garbage").unwrap();
    let err = store.load().await.unwrap_err().to_string();
    assert!(err.contains(&store.path().display().to_string()), "{err}");
}

#[tokio::test]
async fn an_unwritable_state_dir_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where the directory should be.
    let not_a_dir = tmp.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let journal = FileJournal::new(not_a_dir.join("state"));
    let err = journal.save(journal_with(1..2)).await.unwrap_err();
    assert!(err.to_string().contains("journal.json"), "{err}");
}

#[tokio::test]
async fn a_state_too_big_to_read_back_is_refused_and_the_old_file_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(tmp.path());
    journal.save(journal_with(1..3)).await.unwrap();
    let mut huge = journal_with(1..2);
    huge.pending[0].reason = "x".repeat(MAX_STATE_FILE_BYTES as usize);
    let err = journal.save(huge).await.unwrap_err().to_string();
    assert!(err.contains("limit"), "{err}");
    assert_eq!(journal.load().await.unwrap(), journal_with(1..3));
}

#[tokio::test]
async fn a_journal_of_three_times_the_default_bound_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let journal = FileJournal::new(tmp.path());
    let limit = netfailover::engine::model::DispatcherConfig::default().journal_limit as u64;
    let big = journal_with(1..3 * limit + 1);
    journal.save(big.clone()).await.unwrap();
    assert_eq!(journal.load().await.unwrap(), big);
    let size = fs::metadata(journal.path()).unwrap().len();
    assert!(size < MAX_STATE_FILE_BYTES, "{size} bytes");
}
