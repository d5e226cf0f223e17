//! Write-behind persistence: the newest value of some state is saved through a port, writes
//! never overlap, and an older value never overwrites a newer one. Used for the event journal
//! and the per-interface state records, which outlive actor restarts and daemon restarts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::ports::PortResult;

type SaveFn<T> = dyn Fn(T) -> BoxFuture<'static, PortResult<()>> + Send + Sync;

/// Saves the newest submitted value through `save`, one write at a time.
pub struct Persister<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    what: &'static str,
    save: Box<SaveFn<T>>,
    /// Version of the last value written (or skipped as stale).
    written: tokio::sync::Mutex<u64>,
    next: AtomicU64,
}

impl<T> Clone for Persister<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static> Persister<T> {
    pub fn new(
        what: &'static str,
        save: impl Fn(T) -> BoxFuture<'static, PortResult<()>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                what,
                save: Box::new(save),
                written: tokio::sync::Mutex::new(0),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// Saves `value` unless a newer value has been written meanwhile. The returned future can
    /// be awaited (write-through) or spawned (write-behind); failures are logged and reported.
    pub fn save(
        &self,
        value: T,
    ) -> impl std::future::Future<Output = PortResult<()>> + Send + 'static {
        let version = self.inner.next.fetch_add(1, Ordering::SeqCst) + 1;
        let inner = self.inner.clone();
        async move {
            let mut written = inner.written.lock().await;
            if *written > version {
                return Ok(());
            }
            let result = (inner.save)(value).await;
            if let Err(e) = &result {
                tracing::error!(what = inner.what, error = %e, "saving state failed");
            }
            *written = version;
            result
        }
    }

    /// Write-behind: saves in the background.
    pub fn save_later(&self, value: T) {
        let fut = self.save(value);
        tokio::spawn(async move {
            let _ = fut.await;
        });
    }
}
