//! `netfailover lab` (hidden): starts the namespace lab, which is a separate test tool
//! (`netfailover-lab`, the `tests/lab/` workspace member) and never part of this binary. The
//! verb holds no lab code: it finds the lab's executable and hands over to it, so the
//! README's first command, `cargo run --release -- lab`, works in a source tree while the
//! device binary carries none of the lab (README, "Install on a device").
//!
//! Where the lab comes from, in order:
//! 1. under `cargo run` (cargo sets `CARGO` and `CARGO_MANIFEST_DIR` for the programs it runs):
//!    `cargo build -p netfailover-lab` with this executable's profile first, so the lab next to
//!    this executable is the one of this tree (a no-op when it is up to date);
//! 2. `netfailover-lab` next to this executable (a `target/<profile>/` folder);
//! 3. `netfailover-lab` on `PATH`.
//!
//! Otherwise it says how to get the lab and exits 2; a device, where only the package is
//! installed, gets that message instead of a lab.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::Context as _;

/// The lab's executable name (the `netfailover-lab` crate's binary).
const LAB_EXE: &str = "netfailover-lab";

/// What to print when no lab can be found or built.
const HOW_TO_GET_THE_LAB: &str = "the namespace lab is a separate test tool (netfailover-lab, \
     tests/lab/ in the source tree), not part of the device binary; in the source tree run \
     `cargo run --release -- lab` or `cargo run --release -p netfailover-lab`";

/// Builds (under cargo), finds and starts the lab with `args`; returns only when it could not.
pub fn run(args: &[OsString]) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("netfailover lab: locating this executable")?;
    let exe_dir = exe.parent().unwrap_or(Path::new("/"));
    if let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) {
        build_lab(&cargo, Path::new(&manifest_dir), exe_dir)?;
    }
    let Some(lab) = find_lab(exe_dir, std::env::var_os("PATH").as_deref()) else {
        eprintln!("netfailover lab: {HOW_TO_GET_THE_LAB}");
        return Ok(ExitCode::from(2));
    };
    // `exec` replaces this process: the lab gets the terminal, Ctrl-C and the exit code.
    let error = Command::new(&lab).args(args).exec();
    Err(error).with_context(|| format!("netfailover lab: starting {}", lab.display()))
}

/// `cargo build -p netfailover-lab` in the profile that built this executable (the name of the
/// folder it is in: `debug` is cargo's `dev` profile), the build's output on this terminal.
fn build_lab(cargo: &OsStr, manifest_dir: &Path, exe_dir: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .args(["-p", LAB_EXE]);
    command.args(profile_args(exe_dir));
    let status = command
        .status()
        .with_context(|| format!("netfailover lab: running {}", cargo.to_string_lossy()))?;
    anyhow::ensure!(
        status.success(),
        "netfailover lab: building {LAB_EXE} failed ({status})"
    );
    Ok(())
}

/// Cargo's profile arguments for an executable in `exe_dir` (`target/<profile>/`).
fn profile_args(exe_dir: &Path) -> Vec<String> {
    match exe_dir.file_name().and_then(OsStr::to_str) {
        Some("debug") | None => Vec::new(),
        Some("release") => vec!["--release".to_string()],
        Some(other) => vec!["--profile".to_string(), other.to_string()],
    }
}

/// The lab's executable next to this one, else the first on `path`.
fn find_lab(exe_dir: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    let beside = exe_dir.join(LAB_EXE);
    if is_executable(&beside) {
        return Some(beside);
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(LAB_EXE))
        .find(|candidate| is_executable(candidate))
}

/// A regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_follows_the_executable_folder() {
        assert!(profile_args(Path::new("/src/target/debug")).is_empty());
        assert_eq!(
            profile_args(Path::new("/src/target/release")),
            ["--release"]
        );
        assert_eq!(
            profile_args(Path::new("/src/target/x86_64-unknown-linux-gnu/bench")),
            ["--profile", "bench"]
        );
    }
}
