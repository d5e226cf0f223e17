//! Hostile peers for the probe, on loopback: an HTTP server that answers every connection with
//! exactly the bytes it is given (in small pieces, slowly, or followed by an endless body), and
//! a DNS server that answers every query with whatever a function makes of the query. The
//! property tests (`tests/it/hostile.rs`) and the fuzz targets (`fuzz/`) feed the real
//! [`HttpProbe`](netfailover::os::probe::HttpProbe) through them.
//!
//! Both are plain threads with blocking sockets bound to 127.0.0.1 (the calling thread's
//! namespace), every read and write under a timeout and every loop bounded; they stop on drop.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netfailover_actors::model::{Family, IfaceName};
use netfailover_actors::ports::ProbeRequest;

/// How long a connection may stay idle on the server side.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes an endless body writes (the probe must stop reading long before).
pub const ENDLESS_CAP: u64 = 64 * 1024 * 1024;
/// Largest request head read before answering.
const MAX_REQUEST: usize = 16 * 1024;

/// What the HTTP server sends on each connection.
#[derive(Clone, Debug, Default)]
pub struct HttpAnswer {
    pub bytes: Vec<u8>,
    /// Write in pieces of this many bytes (0: all at once)…
    pub piece: usize,
    /// …with this pause before each piece (a slowloris server).
    pub pause: Duration,
    /// After `bytes`, keep writing filler until the client goes away (or [`ENDLESS_CAP`]).
    pub endless: bool,
}

#[derive(Default)]
struct HttpShared {
    answer: Mutex<HttpAnswer>,
    /// Bytes written on the last connection.
    written: AtomicU64,
    connections: AtomicU64,
    /// Connections completely served.
    finished: AtomicU64,
}

/// How often a server thread looks at its stop flag while idle.
const POLL: Duration = Duration::from_millis(10);

/// Stops a server thread on drop: sets its flag (it polls it) and joins it.
struct Stopper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The hostile HTTP server; see the module doc.
pub struct HostileHttp {
    addr: SocketAddr,
    shared: Arc<HttpShared>,
    _stopper: Stopper,
}

