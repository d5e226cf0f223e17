//! Fuzz target: any bytes as netfailover.toml never panic the settings loader.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use netfailover::config::settings;

fuzz_target!(|data: &[u8]| {
    // The loader reads a file (size limit, UTF-8 check): give it one in a fresh folder.
    let Ok(dir) = tempdir() else { return };
    if std::fs::write(dir.join("netfailover.toml"), data).is_err() {
        return;
    }
    let mut problems = Vec::new();
    let _ = settings::load(&dir, None, &BTreeMap::new(), &mut problems);
    let _ = std::fs::remove_dir_all(&dir);
});

fn tempdir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("nf-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
