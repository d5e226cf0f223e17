//! Fuzz target: any datagram on the link subscription or in a route dump reply, decoded as the
//! netlink adapters decode it, never panics (`src/os/netlink/decode.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netfailover::os::netlink::decode;

fuzz_target!(|data: &[u8]| {
    let updates = decode::link_updates(data);
    // Every message takes at least a 16-byte netlink header.
    assert!(updates.len() <= data.len() / 16);
    let _ = decode::default_routes(data);
});
