//! Hostile input at the boundaries, as bounded property tests (a few seconds each; the fuzz
//! targets under `fuzz/` run the same entry points for as long as wanted):
//!
//! - HTTP answers to the probe: arbitrary status lines, headers, plain and chunked bodies in
//!   random pieces, from a loopback server ([`HostileHttp`]) to the real [`HttpProbe`]; plus
//!   endless bodies and headers and a slowloris server;
//! - DNS answers to the probe's resolver: garbage, truncated and bit-flipped answers, wrong
//!   ids, compression loops, truncation flags, absurd counts ([`HostileDns`]);
//! - control-socket lines: arbitrary bytes and request-shaped JSON to `control::answer`, and
//!   random byte streams over a real socket.
//!
//! The probe and its servers run in a namespace of their own that has nothing but `lo`: no
//! answer, however mangled, can make the probe send a packet anywhere else. Netlink messages
//! and configuration files have their property tests next to their parsers
//! (`src/os/netlink/decode.rs`, `tests/it/config.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use netfailover::control::{self, Request};
use netfailover::engine::model::CheckConfig;
use netfailover::engine::ports::{ProbeReport, Verdict};
use netfailover::os::probe::HttpProbe;
use netfailover_lab::hostile::{
    a_answer, lo_request, HostileDns, HostileHttp, HttpAnswer, ENDLESS_CAP,
};
use netfailover_lab::netns::Netns;
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::{block_on_in_netns, run_in_netns};
use proptest::prelude::*;

use crate::daemon::{Stub, StubServer};

/// Check settings of these tests: short, so a hanging case costs little.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_secs(1);
/// A check must end within its total timeout; this is slack for a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

/// The namespace and servers of one test (its cases share them); all removed on drop.
struct Lab {
    http: HostileHttp,
    dns: HostileDns,
    ns: Netns,
}

impl Lab {
    /// Behind `test_setup!` (the caller checks that namespaces can be built).
    fn new() -> Self {
        let ns = Netns::new("hostile").expect("creating the namespace");
        let (http, dns) = run_in_netns(&ns, || {
            (
                HostileHttp::start().expect("HTTP server"),
                HostileDns::start(Box::new(|_| Vec::new())).expect("DNS server"),
            )
        })
        .expect("entering the namespace");
        Self { http, dns, ns }
    }
}

/// Runs `cases` cases of `strategy` through `test` with proptest's runner (shrinking included).
fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// One check through `lo` of the lab namespace.
fn check(lab: &Lab, uri: &str, response: &str, dns: Vec<SocketAddr>) -> ProbeReport {
    let config = CheckConfig {
        uri: uri.to_string(),
        response: response.to_string(),
        connect_timeout: CONNECT_TIMEOUT,
        timeout: TIMEOUT,
        ..CheckConfig::default()
    };
    let probe = HttpProbe::new(&config).expect("probe");
    let request = lo_request(dns);
    block_on_in_netns(&lab.ns, || async move { probe.run(request).await })
        .expect("entering the namespace")
}

fn http_check(lab: &Lab, answer: HttpAnswer, response: &str) -> ProbeReport {
    lab.http.set(answer);
    let uri = format!("http://{}/connectivity-check", lab.http.addr());
    check(lab, &uri, response, Vec::new())
}

/// What every check must give, whatever it was fed.
fn sane(report: &ProbeReport) -> Result<(), TestCaseError> {
    prop_assert!(!report.reason.is_empty(), "{report:?}");
    // `lo` exists and routes to the server: a failure is the network's, never NONE.
    prop_assert!(report.verdict != Verdict::None, "{report:?}");
    prop_assert!(report.elapsed < TIMEOUT + SLACK, "{report:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

fn status_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u16..1000, "[ -~]{0,16}")
            .prop_map(|(code, reason)| format!("HTTP/1.1 {code} {reason}\r\n").into_bytes()),
        (100u16..600).prop_map(|code| format!("HTTP/1.0 {code}\r\n").into_bytes()),
        prop::sample::select(vec![
            "HTTP/2 200\r\n",
            "ICY 200 OK\r\n",
            "HTTP/1.1 204\n",
            "\r\n",
            "HTTP/1.1 99999 X\r\n"
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|mut b| {
            b.extend_from_slice(b"\r\n");
            b
        }),
    ]
}

