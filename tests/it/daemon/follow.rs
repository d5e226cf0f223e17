//! `follow`: the snapshot, then every change (stub engine, then the real daemon).

use super::*;

use netfailover::agent::Subscription;
use netfailover::engine::model::{Event, EventKind};
use netfailover::engine::observe::{EngineEvent, Snapshot};
use netfailover::engine::status::LinkState;
use tokio::sync::broadcast;

/// Buffer of the stub's change channel: small, so a stalled reader lags quickly.
const STUB_BUFFER: usize = 8;

/// The stub plus a change channel the test feeds.
struct FollowStub(broadcast::Sender<EngineEvent>);

impl ControlBackend for FollowStub {
    fn status(&self) -> LocalBoxFuture<'_, EngineStatus> {
        Stub.status()
    }
    fn check(&self, iface: IfaceName) -> LocalBoxFuture<'_, Result<ProbeReport, EngineError>> {
        Box::pin(async move {
            Err(EngineError::CannotCheck {
                iface: iface.to_string(),
                reason: "not in this stub".into(),
            })
        })
    }
    fn kill(&self, actor: String) -> LocalBoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move { Err(EngineError::UnknownActor { name: actor }) })
    }
    fn events(&self) -> LocalBoxFuture<'_, Vec<HistoryEntry>> {
        Box::pin(async { Vec::new() })
    }
    fn subscribe(&self) -> Option<Subscription> {
        let tx = self.0.clone();
        Some(Subscription::new(move || {
            let mut snapshot = Snapshot::default();
            snapshot.status.connectivity = Connectivity::Full;
            (snapshot, tx.subscribe())
        }))
    }
}

fn link_change(n: u32) -> EngineEvent {
    let (link, previous) = if n.is_multiple_of(2) {
        (LinkState::Down, LinkState::Up)
    } else {
        (LinkState::Up, LinkState::Down)
    };
    EngineEvent::Link {
        iface: IfaceName::new("eth0").unwrap(),
        link,
        previous,
    }
}

fn down_event(id: u64) -> EngineEvent {
    EngineEvent::Event(Event {
        id,
        kind: EventKind::Down,
        iface: Some(IfaceName::new("eth0").unwrap()),
        state: Connectivity::None,
        previous: Connectivity::Full,
        reason: "carrier lost".into(),
        connection_id: None,
        connection_uuid: None,
        ip4_gateway: None,
        ip4_nameservers: vec![],
        at_unix_ms: 0,
        recovery: None,
        budget: None,
    })
}

/// Sends `{"cmd":"follow"}` on a new connection.
fn follower(server: &StubServer) -> BufReader<UnixStream> {
    let mut s = server.connect();
    s.write_all(b"{\"cmd\":\"follow\"}\n").unwrap();
    BufReader::new(s)
}

