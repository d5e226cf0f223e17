//! Coalescing persistence: the newest value of some state is saved through a port; values
//! submitted while a write is in flight are merged into one write of the newest, and an older
//! value never overwrites a newer one. There is no writer task of its own: whoever needs the
//! state on disk awaits [`Persister::flush`], which writes in the caller's task (an actor's
//! context), so durability never waits on another task's scheduling. Used for the event journal
//! and the per-interface state records.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::ports::PortResult;

/// A write running longer than this is considered stuck (a wedged disk): later flushes stop
/// waiting for it, so nothing that needs "on disk" can hang on storage. The data stays in memory
/// and goes out with the next write that completes.
pub const STUCK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// When the running write started, if one is running.
    write_started: Mutex<Option<tokio::time::Instant>>,
    /// The last value [`Persister::submit_changed`] accepted (cleared when a write fails, so
    /// the same value is written again).
    last: Mutex<Option<T>>,
    /// The error of the last write, while writes fail: a broken `state_dir` is logged once per
    /// distinct error and once when it works again, not at every reconcile.
    failing: Mutex<Option<String>>,
}

/// What a write's result means for the log.
#[derive(Debug, PartialEq, Eq)]
enum Noted {
    Fine,
    /// Failed, and not with the error logged last.
    NewFailure,
    /// Failed again with the same error (logged at debug only).
    Repeat,
    /// Written after failures.
    Recovered,
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
                write_started: Mutex::new(None),
                last: Mutex::new(None),
                failing: Mutex::new(None),
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
            let started = *inner
                .write_started
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if started.is_some_and(|t| t.elapsed() > STUCK_AFTER) {
                tracing::warn!(what = inner.what, "a write is stuck; not waiting for it");
                return;
            }
            // Whoever holds the lock writes what was newest when it took it; after we get the
            // lock, anything submitted before this call is either written or still in `latest`.
            let Ok(_writing) = tokio::time::timeout(STUCK_AFTER, inner.writing.lock()).await else {
                tracing::warn!(what = inner.what, "a write is stuck; not waiting for it");
                return;
            };
            let value = inner
                .latest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(value) = value {
                let _running = RunningWrite::start(&inner.write_started);
                let result = (inner.save)(value).await;
                let error = result.as_ref().err().map(ToString::to_string);
                match note(&inner.failing, error.clone()) {
                    Noted::Fine => {}
                    Noted::NewFailure => tracing::error!(
                        what = inner.what,
                        error = error.as_deref().unwrap_or_default(),
                        "saving state failed (retried at each change; logged again when the error changes or it works)"
                    ),
                    Noted::Repeat => tracing::debug!(what = inner.what, "saving state failed again"),
                    Noted::Recovered => tracing::info!(what = inner.what, "saving state works again"),
                }
                if result.is_err() {
                    *inner.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
            }
        }
    }
}

impl<T: Clone + PartialEq + Send + 'static> Persister<T> {
    /// [`submit`](Self::submit), unless `value` equals the last value accepted here (already
    /// written or about to be): an idle daemon's periodic reconcile must not rewrite and fsync
    /// the same file every time. Returns whether it was submitted.
    pub fn submit_changed(&self, value: &T) -> bool {
        let mut last = self.inner.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref() == Some(value) {
            return false;
        }
        *last = Some(value.clone());
        self.submit(value.clone());
        true
    }
}

/// Updates `failing` with a write's `error` (`None`: written) and says what to log.
fn note(failing: &Mutex<Option<String>>, error: Option<String>) -> Noted {
    let mut failing = failing.lock().unwrap_or_else(|p| p.into_inner());
    let noted = match (&*failing, &error) {
        (None, None) => Noted::Fine,
        (Some(_), None) => Noted::Recovered,
        (Some(last), Some(now)) if last == now => Noted::Repeat,
        (_, Some(_)) => Noted::NewFailure,
    };
    *failing = error;
    noted
}

/// Marks a write as running; cleared on drop, also when the flush is cancelled mid-write
/// (otherwise one cancelled write would make every later flush think the disk is stuck).
struct RunningWrite<'a>(&'a Mutex<Option<tokio::time::Instant>>);

impl<'a> RunningWrite<'a> {
    fn start(slot: &'a Mutex<Option<tokio::time::Instant>>) -> Self {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
        Self(slot)
    }
}

impl Drop for RunningWrite<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
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

    #[tokio::test(start_paused = true)]
    async fn an_unchanged_value_is_not_written_again_unless_its_write_failed() {
        let saved: Arc<Mutex<Vec<u32>>> = Arc::default();
        let fail = Arc::new(Mutex::new(false));
        let (log, failing) = (saved.clone(), fail.clone());
        let p = Persister::new("test", move |v: u32| {
            let (log, failing) = (log.clone(), *failing.lock().unwrap());
            async move {
                if failing {
                    return Err(crate::ports::PortError::failed("test", "disk"));
                }
                log.lock().unwrap().push(v);
                Ok(())
            }
            .boxed()
        });
        let written = || saved.lock().unwrap().clone();
        assert!(p.submit_changed(&1));
        p.flush().await;
        assert!(!p.submit_changed(&1), "unchanged: not submitted");
        p.flush().await;
        assert_eq!(written(), vec![1]);
        *fail.lock().unwrap() = true;
        assert!(p.submit_changed(&2));
        p.flush().await;
        *fail.lock().unwrap() = false;
        assert!(p.submit_changed(&2), "its write failed: submitted again");
        p.flush().await;
        assert_eq!(written(), vec![1, 2]);
    }

    #[test]
    fn a_failing_disk_is_logged_once_per_error_and_when_it_works_again() {
        let failing = Mutex::new(None);
        let err = |e: &str| Some(e.to_string());
        assert_eq!(note(&failing, None), Noted::Fine);
        assert_eq!(note(&failing, err("read-only")), Noted::NewFailure);
        assert_eq!(note(&failing, err("read-only")), Noted::Repeat);
        assert_eq!(note(&failing, err("no space")), Noted::NewFailure);
        assert_eq!(note(&failing, None), Noted::Recovered);
        assert_eq!(note(&failing, None), Noted::Fine);
        assert_eq!(note(&failing, err("read-only")), Noted::NewFailure);
    }
}
