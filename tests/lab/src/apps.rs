//! Application traffic for passive-health tests and lab scenarios: a TCP echo server and a UDP
//! sink in the Internet namespace, and on the device a client that keeps a TCP connection busy
//! (logging each round trip with its local address) and a one-way UDP sender.
//!
//! [`AppLab`] puts them in the lab world beside the daemon at `interval` 3600, for the
//! passive-health tests, the lab scenario and the benchmark.
//!
//! Plain threads with blocking sockets: each socket is created by a thread that entered its
//! namespace (a socket stays in the namespace it was made in). Every loop stops on its flag, on
//! drop, and in any case after [`MAX_RUN`]; every blocking call has a timeout.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netfailover_actors::model::Connectivity;
use netfailover_actors::status::{EngineStatus, FlowResetRecord, HistoryEntry};

use netfailover::control::{self, Request};

use super::daemon::{query_status, DaemonProcess};
use super::netns::{enter_named, Netns, NetnsError};
use super::world::{LabError, World, CHECK_ADDR};

/// No helper thread outlives this, whatever the test does.
pub const MAX_RUN: Duration = Duration::from_secs(600);
/// Socket timeouts of every blocking call here.
const IO_TIMEOUT: Duration = Duration::from_millis(200);

/// A stop flag plus the thread it stops; stops and joins on drop.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs `body(stop)` on a thread inside namespace `ns`.
    fn spawn(
        ns: &Netns,
        body: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> Result<Self, NetnsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = ns.name().to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || match enter_named(&name) {
            Ok(()) => {
                let _ = tx.send(Ok(()));
                body(flag);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        });
        rx.recv().unwrap_or_else(|_| {
            Err(NetnsError::Enter {
                name: ns.name().to_string(),
                message: "helper thread died".into(),
            })
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    fn running(stop: &AtomicBool, started: Instant) -> bool {
        !stop.load(Ordering::Relaxed) && started.elapsed() < MAX_RUN
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP echo server (each connection on its own thread).
pub struct EchoServer {
    _worker: Worker,
}

impl EchoServer {
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Self, NetnsError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = Worker::spawn(ns, move |stop| {
            let listener = match TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            }) {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let started = Instant::now();
            while Worker::running(&stop, started) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let stop = stop.clone();
                        std::thread::spawn(move || echo(conn, &stop, started));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        })?;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Self { _worker: worker }),
            Ok(Err(e)) => Err(NetnsError::Enter {
                name: ns.name().into(),
                message: format!("echo server on {addr}: {e}"),
            }),
            Err(_) => Err(NetnsError::Enter {
                name: ns.name().into(),
                message: format!("echo server on {addr} did not start"),
            }),
        }
    }
}

fn echo(mut conn: TcpStream, stop: &AtomicBool, started: Instant) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = [0u8; 4096];
    while Worker::running(stop, started) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// One echoed round trip (or one connection made): when, and the local address it used.
#[derive(Clone, Copy, Debug)]
pub struct RoundTrip {
    pub at: Instant,
    pub local: SocketAddr,
}

/// What ties a [`BusyClient`]'s connection to an uplink besides the route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pin {
    /// Nothing: the route in use picks the interface and the source address.
    Route,
    /// Bound to this source address before connecting.
    Source(Ipv4Addr),
    /// Bound to this device (SO_BINDTODEVICE, as our own checks are).
    Device(&'static str),
}

/// What a [`BusyClient`] saw: echoes, connections made and errors that ended one.
#[derive(Default)]
struct ClientLog {
    trips: Vec<RoundTrip>,
    connects: Vec<RoundTrip>,
    errors: Vec<(Instant, String)>,
}

/// Connect bound of a client that waits for its connection as long as it takes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A device application keeping one TCP connection busy: a small message every `gap`, waiting
/// for its echo, logging each round trip with its local address. An error on the connection
/// (reset, aborted, closed) makes it reconnect at once; a connection that merely stays silent
/// is given up after `patience` ([`BusyClient::start`], as most applications do after a read
/// timeout, so it follows the route to whichever uplink is in use) or never
/// ([`BusyClient::sticky`]: it waits as long as TCP does, so only an error moves it).
pub struct BusyClient {
    log: Arc<Mutex<ClientLog>>,
    _worker: Worker,
}

