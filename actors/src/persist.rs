//! Write-behind persistence with coalescing: the newest value of some state is saved through a
//! port by one writer task; values submitted while a write is in flight are merged into one
//! write of the newest; callers that need durability wait until their version is on disk.
//! Used for the event journal and the per-interface state records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{watch, Notify};

use crate::ports::PortResult;

type SaveFn<T> = dyn Fn(T) -> BoxFuture<'static, PortResult<()>> + Send + Sync;

/// Saves the newest submitted value through `save`, one write at a time.
pub struct Persister<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    /// The newest value not yet handed to the writer, with its version.
    latest: Mutex<Option<(u64, T)>>,
    submitted: AtomicU64,
    /// Version of the last value the writer finished (written or failed: a failure is logged,
    /// and the next submission retries with newer data).
    written: watch::Sender<u64>,
    /// Wakes the writer: on a submission, and when the last `Persister` is gone.
    wake: Arc<Notify>,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

impl<T> Clone for Persister<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> Persister<T> {
    /// Spawns the writer task; must be called inside a tokio runtime. The task ends when every
    /// `Persister` clone is gone.
    pub fn new(
        what: &'static str,
        save: impl Fn(T) -> BoxFuture<'static, PortResult<()>> + Send + Sync + 'static,
    ) -> Self {
        let inner = Arc::new(Inner {
            latest: Mutex::new(None),
            submitted: AtomicU64::new(0),
            written: watch::channel(0).0,
            wake: Arc::new(Notify::new()),
        });
        let weak = Arc::downgrade(&inner);
        let wake = inner.wake.clone();
        let save: Box<SaveFn<T>> = Box::new(save);
        tokio::spawn(async move {
            loop {
                let next = {
                    let Some(inner) = weak.upgrade() else { return };
                    let mut latest = inner.latest.lock().unwrap_or_else(|p| p.into_inner());
                    latest.take()
                };
                let Some((version, value)) = next else {
                    // Nothing pending: sleep until a submission (or the end) wakes us. A
                    // notification sent meanwhile is stored by `Notify`, so none is missed.
                    wake.notified().await;
                    continue;
                };
                if let Err(e) = save(value).await {
                    tracing::error!(what, error = %e, "saving state failed");
                }
                let Some(inner) = weak.upgrade() else { return };
                inner.written.send_replace(version);
            }
        });
        Self { inner }
    }

    /// Submits `value`; it (or a newer value) will be written. Returns its version.
    pub fn submit(&self, value: T) -> u64 {
        let mut latest = self.inner.latest.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.inner.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        *latest = Some((version, value));
        drop(latest);
        self.inner.wake.notify_one();
        version
    }

    /// Resolves once everything submitted so far is written (or its write failed).
    pub fn flushed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let target = self.inner.submitted.load(Ordering::SeqCst);
        let mut written = self.inner.written.subscribe();
        async move {
            let _ = written.wait_for(|v| *v >= target).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn coalesces_and_flushes() {
        let saved: Arc<Mutex<Vec<u32>>> = Arc::default();
        let log = saved.clone();
        let p = Persister::new("test", move |v: u32| {
            let log = log.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                log.lock().unwrap().push(v);
                Ok(())
            }
            .boxed()
        });
        for v in 1..=100 {
            p.submit(v);
            tokio::task::yield_now().await;
        }
        p.flushed().await;
        let saved = saved.lock().unwrap().clone();
        assert_eq!(saved.last(), Some(&100), "the newest value is on disk");
        assert!(saved.len() <= 3, "writes were merged: {saved:?}");
        assert!(
            saved.windows(2).all(|w| w[0] < w[1]),
            "never an older value after a newer"
        );
    }
}
