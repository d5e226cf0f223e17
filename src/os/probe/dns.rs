//! Name resolution for checks, bound to one interface.
//!
//! Every query leaves through the checked interface only (a UDP socket with SO_BINDTODEVICE,
//! bound to the interface's own address) and goes to that interface's servers in the order the
//! engine gives (docs/semantics.md §3): the next server is asked only when the previous one
//! failed (timeout, unreachable, SERVFAIL, ...). Only a datagram from the server's exact address
//! and port, with the query's id and question, is taken as the answer; anything else is
//! counted and ignored. A successful answer is kept until its TTL runs out, so a check every few
//! seconds does not re-query; an [`InterfaceResolver`] lives as long as the interface's server
//! list stays the same. Queries go over UDP only: a check host's A record never needs TCP. The
//! messages themselves: `dns_msg.rs` (our own client instead of hickory-resolver:
//! docs/decisions.md, "DNS").

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netfailover_actors::model::{Family, IfaceName};
use tokio::net::UdpSocket;

use super::dns_msg::{self, RecordType, Reply};
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

/// Which records a lookup asks for: only the family the check can use through the interface
/// (no AAAA query on an IPv4-only uplink, no A query on an IPv6-only one); with both, A first and
/// AAAA only when there is no A, half the queries of asking both.
fn strategy(routed: &[Family]) -> &'static [RecordType] {
    match (routed.contains(&Family::V4), routed.contains(&Family::V6)) {
        (true, false) => &[RecordType::A],
        (false, true) => &[RecordType::Aaaa],
        _ => &[RecordType::A, RecordType::Aaaa],
    }
}

/// A positive answer kept until its TTL expires.
#[derive(Debug, Clone)]
struct CachedAnswer {
    host: String,
    addrs: Vec<IpAddr>,
    valid_until: Instant,
}

/// The resolver of one interface: its servers asked in order, one byte meter and one answer
/// cache.
pub struct InterfaceResolver {
    iface: IfaceName,
    servers: Vec<SocketAddr>,
    meter: DatagramMeter,
    cached: Mutex<Option<CachedAnswer>>,
    per_server_timeout: Duration,
    strategy: &'static [RecordType],
}

impl InterfaceResolver {
    /// A resolver for `servers` through `iface`; each server gets `per_server_timeout`; only
    /// the record types of the `routed` families are asked for ([`strategy`]).
    pub fn new(
        iface: &IfaceName,
        servers: &[SocketAddr],
        per_server_timeout: Duration,
        routed: &[Family],
    ) -> Self {
        Self {
            iface: iface.clone(),
            servers: servers.to_vec(),
            meter: DatagramMeter::default(),
            cached: Mutex::new(None),
            per_server_timeout,
            strategy: strategy(routed),
        }
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
        if self.servers.is_empty() {
            return Err(DnsFailure::NoServers {
                iface: self.iface.clone(),
            });
        }
        let mut failures = Vec::with_capacity(self.servers.len());
        for server in &self.servers {
            // One try per server per check: the next server, then the next check, retry. The
            // timeout bounds the server as a whole (A and then AAAA).
            let asked =
                tokio::time::timeout(self.per_server_timeout, self.ask(*server, host, sources));
            let failure = match asked.await {
                Err(_) => ServerFailure::Timeout,
                Ok(Ok((addrs, ttl))) => {
                    self.remember(host, &addrs, Instant::now() + ttl);
                    return Ok(addrs);
                }
                Ok(Err(failure)) => failure,
            };
            tracing::debug!(iface = %self.iface, %server, ?failure, "DNS server failed");
            failures.push((*server, failure));
        }
        Err(self.summarise(host, failures))
    }

    /// `host`'s addresses from one server: the record types of [`strategy`] in turn, the next
    /// only when the previous had none.
    async fn ask(
        &self,
        server: SocketAddr,
        host: &str,
        sources: Sources,
    ) -> Result<(Vec<IpAddr>, Duration), ServerFailure> {
        let socket = self
            .socket(server, sources)
            .await
            .map_err(ServerFailure::io)?;
        let mut buf = [0u8; 1500];
        for &rtype in self.strategy {
            let query = dns_msg::query(random_id(), host, rtype)
                .map_err(|e| ServerFailure::Other(e.to_string()))?;
            let sent = socket
                .send_to(&query, server)
                .await
                .map_err(ServerFailure::io)?;
            self.meter.datagram(sent, server.is_ipv6());
            loop {
                let (n, from) = socket
                    .recv_from(&mut buf)
                    .await
                    .map_err(ServerFailure::io)?;
                // Every datagram crossed the wire, the wrong ones too.
                self.meter.datagram(n, from.is_ipv6());
                // Compared without the scope or flow: a v4-mapped or scoped form is the same peer.
                if from.ip().to_canonical() != server.ip().to_canonical()
                    || from.port() != server.port()
                {
                    continue;
                }
                match dns_msg::parse(&buf[..n], &query) {
                    Reply::NotOurs => continue,
                    Reply::Addresses { addrs, ttl } if !addrs.is_empty() => {
                        return Ok((addrs, ttl))
                    }
                    Reply::Addresses { .. } | Reply::NoSuchName => break,
                    Reply::Failed(message) => return Err(ServerFailure::Other(message)),
                }
            }
        }
        Err(ServerFailure::NoAnswer)
    }

    /// A fresh UDP socket (a new random port per lookup) on the interface, from the
    /// interface's own address of the server's family (strict reverse-path filtering upstream)
    /// when it has one.
    async fn socket(&self, server: SocketAddr, sources: Sources) -> io::Result<UdpSocket> {
        let family = Family::of(&server.ip());
        let local = sources.get(family).unwrap_or(match family {
            Family::V4 => IpAddr::from([0, 0, 0, 0]),
            Family::V6 => IpAddr::from([0u16; 8]),
        });
        let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
        socket.bind_device(Some(self.iface.as_str().as_bytes()))?;
        Ok(socket)
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

/// A query id nobody off the path can guess (with the random port, the screen against forged
/// answers). Falls back to the clock's nanoseconds if the kernel's generator fails.
fn random_id() -> u16 {
    use ring::rand::SecureRandom as _;
    let mut id = [0u8; 2];
    if ring::rand::SystemRandom::new().fill(&mut id).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        id = (nanos as u16).to_be_bytes();
    }
    u16::from_be_bytes(id)
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
    fn io(e: io::Error) -> Self {
        if super::is_unreachable(&e) {
            ServerFailure::Unreachable
        } else {
            ServerFailure::Other(e.to_string())
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
    ) -> Arc<InterfaceResolver> {
        let mut pool = self.by_iface.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = pool
            .get(iface)
            .filter(|r| r.servers() == servers && r.strategy == strategy(routed))
        {
            return existing.clone();
        }
        let fresh = Arc::new(InterfaceResolver::new(
            iface,
            servers,
            per_server_timeout,
            routed,
        ));
        pool.insert(iface.clone(), fresh.clone());
        fresh
    }
}
