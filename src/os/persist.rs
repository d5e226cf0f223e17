//! The state files under `state_dir` (default `/run/netfailover`, a tmpfs: they survive a restart
//! of an actor or of the daemon, not a reboot): the dispatcher's event journal
//! ([`FileJournal`], `journal.json`) and RouteManager's per-interface last states
//! ([`FileStateStore`], `state.json`): one adapter, [`FileStore`], of the engine's `Store` port.
//! Under `persist_dir` (it outlives a reboot): the recovery ladder's reboot times
//! ([`RebootTimes`], `recovery.json`) and the monthly accounts ([`FileAccounts`],
//! `accounting.json`, the same adapter).
//!
//! Every file is JSON, written atomically: a temporary file in the same directory, fsync, rename
//! over the old one, fsync of the directory. A reader therefore sees the old state or the new
//! one, never half of one, even after a crash or a power cut mid-write. A missing file is the
//! default state; a corrupt or oversized file is an error naming the path (the engine logs it
//! and starts empty), never a panic. The directory is created with mode 0700 when missing and
//! the files with mode 0600: they are root's business only.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use netfailover_actors::accounting::Accounts;
use netfailover_actors::ports::{EngineState, JournalState, PortError, PortResult, Store};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The daemon's default `state_dir` (docs/semantics.md §7).
pub const DEFAULT_STATE_DIR: &str = "/run/netfailover";

/// File name of the dispatcher journal inside `state_dir`.
pub const JOURNAL_FILE: &str = "journal.json";

/// File name of RouteManager's per-interface state inside `state_dir`.
pub const STATE_FILE: &str = "state.json";

/// Largest state file read or written. A journal event takes about 300 bytes of compact JSON,
/// so this holds some 55 000 pending events: `up`/`down` are never dropped (only
/// `connectivity-change` is coalesced past `dispatcher.journal_limit`), so a flapping uplink
/// behind a slow script can queue thousands. Anything bigger is not ours or is damaged, and
/// reading it whole could cost the daemon an unbounded amount of memory. A save that would
/// exceed it fails (the old file stays), so what is on disk can always be read back.
pub const MAX_STATE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What went wrong with a state file; every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("state file {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("state file {path}: {size} bytes is more than the {limit}-byte limit")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("state file {path} is not valid JSON for this version: {error}")]
    Corrupt {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("state file {path}: cannot encode the state: {error}")]
    Encode {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("state file {path}: the I/O task was cancelled or panicked: {message}")]
    Task { path: PathBuf, message: String },
}

impl From<PersistError> for PortError {
    fn from(e: PersistError) -> Self {
        PortError::failed("state_dir", e)
    }
}

/// One JSON document in a file, read whole and replaced atomically.
///
/// Saves are ordered by call, not by completion: each `save` takes a sequence number when it is
/// called, and a write whose number is older than the last one written is dropped, so the file
/// always ends up holding the state of the latest call even if the blocking writes run out of
/// order on tokio's blocking pool.
#[derive(Debug)]
struct JsonFile {
    path: PathBuf,
    next_seq: AtomicU64,
    /// The sequence number on disk; held for the whole write so writes never interleave.
    written_seq: Mutex<u64>,
}

impl JsonFile {
    fn new(dir: &Path, file: &str) -> Self {
        Self {
            path: dir.join(file),
            next_seq: AtomicU64::new(1),
            written_seq: Mutex::new(0),
        }
    }

    fn load<T: DeserializeOwned + Default + Send + 'static>(
        self: &Arc<Self>,
    ) -> BoxFuture<'static, Result<T, PersistError>> {
        let this = Arc::clone(self);
        blocking(self.path.clone(), move || read_json(&this.path))
    }

    fn save<T: Serialize + Send + 'static>(
        self: &Arc<Self>,
        value: T,
    ) -> BoxFuture<'static, Result<(), PersistError>> {
        let this = Arc::clone(self);
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        blocking(self.path.clone(), move || {
            // A poisoned lock only means an earlier write panicked; the number is still valid.
            let mut written = this.written_seq.lock().unwrap_or_else(|p| p.into_inner());
            if seq < *written {
                return Ok(()); // a newer state is already on disk
            }
            write_json_atomically(&this.path, &value, seq)?;
            *written = seq;
            Ok(())
        })
    }
}

/// Runs `work` (file I/O on `path`) on tokio's blocking pool; a task that panicked or was
/// cancelled is an error naming the path.
fn blocking<R: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> Result<R, PersistError> + Send + 'static,
) -> BoxFuture<'static, Result<R, PersistError>> {
    async move {
        tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
            Err(PersistError::Task {
                path,
                message: e.to_string(),
            })
        })
    }
    .boxed()
}

