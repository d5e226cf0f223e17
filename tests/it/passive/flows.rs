//! Passive health for the traffic a device carries beyond the daemon's own sockets, against
//! the real kernel in the lab world at `interval` 3600 with every other setting at its default
//! (the device NATs a container bridge, as a container engine does, so connection tracking is
//! on): a container's TCP connection and a UDP client that backs off are watched through
//! conntrack; LAN sessions to the gateway never speak for the uplink; a slow check server and a
//! dead peer never fail over a working uplink.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netfailover::engine::model::Connectivity;
use netfailover_lab::apps::{AppLab, BusyClient, EchoServer, DEAD_PEER, ECHO};
use netfailover_lab::container::masqueraded_container;
use netfailover_lab::internet::Behaviour;
use netfailover_lab::netns::{wait_for, Netns};
use netfailover_lab::test_setup;
use netfailover_lab::uplinks::run_in_netns;

use crate::daemon::TempDir;

/// Bounds asserted (generous; the benchmark measures the figures).
const TO_BACKUP: Duration = Duration::from_secs(6);
const APP_BACK: Duration = Duration::from_secs(8);
const UDP_NOTICED: Duration = Duration::from_secs(8);
/// Application message rate and reconnect patience (as in `daemon.rs`).
const GAP: Duration = Duration::from_millis(250);
const PATIENCE: Duration = Duration::from_secs(1);
/// The container behind the device's NAT bridge (which also turns conntrack on).
fn container(lab: &AppLab, name: &str) -> Netns {
    masqueraded_container(&lab.world.device, name).expect("container namespace")
}

fn echoes_since(app: &BusyClient, since: Instant) -> bool {
    app.round_trips().iter().any(|t| t.at > since)
}

#[test]
fn container_blackhole_moves_the_route_and_the_app_follows_at_interval_3600() {
    test_setup!();
    // Measured: blackhole → backup within TO_BACKUP, the app back within APP_BACK.
    let _serial = crate::heavy_test_lock();
    let dir = TempDir::new("pas-ctr");
    let lab = AppLab::start(Path::new(env!("CARGO_BIN_EXE_netfailover")), dir.path()).unwrap();
    let ctr = container(&lab, "pas-ctr");
    let app = BusyClient::start(&ctr, SocketAddr::from((ECHO, 7)), GAP, PATIENCE).unwrap();
    let warm = wait_for(Duration::from_secs(10), || {
        let recent = Instant::now().checked_sub(Duration::from_secs(1))?;
        echoes_since(&app, recent).then_some(())
    });
    assert!(warm.is_some(), "the container's app runs");
    assert_eq!(lab.route_dev(ECHO).as_deref(), Some("eth0"));
    std::thread::sleep(Duration::from_secs(3));

    let t0 = Instant::now();
    let took = lab
        .time_route_leaves("eth0", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("route never left eth0; log:\n{}", lab.log()));
    assert!(
        took <= TO_BACKUP,
        "blackhole → backup took {took:?}; log:\n{}",
        lab.log()
    );
    // eth0 stays blackholed: an echo after the move went through the backup.
    let moved = t0 + took;
    let back = wait_for(APP_BACK, || echoes_since(&app, moved).then(|| t0.elapsed()));
    let back = back.unwrap_or_else(|| panic!("the container's app never echoed again"));
    assert!(back <= APP_BACK, "app echoing after {back:?}");
    let status = lab.status().unwrap();
    let eth0 = status.interfaces.iter().find(|i| i.name.as_str() == "eth0");
    let passive = &eth0.unwrap().passive;
    assert_eq!(passive.sees, "sockets+conntrack", "{passive:?}");
    assert!(
        passive
            .last_trigger
            .as_deref()
            .unwrap_or("")
            .contains(&ECHO.to_string()),
        "the container's flow named the stall: {passive:?}"
    );
    assert!(
        lab.log().contains("nf_conntrack_acct"),
        "accounting enabled, logged"
    );
}

/// A UDP echo server at `addr` in `ns` until the returned flag is cleared.
fn udp_echo(ns: &Netns, addr: SocketAddr) -> Arc<AtomicBool> {
    let sock = run_in_netns(ns, || UdpSocket::bind(addr)).unwrap().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let flag = run.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    });
    run
}

