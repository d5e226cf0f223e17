//! Flow reset benchmark (root, namespaces; prints its own rows, see `lab::bench`): route change
//! → flows reset as the daemon measures it (a `flows-reset` record's `elapsed_ms`: from
//! RouteManager having applied the routes that moved the route in use to the end of the reset),
//! with [`SOCKETS`] TCP connections and [`ENTRIES`] conntrack entries on the device, every one
//! pinned to the primary eth0 (the worst case: each socket destroyed, each entry deleted).
//! p50/p99 over `runs(20, 5)` carrier losses on eth0 in one lab world (the daemon binary, real
//! kernel, `interval` 3600, default settings); between runs the cable is plugged back (a
//! fail-back, which resets the backup's flows by default: none here) and the sockets and
//! entries are made again.
//!
//! Then, in the same world with the ISPs dropping foreign sources and no `ip rule` anywhere,
//! fail-back → application talking again: a sticky application's connection moves to wlan0 at
//! each carrier loss; from the route moving back to eth0 to its first echo through eth0 (its
//! wlan0 connection is reset at the fail-back), p50/p99 over `runs(20, 5)` cycles.
//!
//! The entries are created through ctnetlink (`Conntrack::create_udp`: NATed UDP flows of a
//! container at 192.0.2.66 whose replies come back to eth0's address), so no traffic is needed
//! to fill the table.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netfailover::os::flows::conntrack::Conntrack;
use netfailover_lab::apps::{AppLab, BusyClient, Pin, ECHO};
use netfailover_lab::bench::{fmt_duration, latency_row, runs, Samples};
use netfailover_lab::netns::{is_root, wait_for};
use netfailover_lab::uplinks::run_in_netns;

const SOCKETS: usize = 1000;
const ENTRIES: u16 = 10_000;
/// The server the device's connections go to, in the Internet namespace.
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 70);
/// The NATed container flows' peer and their container.
const UDP_PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 60);
const CONTAINER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
const ETH0: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// No helper outlives this.
const MAX_RUN: Duration = Duration::from_secs(900);

