//! Which scripts run for an event, in which order, and which are skipped and why (docs/semantics.md §5).
//!
//! Pure file-system inspection, no execution: `check-config` uses it to list what would run,
//! and the runner uses it before every event (scripts may be added or fixed at any time, as
//! with NetworkManager, which also looks again on every dispatch).
//!
//! Rules, as NetworkManager's `nm-dispatcher` (`find_scripts()`, `check_filename()`,
//! `check_permissions()`), with the contract's (docs/semantics.md) additions:
//! - Candidates: entries directly in `dispatcher.d/` (every event), then `dispatcher.d/<event>.d/`
//!   (balenaOS's run-parts layout), then `dispatcher.d/<event>/` (the seed's wording).
//! - Order: by file name in byte order; on a tie the top level first, then `<event>.d/`, then
//!   `<event>/`.
//! - Editor and package leftovers are ignored silently: names starting with `.`, ending with `~`,
//!   `.rpmsave`, `.rpmorig`, `.rpmnew`, `.swp`, `.orig`, `.bak`, or containing `.dpkg-`.
//! - Security: the entry is `stat()`ed, so a symlink is judged by its target (a symlink to a good
//!   file runs; a broken one is skipped). It must be a regular file owned by root, not writable
//!   by group or others, not setuid or setgid (NetworkManager checks only setuid; the contract (docs/semantics.md) adds
//!   setgid), and executable by its owner. Any other entry is skipped with a reason. The
//!   per-event folders themselves (and NetworkManager's `pre-up.d`, `pre-down.d`, `no-wait.d`)
//!   are not candidates at the top level and are passed over silently.
//! - A boot partition is usually FAT, whose file modes come from mount options: with `fmask=0000`
//!   every script is world-writable and would be skipped one by one. [`mount_problem`] finds that
//!   case in `/proc/self/mountinfo` so the daemon can say once which option to change.

use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use netfailover_actors::model::EventKind;

/// `S_IWGRP`, `S_IWOTH`, `S_ISUID`, `S_ISGID`, `S_IXUSR` (fixed by POSIX; spelled out so the
/// checks read as the NetworkManager code they copy).
const MODE_GROUP_WRITE: u32 = 0o020;
const MODE_OTHER_WRITE: u32 = 0o002;
const MODE_SETUID: u32 = 0o4000;
const MODE_SETGID: u32 = 0o2000;
const MODE_OWNER_EXEC: u32 = 0o100;

/// Name suffixes of editor and package-manager leftovers, never run.
const IGNORED_SUFFIXES: [&str; 7] = [
    "~", ".rpmsave", ".rpmorig", ".rpmnew", ".swp", ".orig", ".bak",
];

/// dpkg's leftovers (`.dpkg-old`, `.dpkg-dist`, `.dpkg-new`, ...) carry this anywhere in the name.
const IGNORED_INFIX: &str = ".dpkg-";

/// NetworkManager's own event folders at the top level of `dispatcher.d/`: not scripts, and not
/// ours to run, so passed over silently like the folders of our four events.
const NM_FOLDERS: [&str; 3] = ["pre-up.d", "pre-down.d", "no-wait.d"];

/// Where a candidate was found; the order of the variants is the tie-break order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum ScriptFolder {
    /// Directly in `dispatcher.d/`: runs for every event.
    TopLevel,
    /// In `dispatcher.d/<event>.d/`.
    EventDotD,
    /// In `dispatcher.d/<event>/`.
    EventPlain,
}

