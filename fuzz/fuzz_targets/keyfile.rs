//! Fuzz target: any bytes as a NetworkManager keyfile never panic the reader or the profile
//! builder.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netfailover::config::{keyfile, profiles};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = keyfile::parse(&text);
    let mut problems = Vec::new();
    let _ = profiles::parse_profile(
        &text,
        Path::new("fuzz"),
        Path::new("/nonexistent"),
        &mut problems,
    );
});