#[test]
fn follow_streams_the_snapshot_then_each_change_and_tells_a_slow_reader_it_lagged() {
    let (tx, _) = broadcast::channel(STUB_BUFFER);
    let feed = tx.clone();
    let server = StubServer::start_with(control::IDLE_TIMEOUT, move || Rc::new(FollowStub(tx)));
    let mut reader = follower(&server);
    let first = reply_line(&mut reader);
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["protocol"], control::PROTOCOL_VERSION);
    assert_eq!(first["status"]["connectivity"], "FULL");
    assert!(first["events"].is_array());

    feed.send(link_change(0)).unwrap();
    let link = reply_line(&mut reader);
    assert_eq!(
        link,
        serde_json::json!({"type":"link","iface":"eth0","link":"down","previous":"up"})
    );
    // A dispatcher event: its own fields, and the shape of an `events --json` entry.
    feed.send(down_event(7)).unwrap();
    let down = reply_line(&mut reader);
    assert_eq!(down["type"], "event");
    assert_eq!(
        (&down["id"], &down["kind"], &down["iface"]),
        (&7.into(), &"down".into(), &"eth0".into())
    );
    assert_eq!(
        (&down["state"], &down["previous"]),
        (&"NONE".into(), &"FULL".into())
    );
    assert_eq!(down["reason"], "carrier lost");
    let entry: EventRecord = serde_json::from_value(down.clone()).unwrap();
    assert_eq!((entry.event.id, entry.delivered), (7, false));

    // A reader that stops reading: the server blocks on its socket, never the sender, and the
    // reader is told how much it missed, then gets a fresh snapshot.
    let sent = 20_000;
    for n in 0..sent {
        let _ = feed.send(link_change(n));
    }
    let mut lagged = None;
    let mut lines = 0;
    while lines < sent + 10 {
        let line = reply_line(&mut reader);
        lines += 1;
        if line["type"] == "lagged" {
            lagged = Some(line["count"].as_u64().unwrap());
            let next = reply_line(&mut reader);
            assert_eq!(next["type"], "snapshot", "a snapshot follows a lag");
            break;
        }
    }
    let missed = lagged.expect("no lagged line");
    assert!(missed > 0 && missed < sent as u64, "{missed}");
    // Still streaming after the lag. A marker can itself be lost to a second lag while the
    // server drains the burst (it is then part of that lag's fresh snapshot), so send markers
    // until one comes through.
    reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut arrived = false;
    // Kept across timeouts: a timed-out read leaves the partial line in it.
    let mut line = String::new();
    'markers: for marker in 0..40 {
        feed.send(down_event(1000 + marker)).unwrap();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if !line.ends_with('\n') {
                continue;
            }
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            if value["type"] == "event" {
                assert!(value["id"].as_u64().unwrap() >= 1000, "{value}");
                arrived = true;
                break 'markers;
            }
            line.clear();
        }
    }
    assert!(arrived, "the marker never arrived");
}

#[test]
fn a_follower_vanishing_mid_stream_disturbs_nothing() {
    let (tx, _) = broadcast::channel(STUB_BUFFER);
    let feed = tx.clone();
    let server = StubServer::start_with(control::IDLE_TIMEOUT, move || Rc::new(FollowStub(tx)));
    for round in 0..3 {
        let mut reader = follower(&server);
        assert_eq!(reply_line(&mut reader)["type"], "snapshot");
        feed.send(link_change(round)).unwrap();
        assert_eq!(reply_line(&mut reader)["type"], "link");
        drop(reader); // gone mid-stream, without a word
        for n in 0..100 {
            let _ = feed.send(link_change(n));
        }
    }
    // The server noticed each departure: no follower left on the channel.
    let gone = wait_for(Duration::from_secs(10), || {
        (feed.receiver_count() == 0).then_some(())
    });
    assert!(gone.is_some(), "{} followers left", feed.receiver_count());
    assert!(ask(&server.socket(), Request::Status).is_ok());
    let version = ask(&server.socket(), Request::Version).unwrap();
    assert_eq!(version["protocol"], control::PROTOCOL_VERSION);
}

/// Lines of `netfailover events --follow --json`, stamped as they arrive.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<(std::time::Instant, serde_json::Value)>,
}