fn header() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "Content-Length",
            "Transfer-Encoding",
            "X-Online",
            "Location",
            "Connection",
            "Content-Type"
        ])
        .prop_map(str::to_string),
        "[A-Za-z-]{1,20}",
        "[^\r\n:]{0,20}",
    ];
    let value = prop_oneof![
        "[ -~]{0,40}",
        any::<u64>().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "chunked",
            "-1",
            "99999999999999999999999",
            "online",
            "gzip, chunked",
            ""
        ])
        .prop_map(str::to_string),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ];
    (name, value).prop_map(|(n, v)| format!("{n}: {v}\r\n").into_bytes())
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
        0u64..0x1_0000_0000,
    );
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        // Chunked: each chunk with its true size, or a lying one.
        (prop::collection::vec(chunk, 0..6), any::<bool>()).prop_map(|(chunks, end)| {
            let mut out = Vec::new();
            for (data, honest, lie) in chunks {
                let size = if honest { data.len() as u64 } else { lie };
                out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            if end {
                out.extend_from_slice(b"0\r\n\r\n");
            }
            out
        }),
    ]
}

fn http_answer() -> impl Strategy<Value = HttpAnswer> {
    (
        status_line(),
        prop::collection::vec(header(), 0..8),
        any::<bool>(),
        body(),
        0usize..64,
    )
        .prop_map(|(status, headers, end_of_head, body, piece)| {
            let mut bytes = status;
            for h in headers {
                bytes.extend_from_slice(&h);
            }
            if end_of_head {
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(&body);
            HttpAnswer {
                bytes,
                piece,
                ..HttpAnswer::default()
            }
        })
}

#[test]
fn probe_survives_any_http_answer() {
    let lab = test_setup!(Lab::new());
    let response = prop::sample::select(vec!["", "ok", "online\n"]);
    run_cases(128, (http_answer(), response), |(answer, response)| {
        sane(&http_check(&lab, answer, response))
    });
}

#[test]
fn probe_reads_a_bounded_prefix_of_endless_answers() {
    let lab = test_setup!(Lab::new());
    let lab = &lab;
    // The harness reaches the probe: a plain 204 is FULL.
    let report = http_check(
        lab,
        HttpAnswer {
            bytes: b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            ..HttpAnswer::default()
        },
        "",
    );
    assert_eq!(report.verdict, Verdict::Full, "{report:?}");
    let endless = |head: &str| HttpAnswer {
        bytes: head.as_bytes().to_vec(),
        endless: true,
        ..HttpAnswer::default()
    };
    for (what, answer, response) in [
        ("endless body", endless("HTTP/1.1 200 OK\r\n\r\n"), "ok"),
        (
            "endless chunk",
            endless("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000000\r\n"),
            "ok",
        ),
        (
            "content-length 10 GB",
            endless("HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n"),
            "online",
        ),
        (
            "endless header",
            endless("HTTP/1.1 200 OK\r\nX-Padding: "),
            "",
        ),
        ("endless status line", endless("HTTP/1.1 200 "), ""),
    ] {
        let started = Instant::now();
        let report = http_check(lab, answer, response);
        // The probe stopped reading on its own, long before the total timeout: it never
        // buffers more than its cap, and the server could not write the whole endless answer.
        assert!(report.elapsed < TIMEOUT, "{what}: {report:?}");
        assert!(started.elapsed() < TIMEOUT + SLACK, "{what}");
        assert!(
            lab.http.written() < ENDLESS_CAP,
            "{what}: {} B written",
            lab.http.written()
        );
        assert_ne!(report.verdict, Verdict::Full, "{what}: {report:?}");
        eprintln!(
            "{what}: {:?} {:?} after {} ms, server wrote {} B",
            report.verdict,
            report.reason,
            report.elapsed.as_millis(),
            lab.http.written()
        );
    }
}

#[test]
fn a_slowloris_server_is_cut_at_the_total_timeout() {
    let lab = test_setup!(Lab::new());
    let lab = &lab;
    let report = http_check(
        lab,
        HttpAnswer {
            bytes: b"HTTP/1.1 204 No Content\r\nX-Slow: yes\r\n\r\n".to_vec(),
            piece: 1,
            pause: Duration::from_millis(200),
            endless: false,
        },
        "",
    );
    assert_eq!(report.verdict, Verdict::Limited, "{report:?}");
    assert!(report.reason.contains("total timeout"), "{report:?}");
    assert!(
        report.elapsed >= TIMEOUT && report.elapsed < TIMEOUT + SLACK,
        "{report:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------------

/// How the hostile DNS server mangles the correct answer to each query.
#[derive(Clone, Debug)]
enum Mangle {
    Garbage(Vec<u8>),
    Truncate(usize),
    /// Byte changes anywhere but the answer's address (which stays 127.0.0.1).
    Flip(Vec<(usize, u8)>),
    WrongId,
    /// The answer's name is a compression pointer to itself.
    SelfPointer,
    /// A pointer past the end of the message.
    PointerOutside,
    /// TC set, no answer (a resolver may retry over TCP, where nothing listens).
    Truncated,
    /// ANCOUNT 65535 with one record.
    AbsurdCount,
    /// Garbage first, then the correct answer (a forged reply racing the real one).
    GarbageThenAnswer(Vec<u8>),
    Nothing,
}

fn mangle() -> impl Strategy<Value = Mangle> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128).prop_map(Mangle::Garbage),
        (0usize..64).prop_map(Mangle::Truncate),
        prop::collection::vec((0usize..64, any::<u8>()), 1..6).prop_map(Mangle::Flip),
        Just(Mangle::WrongId),
        Just(Mangle::SelfPointer),
        Just(Mangle::PointerOutside),
        Just(Mangle::Truncated),
        Just(Mangle::AbsurdCount),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Mangle::GarbageThenAnswer),
        Just(Mangle::Nothing),
    ]
}

