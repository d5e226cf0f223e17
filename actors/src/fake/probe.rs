//! [`FakeProbe`]: the fake of the `Probe` port, answering what the test sets per interface.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::lock;
use crate::model::IfaceName;
use crate::ports::{CheckProgress, Probe, ProbeReport, ProbeRequest, Verdict};

/// What the fake probe answers for one interface.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProbeBehaviour {
    /// Answer this verdict after the delay.
    Answer(Verdict, Duration),
    /// Never finish (a hung check).
    Hang,
    /// Connect to the check server at once, then answer this verdict after the delay (a
    /// working path to a slow server).
    Slow(Verdict, Duration),
}

#[derive(Default)]
struct ProbeState {
    behaviour: HashMap<IfaceName, ProbeBehaviour>,
    checks: Vec<(IfaceName, tokio::time::Instant)>,
    last_request: HashMap<IfaceName, ProbeRequest>,
    /// Interfaces whose next check panics (crash injection through the port).
    panic_next: Vec<IfaceName>,
}

/// A probe whose answers the test sets per interface (FULL after 10 ms by default).
#[derive(Clone, Default)]
pub struct FakeProbe {
    state: Arc<Mutex<ProbeState>>,
}

impl FakeProbe {
    pub fn set(&self, iface: &str, verdict: Verdict) {
        self.set_behaviour(
            iface,
            ProbeBehaviour::Answer(verdict, Duration::from_millis(10)),
        );
    }

    pub fn set_behaviour(&self, iface: &str, b: ProbeBehaviour) {
        let name = IfaceName::new(iface).expect("fake probe: bad interface name in test");
        lock(&self.state).behaviour.insert(name, b);
    }

    /// The next check of `iface` panics inside the caller's task, as a bug in an adapter would:
    /// the Prober that runs it fails and its supervisor restarts it.
    pub fn panic_next(&self, iface: &str) {
        let name = IfaceName::new(iface).expect("fake probe: bad interface name in test");
        lock(&self.state).panic_next.push(name);
    }

    /// The last request checked on `iface`.
    pub fn last_request(&self, iface: &str) -> Option<ProbeRequest> {
        lock(&self.state)
            .last_request
            .iter()
            .find(|(n, _)| n.as_str() == iface)
            .map(|(_, r)| r.clone())
    }

    /// Times of the checks started on `iface`.
    pub fn checks(&self, iface: &str) -> Vec<tokio::time::Instant> {
        lock(&self.state)
            .checks
            .iter()
            .filter(|(n, _)| n.as_str() == iface)
            .map(|(_, t)| *t)
            .collect()
    }
}

impl Probe for FakeProbe {
    fn check(&self, request: ProbeRequest) -> BoxFuture<'static, ProbeReport> {
        self.check_with_progress(request, Arc::default())
    }

    fn check_with_progress(
        &self,
        request: ProbeRequest,
        progress: Arc<CheckProgress>,
    ) -> BoxFuture<'static, ProbeReport> {
        let mut s = lock(&self.state);
        s.last_request
            .insert(request.iface.clone(), request.clone());
        s.checks
            .push((request.iface.clone(), tokio::time::Instant::now()));
        let b = s
            .behaviour
            .get(&request.iface)
            .copied()
            .unwrap_or(ProbeBehaviour::Answer(
                Verdict::Full,
                Duration::from_millis(10),
            ));
        let panics = match s.panic_next.iter().position(|n| n == &request.iface) {
            Some(i) => {
                s.panic_next.remove(i);
                true
            }
            None => false,
        };
        drop(s);
        async move {
            // In the future, not under the lock: the panic unwinds through the caller's task.
            assert!(!panics, "fake probe: panic requested by the test");
            match b {
                ProbeBehaviour::Answer(verdict, delay) | ProbeBehaviour::Slow(verdict, delay) => {
                    if matches!(b, ProbeBehaviour::Slow(..)) {
                        progress.set_connected();
                    }
                    tokio::time::sleep(delay).await;
                    ProbeReport {
                        verdict,
                        reason: format!("fake {verdict:?}"),
                        bytes: 600,
                        dns_bytes: 0,
                        elapsed: delay,
                    }
                }
                ProbeBehaviour::Hang => futures::future::pending().await,
            }
        }
        .boxed()
    }
}