/// A timeout, not an error of the connection.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Connects to `server` as `pin` says, within `timeout`.
fn connect_pinned(server: SocketAddr, pin: Pin, timeout: Duration) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = server else {
        return TcpStream::connect_timeout(&server, timeout);
    };
    if pin == Pin::Route {
        return TcpStream::connect_timeout(&server, timeout);
    }
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // Linux bounds a blocking connect() by the send timeout.
    let limit = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    socket::setsockopt(&fd, sockopt::SendTimeout, &limit)?;
    match pin {
        Pin::Source(ip) => socket::bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(std::net::SocketAddrV4::new(ip, 0)),
        )?,
        Pin::Device(dev) => {
            socket::setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(dev))?
        }
        Pin::Route => {}
    }
    socket::connect(fd.as_raw_fd(), &SockaddrIn::from(v4))?;
    Ok(TcpStream::from(fd))
}

impl BusyClient {
    /// Gives a silent connection up after `patience`.
    pub fn start(
        ns: &Netns,
        server: SocketAddr,
        gap: Duration,
        patience: Duration,
    ) -> Result<Self, NetnsError> {
        Self::spawn(ns, server, gap, Some(patience), Pin::Route)
    }

    /// Never gives a silent connection up; reconnects only after an error.
    pub fn sticky(
        ns: &Netns,
        server: SocketAddr,
        gap: Duration,
        pin: Pin,
    ) -> Result<Self, NetnsError> {
        Self::spawn(ns, server, gap, None, pin)
    }