/// Reads and decodes `path`; a missing file (or directory) is `T::default()`.
fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T, PersistError> {
    let io_err = |error| PersistError::Io {
        path: path.to_path_buf(),
        error,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(T::default()),
        Err(e) => return Err(io_err(e)),
    };
    let size = file.metadata().map_err(io_err)?.len();
    if size > MAX_STATE_FILE_BYTES {
        return Err(PersistError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_STATE_FILE_BYTES,
        });
    }
    // Read through a limit as well: the file may grow between the metadata call and the read.
    let mut bytes = Vec::with_capacity(size as usize);
    io::Read::read_to_end(
        &mut io::Read::take(file, MAX_STATE_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(io_err)?;
    if bytes.len() as u64 > MAX_STATE_FILE_BYTES {
        return Err(PersistError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_STATE_FILE_BYTES,
        });
    }
    serde_json::from_slice(&bytes).map_err(|error| PersistError::Corrupt {
        path: path.to_path_buf(),
        error,
    })
}

/// Writes `value` to a temporary file beside `path`, syncs it, renames it over `path` and syncs
/// the directory, creating the directory (mode 0700) if it is missing.
fn write_json_atomically<T: Serialize>(
    path: &Path,
    value: &T,
    seq: u64,
) -> Result<(), PersistError> {
    let io_err = |error| PersistError::Io {
        path: path.to_path_buf(),
        error,
    };
    // Compact: a journal event is about 300 bytes this way, so the read limit holds several
    // times the default journal bound.
    let bytes = serde_json::to_vec(value).map_err(|error| PersistError::Encode {
        path: path.to_path_buf(),
        error,
    })?;
    // Never write what could not be read back: the old file, readable, stays in place.
    if bytes.len() as u64 > MAX_STATE_FILE_BYTES {
        return Err(PersistError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_STATE_FILE_BYTES,
        });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call, so two writers never share a temporary file.
    let tmp = dir.join(format!(".{file_name}.{}.{seq}.tmp", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is on disk.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp); // best effort; the error below is what matters
    }
    result.map_err(io_err)
}

/// [`JsonFile::load`] with the error in the ports' terms (shared by both stores).
fn port_load<T: DeserializeOwned + Default + Send + 'static>(
    file: &Arc<JsonFile>,
) -> BoxFuture<'static, PortResult<T>> {
    file.load::<T>().map(|r| r.map_err(PortError::from)).boxed()
}

/// [`JsonFile::save`] with the error in the ports' terms.
fn port_save<T: Serialize + Send + 'static>(
    file: &Arc<JsonFile>,
    value: T,
) -> BoxFuture<'static, PortResult<()>> {
    file.save(value).map(|r| r.map_err(PortError::from)).boxed()
}

/// One state file under `state_dir` as the engine's `Store` port: the dispatcher's event
/// journal ([`FileJournal`], `journal.json`, with the boot clock as its id floor) or
/// RouteManager's per-interface last states ([`FileStateStore`], `state.json`).
#[derive(Debug, Clone)]
pub struct FileStore<T> {
    file: Arc<JsonFile>,
    /// The id floor it reports (`Store::id_floor`).
    id_floor: fn() -> u64,
    value: PhantomData<fn() -> T>,
}

/// The dispatcher's event journal, `state_dir/journal.json`.
pub type FileJournal = FileStore<JournalState>;
/// RouteManager's per-interface last states, `state_dir/state.json`.
pub type FileStateStore = FileStore<EngineState>;

impl<T> FileStore<T> {
    fn at(state_dir: &Path, file: &str, id_floor: fn() -> u64) -> Self {
        Self {
            file: Arc::new(JsonFile::new(state_dir, file)),
            id_floor,
            value: PhantomData,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

impl FileStore<JournalState> {
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self::at(state_dir.as_ref(), JOURNAL_FILE, boot_clock_micros)
    }
}

impl FileStore<EngineState> {
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self::at(state_dir.as_ref(), STATE_FILE, || 0)
    }
}

/// File name of the monthly accounts inside `persist_dir`.
pub const ACCOUNTS_FILE: &str = "accounting.json";

/// The Accountant's monthly accounts, `persist_dir/accounting.json` (it outlives a reboot: a
/// month's check bytes and the budget thresholds announced are not counted again).
pub type FileAccounts = FileStore<Accounts>;

impl FileStore<Accounts> {
    pub fn new(persist_dir: impl AsRef<Path>) -> Self {
        Self::at(persist_dir.as_ref(), ACCOUNTS_FILE, || 0)
    }
}

impl<T: Serialize + DeserializeOwned + Default + Send + 'static> Store<T> for FileStore<T> {
    fn load(&self) -> BoxFuture<'static, PortResult<T>> {
        port_load(&self.file)
    }

    fn save(&self, state: T) -> BoxFuture<'static, PortResult<()>> {
        port_save(&self.file, state)
    }

    fn id_floor(&self) -> u64 {
        (self.id_floor)()
    }
}

