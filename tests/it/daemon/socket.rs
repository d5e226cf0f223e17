//! The control socket: against a stub engine, against a client running as `nobody`, and with
//! the metrics on the real engine (fake ports, in process).

use super::*;

#[test]
fn control_socket_answers_every_verb() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let mode = std::fs::metadata(server.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    let status = ask(&server.socket(), Request::Status).unwrap();
    assert_eq!(status["connectivity"], "FULL");
    assert_eq!(status["actors"][0]["name"], "dispatcher");
    let check = ask(
        &server.socket(),
        Request::Check {
            iface: "eth0".into(),
        },
    )
    .unwrap();
    assert_eq!(check["verdict"], "FULL");
    let err = ask(
        &server.socket(),
        Request::Check {
            iface: "wlan9".into(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("not managed"), "{err}");
    let bad_name = ask(
        &server.socket(),
        Request::Check {
            iface: "a-name-far-too-long".into(),
        },
    )
    .unwrap_err();
    assert!(bad_name.to_string().contains("15"), "{bad_name}");
    assert!(ask(
        &server.socket(),
        Request::Kill {
            actor: "dispatcher".into()
        }
    )
    .is_ok());
    assert!(ask(&server.socket(), Request::Kill { actor: "x".into() }).is_err());
    assert_eq!(
        ask(&server.socket(), Request::Events).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn control_socket_survives_garbage_on_one_connection() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let mut conn = server.connect();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for garbage in [
        "not json\n",
        "{\"cmd\":\"reboot\"}\n",
        "\n",
        "[1,2,3]\n",
        "\u{0}\u{1}\u{2}\n",
    ] {
        conn.write_all(garbage.as_bytes()).unwrap();
        let reply = reply_line(&mut reader);
        assert_eq!(reply["ok"], false, "{garbage:?}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Invalid UTF-8 too.
    conn.write_all(b"\xff\xfe\n").unwrap();
    assert_eq!(reply_line(&mut reader)["ok"], false);
    // Still usable.
    conn.write_all(b"{\"cmd\":\"status\"}\n").unwrap();
    let reply = reply_line(&mut reader);
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["data"]["connectivity"], "FULL");
}

#[test]
fn control_socket_drops_half_lines_quietly() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    {
        let mut conn = server.connect();
        conn.write_all(b"{\"cmd\":\"sta").unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        // No reply for a half line: the server just closes.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    }
    assert!(ask(&server.socket(), Request::Status).is_ok());
}

#[test]
fn control_socket_rejects_a_10mb_line_without_buffering_it() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let conn = server.connect();
    let mut writer = conn.try_clone().unwrap();
    // Write from another thread: the server answers as soon as the line passes 64 KiB.
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..10 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"\n{\"cmd\":\"status\"}\n");
    });
    let mut reader = BufReader::new(conn);
    let reply = reply_line(&mut reader);
    assert_eq!(reply["ok"], false);
    assert!(reply["error"].as_str().unwrap().contains("longer than"));
    // The connection is closed after the error: the status request after the long line is
    // never answered.
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    sender.join().unwrap();
    assert!(ask(&server.socket(), Request::Status).is_ok());
}

#[test]
fn control_socket_serves_many_clients_at_once() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let path = server.socket();
    let clients: Vec<_> = (0..100)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || ask(&path, Request::Status).map(|_| ()))
        })
        .collect();
    for c in clients {
        c.join().unwrap().unwrap();
    }
}

#[test]
fn control_socket_closes_idle_connections() {
    let server = StubServer::start(Duration::from_millis(200));
    let mut conn = server.connect();
    let mut buf = [0u8; 16];
    // EOF (0 bytes) once the idle timeout passes; the read timeout bounds the wait.
    assert_eq!(conn.read(&mut buf).unwrap(), 0);
}