fn mangled(query: &[u8], how: &Mangle) -> Vec<Vec<u8>> {
    let Some(good) = a_answer(query, Ipv4Addr::LOCALHOST) else {
        return Vec::new();
    };
    // The answer record is the last 16 bytes (pointer, type, class, TTL, length, address).
    let answer_at = good.len().saturating_sub(16);
    let mut reply = good.clone();
    match how {
        Mangle::Garbage(bytes) => return vec![bytes.clone()],
        Mangle::Truncate(keep) => reply.truncate(*keep),
        Mangle::Flip(flips) => {
            for (at, value) in flips {
                if let Some(b) = reply.get_mut(*at % (good.len() - 4)) {
                    *b = *value;
                }
            }
        }
        Mangle::WrongId => reply[1] = reply[1].wrapping_add(1),
        Mangle::SelfPointer => {
            let [hi, lo] = (answer_at as u16 | 0xc000).to_be_bytes();
            reply[answer_at] = hi;
            reply[answer_at + 1] = lo;
        }
        Mangle::PointerOutside => {
            reply[answer_at] = 0xff;
            reply[answer_at + 1] = 0xff;
        }
        Mangle::Truncated => {
            reply.truncate(answer_at);
            reply[2] |= 0x02;
            reply[7] = 0;
        }
        Mangle::AbsurdCount => {
            reply[6] = 0xff;
            reply[7] = 0xff;
        }
        Mangle::GarbageThenAnswer(bytes) => return vec![bytes.clone(), good],
        Mangle::Nothing => {}
    }
    vec![reply]
}

fn dns_check(lab: &Lab, how: Mangle) -> ProbeReport {
    lab.http.set(HttpAnswer {
        bytes: b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        ..HttpAnswer::default()
    });
    lab.dns.set(Box::new(move |query| mangled(query, &how)));
    let uri = format!("http://check.netfailover.test:{}/", lab.http.addr().port());
    check(lab, &uri, "", vec![lab.dns.addr()])
}