/// Accepts connections in the Internet namespace and holds them until told to drop them.
struct HoldServer {
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl HoldServer {
    fn start(lab: &AppLab) -> Self {
        lab.world
            .internet
            .ip(&["addr", "add", &format!("{SERVER}/32"), "dev", "lo"])
            .expect("server address");
        let listener = run_in_netns(&lab.world.internet, || {
            TcpListener::bind(SocketAddr::from((SERVER, 8000)))
        })
        .expect("namespace")
        .expect("listener");
        listener.set_nonblocking(true).expect("non-blocking");
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (out, flag) = (held.clone(), stop.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < MAX_RUN {
                match listener.accept() {
                    Ok((c, _)) => out.lock().unwrap_or_else(|p| p.into_inner()).push(c),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { held, stop }
    }

    fn drop_all(&self) {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl Drop for HoldServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// [`SOCKETS`] connections from the device (through eth0, so from its address).
fn connect_all(lab: &AppLab) -> Vec<TcpStream> {
    run_in_netns(&lab.world.device, || {
        (0..SOCKETS)
            .filter_map(|_| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((SERVER, 8000)),
                    Duration::from_secs(5),
                )
                .ok()
            })
            .collect()
    })
    .expect("namespace")
}

/// [`ENTRIES`] conntrack entries pinned to eth0; returns how many were created.
fn fill_conntrack(lab: &AppLab) -> usize {
    run_in_netns(&lab.world.device, || {
        let Ok(mut ct) = Conntrack::open() else {
            return 0;
        };
        let peer = SocketAddr::from((UDP_PEER, 9));
        (0..ENTRIES)
            .filter(|i| {
                let port = 10_000 + i;
                let orig = (SocketAddr::from((CONTAINER, port)), peer);
                let reply = (peer, SocketAddr::from((ETH0, port)));
                ct.create_udp(orig, reply, 600).is_ok()
            })
            .count()
    })
    .expect("namespace")
}

fn main() {
    if !is_root() {
        println!("SKIP flows bench: needs root to create network namespaces");
        return;
    }
    let exe = Path::new(env!("CARGO_BIN_EXE_netfailover"));
    let dir = std::env::temp_dir().join(format!("nf-flows-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let lab = AppLab::start_with(exe, &dir, 3600, "").expect("lab world and daemon");
    let server = HoldServer::start(&lab);
    let mut samples = Samples::default();
    for run in 0..runs(20, 5) {
        let sockets = connect_all(&lab);
        let entries = fill_conntrack(&lab);
        let resets_before = lab.status().map_or(0, |s| s.flows.resets);
        lab.world.pull_cable("eth0").expect("pull the cable");
        let record = wait_for(Duration::from_secs(15), || {
            let now = lab.status()?.flows.resets;
            (now > resets_before)
                .then(|| lab.flow_resets().pop())
                .flatten()
        });
        match record {
            Some(r) => {
                let took = Duration::from_secs_f64(r.elapsed_ms / 1000.0);
                println!(
                    "run {run}: {} sockets, {entries} entries → {} destroyed, {} deleted, {} failures in {}",
                    sockets.len(),
                    r.sockets_destroyed,
                    r.conntrack_deleted,
                    r.failures.len(),
                    fmt_duration(took)
                );
                samples.0.push(took);
            }
            None => println!("run {run}: no flows-reset within 15 s"),
        }
        lab.world.plug_cable("eth0").expect("plug the cable");
        let back = wait_for(Duration::from_secs(30), || {
            (lab.route_dev(ECHO).as_deref() == Some("eth0")).then_some(())
        });
        if back.is_none() {
            println!("run {run}: eth0 not back in use within 30 s; stopping");
            break;
        }
        drop(sockets);
        server.drop_all();
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(server);
    let failback = failback_runs(&lab);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    latency_row(
        "flows: route change → flows reset (1000 TCP sockets + 10000 conntrack entries, all pinned to the primary)",
        &samples,
        "< 1 s p99 (apps on the backup within 1 s)",
        Some(Duration::from_secs(1)),
    );
    latency_row(
        "flows: fail-back → application talking again through the primary (ISPs drop foreign sources, no ip rule)",
        &failback,
        "< 3 s p99",
        Some(Duration::from_secs(3)),
    );
}

/// Fail-back cycles with a sticky application (see the module doc).
fn failback_runs(lab: &AppLab) -> Samples {
    const WLAN0: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 6);
    let mut samples = Samples::default();
    lab.world.filter_foreign_sources().expect("ISP filters");
    let app = BusyClient::sticky(
        &lab.world.device,
        SocketAddr::from((ECHO, 7)),
        Duration::from_millis(100),
        Pin::Route,
    )
    .expect("application");
    let on = |ip: Ipv4Addr, since: Instant| {
        app.round_trips()
            .into_iter()
            .find(|t| t.at >= since && t.local.ip() == std::net::IpAddr::V4(ip))
            .map(|t| t.at)
    };
    for run in 0..runs(20, 5) {
        let start = Instant::now();
        lab.world.pull_cable("eth0").expect("pull the cable");
        if wait_for(Duration::from_secs(15), || on(WLAN0, start)).is_none() {
            println!("fail-back run {run}: the app never reached wlan0; stopping");
            break;
        }
        lab.world.plug_cable("eth0").expect("plug the cable");
        let Some(back) = wait_for(Duration::from_secs(30), || {
            (lab.route_dev(ECHO).as_deref() == Some("eth0")).then(Instant::now)
        }) else {
            println!("fail-back run {run}: eth0 not back in use within 30 s; stopping");
            break;
        };
        match wait_for(Duration::from_secs(10), || on(ETH0, back)) {
            Some(at) => {
                let took = at.saturating_duration_since(back);
                println!(
                    "fail-back run {run}: talking through eth0 after {}",
                    fmt_duration(took)
                );
                samples.0.push(took);
            }
            None => println!("fail-back run {run}: the app hung for 10 s after the fail-back"),
        }
    }
    samples
}
