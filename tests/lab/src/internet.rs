//! The fake Internet: an HTTP/HTTPS check server whose behaviour is switched at run time, a DNS
//! responder, and a throw-away certificate authority. Used by the probe's namespace tests and by
//! `netfailover-lab`.
//!
//! Each server runs inside a namespace: it gets a dedicated thread that enters the namespace
//! first and then builds its own single-threaded tokio runtime, so every socket it opens lives
//! there. The returned guard stops the runtime and joins the thread on drop. Use addresses from
//! the documentation ranges only.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

use super::netns::{enter_named, Netns};

/// Chunks of the endless body: 16 KiB × 4096 = 64 MiB, far past any client's cap, yet bounded
/// so a client that keeps reading still ends.
const ENDLESS_CHUNK: usize = 16 * 1024;
const ENDLESS_CHUNKS: usize = 4096;
static ENDLESS_DATA: [u8; ENDLESS_CHUNK] = [b'x'; ENDLESS_CHUNK];

/// Something in the fake Internet could not start.
#[derive(Debug, thiserror::Error)]
pub enum InternetError {
    #[error("{what} in namespace {ns}: {source}")]
    Io {
        what: String,
        ns: String,
        source: io::Error,
    },
    #[error("entering namespace: {0}")]
    Netns(#[from] super::netns::NetnsError),
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS server setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{what}: server thread ended before it was ready")]
    Died { what: String },
}

/// How the check server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 204 No Content (NetworkManager's and balena's "online").
    NoContent,
    /// 200 with this body ("" = empty body).
    Body(String),
    /// 302 to this location (a captive portal).
    Redirect(String),
    /// 500.
    ServerError,
    /// Accepts the connection, reads the request, never answers.
    Stall,
    /// 200 with a body that does not end.
    EndlessBody,
    /// 200 with a portal page but `X-NetworkManager-Status: online`.
    OnlineHeader,
    /// Accepts, answers bytes that are not HTTP, closes.
    Garbage,
    /// Accepts and resets the connection at once (RST).
    Reset,
    /// 204 No Content after this many milliseconds (a slow but working server).
    SlowNoContent(u64),
}

/// Bytes that are no HTTP answer.
const GARBAGE: &[u8] = b"SSH-2.0-not-http\r\n\x00\xff\xfe garbage";

/// A throw-away CA and one server certificate it signed.
#[derive(Clone)]
pub struct TestCa {
    ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    tls12_only: bool,
}

impl TestCa {
    /// A new CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> Result<Self, InternetError> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "netfailover throw-away test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "netfailover check server");
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            tls12_only: false,
        })
    }

    /// The same CA and certificate, served with TLS 1.2 only (a check server without TLS 1.3).
    pub fn tls12_only(mut self) -> Self {
        self.tls12_only = true;
        self
    }

    /// The CA certificate in PEM, for `check.ca_file`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn acceptor(&self) -> Result<TlsAcceptor, InternetError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A server thread inside a namespace; stopped and joined on drop.
struct ServerThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<JoinHandle<()>>,
}

type Serving = Pin<Box<dyn Future<Output = ()>>>;
type Setup = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = io::Result<Serving>>>> + Send>;