    fn spawn(
        ns: &Netns,
        server: SocketAddr,
        gap: Duration,
        patience: Option<Duration>,
        pin: Pin,
    ) -> Result<Self, NetnsError> {
        let log = Arc::new(Mutex::new(ClientLog::default()));
        let out = log.clone();
        let worker = Worker::spawn(ns, move |stop| {
            let client = Session {
                gap,
                patience,
                stop: &stop,
                started: Instant::now(),
                log: &out,
            };
            while client.running() {
                let error = match connect_pinned(server, pin, patience.unwrap_or(CONNECT_TIMEOUT)) {
                    Ok(conn) => client.converse(conn),
                    Err(e) => {
                        std::thread::sleep(gap);
                        Some(format!("connect: {e}"))
                    }
                };
                if let Some(e) = error {
                    client.note(|l| l.errors.push((Instant::now(), e)));
                }
            }
        })?;
        Ok(Self {
            log,
            _worker: worker,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&ClientLog) -> T) -> T {
        f(&self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Every round trip so far.
    pub fn round_trips(&self) -> Vec<RoundTrip> {
        self.read(|l| l.trips.clone())
    }

    /// Every connection made so far (its local address), the first included.
    pub fn connects(&self) -> Vec<RoundTrip> {
        self.read(|l| l.connects.clone())
    }

    /// Every error that ended a connection (or a connect) so far, with its message.
    pub fn errors(&self) -> Vec<(Instant, String)> {
        self.read(|l| l.errors.clone())
    }
}

/// One connection of a [`BusyClient`].
struct Session<'a> {
    gap: Duration,
    patience: Option<Duration>,
    stop: &'a AtomicBool,
    started: Instant,
    log: &'a Mutex<ClientLog>,
}

impl Session<'_> {
    fn running(&self) -> bool {
        Worker::running(self.stop, self.started)
    }

    fn note(&self, f: impl FnOnce(&mut ClientLog)) {
        f(&mut self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Talks over `conn` until it fails (the error, to log) or is given up (`None`).
    fn converse(&self, mut conn: TcpStream) -> Option<String> {
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        let local = conn.local_addr().ok()?;
        self.note(|l| {
            l.connects.push(RoundTrip {
                at: Instant::now(),
                local,
            })
        });
        let mut last_echo = Instant::now();
        let mut buf = [0u8; 64];
        while self.running() && self.patience.is_none_or(|p| last_echo.elapsed() < p) {
            match conn.write_all(b"ping netfailover passive health\n") {
                Err(e) if !transient(&e) => return Some(format!("write: {e}")),
                _ => {}
            }
            let sent = Instant::now();
            while sent.elapsed() < self.gap && self.running() {
                match conn.read(&mut buf) {
                    Ok(0) => return Some("closed by the peer".into()),
                    Ok(_) => {
                        last_echo = Instant::now();
                        let at = last_echo;
                        self.note(|l| l.trips.push(RoundTrip { at, local }));
                    }
                    Err(e) if transient(&e) => {}
                    Err(e) => return Some(format!("read: {e}")),
                }
            }
        }
        None
    }
}

/// A UDP socket that receives and never answers (a silent sink: no ICMP either); it notes
/// where each datagram came from (the address an uplink's NAT gave the sender).
pub struct UdpSink {
    sources: Arc<Mutex<Vec<(Instant, SocketAddr)>>>,
    _worker: Worker,
}

/// Sources kept by a [`UdpSink`]: enough for minutes of a sender every few ms.
const SINK_LOG_MAX: usize = 100_000;

impl UdpSink {
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Self, NetnsError> {
        let sources = Arc::new(Mutex::new(Vec::new()));
        let out = sources.clone();
        let worker = Worker::spawn(ns, move |stop| {
            let Ok(socket) = UdpSocket::bind(addr) else {
                return;
            };
            let _ = socket.set_read_timeout(Some(IO_TIMEOUT));
            let started = Instant::now();
            let mut buf = [0u8; 2048];
            while Worker::running(&stop, started) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let mut log = out.lock().unwrap_or_else(|p| p.into_inner());
                    if log.len() < SINK_LOG_MAX {
                        log.push((Instant::now(), from));
                    }
                }
            }
        })?;
        Ok(Self {
            sources,
            _worker: worker,
        })
    }

    /// Every datagram's arrival and source so far.
    pub fn sources(&self) -> Vec<(Instant, SocketAddr)> {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Sends a datagram to `target` every `gap` (one-way traffic, as telemetry does).
pub struct UdpSender {
    _worker: Worker,
}

impl UdpSender {
    pub fn start(ns: &Netns, target: SocketAddr, gap: Duration) -> Result<Self, NetnsError> {
        let worker = Worker::spawn(ns, move |stop| {
            let Ok(socket) = UdpSocket::bind("0.0.0.0:0") else {
                return;
            };
            let started = Instant::now();
            while Worker::running(&stop, started) {
                let _ = socket.send_to(b"telemetry sample from the device", target);
                std::thread::sleep(gap);
            }
        })?;
        Ok(Self { _worker: worker })
    }
}

/// The echo server's address in the Internet namespace.
pub const ECHO: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// A second echo server: the peer a test makes die alone.
pub const DEAD_PEER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 40);
/// The silent UDP sink.
pub const SINK: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 30);

/// The lab world with the daemon at balenaOS's `interval` 3600 on an IP-literal check URI
/// (no `netfailover.toml` keys but `state_dir`: every setting at its default), plus the
/// application servers above. Stops the daemon on drop, then the world goes.
pub struct AppLab {
    daemon: Option<DaemonProcess>,
    pub world: World,
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    _servers: (EchoServer, EchoServer, UdpSink),
}

impl AppLab {
    /// Builds everything under `dir` (which the caller owns) and waits until all three
    /// uplinks are FULL.
    pub fn start(exe: &Path, dir: &Path) -> Result<Self, LabError> {
        Self::start_with(exe, dir, 3600, "")
    }

    /// [`AppLab::start`] at another check `interval` (seconds, config.json) and with
    /// `settings` as the body of `netfailover.toml` (e.g. [`super::world::FAST_SETTINGS`]).
    pub fn start_with(
        exe: &Path,
        dir: &Path,
        interval_secs: u32,
        settings: &str,
    ) -> Result<Self, LabError> {
        Self::start_in(World::build()?, exe, dir, interval_secs, settings)
    }