#[test]
fn control_socket_refuses_a_second_daemon_and_replaces_a_stale_file() {
    let server = StubServer::start(control::IDLE_TIMEOUT);
    match control::bind(&server.socket()) {
        Err(ControlError::AlreadyRunning { .. }) => {}
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    let dir = TempDir::new("stale");
    let stale = dir.path().join("sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { control::bind(&stale).unwrap() });
}

#[test]
fn client_says_when_the_daemon_is_not_running() {
    let dir = TempDir::new("none");
    let err = ask(&dir.path().join("sock"), Request::Status).unwrap_err();
    assert!(matches!(err, ControlError::NotRunning { .. }), "{err}");
    assert!(err.to_string().contains("not running"));
}

/// Runs the CLI as `nobody`.
fn cli_as_nobody(args: &[&str]) -> std::process::Output {
    std::process::Command::new("timeout")
        .args([
            "20",
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
        ])
        .arg(env!("CARGO_BIN_EXE_netfailover"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn control_socket_refuses_a_non_root_peer() {
    test_setup!();
    let server = StubServer::start(control::IDLE_TIMEOUT);
    let socket = server.socket();
    let socket_arg = socket.to_str().unwrap();
    // Mode 0600: the kernel refuses the connection.
    let out = cli_as_nobody(&["status", "--socket", socket_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
    // Even if someone loosens the mode, the peer-credential check refuses.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = cli_as_nobody(&["status", "--socket", socket_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("uid 0"), "{stderr}");
    // Root still gets through.
    assert!(ask(&socket, Request::Status).is_ok());
}

#[actix_rt::test]
async fn control_socket_and_metrics_drive_the_engine() {
    use netfailover::daemon::EngineBackend;
    use netfailover::engine::fake::FakeWorld;
    use netfailover::engine::model::{Config, LinkKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let world = FakeWorld::new();
    world.kernel.add_link("eth0", LinkKind::Other);
    world.probe.set("eth0", Verdict::Full);
    world
        .kernel
        .add_route_by_hand(netfailover::engine::model::KernelRoute {
            family: netfailover::engine::model::Family::V4,
            ifindex: 2,
            gateway: Some("192.0.2.1".parse().unwrap()),
            metric: 100,
            protocol: 4,
        });
    let mut config = Config::default();
    config.check.interval = Duration::from_secs(1);
    let engine = netfailover::engine::start(config, world.ports());

    let dir = TempDir::new("engine");
    let socket = dir.path().join("sock");
    let listener = control::bind(&socket).unwrap();
    tokio::task::spawn_local(control::serve(
        listener,
        Rc::new(EngineBackend(engine.clone())),
    ));
    let metrics_listener = netfailover::metrics::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let board = engine.clone();
    tokio::task::spawn_local(netfailover::metrics::serve(
        metrics_listener,
        Rc::new(move || board.status()),
    ));

    let status_of = |socket: PathBuf| async move {
        let data = control::request(&socket, &Request::Status).await.ok()?;
        serde_json::from_value::<EngineStatus>(data).ok()
    };
    // The adopted eth0 becomes FULL.
    let mut full = false;
    for _ in 0..100 {
        if let Some(s) = status_of(socket.clone()).await {
            full = s
                .interfaces
                .iter()
                .any(|i| i.name.as_str() == "eth0" && i.connectivity == Connectivity::Full);
            if full {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(full, "eth0 never FULL");

    // Kill every actor over the socket; each is running again with its kill counted.
    let actors: Vec<String> = status_of(socket.clone())
        .await
        .unwrap()
        .actors
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert!(actors.iter().any(|a| a == "prober:eth0"), "{actors:?}");
    for actor in &actors {
        control::request(
            &socket,
            &Request::Kill {
                actor: actor.clone(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("kill {actor}: {e}"));
        let mut back = false;
        for _ in 0..100 {
            if let Some(s) = status_of(socket.clone()).await {
                back = s
                    .actors
                    .iter()
                    .any(|a| &a.name == actor && a.running && a.kills >= 1);
                if back {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(back, "{actor} not back");
    }
    let check = control::request(
        &socket,
        &Request::Check {
            iface: "eth0".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(check["verdict"], "FULL");
    let events = control::request(&socket, &Request::Events).await.unwrap();
    assert!(events.as_array().is_some_and(|e| !e.is_empty()), "{events}");

    // A scrape reflects the same board.
    let mut conn = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("netfailover_interface_link_up{iface=\"eth0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("netfailover_actor_restarts_total{actor=\"dispatcher\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("netfailover_checks_total{iface=\"eth0\",result=\"FULL\"}"),
        "{text}"
    );

    engine.shutdown().await.unwrap();
}
