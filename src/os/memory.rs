//! The daemon process's own memory (the idle RSS rows of docs/benchmarks.md say where it goes).
//!
//! - **malloc arenas** ([`one_malloc_arena`], at start, before any thread): glibc gives each
//!   thread that allocates its own arena (up to 8 per core), whose freed memory stays resident
//!   with that arena; the daemon's extra threads (tokio's blocking pool: file writes, script
//!   discovery, the conntrack dump) allocate little and rarely, so one arena for all of them
//!   costs no contention and keeps their freed memory reusable by the main thread. Other C
//!   libraries (musl) have no arenas: nothing to do there.
//! - **code pages** ([`drop_code_pages`], once start-up is over): the kernel maps a binary's
//!   code in 64 KiB fault-around blocks, so after start-up (configuration parsing, the first
//!   reconcile and checks, the clap and serde code) most of the text is resident although the
//!   idle daemon runs a small part of it. `MADV_DONTNEED` on the executable's own read-only code
//!   mappings unmaps those pages from this process only: they stay in the page cache (nothing
//!   is read from disk when they are needed again, a minor fault each 64 KiB), and the idle
//!   path's pages come back at their next use. No data is touched: the mappings are private,
//!   never written, so the next access sees the same file contents.

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

/// Unmaps the pages of the executable's own code mappings from this process (see the module
/// doc); returns the bytes advised.
pub fn drop_code_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0;
    for (start, end) in code_mappings(&maps, &exe) {
        // SAFETY: [start, end) is a whole mapping of this executable that is readable,
        // executable, not writable and private (`r-xp` in /proc/self/maps), i.e. code the
        // loader mapped from the file and nobody wrote: MADV_DONTNEED only drops the page table
        // entries, and the next access maps the same file contents again. No Rust reference
        // into it changes meaning.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        advised += end - start;
    }
    Ok(advised)
}

/// The `r-xp` mappings of `exe` in a `/proc/PID/maps` text: (start, end) addresses.
fn code_mappings(maps: &str, exe: &Path) -> Vec<(usize, usize)> {
    let exe = exe.to_string_lossy();
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            // offset, device, inode, then the path (which may hold spaces).
            let path = line.splitn(6, char::is_whitespace).nth(5)?.trim_start();
            if perms != "r-xp" || path != exe {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_own_code_mappings_are_picked() {
        let maps = "\
5601a000-5601b000 r--p 00000000 08:01 42 /usr/bin/netfailover
5601b000-56060000 r-xp 00001000 08:01 42 /usr/bin/netfailover
56060000-56070000 r--p 00046000 08:01 42 /usr/bin/netfailover
56070000-56071000 rw-p 00056000 08:01 42 /usr/bin/netfailover
7f000000-7f100000 r-xp 00028000 08:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
7f200000-7f300000 r-xp 00000000 00:00 0 
7f400000-7f401000 r-xp 00000000 08:01 43 /usr/bin/netfailover (deleted)
7f500000-7f400000 r-xp 00000000 08:01 42 /usr/bin/netfailover
";
        assert_eq!(
            code_mappings(maps, Path::new("/usr/bin/netfailover")),
            [(0x5601b000, 0x56060000)]
        );
        assert_eq!(code_mappings("garbage\n\n1-2 r-xp", Path::new("/x")), []);
    }
}