impl ServerThread {
    /// Runs `setup` (binds sockets, returns the serving future) on a new thread inside `ns`;
    /// returns once the sockets are bound, or with the error that prevented it.
    fn spawn(ns: &Netns, what: &str, setup: Setup) -> Result<Self, InternetError> {
        let ns_name = ns.name().to_string();
        let label = what.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), InternetError>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let join = std::thread::Builder::new()
            .name(format!("fake-{what}"))
            .spawn(move || {
                if let Err(e) = enter_named(&ns_name) {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = ready_tx.send(Err(InternetError::Io {
                            what: format!("{label}: runtime"),
                            ns: ns_name,
                            source,
                        }));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match setup().await {
                        Ok(serving) => {
                            let _ = ready_tx.send(Ok(()));
                            tokio::select! {
                                _ = serving => {}
                                _ = stop_rx => {}
                            }
                        }
                        Err(source) => {
                            let _ = ready_tx.send(Err(InternetError::Io {
                                what: label,
                                ns: ns_name,
                                source,
                            }));
                        }
                    }
                });
                // Dropping the runtime cancels every connection task (stalled ones included).
            })
            .map_err(|source| InternetError::Io {
                what: format!("{what}: thread"),
                ns: ns.name().to_string(),
                source,
            })?;
        let thread = Self {
            stop: Some(stop_tx),
            join: Some(join),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(InternetError::Died { what: what.into() }),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

/// What the check server saw, shared with its guard.
#[derive(Debug)]
struct CheckShared {
    behaviour: Mutex<Behaviour>,
    peers: Mutex<Vec<IpAddr>>,
    requests: AtomicU64,
}

impl CheckShared {
    fn behaviour(&self) -> Behaviour {
        self.behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records one request (or connection, for behaviours that never parse one).
    fn saw(&self, peer: SocketAddr) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(peer.ip());
    }
}

/// The HTTP (and optionally HTTPS) check endpoint; stops on drop.
pub struct CheckServer {
    shared: Arc<CheckShared>,
    _thread: ServerThread,
}

impl CheckServer {
    /// Listens on `http` (plain) and, given a CA, on `https` with the CA's server certificate,
    /// inside `ns`. Starts with [`Behaviour::NoContent`].
    pub fn start(
        ns: &Netns,
        http: SocketAddr,
        https: Option<(SocketAddr, &TestCa)>,
    ) -> Result<Self, InternetError> {
        let shared = Arc::new(CheckShared {
            behaviour: Mutex::new(Behaviour::NoContent),
            peers: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
        });
        let tls = match https {
            Some((addr, ca)) => Some((addr, ca.acceptor()?)),
            None => None,
        };
        let served = shared.clone();
        let setup: Setup = Box::new(move || {
            Box::pin(async move {
                let plain = TcpListener::bind(http).await?;
                let secure = match tls {
                    Some((addr, acceptor)) => Some((TcpListener::bind(addr).await?, acceptor)),
                    None => None,
                };
                let serving: Serving = Box::pin(async move {
                    let plain_loop = accept_loop(plain, None, served.clone());
                    match secure {
                        Some((listener, acceptor)) => {
                            let secure_loop = accept_loop(listener, Some(acceptor), served);
                            tokio::join!(plain_loop, secure_loop);
                        }
                        None => plain_loop.await,
                    }
                });
                Ok(serving)
            })
        });
        let thread = ServerThread::spawn(ns, "check-server", setup)?;
        Ok(Self {
            shared,
            _thread: thread,
        })
    }

    /// Switches how every later request is answered.
    pub fn set(&self, behaviour: Behaviour) {
        *self
            .shared
            .behaviour
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Client addresses of every request so far, in order.
    pub fn peers(&self) -> Vec<IpAddr> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<CheckShared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors or similar: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            if shared.behaviour() == Behaviour::Reset {
                shared.saw(peer);
                let _ = stream.set_zero_linger();
                return;
            }
            match tls {
                None => serve(stream, peer, shared).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, peer, shared).await;
                    }
                }
            }
        });
    }
}

