//! Fuzz target: any bytes as the DNS server's answer (with the query's id, so the resolver
//! parses them) give the probe a verdict with a reason, never a panic. Needs root: the process
//! moves into a fresh network namespace with only `lo`, so even an answer naming some real
//! address cannot send a packet off the machine.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use netfailover::engine::model::CheckConfig;
use netfailover::engine::ports::Verdict;
use netfailover_lab::hostile::{
    isolate_current_thread, lo_request, HostileDns, HostileHttp, HttpAnswer,
};
use netfailover::os::probe::HttpProbe;

const TIMEOUT: Duration = Duration::from_millis(500);

struct Servers {
    http: HostileHttp,
    dns: HostileDns,
    answer: Arc<Mutex<Vec<u8>>>,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        isolate_current_thread().expect("an isolated namespace (run as root)");
        let http = HostileHttp::start().expect("HTTP server");
        http.set(HttpAnswer {
            bytes: b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            ..HttpAnswer::default()
        });
        let answer = Arc::new(Mutex::new(Vec::new()));
        let shared = answer.clone();
        let dns = HostileDns::start(Box::new(move |query| {
            let mut reply = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
            // The query's id, so the answer is not dropped before it is parsed.
            if let (Some(id), Some(slot)) = (query.get(..2), reply.get_mut(..2)) {
                slot.copy_from_slice(id);
            }
            vec![reply]
        }))
        .expect("DNS server");
        Servers { http, dns, answer }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = servers();
    *s.answer.lock().unwrap_or_else(|p| p.into_inner()) = data.to_vec();
    let probe = HttpProbe::new(&CheckConfig {
        uri: format!("http://check.netfailover.test:{}/", s.http.addr().port()),
        connect_timeout: TIMEOUT,
        timeout: TIMEOUT,
        ..CheckConfig::default()
    })
    .expect("probe");
    let request = lo_request(vec![s.dns.addr()]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(probe.run(request));
    assert!(!report.reason.is_empty());
    assert!(report.verdict != Verdict::None, "{report:?}");
    assert!(report.elapsed < TIMEOUT * 4, "{report:?}");
});
