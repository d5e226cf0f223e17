//! Fuzz target: any bytes as the check server's answer, sent in pieces to the real probe over
//! loopback, give a verdict with a reason within the check's timeout, never a panic. Needs
//! root: the process moves into a fresh network namespace with only `lo` (nothing leaves it).
//! The first input byte picks the expected body and the piece size.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use netfailover::engine::model::CheckConfig;
use netfailover::engine::ports::Verdict;
use netfailover_lab::hostile::{isolate_current_thread, lo_request, HostileHttp, HttpAnswer};
use netfailover::os::probe::HttpProbe;

const TIMEOUT: Duration = Duration::from_millis(500);

fn server() -> &'static HostileHttp {
    static SERVER: OnceLock<HostileHttp> = OnceLock::new();
    SERVER.get_or_init(|| {
        isolate_current_thread().expect("an isolated namespace (run as root)");
        HostileHttp::start().expect("the loopback server")
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let Some((&knobs, answer)) = data.split_first() else {
        return;
    };
    let response = ["", "ok", "online\n", "x"][usize::from(knobs & 3)];
    server.set(HttpAnswer {
        bytes: answer.to_vec(),
        piece: usize::from(knobs >> 2),
        ..HttpAnswer::default()
    });
    let probe = HttpProbe::new(&CheckConfig {
        uri: format!("http://{}/connectivity-check", server.addr()),
        response: response.into(),
        connect_timeout: TIMEOUT,
        timeout: TIMEOUT,
        ..CheckConfig::default()
    })
    .expect("probe");
    let request = lo_request(Vec::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(probe.run(request));
    assert!(!report.reason.is_empty());
    assert!(report.verdict != Verdict::None, "{report:?}");
    assert!(report.elapsed < TIMEOUT * 4, "{report:?}");
});
