//! The daemon process's own memory (the idle RSS rows of docs/benchmarks.md say where it goes).
//!
//! - **malloc arenas** ([`one_malloc_arena`], at start, before any thread): glibc gives each
//!   thread that allocates its own arena (up to 8 per core), whose freed memory stays resident
//!   with that arena; the daemon's extra threads (tokio's blocking pool: file writes, script
//!   discovery, the conntrack dump) allocate little and rarely, so one arena for all of them
//!   costs no contention and keeps their freed memory reusable by the main thread. Other C
//!   libraries (musl) have no arenas: nothing to do there.
//! - **heap** ([`trim_malloc`], once start-up is over): the free pages start-up left in the
//!   heap go back to the kernel.
//! - **code pages** ([`drop_code_pages`], once start-up is over): the kernel maps a binary's
//!   code and read-only data in 64 KiB fault-around blocks of whatever is in the page cache,
//!   so after start-up (configuration parsing, the first reconcile and checks, the clap and
//!   serde code) most of the binary is resident although the idle daemon runs a small part of
//!   it; unmapping alone does not help, the next touches map the same 64 KiB blocks again
//!   (measured: the whole text back within a minute). So the executable's own read-only,
//!   never-written mappings (code, `.rodata`, unwind tables; not the relocated RELRO part) get
//!   `MADV_PAGEOUT` (reclaimed: out of this process and, where no other process maps them, out
//!   of the page cache) and `MADV_RANDOM` (no read-ahead: a later fault reads the one page it
//!   needs, and fault-around finds no cached neighbours to map). The idle path's pages come back
//!   one by one at their first use (one small read each; a rarely used path, a reload or the
//!   first failover, pays a few such reads once). Needs Linux 5.4 (`MADV_PAGEOUT`; older
//!   kernels refuse it and nothing changes) and a daemon that may write its own binary (root,
//!   as the unit runs it: the kernel pages out file pages only for such a process). Both are
//!   hints: no memory content ever changes.

use std::io;
use std::path::Path;

/// Before the runtime starts any thread: one malloc arena for every thread (glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn one_malloc_arena() {
    // SAFETY: mallopt only sets a malloc parameter; glibc documents it as not thread-safe, and
    // this runs in `run` before the runtime or any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Without glibc: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn one_malloc_arena() {}

/// Once start-up is over: hands the free pages of the heap back to the kernel (glibc keeps
/// what start-up freed — the configuration's text and parse trees, the first reconcile's
/// dumps — resident in the heap until something reuses it).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_malloc() {
    // SAFETY: malloc_trim takes malloc's own lock and only releases free memory; it is
    // thread-safe and touches no allocated block.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Without glibc: nothing to trim.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_malloc() {}

/// Pages the executable's own read-only, never-written mappings out of this process and
/// turns read-ahead off for them (see the module doc); returns the bytes advised.
pub fn drop_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut advised = 0;
    for (start, end) in clean_mappings(&smaps, &exe) {
        for advice in [libc::MADV_PAGEOUT, libc::MADV_RANDOM] {
            // SAFETY: [start, end) is a whole mapping of this process (read from its own smaps
            // just now; the daemon never unmaps its executable), and both advices are hints
            // that never change memory contents: MADV_PAGEOUT reclaims pages that are read
            // back unchanged when touched (these are clean file pages), MADV_RANDOM only turns
            // read-ahead off.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        advised += end - start;
    }
    Ok(advised)
}

/// The private, read-only (`r-xp`, `r--p`) mappings of `exe` in a `/proc/PID/smaps` text
/// whose `Anonymous` size is 0 (never written): (start, end) addresses.
fn clean_mappings(smaps: &str, exe: &Path) -> Vec<(usize, usize)> {
    let exe = exe.to_string_lossy();
    let mut out = Vec::new();
    // The current mapping, if it is a candidate: (start, end).
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Anonymous:") {
            let never_written = kib.trim() == "0 kB";
            if let Some(range) = current.take().filter(|_| never_written) {
                out.push(range);
            }
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue; // a field line (`Rss:  12 kB`)
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // A header: range, perms, offset, device, inode, then the path (may hold spaces).
        let path = line.splitn(6, char::is_whitespace).nth(5).map(str::trim);
        let read_only = perms == "r-xp" || perms == "r--p";
        current = (read_only && path == Some(&*exe) && end > start).then_some((start, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_never_written_read_only_mappings_are_picked() {
        let smaps = "\
5601a000-5601b000 r--p 00000000 08:01 42 /usr/bin/netfailover
Rss:                   4 kB
Anonymous:             0 kB
5601b000-56060000 r-xp 00001000 08:01 42 /usr/bin/netfailover
Rss:                 200 kB
Anonymous:             0 kB
56060000-56070000 r--p 00046000 08:01 42 /usr/bin/netfailover
Anonymous:            64 kB
56070000-56071000 rw-p 00056000 08:01 42 /usr/bin/netfailover
Anonymous:             4 kB
7f000000-7f100000 r-xp 00028000 08:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f200000-7f300000 r-xp 00000000 00:00 0 
Anonymous:             0 kB
7f400000-7f401000 r-xp 00000000 08:01 43 /usr/bin/netfailover (deleted)
Anonymous:             0 kB
7f500000-7f400000 r-xp 00000000 08:01 42 /usr/bin/netfailover
Anonymous:             0 kB
7f600000-7f601000 r-xp 00000000 08:01 42 /usr/bin/netfailover
";
        assert_eq!(
            clean_mappings(smaps, Path::new("/usr/bin/netfailover")),
            [(0x5601a000, 0x5601b000), (0x5601b000, 0x56060000)],
            "not the written RELRO part, nor a mapping without its Anonymous line"
        );
        assert_eq!(
            clean_mappings("garbage\n\n1-2 r-xp\nAnonymous: 0 kB", Path::new("/x")),
            []
        );
    }

    #[test]
    fn a_process_whose_code_pages_were_dropped_runs_on() {
        let advised = drop_code_pages().expect("madvise on this test binary");
        assert!(advised > 0, "the test binary has code mappings");
        // Code and constants fault back in from the page cache.
        let text = format!("{:?}", clean_mappings("", Path::new("/x")));
        assert_eq!(text, "[]");
        trim_malloc();
    }
}