/// Why a candidate is not run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SkipReason {
    /// A directory (not one of the event folders).
    Directory,
    /// A device, FIFO or socket.
    NotRegular {
        kind: &'static str,
    },
    /// A symlink whose target does not exist.
    BrokenSymlink {
        target: PathBuf,
    },
    /// `stat()` failed for another reason.
    Unreadable {
        error: String,
    },
    NotOwnedByRoot {
        uid: u32,
    },
    GroupWritable {
        mode: u32,
    },
    WorldWritable {
        mode: u32,
    },
    SetUid {
        mode: u32,
    },
    SetGid {
        mode: u32,
    },
    NotExecutable {
        mode: u32,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Directory => f.write_str("is a directory, not a script"),
            SkipReason::NotRegular { kind } => write!(f, "is a {kind}, not a regular file"),
            SkipReason::BrokenSymlink { target } => {
                write!(f, "is a broken symlink (to {})", target.display())
            }
            SkipReason::Unreadable { error } => write!(f, "cannot be inspected: {error}"),
            SkipReason::NotOwnedByRoot { uid } => {
                write!(f, "is owned by uid {uid}, not by root (chown root)")
            }
            SkipReason::GroupWritable { mode } => {
                write!(f, "is writable by its group (mode {mode:04o}; chmod g-w)")
            }
            SkipReason::WorldWritable { mode } => {
                write!(f, "is writable by others (mode {mode:04o}; chmod o-w)")
            }
            SkipReason::SetUid { mode } => write!(f, "is setuid (mode {mode:04o}; chmod u-s)"),
            SkipReason::SetGid { mode } => write!(f, "is setgid (mode {mode:04o}; chmod g-s)"),
            SkipReason::NotExecutable { mode } => {
                write!(
                    f,
                    "is not executable by its owner (mode {mode:04o}; chmod u+x)"
                )
            }
        }
    }
}

/// One candidate script for an event.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DiscoveredScript {
    /// Full path, as found (a symlink stays a symlink: it is executed through its path).
    pub path: PathBuf,
    /// Path relative to `dispatcher.d/` (`10-reset-modem`, `down.d/50-log`): what logs,
    /// `ScriptOutcome::script` and `netfailover events` show.
    pub name: String,
    pub folder: ScriptFolder,
    /// `None`: it runs.
    pub skip: Option<SkipReason>,
}

impl DiscoveredScript {
    pub fn runs(&self) -> bool {
        self.skip.is_none()
    }
}

/// The scripts for `event` under `dispatcher_dir`, in run order, skipped ones included (with
/// their reason) and leftovers left out. A missing directory means no scripts; an unreadable one
/// is logged and treated as empty.
pub fn discover(dispatcher_dir: &Path, event: EventKind) -> Vec<DiscoveredScript> {
    let folders = [
        (ScriptFolder::TopLevel, dispatcher_dir.to_path_buf(), None),
        (
            ScriptFolder::EventDotD,
            dispatcher_dir.join(format!("{}.d", event.as_str())),
            Some(format!("{}.d", event.as_str())),
        ),
        (
            ScriptFolder::EventPlain,
            dispatcher_dir.join(event.as_str()),
            Some(event.as_str().to_string()),
        ),
    ];
    let mut found: Vec<(Vec<u8>, DiscoveredScript)> = Vec::new();
    for (folder, dir, prefix) in folders {
        for file_name in list_dir(&dir) {
            let name_bytes = file_name.as_bytes().to_vec();
            let name_str = file_name.to_string_lossy().into_owned();
            if is_ignored(&name_str) {
                continue;
            }
            if folder == ScriptFolder::TopLevel && is_event_folder(&name_str) {
                let path = dir.join(&file_name);
                if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
            }
            let path = dir.join(&file_name);
            let skip = check_entry(&path);
            let name = match &prefix {
                Some(p) => format!("{p}/{name_str}"),
                None => name_str,
            };
            found.push((
                name_bytes,
                DiscoveredScript {
                    path,
                    name,
                    folder,
                    skip,
                },
            ));
        }
    }
    // Stable sort: byte order of the file name, then folder order on a tie.
    found.sort_by(|(a, sa), (b, sb)| a.cmp(b).then(sa.folder.cmp(&sb.folder)));
    found.into_iter().map(|(_, s)| s).collect()
}

/// File names in `dir`; a missing folder is empty, an unreadable one is logged.
fn list_dir(dir: &Path) -> Vec<std::ffi::OsString> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| match e {
                Ok(e) => Some(e.file_name()),
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "dispatcher: cannot read a directory entry");
                    None
                }
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "dispatcher: cannot list scripts");
            Vec::new()
        }
    }
}

/// Editor and package leftovers (NetworkManager's `check_filename()` plus the contract's (docs/semantics.md) list).
pub fn is_ignored(file_name: &str) -> bool {
    file_name.starts_with('.')
        || IGNORED_SUFFIXES.iter().any(|s| file_name.ends_with(s))
        || file_name.contains(IGNORED_INFIX)
}

/// A top-level name that is an event folder (ours or NetworkManager's).
fn is_event_folder(file_name: &str) -> bool {
    EventKind::ALL
        .iter()
        .any(|k| file_name == k.as_str() || file_name.strip_suffix(".d") == Some(k.as_str()))
        || NM_FOLDERS.contains(&file_name)
}

