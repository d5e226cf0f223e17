//! [`FakeCalendar`]: the fake of the `Calendar` port: a wall clock the test sets, so a test
//! can turn the month of the accounting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ports::Calendar;

/// 2026-12-15 00:00 UTC, mid-month: where a fake calendar starts.
pub const FAKE_CALENDAR_START_MS: u64 = 1_797_292_800_000;

/// A wall clock that stands still until the test moves it; clones share it.
#[derive(Clone, Debug)]
pub struct FakeCalendar {
    now_ms: Arc<AtomicU64>,
}

impl Default for FakeCalendar {
    fn default() -> Self {
        Self {
            now_ms: Arc::new(AtomicU64::new(FAKE_CALENDAR_START_MS)),
        }
    }
}

impl FakeCalendar {
    /// The clock says `unix_ms` from now on.
    pub fn set(&self, unix_ms: u64) {
        self.now_ms.store(unix_ms, Ordering::Relaxed);
    }
}

impl Calendar for FakeCalendar {
    fn now_unix_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}
