//! The real connectivity check (docs/semantics.md §3): [`HttpProbe`] implements the engine's
//! [`Probe`] port with an HTTP(S) GET that leaves through one
//! interface only, after resolving the check host through that interface's own DNS servers.
//!
//! - `dns.rs`: the resolver bound to the interface, server order, TTL cache; `dns_msg.rs`: its
//!   queries and answers.
//! - `http.rs`: bound TCP connect, TLS (rustls + ring), the GET and a capped body read.
//! - `classify.rs`: the docs/semantics.md §3 table from an HTTP answer.
//! - `wire.rs`: bytes on the wire per check.
//!
//! NONE comes only from our own view of the kernel before anything is sent: the interface is
//! missing or not up with a carrier, has no default route or gateway the engine knows of (for
//! any family, or for the target's), or no address of the target's family. Every failure of the check itself is LIMITED — DNS
//! failure, refused, network or host unreachable (an upstream router answering ICMP
//! "unreachable" looks exactly like a local "no route" errno, so an errno never decides NONE),
//! connect or total timeout, TLS failure, reset, garbage.

mod classify;
mod dns;
mod dns_msg;
mod http;
mod source;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hyper::header::HeaderValue;
use netfailover_actors::model::{CheckConfig, Family, IfaceName};
use netfailover_actors::ports::{CheckProgress, Probe, ProbeReport, ProbeRequest, Verdict};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

pub use classify::BODY_CAP;
pub use dns::DnsFailure;
pub use wire::{TCP_HEADER, TCP_MSS, TCP_SYN_HEADER, UDP_HEADER};

use dns::ResolverPool;
use http::GetRequest;
use wire::{CountingStream, TcpMeter};

/// The probe cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("check uri {uri:?}: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("check ca_file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error("TLS client setup: {reason}")]
    Tls { reason: String },
}

/// Why one check got no usable HTTP answer; the text is the report's reason.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckFailure {
    #[error("interface {iface} is missing")]
    Missing { iface: IfaceName },
    #[error("{iface} is down or has no carrier")]
    LinkDown { iface: IfaceName },
    #[error("{addr} unreachable through {iface}: {error}")]
    Unreachable {
        iface: IfaceName,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("{iface} has no default route or gateway")]
    Unrouted { iface: IfaceName },
    #[error("{iface} has no {} default route or gateway for {host}", family_name(*family))]
    NoFamilyRoute {
        iface: IfaceName,
        family: Family,
        host: String,
    },
    #[error("{iface} has no {} address", family_name(*family))]
    NoAddress { iface: IfaceName, family: Family },
    #[error(transparent)]
    Dns(#[from] DnsFailure),
    #[error("connection refused by {addr}")]
    Refused { addr: SocketAddr },
    #[error("connect timeout after {} to {addr}", secs(*after))]
    ConnectTimeout { addr: SocketAddr, after: Duration },
    #[error("connect to {addr}: {}{error}", step.prefix())]
    Connect {
        addr: SocketAddr,
        step: ConnectStep,
        error: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("total timeout after {}", secs(*after))]
    TotalTimeout { after: Duration },
}

/// The step of opening a check's connection that failed ([`CheckFailure::Connect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectStep {
    /// Creating the socket.
    Socket,
    /// Binding it to the interface (SO_BINDTODEVICE).
    BindDevice(IfaceName),
    /// Binding it to the interface's own address.
    BindAddress(IpAddr),
    /// The TCP handshake.
    Connect,
}

impl ConnectStep {
    /// What the failure's text says before the OS error.
    fn prefix(&self) -> String {
        match self {
            ConnectStep::Socket | ConnectStep::Connect => String::new(),
            ConnectStep::BindDevice(iface) => format!("binding to {iface}: "),
            ConnectStep::BindAddress(ip) => format!("binding to {ip}: "),
        }
    }
}