/// The security checks of one entry; `None` when it may run.
fn check_entry(path: &Path) -> Option<SkipReason> {
    match fs::metadata(path) {
        Ok(meta) => check_metadata(&meta),
        Err(e) => match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Some(SkipReason::BrokenSymlink {
                target: fs::read_link(path).unwrap_or_default(),
            }),
            _ => Some(SkipReason::Unreadable {
                error: e.to_string(),
            }),
        },
    }
}

/// NetworkManager's `check_permissions()` on the `stat()` of an entry, plus setgid.
pub fn check_metadata(meta: &Metadata) -> Option<SkipReason> {
    let ft = meta.file_type();
    if ft.is_dir() {
        return Some(SkipReason::Directory);
    }
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "FIFO"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "device"
        } else {
            "special file"
        };
        return Some(SkipReason::NotRegular { kind });
    }
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 {
        return Some(SkipReason::NotOwnedByRoot { uid: meta.uid() });
    }
    if mode & MODE_OTHER_WRITE != 0 {
        return Some(SkipReason::WorldWritable { mode });
    }
    if mode & MODE_GROUP_WRITE != 0 {
        return Some(SkipReason::GroupWritable { mode });
    }
    if mode & MODE_SETUID != 0 {
        return Some(SkipReason::SetUid { mode });
    }
    if mode & MODE_SETGID != 0 {
        return Some(SkipReason::SetGid { mode });
    }
    if mode & MODE_OWNER_EXEC == 0 {
        return Some(SkipReason::NotExecutable { mode });
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Mount options that defeat the security checks
// ---------------------------------------------------------------------------------------------

/// The dispatcher directory is on a mount whose options give every file a mode or owner that
/// the security checks refuse (a FAT boot partition mounted with `fmask=0000`, or `uid=1000`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MountProblem {
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The offending option as mounted, e.g. `fmask=0000`.
    pub option: String,
    /// What to mount with instead, e.g. `fmask=0022`.
    pub instead: String,
    /// What it does to the scripts.
    pub effect: &'static str,
}

impl fmt::Display for MountProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) is mounted with {}: {}, so every dispatcher script is skipped; \
             mount it with {} instead",
            self.mount_point.display(),
            self.fstype,
            self.option,
            self.effect,
            self.instead
        )
    }
}

/// Reads `mountinfo` (normally `/proc/self/mountinfo`) and reports whether the mount holding
/// `dispatcher_dir` makes every file unacceptable. Unreadable input means no finding.
pub fn mount_problem(dispatcher_dir: &Path, mountinfo: &Path) -> Option<MountProblem> {
    let text = fs::read_to_string(mountinfo).ok()?;
    let dir = fs::canonicalize(dispatcher_dir).unwrap_or_else(|_| dispatcher_dir.to_path_buf());
    mount_problem_in(&dir, &text)
}

/// [`mount_problem`] on mountinfo text already read; `dir` should be canonical.
pub fn mount_problem_in(dir: &Path, mountinfo: &str) -> Option<MountProblem> {
    // The last matching line with the longest mount point wins (later lines are mounted over
    // earlier ones).
    let mount = mountinfo
        .lines()
        .filter_map(parse_mountinfo_line)
        .filter(|m| dir.starts_with(&m.mount_point))
        .fold(None::<MountLine>, |best, m| match best {
            Some(b) if b.mount_point.as_os_str().len() > m.mount_point.as_os_str().len() => Some(b),
            _ => Some(m),
        })?;
    let option = |key: &str| {
        mount
            .super_options
            .split(',')
            .find_map(|o| o.strip_prefix(key).map(|v| (o.to_string(), v.to_string())))
    };
    if let Some((opt, value)) = option("uid=") {
        if value.parse::<u32>().is_ok_and(|uid| uid != 0) {
            return Some(MountProblem {
                mount_point: mount.mount_point,
                fstype: mount.fstype,
                option: opt,
                instead: "uid=0".into(),
                effect: "every file is owned by that user, not by root",
            });
        }
    }
    // FAT-like file systems: `fmask` sets file modes, else `umask` sets files and directories.
    let (opt, value) = option("fmask=").or_else(|| option("umask="))?;
    let mask = u32::from_str_radix(&value, 8).ok()?;
    let effect = if mask & MODE_OTHER_WRITE == 0 {
        "every file is writable by others"
    } else if mask & MODE_GROUP_WRITE == 0 {
        "every file is writable by its group"
    } else {
        return None;
    };
    let key = opt.split('=').next().unwrap_or("fmask");
    Some(MountProblem {
        mount_point: mount.mount_point,
        fstype: mount.fstype,
        option: opt.clone(),
        instead: format!("{key}=0022"),
        effect,
    })
}