/// A UDP request/response client on the device: a request every `GAP` while answered; an
/// unanswered request is resent after 1 s, then 2, 4, 8 s (capped). Returns the answer times.
fn udp_client(ns: &Netns, server: SocketAddr, run: Arc<AtomicBool>) -> Arc<Mutex<Vec<Instant>>> {
    let sock = run_in_netns(ns, || UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let log = answers.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut backoff = Duration::from_secs(1);
        while run.load(Ordering::Relaxed) {
            let _ = sock.send_to(b"req", server);
            sock.set_read_timeout(Some(backoff)).ok();
            if sock.recv_from(&mut buf).is_ok() {
                log.lock().unwrap().push(Instant::now());
                backoff = Duration::from_secs(1);
                std::thread::sleep(GAP);
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        }
    });
    answers
}

#[test]
fn udp_client_that_backs_off_is_noticed_beside_a_lan_session() {
    test_setup!();
    // Measured: UDP blackhole → backup within UDP_NOTICED.
    let _serial = crate::heavy_test_lock();
    let dir = TempDir::new("pas-udp");
    let lab = AppLab::start(Path::new(env!("CARGO_BIN_EXE_netfailover")), dir.path()).unwrap();
    let _ctr = container(&lab, "pas-udp-ctr");
    let server = SocketAddr::from((ECHO, 5353));
    let run = udp_echo(&lab.world.internet, server);
    let answers = udp_client(&lab.world.device, server, run.clone());
    // A LAN session to eth0's gateway (an SSH session, a PLC), busy beside it.
    let uplink = lab.world.uplink("eth0").unwrap();
    let gateway = SocketAddr::from((uplink.gateway, 2222));
    let _lan_server = EchoServer::start(&uplink.isp, gateway).unwrap();
    let lan = BusyClient::start(&lab.world.device, gateway, GAP, PATIENCE).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        !answers.lock().unwrap().is_empty(),
        "the UDP client is answered"
    );
    assert!(!lan.round_trips().is_empty(), "the LAN session runs");

    let took = lab
        .time_route_leaves("eth0", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("route never left eth0; log:\n{}", lab.log()));
    run.store(false, Ordering::Relaxed);
    assert!(
        took <= UDP_NOTICED,
        "UDP blackhole → backup took {took:?}; log:\n{}",
        lab.log()
    );
    let since = Instant::now() - Duration::from_secs(1);
    assert!(
        lan.round_trips().iter().any(|t| t.at > since),
        "the LAN session kept working (the blackhole is beyond the ISP)"
    );
}

#[test]
fn slow_check_server_lan_session_and_dead_peer_cause_no_failover() {
    test_setup!();
    // Timed by the product: the 1.5 s answers must stay within the check timeout for 60 s.
    let _serial = crate::heavy_test_lock();
    let dir = TempDir::new("pas-nofo");
    let lab = AppLab::start(Path::new(env!("CARGO_BIN_EXE_netfailover")), dir.path()).unwrap();
    let _ctr = container(&lab, "pas-nofo-ctr");
    let uplink = lab.world.uplink("eth0").unwrap();
    let gateway = SocketAddr::from((uplink.gateway, 2222));
    let _lan_server = EchoServer::start(&uplink.isp, gateway).unwrap();
    let lan = BusyClient::start(&lab.world.device, gateway, GAP, PATIENCE).unwrap();
    let peer = BusyClient::start(
        &lab.world.device,
        SocketAddr::from((DEAD_PEER, 7)),
        GAP,
        PATIENCE,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // The checks were fast so far; now the check server answers after 1.5 s (well within
    // check.timeout), and the peer dies (its /32 blackholed in eth0's ISP).
    let server = &lab.world.servers.as_ref().unwrap().check;
    server.set(Behaviour::SlowNoContent(1500));
    let before = lab.checks();
    uplink
        .isp
        .ip(&["route", "add", "blackhole", &format!("{DEAD_PEER}/32")])
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(60) {
        assert_eq!(
            lab.route_dev(ECHO).as_deref(),
            Some("eth0"),
            "route changed after {:?}; log:\n{}",
            t0.elapsed(),
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(lab.state("eth0"), Some(Connectivity::Full));
    let spent = lab.checks() - before;
    let status = lab.status().unwrap();
    let eth0 = status.interfaces.iter().find(|i| i.name.as_str() == "eth0");
    let passive = &eth0.unwrap().passive;
    // Within the ceiling (4 an hour by default), plus at most one check of each standby.
    assert!(
        passive.suspicions >= 1 && spent <= 4 + 2,
        "{spent} checks; {passive:?}; log:\n{}",
        lab.log()
    );
    assert_eq!(passive.confirmations_failed, 0, "{passive:?}");
    assert!(!lan.round_trips().is_empty());
    drop(peer);
}