impl CheckFailure {
    fn verdict(&self) -> Verdict {
        match self {
            // Our own view of the kernel and of the engine's routes, taken before sending
            // anything; never an errno (see the module doc).
            CheckFailure::Missing { .. }
            | CheckFailure::LinkDown { .. }
            | CheckFailure::Unrouted { .. }
            | CheckFailure::NoFamilyRoute { .. }
            | CheckFailure::NoAddress { .. } => Verdict::None,
            _ => Verdict::Limited,
        }
    }
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// "5s", "1.5s".
pub(crate) fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// The socket error is an "unreachable" of some kind: a local one (no route, no address) or an
/// upstream router's ICMP answer, which the errno cannot tell apart. Reported as such (LIMITED).
pub(crate) fn is_unreachable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::EADDRNOTAVAIL)
    )
}

/// The check host as the URI names it.
#[derive(Debug, Clone)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// The parsed check URI.
#[derive(Debug, Clone)]
struct Target {
    https: bool,
    host: Host,
    port: u16,
    request: GetRequest,
}

impl Target {
    fn parse(uri: &str) -> Result<Self, ProbeError> {
        let bad = |reason: &str| ProbeError::BadUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        let parsed: hyper::Uri =
            uri.parse()
                .map_err(|e: hyper::http::uri::InvalidUri| ProbeError::BadUri {
                    uri: uri.to_string(),
                    reason: e.to_string(),
                })?;
        let https = match parsed.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(bad(&format!("scheme {other:?} is not http or https"))),
            None => return Err(bad("no scheme (http:// or https://)")),
        };
        let authority = parsed.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not supported"));
        }
        let host_str = authority.host();
        if host_str.is_empty() {
            return Err(bad("no host"));
        }
        let bare = host_str.trim_start_matches('[').trim_end_matches(']');
        let host = match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(bare.to_ascii_lowercase()),
        };
        let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority_value =
            HeaderValue::from_str(authority.as_str()).map_err(|e| bad(&e.to_string()))?;
        let path_and_query = parsed
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_string());
        Ok(Self {
            https,
            host,
            port,
            request: GetRequest {
                authority: authority_value,
                path_and_query,
            },
        })
    }

    fn server_name(&self) -> Result<ServerName<'static>, ProbeError> {
        let name = match &self.host {
            Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            Host::Name(n) => ServerName::try_from(n.clone()).map_err(|e| ProbeError::BadUri {
                uri: n.clone(),
                reason: format!("not a valid TLS server name: {e}"),
            })?,
        };
        Ok(name)
    }
}