impl HostileHttp {
    pub fn start() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        // Polled, so that drop needs no connection to wake it (the caller may be in another
        // namespace than the socket).
        listener.set_nonblocking(true)?;
        let shared = Arc::new(HttpShared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name("hostile-http".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let Ok((conn, _)) = listener.accept() else {
                            std::thread::sleep(POLL);
                            continue;
                        };
                        if conn.set_nonblocking(false).is_ok() {
                            shared.connections.fetch_add(1, Ordering::SeqCst);
                            let answer = shared
                                .answer
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .clone();
                            let written = serve_http(conn, &answer, &stop);
                            shared.written.store(written, Ordering::SeqCst);
                            shared.finished.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })?
        };
        Ok(Self {
            addr,
            shared,
            _stopper: Stopper {
                stop,
                thread: Some(thread),
            },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What later connections get.
    pub fn set(&self, answer: HttpAnswer) {
        *self.shared.answer.lock().unwrap_or_else(|p| p.into_inner()) = answer;
    }

    /// Bytes the last finished connection wrote.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::SeqCst)
    }

    /// Waits (at most `limit`) until every accepted connection is finished; returns whether
    /// they are, so that [`written`](Self::written) is the last connection's.
    pub fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let accepted = self.shared.connections.load(Ordering::SeqCst);
            if self.shared.finished.load(Ordering::SeqCst) == accepted {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// Reads the request head, writes the answer; returns the bytes written.
fn serve_http(mut conn: TcpStream, answer: &HttpAnswer, stop: &AtomicBool) -> u64 {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return 0,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let mut written = 0u64;
    let piece = if answer.piece == 0 {
        answer.bytes.len().max(1)
    } else {
        answer.piece
    };
    for chunk in answer.bytes.chunks(piece) {
        if stop.load(Ordering::SeqCst) {
            return written;
        }
        std::thread::sleep(answer.pause);
        if conn.write_all(chunk).is_err() {
            return written;
        }
        written += chunk.len() as u64;
    }
    if answer.endless {
        let filler = [b'x'; 16 * 1024];
        while written < ENDLESS_CAP && !stop.load(Ordering::SeqCst) {
            if conn.write_all(&filler).is_err() {
                return written;
            }
            written += filler.len() as u64;
        }
    }
    // End of the answer; wait (bounded) for the client to close so it reads it all.
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline && matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    written
}

/// Makes the datagrams to send back for one query (none: stay silent).
pub type DnsReply = Box<dyn Fn(&[u8]) -> Vec<Vec<u8>> + Send + Sync>;

/// The hostile DNS server; see the module doc.
pub struct HostileDns {
    addr: SocketAddr,
    reply: Arc<Mutex<DnsReply>>,
    queries: Arc<AtomicU64>,
    _stopper: Stopper,
}

impl HostileDns {
    pub fn start(reply: DnsReply) -> io::Result<Self> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = socket.local_addr()?;
        socket.set_read_timeout(Some(POLL * 10))?;
        let reply = Arc::new(Mutex::new(reply));
        let queries = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (reply, queries, stop) = (reply.clone(), queries.clone(), stop.clone());
            std::thread::Builder::new()
                .name("hostile-dns".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 4096];
                    while !stop.load(Ordering::SeqCst) {
                        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                            continue;
                        };
                        queries.fetch_add(1, Ordering::SeqCst);
                        let datagrams =
                            (reply.lock().unwrap_or_else(|p| p.into_inner()))(&buf[..n]);
                        for d in datagrams {
                            let _ = socket.send_to(&d, peer);
                        }
                    }
                })?
        };
        Ok(Self {
            addr,
            reply,
            queries,
            _stopper: Stopper {
                stop,
                thread: Some(thread),
            },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How later queries are answered.
    pub fn set(&self, reply: DnsReply) {
        *self.reply.lock().unwrap_or_else(|p| p.into_inner()) = reply;
    }

    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

/// A check request through `lo` (IPv4 routed) with these DNS servers: what the property tests
/// and fuzz targets give the probe.
pub fn lo_request(dns: Vec<SocketAddr>) -> ProbeRequest {
    ProbeRequest {
        // A constant, valid interface name (1..=15 bytes, no '/', ':' or whitespace).
        iface: IfaceName::new("lo").expect("\"lo\" is a valid interface name"),
        ifindex: 1,
        dns,
        routed: vec![Family::V4],
    }
}

/// Moves the calling thread into a fresh, anonymous network namespace with only `lo` (up), so
/// that nothing it does afterwards, whatever answer it is fed, can reach any other host. For
/// the fuzz targets (a process of their own); the namespace goes away with the thread.
pub fn isolate_current_thread() -> Result<(), super::netns::NetnsError> {
    let enter = |message: String| super::netns::NetnsError::Enter {
        name: "(anonymous)".into(),
        message,
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| enter(format!("unshare(CLONE_NEWNET): {e} (needs root)")))?;
    // A child process forked from this thread is in the new namespace too.
    super::netns::run(&["ip", "link", "set", "lo", "up"]).map(drop)
}

/// Where the question section of `query` ends (header, then labels up to the root, then type
/// and class), if the query is well formed enough to have one.
fn question_end(query: &[u8]) -> Option<usize> {
    let mut at = 12;
    // At most 128 labels in a 255-byte name.
    for _ in 0..128 {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            let end = at + 1 + 4;
            return (end <= query.len()).then_some(end);
        }
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
    }
    None
}

/// A correct answer to an A query: `ip` for the asked name with TTL 0 (no records for other
/// types). `None` when `query` is not a parseable single-question query.
pub fn a_answer(query: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
    let end = question_end(query)?;
    let qtype = u16::from_be_bytes([query[end - 4], query[end - 3]]);
    let is_a = qtype == 1;
    let mut reply = query[..end].to_vec();
    // QR, opcode 0, AA, RD copied; RA; rcode 0.
    reply[2] = 0x84 | (query[2] & 0x01);
    reply[3] = 0x80;
    // QDCOUNT 1, ANCOUNT, NSCOUNT 0, ARCOUNT 0.
    reply[4..12].copy_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    if is_a {
        // Name: pointer to the question's name at offset 12; type A, class IN, TTL 0, 4 bytes.
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check.test` A IN, id 0x1234, RD.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x05check\x04test\x00\x00\x01\x00\x01");
        q
    }

    #[test]
    fn answers_parse_as_dns() {
        let reply = a_answer(&query(), Ipv4Addr::LOCALHOST).unwrap();
        let message = hickory_proto::op::Message::from_vec(&reply).unwrap();
        assert_eq!(message.metadata.id, 0x1234);
        assert_eq!(message.answers.len(), 1);
        assert!(a_answer(&query()[..15], Ipv4Addr::LOCALHOST).is_none());
        assert!(a_answer(b"", Ipv4Addr::LOCALHOST).is_none());
    }

    #[test]
    fn http_server_sends_exactly_the_bytes() {
        let server = HostileHttp::start().unwrap();
        server.set(HttpAnswer {
            bytes: b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            piece: 3,
            ..HttpAnswer::default()
        });
        let mut conn = TcpStream::connect(server.addr()).unwrap();
        conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(server.connections(), 1);
    }
}