impl Follower {
    fn start(e2e: &E2e) -> Self {
        let mut child = std::process::Command::new("timeout")
            .arg("120")
            .arg(env!("CARGO_BIN_EXE_netfailover"))
            .args(["events", "--follow", "--json", "--socket"])
            .arg(e2e.socket())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if tx.send((std::time::Instant::now(), value)).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line, within a generous bound.
    fn next(&self) -> Option<(std::time::Instant, serde_json::Value)> {
        self.lines.recv_timeout(Duration::from_secs(20)).ok()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_follow_sees_a_carrier_loss_in_order_and_survives_the_client_vanishing() {
    let e2e = test_setup!(E2e::start(0));
    let follower = Follower::start(&e2e);
    let (_, snapshot) = follower.next().expect("no snapshot");
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let eth0 = snapshot["status"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "eth0")
        .cloned()
        .unwrap();
    assert_eq!(eth0["link"], "up");
    let metric = eth0["effective_metric"].clone();
    assert!(metric.is_u64(), "{eth0}");

    let pulled = std::time::Instant::now();
    e2e.world.pull_cable("eth0").unwrap();
    let mut seen = Vec::new();
    while let Some((at, line)) = follower.next() {
        let done = line["type"] == "event" && line["kind"] == "down";
        seen.push((at, line));
        if done {
            break;
        }
    }
    let of_eth0: Vec<&serde_json::Value> = seen
        .iter()
        .map(|(_, l)| l)
        .filter(|l| l["iface"] == "eth0")
        .collect();
    let kinds: Vec<String> = of_eth0
        .iter()
        .map(|l| {
            format!(
                "{}{}",
                l["type"].as_str().unwrap(),
                l["kind"]
                    .as_str()
                    .map(|k| format!(":{k}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let at = |want: &str| {
        kinds
            .iter()
            .position(|k| k == want)
            .unwrap_or_else(|| panic!("no {want} in {kinds:?}; log:\n{}", e2e.log()))
    };
    // Link down → route gone → NONE → the dispatcher's `down`.
    assert!(
        at("link") < at("route") && at("route") < at("connectivity"),
        "{kinds:?}"
    );
    assert!(at("connectivity") < at("event:down"), "{kinds:?}");
    let link = of_eth0[at("link")];
    assert_eq!(
        (&link["previous"], &link["link"]),
        (&"up".into(), &"down".into())
    );
    let route = of_eth0[at("route")];
    assert_eq!(route["old_metric"], metric);
    assert!(route["new_metric"].is_null(), "{route}");
    assert_eq!(of_eth0[at("connectivity")]["state"], "NONE");
    let (down_at, down) = seen.last().unwrap();
    eprintln!(
        "events --follow: carrier pulled → down event line after {:?}",
        down_at.duration_since(pulled)
    );
    assert_eq!(down["event"]["kind"], "down", "an events --json entry too");
    assert!(
        down_at.duration_since(pulled) < Duration::from_secs(1),
        "the down event took {:?}",
        down_at.duration_since(pulled)
    );

    // The client vanishes mid-stream (SIGKILL), changes keep coming: the daemon goes on.
    follower.kill();
    e2e.world.plug_cable("eth0").unwrap();
    let back = wait_for(Duration::from_secs(20), || {
        let s = e2e.status()?;
        let eth0 = s.interfaces.iter().find(|i| i.name.as_str() == "eth0")?;
        (eth0.link == "up" && eth0.effective_metric.is_some()).then_some(())
    });
    assert!(
        back.is_some(),
        "daemon stuck after the follower vanished; log:\n{}",
        e2e.log()
    );
    // A new follower starts from a snapshot with eth0 up again.
    let again = Follower::start(&e2e);
    let (_, snapshot) = again.next().expect("no snapshot for a new follower");
    assert_eq!(snapshot["type"], "snapshot");
    again.kill();

    // The Python example client (examples/control.py) follows the same stream.
    if netfailover_lab::setup::require_tool(
        "the Python example client (examples/control.py)",
        "python3",
    ) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/control.py");
        let mut client = std::process::Command::new("timeout")
            .args(["30", "python3"])
            .arg(script)
            .arg("--socket")
            .arg(e2e.socket())
            .args(["--count", "3"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = client.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        // Pull the cable once it follows (its snapshot is printed).
        let mut text = String::new();
        while let Ok(line) = lines.recv_timeout(Duration::from_secs(20)) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("snapshot:") {
                e2e.world.pull_cable("eth0").unwrap();
            }
        }
        let status = client.wait().unwrap();
        assert!(status.success(), "{text}");
        assert!(
            text.contains("protocol 1") && text.contains("snapshot:"),
            "{text}"
        );
        assert!(text.contains("eth0: link down"), "{text}");
    }
    assert!(!e2e.log().contains("panicked"), "{}", e2e.log());
}
