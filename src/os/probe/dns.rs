//! Name resolution for checks, bound to one interface.
//!
//! Every query leaves through the checked interface only (SO_BINDTODEVICE on hickory's sockets,
//! through a custom [`RuntimeProvider`], bound to the interface's own address) and goes to that interface's servers in the order the
//! engine gives (docs/semantics.md §3): the next server is asked only when the previous one failed (timeout,
//! unreachable, SERVFAIL, ...). Hickory matches answers to the server's exact address and query
//! id and drops anything else. A successful answer is kept until its TTL runs out, so a check
//! every few seconds does not re-query; an [`InterfaceResolver`] lives as long as the
//! interface's server list stays the same. Queries go over UDP only: a check host's A record
//! never needs TCP.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_resolver::net::runtime::{
    DnsUdpSocket, RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
};
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::Resolver;
use netfailover_actors::model::{Family, IfaceName};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::source::Sources;
use super::wire::DatagramMeter;

/// Why a name could not be resolved through an interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsFailure {
    #[error("DNS: no servers for {iface}")]
    NoServers { iface: IfaceName },
    #[error("DNS: no answer for {host} via {iface}")]
    NoAnswer { host: String, iface: IfaceName },
    #[error("DNS: {host} via {iface}: {message}")]
    Failed {
        host: String,
        iface: IfaceName,
        message: String,
    },
    /// Every server was unreachable (no route, or an upstream router's ICMP "unreachable";
    /// the errno cannot tell them apart). LIMITED, like every failure of the check itself.
    #[error("DNS: {server} unreachable through {iface}")]
    Unreachable {
        iface: IfaceName,
        server: SocketAddr,
    },
}

/// Hickory's runtime with every socket bound to one interface and counted.
#[derive(Clone)]
pub struct BoundProvider {
    inner: TokioRuntimeProvider,
    iface: Arc<str>,
    meter: Arc<DatagramMeter>,
    /// The interface's source addresses as the running check read them ([`InterfaceResolver::resolve`]).
    sources: Arc<Mutex<Sources>>,
}

impl BoundProvider {
    fn source(&self, server: SocketAddr) -> Option<IpAddr> {
        let sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.get(Family::of(&server.ip()))
    }
}

type BoxedIo<T> = Pin<Box<dyn Send + Future<Output = io::Result<T>>>>;

impl RuntimeProvider for BoundProvider {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = MeteredUdp;
    type Tcp = AsyncIoTokioAsStd<TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.inner.create_handle()
    }

    fn connect_tcp(
        &self,
        server: SocketAddr,
        bind_addr: Option<SocketAddr>,
        wait_for: Option<Duration>,
    ) -> BoxedIo<Self::Tcp> {
        let iface = self.iface.clone();
        let source = self.source(server);
        Box::pin(async move {
            let socket = if server.is_ipv6() {
                TcpSocket::new_v6()?
            } else {
                TcpSocket::new_v4()?
            };
            socket.bind_device(Some(iface.as_bytes()))?;
            if let Some(local) = bind_addr.or_else(|| source.map(|ip| SocketAddr::new(ip, 0))) {
                socket.bind(local)?;
            }
            let wait_for = wait_for.unwrap_or(Duration::from_secs(5));
            match tokio::time::timeout(wait_for, socket.connect(server)).await {
                Ok(stream) => stream.map(AsyncIoTokioAsStd),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "DNS TCP connect timed out",
                )),
            }
        })
    }

    fn bind_udp(&self, local: SocketAddr, server: SocketAddr) -> BoxedIo<Self::Udp> {
        let iface = self.iface.clone();
        let meter = self.meter.clone();
        let source = self.source(server);
        Box::pin(async move {
            // The interface's own address (strict reverse-path filtering upstream), when
            // hickory leaves the choice to the kernel.
            let local = match source {
                Some(ip) if local.ip().is_unspecified() => SocketAddr::new(ip, local.port()),
                _ => local,
            };
            let socket = UdpSocket::bind(local).await?;
            socket.bind_device(Some(iface.as_bytes()))?;
            Ok(MeteredUdp { socket, meter })
        })
    }
}

/// A UDP socket that counts every datagram it sends or receives (wrong-source ones included:
/// they crossed the wire too).
pub struct MeteredUdp {
    socket: UdpSocket,
    meter: Arc<DatagramMeter>,
}