    /// [`AppLab::start_with`] in a world the caller built (with IPv6, say: [`World::add_ipv6`]).
    pub fn start_in(
        mut world: World,
        exe: &Path,
        dir: &Path,
        interval_secs: u32,
        settings: &str,
    ) -> Result<Self, LabError> {
        world.start_servers()?;
        for addr in [ECHO, DEAD_PEER, SINK] {
            world
                .internet
                .ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
        }
        let servers = (
            EchoServer::start(&world.internet, SocketAddr::from((ECHO, 7)))?,
            EchoServer::start(&world.internet, SocketAddr::from((DEAD_PEER, 7)))?,
            UdpSink::start(&world.internet, SocketAddr::from((SINK, 9)))?,
        );
        let boot = dir.join("boot");
        world.write_boot_dir(
            &boot,
            settings,
            &dir.join("state"),
            &dir.join("scripts.log"),
        )?;
        let config = boot.join("config.json");
        std::fs::write(
            &config,
            format!(
                "{{\"dnsServers\":\"null\",\"os\":{{\"network\":{{\"connectivity\":\
                 {{\"uri\":\"http://{CHECK_ADDR}/connectivity-check\",\"interval\":\"{interval_secs}\"}}}}}}}}"
            ),
        )
        .map_err(|error| LabError::Write {
            path: config,
            error,
        })?;
        let daemon = DaemonProcess::start(
            exe,
            &world,
            &boot,
            &dir.join("sock"),
            &dir.join("daemon.log"),
            &[],
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| LabError::Daemon { error })?;
        let lab = Self {
            daemon: Some(daemon),
            world,
            dir: dir.to_path_buf(),
            runtime,
            _servers: servers,
        };
        let all_full = super::netns::wait_for(Duration::from_secs(30), || {
            let s = lab.status()?;
            (s.interfaces.len() == 3
                && s.interfaces
                    .iter()
                    .all(|i| i.connectivity == Connectivity::Full))
            .then_some(())
        });
        match all_full {
            Some(()) => Ok(lab),
            None => Err(LabError::DaemonNotReady {
                secs: 30,
                log: lab.log(),
            }),
        }
    }

    pub fn status(&self) -> Option<EngineStatus> {
        query_status(&self.runtime, &self.dir.join("sock"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// The daemon's `flows-reset` records so far (`netfailover events`), oldest first.
    pub fn flow_resets(&self) -> Vec<FlowResetRecord> {
        let data = self
            .runtime
            .block_on(control::request(&self.dir.join("sock"), &Request::Events));
        let entries: Vec<HistoryEntry> = data
            .ok()
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        entries
            .into_iter()
            .filter_map(|e| match e {
                HistoryEntry::FlowsReset { flows_reset } => Some(flows_reset),
                HistoryEntry::Event(_) => None,
            })
            .collect()
    }

    /// The `flows-reset` records of route-in-use moves made at or after `since` (wall clock:
    /// a record's move is its `at_unix_ms` less its `elapsed_ms`), oldest first: a test's fault
    /// and what follows it, not a move the daemon made earlier (while starting, say).
    pub fn flow_resets_since(&self, since: SystemTime) -> Vec<FlowResetRecord> {
        let since_ms = since
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        self.flow_resets()
            .into_iter()
            // 1 ms of slack: `at_unix_ms` is truncated to the millisecond.
            .filter(|r| r.at_unix_ms as f64 - r.elapsed_ms + 1.0 >= since_ms)
            .collect()
    }

    /// Requests the check server has answered so far (every uplink's checks).
    pub fn checks(&self) -> u64 {
        self.world
            .servers
            .as_ref()
            .map_or(0, |s| s.check.requests())
    }

    /// The device's interface towards `to` (`ip route get`).
    pub fn route_dev(&self, to: Ipv4Addr) -> Option<String> {
        self.world.route_dev(to)
    }

    pub fn state(&self, iface: &str) -> Option<Connectivity> {
        self.status()?
            .interfaces
            .into_iter()
            .find(|i| i.name.as_str() == iface)
            .map(|i| i.connectivity)
    }

    /// Blackholes everything beyond the ISP of `iface` and returns how long until the route to
    /// the echo server left `iface` (`None`: not within `limit`).
    pub fn time_route_leaves(&self, iface: &str, limit: Duration) -> Option<Duration> {
        let t0 = Instant::now();
        self.world.blackhole_upstream(iface).ok()?;
        super::netns::wait_for(limit, || {
            (self.route_dev(ECHO).as_deref() != Some(iface)).then(|| t0.elapsed())
        })
    }
}

impl Drop for AppLab {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop(Duration::from_secs(5));
        }
    }
}