#[test]
fn probe_survives_any_dns_answer() {
    let lab = test_setup!(Lab::new());
    run_cases(48, mangle(), |how| {
        let report = dns_check(&lab, how.clone());
        sane(&report)?;
        if report.verdict != Verdict::Full {
            prop_assert!(report.reason.starts_with("DNS:"), "{how:?}: {report:?}");
        }
        Ok(())
    });
}

#[test]
fn dns_harness_reaches_the_probe() {
    let lab = test_setup!(Lab::new());
    let lab = &lab;
    let before = lab.dns.queries();
    let good = dns_check(lab, Mangle::Nothing);
    assert_eq!(good.verdict, Verdict::Full, "{good:?}");
    assert!(lab.dns.queries() > before);
    for how in [Mangle::WrongId, Mangle::SelfPointer, Mangle::Truncate(20)] {
        let report = dns_check(lab, how.clone());
        assert_eq!(report.verdict, Verdict::Limited, "{how:?}: {report:?}");
        assert!(report.reason.starts_with("DNS:"), "{how:?}: {report:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Control socket
// ---------------------------------------------------------------------------------------------

fn request_like() -> impl Strategy<Value = Vec<u8>> {
    let cmd = prop_oneof![
        prop::sample::select(vec![
            "status", "check", "kill", "events", "STATUS", "", "reboot"
        ])
        .prop_map(str::to_string),
        ".{0,20}",
    ];
    let arg = prop_oneof![
        "[a-z0-9:-]{0,20}".prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!({"nested": [1, 2, {"x": null}]})),
    ];
    (
        cmd,
        prop::option::of(arg.clone()),
        prop::option::of(arg),
        any::<bool>(),
    )
        .prop_map(|(cmd, iface, actor, extra)| {
            let mut object = serde_json::json!({ "cmd": cmd });
            if let Some(v) = iface {
                object["iface"] = v;
            }
            if let Some(v) = actor {
                object["actor"] = v;
            }
            if extra {
                object["unexpected"] = serde_json::Value::Bool(true);
            }
            object.to_string().into_bytes()
        })
}

fn answer_line(line: &[u8]) -> control::Reply {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(control::answer(line, &Stub))
}

fn sane_reply(reply: &control::Reply) -> Result<(), TestCaseError> {
    if reply.ok {
        prop_assert!(reply.error.is_none());
    } else {
        prop_assert!(
            reply.error.as_ref().is_some_and(|e| !e.is_empty()),
            "{reply:?}"
        );
    }
    let text = serde_json::to_string(reply).expect("a reply serialises");
    prop_assert!(!text.contains('\n'));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn control_answers_any_line(line in prop::collection::vec(any::<u8>(), 0..256)) {
        sane_reply(&answer_line(&line))?;
    }

    #[test]
    fn control_answers_any_request_shaped_line(line in request_like()) {
        sane_reply(&answer_line(&line))?;
    }
}

#[test]
fn control_survives_deep_nesting() {
    for depth in [100, 10_000, 60_000] {
        let line = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let reply = answer_line(line.as_bytes());
        assert!(
            !reply.ok && reply.error.is_some(),
            "depth {depth}: {reply:?}"
        );
        let object = format!("{}{}", "{\"cmd\":".repeat(depth), "}".repeat(depth));
        assert!(!answer_line(object.as_bytes()).ok);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random streams over a real connection: one reply per complete line, in order, and the
    /// server still answers afterwards.
    #[test]
    fn control_socket_answers_each_line_of_any_stream(
        lines in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..64),
            request_like(),
        ], 1..12),
    ) {
        let server = StubServer::start(control::IDLE_TIMEOUT);
        let mut conn = server.connect();
        let mut reader = BufReader::new(conn.try_clone().expect("clone"));
        let mut stream = Vec::new();
        for line in &lines {
            stream.extend_from_slice(line);
            stream.push(b'\n');
        }
        conn.write_all(&stream).expect("write");
        for _ in &lines {
            let mut reply = String::new();
            reader.read_line(&mut reply).expect("a reply line");
            let reply: control::Reply = serde_json::from_str(&reply).expect("a JSON reply");
            sane_reply(&reply)?;
        }
        let status = crate::daemon::ask(&server.socket(), Request::Status);
        prop_assert!(status.is_ok(), "{status:?}");
    }
}