impl DnsUdpSocket for MeteredUdp {
    type Time = TokioTime;

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let polled = DnsUdpSocket::poll_recv_from(&self.socket, cx, buf);
        if let Poll::Ready(Ok((n, from))) = &polled {
            self.meter.datagram(*n, from.is_ipv6());
        }
        polled
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let polled = DnsUdpSocket::poll_send_to(&self.socket, cx, buf, target);
        if let Poll::Ready(Ok(n)) = &polled {
            self.meter.datagram(*n, target.is_ipv6());
        }
        polled
    }
}

/// Which records a lookup asks for: only the family the check can use through the interface
/// (no AAAA query on an IPv4-only uplink, no A query on an IPv6-only one); with both, A first and
/// AAAA only when there is no A, half the queries of asking both.
fn strategy(routed: &[Family]) -> LookupIpStrategy {
    match (routed.contains(&Family::V4), routed.contains(&Family::V6)) {
        (true, false) => LookupIpStrategy::Ipv4Only,
        (false, true) => LookupIpStrategy::Ipv6Only,
        _ => LookupIpStrategy::Ipv4thenIpv6,
    }
}

/// A positive answer kept until its TTL expires.
#[derive(Debug, Clone)]
struct CachedAnswer {
    host: String,
    addrs: Vec<IpAddr>,
    valid_until: Instant,
}

/// The resolvers of one interface: one single-server hickory resolver per configured server,
/// asked in order, sharing one byte meter and one answer cache.
pub struct InterfaceResolver {
    iface: IfaceName,
    servers: Vec<SocketAddr>,
    resolvers: Vec<Resolver<BoundProvider>>,
    meter: Arc<DatagramMeter>,
    sources: Arc<Mutex<Sources>>,
    cached: Mutex<Option<CachedAnswer>>,
    per_server_timeout: Duration,
    strategy: LookupIpStrategy,
}

