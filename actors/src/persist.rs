//! Coalescing persistence: the newest value of some state is saved through a port; values
//! submitted while a write is in flight are merged into one write of the newest, and an older
//! value never overwrites a newer one. There is no writer task of its own: whoever needs the
//! state on disk awaits [`Persister::flush`], which writes in the caller's task (an actor's
//! context), so durability never waits on another task's scheduling. Used for the event journal
//! and the per-interface state records.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::ports::PortResult;

type SaveFn<T> = dyn Fn(T) -> BoxFuture<'static, PortResult<()>> + Send + Sync;

/// See the module doc.
pub struct Persister<T> {
    inner: Arc<Inner<T>>,
}

struct Inner<T> {
    what: &'static str,
    save: Box<SaveFn<T>>,
    /// The newest value not yet written.
    latest: Mutex<Option<T>>,
    /// Held while writing, so writes never overlap and run in submission order.
    writing: tokio::sync::Mutex<()>,
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
                latest: Mutex::new(None),
                writing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Records `value` as the newest state; the next [`flush`](Self::flush) writes it.
    pub fn submit(&self, value: T) {
        *self.inner.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
    }

    /// Writes the newest submitted value, if any, and returns once everything submitted before
    /// the call is on disk (or its write failed; failures are logged, and the next flush tries
    /// again with newer data).
    pub fn flush(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let inner = self.inner.clone();
        async move {
            // Whoever holds the lock writes what was newest when it took it; after we get the
            // lock, anything submitted before this call is either written or still in `latest`.
            let _writing = inner.writing.lock().await;
            let value = inner
                .latest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(value) = value {
                if let Err(e) = (inner.save)(value).await {
                    tracing::error!(what = inner.what, error = %e, "saving state failed");
                }
            }
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
        let written = || saved.lock().unwrap().clone();
        let mut flushes = Vec::new();
        for v in 1..=100 {
            p.submit(v);
            if v % 10 == 0 {
                flushes.push(tokio::spawn(p.flush()));
            }
        }
        for f in flushes {
            f.await.unwrap();
        }
        assert_eq!(
            written(),
            vec![100],
            "ten flushes of the same newest value: one write"
        );
        p.flush().await;
        assert_eq!(written(), vec![100], "nothing new: no write");
        p.submit(101);
        p.submit(102);
        p.flush().await;
        assert_eq!(
            written(),
            vec![100, 102],
            "the newest of two submissions is written"
        );
    }
}
