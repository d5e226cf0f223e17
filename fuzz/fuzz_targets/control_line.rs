//! Fuzz target: any request line on the control socket gets one well-formed reply line and
//! never panics (`control::answer`, against a stand-in engine).
#![no_main]

use std::time::Duration;

use futures::future::LocalBoxFuture;
use libfuzzer_sys::fuzz_target;
use netfailover::control::{self, ControlBackend};
use netfailover::engine::model::IfaceName;
use netfailover::engine::ports::{ProbeReport, Verdict};
use netfailover::engine::EngineError;
use netfailover::engine::status::{EngineStatus, HistoryEntry};

struct Stub;

impl ControlBackend for Stub {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus> {
        Box::pin(async { EngineStatus::default() })
    }

    fn check(&self, _: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>> {
        Box::pin(async {
            Ok(ProbeReport {
                verdict: Verdict::Full,
                reason: "HTTP 204".into(),
                bytes: 0,
                dns_bytes: 0,
                elapsed: Duration::ZERO,
            })
        })
    }

    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { Err(EngineError::UnknownActor { name: actor }) })
    }

    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>> {
        Box::pin(async { Vec::new() })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let reply = runtime.block_on(control::answer(data, &Stub));
    assert!(reply.ok || reply.error.as_ref().is_some_and(|e| !e.is_empty()));
    let line = serde_json::to_string(&reply).expect("a reply serialises");
    assert!(!line.contains('\n'));
});
