//! `netfailover lab`, the hidden launcher of the separate lab tool (src/lab_launcher.rs): the
//! device binary holds no lab, so the verb finds `netfailover-lab` (built by cargo under `cargo
//! run`, beside the executable, on PATH) or says how to get it. Each test copies the binary
//! into a folder of its own, with stand-in scripts for the lab and for cargo: no namespaces,
//! no network, and no real build.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A copy of the device binary in `dir/<profile>/netfailover` (as cargo lays out `target/`).
fn binary_in(dir: &Path, profile: &str) -> PathBuf {
    let folder = dir.join(profile);
    std::fs::create_dir_all(&folder).unwrap();
    let exe = folder.join("netfailover");
    write_outside(
        &exe,
        &std::fs::read(env!("CARGO_BIN_EXE_netfailover")).unwrap(),
    );
    exe
}

/// An executable shell script at `path`.
fn script(path: &Path, body: &str) {
    write_outside(path, format!("#!/bin/sh\n{body}\n").as_bytes());
}

/// Writes an executable file through a child process (`sh`), so this test process never holds
/// a write descriptor to it: a program another test thread forks meanwhile would inherit that
/// descriptor until its exec, and executing the file then fails with "Text file busy".
fn write_outside(path: &Path, content: &[u8]) {
    use std::io::Write as _;
    let mut child = Command::new("sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(content).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "writing {}",
        path.display()
    );
}

/// `exe lab ARGS` with no cargo in its environment and `path` as PATH.
fn lab(exe: &Path, args: &[&str], path: &str) -> Output {
    Command::new(exe)
        .arg("lab")
        .args(args)
        .env_remove("CARGO")
        .env_remove("CARGO_MANIFEST_DIR")
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn without_a_lab_it_says_how_to_get_one_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let exe = binary_in(dir.path(), "release");
    let out = lab(&exe, &[], "/nonexistent");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("netfailover-lab") && stderr.contains("cargo run --release -- lab"),
        "{stderr}"
    );
    // Not a device verb: `--help` does not list it.
    let help = Command::new(&exe).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains(" lab "));
}

#[test]
fn the_lab_beside_the_executable_gets_the_arguments_and_gives_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let exe = binary_in(dir.path(), "release");
    script(
        &exe.with_file_name("netfailover-lab"),
        "echo \"lab beside: $*\"; exit 7",
    );
    // One on PATH too: the one beside the executable wins.
    let elsewhere = dir.path().join("bin");
    std::fs::create_dir(&elsewhere).unwrap();
    script(&elsewhere.join("netfailover-lab"), "echo on-path; exit 0");
    let out = lab(
        &exe,
        &["--scenario", "list", "--keep"],
        elsewhere.to_str().unwrap(),
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "lab beside: --scenario list --keep\n"
    );
    // `--help` is the lab's, not the launcher's.
    let out = lab(&exe, &["--help"], elsewhere.to_str().unwrap());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "lab beside: --help\n");
}

#[test]
fn the_lab_on_path_is_used_when_none_is_beside() {
    let dir = tempfile::tempdir().unwrap();
    let exe = binary_in(dir.path(), "release");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(&bin.join("netfailover-lab"), "echo \"on path: $*\"");
    let out = lab(&exe, &["--soak", "1"], bin.to_str().unwrap());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "on path: --soak 1\n");
}

#[test]
fn under_cargo_run_it_builds_the_lab_of_the_same_profile_first() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, expected) in [
        (
            "release",
            "build --manifest-path /src/Cargo.toml -p netfailover-lab --release",
        ),
        (
            "debug",
            "build --manifest-path /src/Cargo.toml -p netfailover-lab",
        ),
    ] {
        let exe = binary_in(dir.path(), profile);
        let record = dir.path().join(format!("cargo-{profile}.args"));
        // The stand-in cargo records its arguments and "builds" the lab beside the binary.
        let cargo = dir.path().join(format!("cargo-{profile}"));
        let lab_exe = exe.with_file_name("netfailover-lab");
        script(
            &cargo,
            &format!(
                "echo \"$*\" > {}\nprintf '#!/bin/sh\\necho built lab: \"$*\"\\n' > {}\nchmod 755 {}",
                record.display(),
                lab_exe.display(),
                lab_exe.display()
            ),
        );
        let out = Command::new(&exe)
            .args(["lab", "--scenario", "cable"])
            .env("CARGO", &cargo)
            .env("CARGO_MANIFEST_DIR", "/src")
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(out.status.success(), "{profile}: {out:?}");
        assert_eq!(
            std::fs::read_to_string(&record).unwrap().trim_end(),
            expected
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "built lab: --scenario cable\n"
        );
    }
}

#[test]
fn a_failed_build_is_an_error_not_a_stale_lab() {
    let dir = tempfile::tempdir().unwrap();
    let exe = binary_in(dir.path(), "release");
    script(&exe.with_file_name("netfailover-lab"), "echo stale lab");
    let cargo = dir.path().join("cargo");
    script(&cargo, "exit 101");
    let out = Command::new(&exe)
        .arg("lab")
        .env("CARGO", &cargo)
        .env("CARGO_MANIFEST_DIR", "/src")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "the stale lab ran: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("building netfailover-lab failed"),
        "{out:?}"
    );
}