impl InterfaceResolver {
    /// Resolvers for `servers` through `iface`; each server gets `per_server_timeout`; only
    /// the record types of the `routed` families are asked for ([`strategy`]).
    pub fn new(
        iface: &IfaceName,
        servers: &[SocketAddr],
        per_server_timeout: Duration,
        routed: &[Family],
    ) -> Result<Self, DnsFailure> {
        let strategy = strategy(routed);
        let meter = Arc::new(DatagramMeter::default());
        let sources = Arc::new(Mutex::new(Sources::default()));
        let provider = BoundProvider {
            inner: TokioRuntimeProvider::new(),
            iface: Arc::from(iface.as_str()),
            meter: meter.clone(),
            sources: sources.clone(),
        };
        let resolvers = servers
            .iter()
            .map(|server| {
                let mut ns = NameServerConfig::udp(server.ip());
                for conn in &mut ns.connections {
                    conn.port = server.port();
                }
                let config = ResolverConfig::from_name_servers(vec![ns]);
                let mut builder = Resolver::builder_with_config(config, provider.clone());
                let opts = builder.options_mut();
                opts.timeout = per_server_timeout;
                // One try per server per check: the next server, then the next check, retry.
                opts.attempts = 0;
                opts.num_concurrent_reqs = 1;
                opts.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
                opts.ip_strategy = strategy;
                opts.use_hosts_file = ResolveHosts::Never;
                // Our own cache holds the one answer a check needs.
                opts.cache_size = 0;
                // No EDNS OPT record: 11 B less in the query and in the answer; a check host's
                // addresses fit the classic 512 B answer.
                opts.edns0 = false;
                builder.build().map_err(|e| DnsFailure::Failed {
                    host: String::new(),
                    iface: iface.clone(),
                    message: format!("resolver for {server}: {e}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            iface: iface.clone(),
            servers: servers.to_vec(),
            resolvers,
            meter,
            sources,
            cached: Mutex::new(None),
            per_server_timeout,
            strategy,
        })
    }

    /// The server list this resolver was built for.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// L3 bytes of every DNS packet sent or received so far through this resolver.
    pub fn bytes(&self) -> u64 {
        self.meter.total()
    }

    /// Resolves `host` (a name, not an IP literal) through the interface, its queries sent
    /// from `sources` (the interface's addresses as the check read them).
    pub async fn resolve(&self, host: &str, sources: Sources) -> Result<Vec<IpAddr>, DnsFailure> {
        if let Some(addrs) = self.cached(host) {
            return Ok(addrs);
        }
        *self.sources.lock().unwrap_or_else(|e| e.into_inner()) = sources;
        if self.resolvers.is_empty() {
            return Err(DnsFailure::NoServers {
                iface: self.iface.clone(),
            });
        }
        let fqdn = if host.ends_with('.') {
            host.to_string()
        } else {
            format!("{host}.")
        };
        let mut failures = Vec::with_capacity(self.resolvers.len());
        for (resolver, server) in self.resolvers.iter().zip(&self.servers) {
            // Hickory's own timeout is per query, and Ipv4thenIpv6 may send a second query
            // after the first timed out: bound the server as a whole.
            let lookup =
                tokio::time::timeout(self.per_server_timeout, resolver.lookup_ip(fqdn.as_str()));
            let Ok(result) = lookup.await else {
                failures.push((*server, ServerFailure::Timeout));
                continue;
            };
            match result {
                Ok(lookup) => {
                    let addrs: Vec<IpAddr> = lookup.iter().collect();
                    if addrs.is_empty() {
                        failures.push((*server, ServerFailure::NoAnswer));
                        continue;
                    }
                    self.remember(host, &addrs, lookup.valid_until());
                    return Ok(addrs);
                }
                Err(e) => {
                    tracing::debug!(iface = %self.iface, %server, error = %e, "DNS server failed");
                    failures.push((*server, ServerFailure::from_error(&e)));
                }
            }
        }
        Err(self.summarise(host, failures))
    }

    fn cached(&self, host: &str) -> Option<Vec<IpAddr>> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| c.host == host && c.valid_until > Instant::now())
            .map(|c| c.addrs.clone())
    }

    fn remember(&self, host: &str, addrs: &[IpAddr], valid_until: Instant) {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        *cached = Some(CachedAnswer {
            host: host.to_string(),
            addrs: addrs.to_vec(),
            valid_until,
        });
    }

    /// One failure for the whole list: "unreachable" only if every server was; "no
    /// answer" if any server answered that the name has no address; otherwise the first error.
    fn summarise(&self, host: &str, failures: Vec<(SocketAddr, ServerFailure)>) -> DnsFailure {
        let iface = self.iface.clone();
        if let Some((server, _)) = failures.first().filter(|_| {
            failures
                .iter()
                .all(|(_, f)| matches!(f, ServerFailure::Unreachable))
        }) {
            return DnsFailure::Unreachable {
                iface,
                server: *server,
            };
        }
        if failures
            .iter()
            .any(|(_, f)| matches!(f, ServerFailure::NoAnswer))
        {
            return DnsFailure::NoAnswer {
                host: host.to_string(),
                iface,
            };
        }
        let message = match failures.first() {
            Some((server, ServerFailure::Other(m))) => format!("{server}: {m}"),
            Some((server, ServerFailure::Timeout)) => format!("{server}: timed out"),
            _ => "failed".to_string(),
        };
        DnsFailure::Failed {
            host: host.to_string(),
            iface,
            message,
        }
    }
}

/// How one server failed.
#[derive(Debug)]
enum ServerFailure {
    NoAnswer,
    Unreachable,
    Timeout,
    Other(String),
}

impl ServerFailure {
    fn from_error(e: &NetError) -> Self {
        match e {
            NetError::Dns(DnsError::NoRecordsFound(_)) => ServerFailure::NoAnswer,
            NetError::Timeout => ServerFailure::Timeout,
            NetError::Io(io) if super::is_unreachable(io) => ServerFailure::Unreachable,
            other => ServerFailure::Other(other.to_string()),
        }
    }
}

/// Resolvers per interface, rebuilt when an interface's server list changes.
#[derive(Default)]
pub struct ResolverPool {
    by_iface: Mutex<std::collections::HashMap<IfaceName, Arc<InterfaceResolver>>>,
}

impl ResolverPool {
    /// The resolver of `iface` for exactly `servers` and the `routed` families.
    pub fn get(
        &self,
        iface: &IfaceName,
        servers: &[SocketAddr],
        per_server_timeout: Duration,
        routed: &[Family],
    ) -> Result<Arc<InterfaceResolver>, DnsFailure> {
        let mut pool = self.by_iface.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = pool
            .get(iface)
            .filter(|r| r.servers() == servers && r.strategy == strategy(routed))
        {
            return Ok(existing.clone());
        }
        let fresh = Arc::new(InterfaceResolver::new(
            iface,
            servers,
            per_server_timeout,
            routed,
        )?);
        pool.insert(iface.clone(), fresh.clone());
        Ok(fresh)
    }

    /// Forgets the resolver of `iface` after a failed lookup, so the next check starts from
    /// fresh sockets (hickory's background tasks belong to the runtime that created them; a
    /// Prober restarted on another arbiter must not inherit dead ones).
    pub fn forget(&self, iface: &IfaceName) {
        let mut pool = self.by_iface.lock().unwrap_or_else(|e| e.into_inner());
        pool.remove(iface);
    }
}