struct MountLine {
    mount_point: PathBuf,
    fstype: String,
    super_options: String,
}

/// One line of `/proc/self/mountinfo` (proc(5)): `id parent maj:min root mount-point options
/// [optional fields...] - fstype source super-options`.
fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let fields: Vec<&str> = line.split(' ').collect();
    let mount_point = unescape_mountinfo(fields.get(4)?);
    let sep = fields.iter().position(|f| *f == "-")?;
    Some(MountLine {
        mount_point: PathBuf::from(mount_point),
        fstype: fields.get(sep + 1)?.to_string(),
        super_options: fields.get(sep + 3).copied().unwrap_or("").to_string(),
    })
}

/// Undoes the kernel's octal escapes of space, tab, newline and backslash (`\040`).
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_ignored_like_network_manager() {
        for name in [
            ".hidden",
            "a~",
            "a.rpmsave",
            "a.rpmnew",
            "a.rpmorig",
            "a.dpkg-old",
            "a.dpkg-dist",
            "a.orig",
            "a.bak",
            "a.swp",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        for name in ["10-up", "a.sh", "bak", "orig-script", "dpkg"] {
            assert!(!is_ignored(name), "{name}");
        }
    }

    #[test]
    fn event_folders_are_recognised() {
        for name in ["up", "up.d", "down.d", "connectivity-change", "pre-up.d"] {
            assert!(is_event_folder(name), "{name}");
        }
        assert!(!is_event_folder("upper"));
    }

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime - ext4 /dev/sda2 rw
30 22 8:1 / /mnt/boot rw,relatime shared:5 - vfat /dev/sda1 rw,fmask=0000,dmask=0022,codepage=437
31 22 8:3 / /mnt/ok rw - vfat /dev/sda3 rw,fmask=0022,dmask=0022
32 22 8:4 / /mnt/grp rw - vfat /dev/sda4 rw,umask=0002
33 22 8:5 / /mnt/user rw - vfat /dev/sda5 rw,uid=1000,fmask=0022
34 22 8:6 / /mnt/with\\040space rw - exfat /dev/sda6 rw,fmask=0000
";

    #[test]
    fn world_writable_mounts_are_found_and_the_option_named() {
        let p = mount_problem_in(Path::new("/mnt/boot/dispatcher.d"), MOUNTINFO).unwrap();
        assert_eq!(p.mount_point, Path::new("/mnt/boot"));
        assert_eq!(p.option, "fmask=0000");
        assert_eq!(p.instead, "fmask=0022");
        assert!(p.to_string().contains("fmask=0000"), "{p}");
        assert!(mount_problem_in(Path::new("/mnt/ok/dispatcher.d"), MOUNTINFO).is_none());
        assert!(mount_problem_in(Path::new("/etc/dispatcher.d"), MOUNTINFO).is_none());
        let grp = mount_problem_in(Path::new("/mnt/grp/d"), MOUNTINFO).unwrap();
        assert_eq!(grp.option, "umask=0002");
        assert_eq!(grp.effect, "every file is writable by its group");
        let user = mount_problem_in(Path::new("/mnt/user/d"), MOUNTINFO).unwrap();
        assert_eq!(
            (user.option.as_str(), user.instead.as_str()),
            ("uid=1000", "uid=0")
        );
        let space = mount_problem_in(Path::new("/mnt/with space/d"), MOUNTINFO).unwrap();
        assert_eq!(space.fstype, "exfat");
        // A prefix of a name is not a parent directory.
        assert!(mount_problem_in(Path::new("/mnt/bootx/d"), MOUNTINFO).is_none());
    }

    #[test]
    fn garbage_mountinfo_is_no_finding() {
        assert!(mount_problem_in(Path::new("/x"), "garbage\n\n- - -\n").is_none());
    }
}
