//! Fuzz target: any bytes as balenaOS config.json never panic the reader.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use netfailover::config::config_json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut problems = Vec::new();
    let _ = config_json::parse(&text, Path::new("config.json"), &mut problems);
});