/// Microseconds since boot (CLOCK_BOOTTIME, suspend included): the event id floor. The journal
/// is on tmpfs, so ids need to be unique within a boot only, and this clock never goes back
/// within one, unlike the wall clock (devices without a real-time clock, NTP steps). One event
/// per microsecond is far more than RouteManager produces, so ids stay close to the clock and a
/// daemon restarted with a lost journal starts above every id it gave before. 0 if unreadable
/// (then only the journal's own counter holds).
pub fn boot_clock_micros() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| {
            let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
            let micros = u64::try_from(t.tv_nsec() / 1000).unwrap_or(0);
            secs.saturating_mul(1_000_000).saturating_add(micros)
        })
        .unwrap_or(0)
}

/// File name of the recovery ladder's reboot times inside `persist_dir`.
pub const RECOVERY_FILE: &str = "recovery.json";

/// What `persist_dir/recovery.json` holds.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Deserialize, Serialize)]
struct RecoveryRecord {
    /// Reboots the recovery ladder requested, Unix ms, oldest first.
    reboots_unix_ms: Vec<u64>,
}

/// The recovery ladder's reboot times, `persist_dir/recovery.json` (unlike `state_dir`, this
/// directory outlives a reboot: it is what makes `recovery.reboot_min_interval` hold across
/// reboots).
#[derive(Debug, Clone)]
pub struct RebootTimes {
    file: Arc<JsonFile>,
}

impl RebootTimes {
    pub fn new(persist_dir: impl AsRef<Path>) -> Self {
        Self {
            file: Arc::new(JsonFile::new(persist_dir.as_ref(), RECOVERY_FILE)),
        }
    }

    pub fn load(&self) -> BoxFuture<'static, PortResult<Vec<u64>>> {
        port_load::<RecoveryRecord>(&self.file)
            .map(|r| r.map(|r| r.reboots_unix_ms))
            .boxed()
    }

    pub fn save(&self, reboots_unix_ms: Vec<u64>) -> BoxFuture<'static, PortResult<()>> {
        port_save(&self.file, RecoveryRecord { reboots_unix_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_floor_follows_the_boot_clock() {
        let journal = FileJournal::new(std::env::temp_dir());
        let first = journal.id_floor();
        // Booted at least a second ago, and the clock moves forward.
        assert!(first > 1_000_000, "{first}");
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(journal.id_floor() > first);
    }

    /// The reboot times in `persist_dir` read back as written, by a new instance (a daemon
    /// after the reboot); none written is an empty list.
    #[test]
    fn reboot_times_survive_a_new_instance() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let times = RebootTimes::new(dir.path().join("persist"));
        assert_eq!(rt.block_on(times.load()).unwrap(), Vec::<u64>::new());
        rt.block_on(times.save(vec![1_700_000_000_000, 1_700_086_400_000]))
            .unwrap();
        let again = RebootTimes::new(dir.path().join("persist"));
        assert_eq!(
            rt.block_on(again.load()).unwrap(),
            vec![1_700_000_000_000, 1_700_086_400_000]
        );
    }

    /// The accounts in `persist_dir` read back as written, by a new instance (a daemon after
    /// a reboot).
    #[test]
    fn accounts_survive_a_new_instance() {
        use netfailover_actors::accounting::{IfaceAccount, Month};
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = FileAccounts::new(dir.path().join("persist"));
        assert_eq!(rt.block_on(store.load()).unwrap(), Accounts::default());
        let mut a = IfaceAccount::new(Month {
            year: 2026,
            month: 12,
        });
        a.add_check(1_752, 532);
        a.announced = vec![75];
        let mut accounts = Accounts::default();
        accounts.interfaces.insert(
            netfailover_actors::model::IfaceName::new("wwan0").unwrap(),
            a,
        );
        rt.block_on(store.save(accounts.clone())).unwrap();
        let again = FileAccounts::new(dir.path().join("persist"));
        assert_eq!(rt.block_on(again.load()).unwrap(), accounts);
        assert!(again.path().ends_with("persist/accounting.json"));
    }

    #[test]
    fn missing_file_is_default_and_garbage_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let got: JournalState = read_json(&path).unwrap();
        assert_eq!(got, JournalState::default());
        fs::write(&path, b"{not json").unwrap();
        let err = read_json::<JournalState>(&path).unwrap_err();
        assert!(matches!(err, PersistError::Corrupt { .. }));
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