async fn serve<I>(mut io: I, peer: SocketAddr, shared: Arc<CheckShared>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if shared.behaviour() == Behaviour::Garbage {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = [0u8; 1024];
        let _ = io.read(&mut request).await;
        shared.saw(peer);
        let _ = io.write_all(GARBAGE).await;
        let _ = io.shutdown().await;
        return;
    }
    let service = hyper::service::service_fn(move |_request| {
        let shared = shared.clone();
        async move {
            shared.saw(peer);
            Ok::<_, Infallible>(answer(shared.behaviour()).await)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

type AnyBody = BoxBody<Bytes, Infallible>;

fn no_content() -> Response<AnyBody> {
    let mut r = Response::new(Empty::new().boxed());
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

async fn answer(behaviour: Behaviour) -> Response<AnyBody> {
    let full = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
        *r.status_mut() = status;
        r
    };
    match behaviour {
        Behaviour::SlowNoContent(ms) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            no_content()
        }
        Behaviour::NoContent => no_content(),
        Behaviour::Body(body) => full(StatusCode::OK, body),
        Behaviour::Redirect(location) => {
            let mut r = full(StatusCode::FOUND, String::new());
            if let Ok(v) = hyper::header::HeaderValue::from_str(&location) {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            r
        }
        Behaviour::ServerError => full(StatusCode::INTERNAL_SERVER_ERROR, "oops".into()),
        Behaviour::Stall => std::future::pending().await,
        // Handled before HTTP parsing; answer something harmless if it changed meanwhile.
        Behaviour::Garbage | Behaviour::Reset => {
            full(StatusCode::SERVICE_UNAVAILABLE, String::new())
        }
        Behaviour::EndlessBody => {
            let chunks = futures::stream::iter(
                (0..ENDLESS_CHUNKS).map(|_| Ok(Frame::data(Bytes::from_static(&ENDLESS_DATA)))),
            );
            Response::new(BodyExt::boxed(StreamBody::new(chunks)))
        }
        Behaviour::OnlineHeader => {
            let mut r = full(StatusCode::OK, "<html>portal</html>".into());
            r.headers_mut().insert(
                "x-networkmanager-status",
                hyper::header::HeaderValue::from_static("online"),
            );
            r
        }
    }
}

/// How the DNS responder replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsMode {
    /// Answers from the configured records.
    #[default]
    Answer,
    /// Replies with bytes that are no DNS message.
    Garbage,
    /// Reads queries and never replies.
    Silent,
}

/// What the DNS responder saw, shared with its guard.
#[derive(Debug, Default)]
struct DnsShared {
    queries: AtomicU64,
    peers: Mutex<Vec<IpAddr>>,
    mode: Mutex<DnsMode>,
}

/// A DNS responder answering A/AAAA for fixed names; stops on drop.
pub struct DnsResponder {
    shared: Arc<DnsShared>,
    _thread: ServerThread,
}

impl DnsResponder {
    /// Answers on exactly `addr` inside `ns` (the daemon's resolver drops replies from any other
    /// source address: bind a wildcard only to test exactly that). Unknown names get NXDOMAIN.
    pub fn start(
        ns: &Netns,
        addr: SocketAddr,
        records: &[(&str, IpAddr)],
        ttl: u32,
    ) -> Result<Self, InternetError> {
        let shared = Arc::new(DnsShared::default());
        let records: Vec<(String, IpAddr)> = records
            .iter()
            .map(|(n, ip)| (n.trim_end_matches('.').to_ascii_lowercase(), *ip))
            .collect();
        let served = shared.clone();
        let setup: Setup = Box::new(move || {
            Box::pin(async move {
                let socket = UdpSocket::bind(addr).await?;
                let serving: Serving = Box::pin(dns_loop(socket, records, ttl, served));
                Ok(serving)
            })
        });
        let thread = ServerThread::spawn(ns, "dns", setup)?;
        Ok(Self {
            shared,
            _thread: thread,
        })
    }

    /// Switches how later queries are answered.
    pub fn set_mode(&self, mode: DnsMode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
    }

    /// Queries received so far (garbage included).
    pub fn queries(&self) -> u64 {
        self.shared.queries.load(Ordering::Relaxed)
    }

    /// Source addresses of every query so far.
    pub fn peers(&self) -> Vec<IpAddr> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn dns_loop(
    socket: UdpSocket,
    records: Vec<(String, IpAddr)>,
    ttl: u32,
    shared: Arc<DnsShared>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        shared.queries.fetch_add(1, Ordering::Relaxed);
        shared
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(peer.ip());
        let mode = *shared.mode.lock().unwrap_or_else(|e| e.into_inner());
        match mode {
            DnsMode::Answer => {}
            DnsMode::Silent => continue,
            DnsMode::Garbage => {
                let _ = socket.send_to(GARBAGE, peer).await;
                continue;
            }
        }
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if let Some(reply) = dns_answer(&query, &records, ttl).and_then(|m| m.to_vec().ok()) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The response to one query, or `None` for something that is not a query.
fn dns_answer(query: &Message, records: &[(String, IpAddr)], ttl: u32) -> Option<Message> {
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    let mut known = false;
    for q in &query.queries {
        reply.add_query(q.clone());
        let name = q
            .name()
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        for (record_name, ip) in records {
            if *record_name != name {
                continue;
            }
            known = true;
            let rdata = match (q.query_type(), ip) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(*v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
                _ => continue,
            };
            reply.add_answer(Record::from_rdata(q.name().clone(), ttl, rdata));
        }
    }
    if !known {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    if let Some(edns) = &query.edns {
        reply.set_edns(edns.clone());
    }
    Some(reply)
}