/// Reads extra trust roots from a PEM file (also `check.ca_file`'s validation in
/// `config/settings/values.rs`, so a file the probe would refuse is rejected at load).
pub(crate) fn load_ca_file(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, ProbeError> {
    let err = |reason: String| ProbeError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// TLS client: web PKI roots plus `extra`, ring only (docs/kernel-facts.md §1: never rely on a default
/// provider, another crate in the tree could bring aws-lc-rs).
fn tls_connector(extra: Vec<CertificateDer<'static>>) -> Result<TlsConnector, ProbeError> {
    let sessions = session_store(&extra);
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots.add(cert).map_err(|e| ProbeError::Tls {
            reason: format!("extra root: {e}"),
        })?;
    }
    let mut provider = rustls::crypto::ring::default_provider();
    // TLS 1.3 suites with SHA-256 first (AES-128-GCM, ChaCha20-Poly1305, then AES-256-GCM with
    // SHA-384; TLS 1.2 suites unchanged after them): a server that honours the client's order
    // (rustls, OpenSSL without server preference) picks SHA-256, whose Finished messages and
    // resumption binder are 16 B shorter each (48 B less per HTTPS check, docs/probe.md "Bytes
    // on the wire"). All three are TLS 1.3's recommended AEADs: nothing weaker is offered.
    provider
        .cipher_suites
        .sort_by_key(|suite| match suite.tls13() {
            Some(tls13) => u8::from(
                tls13.common.hash_provider.algorithm()
                    != rustls::crypto::hash::HashAlgorithm::SHA256,
            ),
            None => 2,
        });
    let provider = Arc::new(provider);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProbeError::Tls {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Sessions are resumed (TLS 1.3 tickets, TLS 1.2 session ids): a check after the first
    // sends no certificate (docs/probe.md, "Bytes on the wire"), on every interface and across
    // reloads that keep the trust roots.
    config.resumption = rustls::client::Resumption::store(sessions);
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The process's TLS session store for a set of extra trust roots: a probe rebuilt by a
/// reload (SIGHUP) resumes the sessions of the one before, while a change of `ca_file` starts
/// afresh (a resumed session is not verified again, so it must come from the same roots).
fn session_store(extra: &[CertificateDer<'static>]) -> Arc<dyn rustls::client::ClientSessionStore> {
    type Stores =
        std::collections::HashMap<Vec<Vec<u8>>, Arc<rustls::client::ClientSessionMemoryCache>>;
    static STORES: Mutex<Option<Stores>> = Mutex::new(None);
    /// Server names remembered per store (one check host, a few after URI changes).
    const NAMES: usize = 16;
    let key: Vec<Vec<u8>> = extra.iter().map(|c| c.as_ref().to_vec()).collect();
    let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
    stores
        .get_or_insert_with(Default::default)
        .entry(key)
        .or_insert_with(|| Arc::new(rustls::client::ClientSessionMemoryCache::new(NAMES)))
        .clone()
}

/// Settings and shared state of the probe.
struct Inner {
    target: Target,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    expected: Vec<u8>,
    connect_timeout: Duration,
    timeout: Duration,
    resolvers: ResolverPool,
}

/// The production [`Probe`]: one per configuration, shared by every interface's Prober.
#[derive(Clone)]
pub struct HttpProbe {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HttpProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProbe")
            .field("target", &self.inner.target)
            .field("connect_timeout", &self.inner.connect_timeout)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Bytes of one check, shared with the attempt so a timed-out attempt is still counted.
#[derive(Default)]
struct CheckMeters {
    tcp: Mutex<Vec<Arc<TcpMeter>>>,
}

impl CheckMeters {
    fn connection(&self, ipv6: bool) -> Arc<TcpMeter> {
        let meter = TcpMeter::new(ipv6);
        self.tcp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(meter.clone());
        meter
    }

    fn tcp_bytes(&self) -> u64 {
        let tcp = self.tcp.lock().unwrap_or_else(|e| e.into_inner());
        tcp.iter().map(|m| m.l3_bytes()).sum()
    }
}

impl HttpProbe {
    /// Builds the probe from the check settings: parses the URI, loads `ca_file`.
    pub fn new(check: &CheckConfig) -> Result<Self, ProbeError> {
        let target = Target::parse(&check.uri)?;
        let extra = match &check.ca_file {
            Some(path) => load_ca_file(path)?,
            None => Vec::new(),
        };
        let tls = if target.https {
            Some((tls_connector(extra)?, target.server_name()?))
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                target,
                tls,
                expected: check.response.as_bytes().to_vec(),
                connect_timeout: check.connect_timeout,
                timeout: check.timeout,
                resolvers: ResolverPool::default(),
            }),
        })
    }

    /// Runs one check (what [`Probe::check`] returns, as a plain async fn).
    pub async fn run(&self, request: ProbeRequest) -> ProbeReport {
        self.run_with_progress(request, &CheckProgress::default())
            .await
    }

    /// [`HttpProbe::run`], marking `progress` once the TCP connection to the check server is
    /// established (what a confirmation's short deadline looks at).
    pub async fn run_with_progress(
        &self,
        request: ProbeRequest,
        progress: &CheckProgress,
    ) -> ProbeReport {
        let started = Instant::now();
        let inner = &self.inner;
        let meters = CheckMeters::default();
        let resolver = match &inner.target.host {
            Host::Ip(_) => None,
            Host::Name(_) => Some(inner.resolvers.get(
                &request.iface,
                &request.dns,
                inner.connect_timeout,
                &request.routed,
            )),
        };
        let dns_before = resolver.as_ref().map_or(0, |r| r.bytes());
        let attempt = self.attempt(&request, resolver.as_deref(), &meters, progress);
        let outcome = match tokio::time::timeout(inner.timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(CheckFailure::TotalTimeout {
                after: inner.timeout,
            }),
        };
        let dns_bytes = resolver
            .as_ref()
            .map_or(0, |r| r.bytes())
            .saturating_sub(dns_before);
        let report = report(outcome, meters.tcp_bytes(), dns_bytes, started);
        tracing::debug!(
            iface = %request.iface,
            verdict = ?report.verdict,
            reason = %report.reason,
            bytes = report.bytes,
            "check done"
        );
        report
    }

    async fn attempt(
        &self,
        request: &ProbeRequest,
        resolver: Option<&dns::InterfaceResolver>,
        meters: &CheckMeters,
        progress: &CheckProgress,
    ) -> Result<(Verdict, String), CheckFailure> {
        let inner = &self.inner;
        let iface = &request.iface;
        let sources = source::read(iface)?;
        // No route at all: nothing is sent (the engine does not even ask; `netfailover check`
        // on such an interface ends here too).
        if request.routed.is_empty() {
            return Err(CheckFailure::Unrouted {
                iface: iface.clone(),
            });
        }
        let addrs = match (&inner.target.host, resolver) {
            (Host::Ip(ip), _) => vec![*ip],
            (Host::Name(name), Some(resolver)) => resolver.resolve(name, sources).await?,
            (Host::Name(_), None) => {
                return Err(DnsFailure::NoServers {
                    iface: iface.clone(),
                }
                .into())
            }
        };
        // Try each address in answer order; the first connection decides the check. Only
        // families with a route on the interface: through a socket bound to it, the kernel
        // would take any other target as on-link and ARP for it.
        let mut last = None;
        for ip in addrs {
            let family = Family::of(&ip);
            if !request.routed.contains(&family) {
                last.get_or_insert(CheckFailure::NoFamilyRoute {
                    iface: iface.clone(),
                    family,
                    host: inner.target.host.to_string(),
                });
                continue;
            }
            let Some(source) = sources.get(family) else {
                last = Some(CheckFailure::NoAddress {
                    iface: iface.clone(),
                    family,
                });
                continue;
            };
            let addr = SocketAddr::new(ip, inner.target.port);
            let meter = meters.connection(addr.is_ipv6());
            match http::connect(iface, source, addr, inner.connect_timeout, &meter).await {
                Ok(stream) => {
                    progress.set_connected();
                    let stream = CountingStream::new(stream, meter);
                    return match &inner.tls {
                        None => {
                            http::exchange(stream, &inner.target.request, &inner.expected).await
                        }
                        Some((connector, name)) => {
                            let stream = stream.merge_request();
                            let tls = http::tls(connector, name.clone(), stream).await?;
                            // TLS records are counted underneath, on the TCP stream.
                            http::exchange(tls, &inner.target.request, &inner.expected).await
                        }
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            CheckFailure::Dns(DnsFailure::NoAnswer {
                host: inner.target.host.to_string(),
                iface: iface.clone(),
            })
        }))
    }
}

fn report(
    outcome: Result<(Verdict, String), CheckFailure>,
    tcp_bytes: u64,
    dns_bytes: u64,
    started: Instant,
) -> ProbeReport {
    let (verdict, reason) = match outcome {
        Ok(done) => done,
        Err(failure) => (failure.verdict(), failure.to_string()),
    };
    ProbeReport {
        verdict,
        reason,
        bytes: tcp_bytes + dns_bytes,
        dns_bytes,
        elapsed: started.elapsed(),
    }
}

impl Probe for HttpProbe {
    fn check(&self, request: ProbeRequest) -> BoxFuture<'static, ProbeReport> {
        let probe = self.clone();
        Box::pin(async move { probe.run(request).await })
    }

    fn check_with_progress(
        &self,
        request: ProbeRequest,
        progress: Arc<CheckProgress>,
    ) -> BoxFuture<'static, ProbeReport> {
        let probe = self.clone();
        Box::pin(async move { probe.run_with_progress(request, &progress).await })
    }
}

#[cfg(test)]
mod tests;
