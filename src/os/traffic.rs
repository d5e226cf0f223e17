//! [`NetlinkTraffic`]: the `TrafficSource` port (passive health's sampling) on netlink only.
//!
//! Each period TrafficWatcher reads the link counters alone ([`TrafficSource::counters`]: one
//! `RTM_GETSTATS` request per watched interface for the 64-bit link statistics only, falling
//! back to a link dump on kernels without it); a whole sample is taken only when those show
//! something new. The counters, and a whole sample's links and addresses, go over a blocking
//! netlink socket of our own (the kernel answers within the request's `sendto`): no netlink
//! connection task to wake for what runs every second.
//!
//! One sample = one pass over every source, all on sockets opened once in
//! [`NetlinkTraffic::new`] (calling thread's namespace): the sampled links (`RTM_GETLINK` of
//! each, `IFLA_STATS64` packet counters), their addresses (`RTM_GETADDR`: which interface a
//! socket's source address is on, and each interface's connected subnets, whose peers are on
//! the LAN), TCP sockets of
//! both families (sock_diag with `INET_DIAG_INFO`, see `os/sockdiag.rs`) and connection
//! tracking of both families (ctnetlink with packet accounting, see `os/ct_sample.rs`); a
//! family's TCP dump is skipped while the namespace has no TCP socket of it at all, as the
//! conntrack dump is while it tracks nothing (both walk a host-wide table). No
//! `/proc/net/tcp` or `/sys` scraping and no `ss`: the cost is a few netlink round trips per period,
//! measured in docs/benchmarks.md.
//!
//! Sockets are attributed by source address: a socket whose local address is one of the
//! interface's addresses belongs to that interface (what leaves with that source follows the
//! interface's route; a socket bound to another device with `SO_BINDTODEVICE` is attributed to
//! that device instead). Listening and time-wait sockets are not asked for.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use futures::future::{self, BoxFuture, FutureExt};
use futures::stream::TryStreamExt;
use netfailover_actors::ports::{
    IfaceTraffic, PortError, PortResult, TcpPhase, TcpSocketSample, TrafficSource,
};
use netlink_packet_sock_diag::constants::{
    TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_LAST_ACK, TCP_SYN_SENT,
};
use netlink_packet_sock_diag::inet::StateFlags;
use netlink_sys::protocols::NETLINK_ROUTE;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::stats::{StatsAttribute, StatsFilterMask, StatsMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::ct_sample::CtSampler;
use super::flows::wire::{Conn, WireError};
use super::netlink::{address_of, open_request_connection, port_error, AbortOnDrop, NetlinkError};
use super::sockdiag::{DiagSocket, SockDiag, SockDiagError, AF_INET, AF_INET6};

const WHAT: &str = "traffic sample";

/// See the module doc.
pub struct NetlinkTraffic {
    route: rtnetlink::Handle,
    _route_connection: AbortOnDrop,
    diag: SockDiag,
    conntrack: CtSampler,
    tcp_in_use: Arc<TcpInUse>,
    /// A blocking request socket for the per-period counters ([`stats_get`]) and a whole
    /// sample's links and addresses ([`links_get`]); `None` if it could not be opened (the
    /// netlink connection above does it then).
    conn: Option<Arc<Mutex<Conn>>>,
}

/// Whether the namespace has any TCP socket of a family: the `inuse` counts of
/// `/proc/thread-self/net/sockstat` (`TCP:`) and `sockstat6` (`TCP6:`), files opened once in
/// [`NetlinkTraffic::new`] (a `/proc/.../net` file keeps the namespace it was opened in).
///
/// Why: a sock_diag dump walks the kernel's whole TCP hash table, shared by every namespace and
/// sized by the host's memory, even when the namespace has no socket at all — 2–4 ms of kernel
/// time per family on the benchmark machine, most of an idle daemon's CPU. `inuse` counts every
/// hashed TCP socket of the namespace (every state a sample asks for, listeners too; not
/// time-wait), so a count of 0 means the dump would return nothing. An unreadable count means
/// "dump".
struct TcpInUse {
    v4: Option<File>,
    v6: Option<File>,
}

impl TcpInUse {
    fn open() -> Self {
        let open = |path: &str| File::open(path).ok();
        Self {
            v4: open("/proc/thread-self/net/sockstat"),
            v6: open("/proc/thread-self/net/sockstat6"),
        }
    }

    /// False only when the namespace is known to have no TCP socket of `family`.
    fn any(&self, family: u8) -> bool {
        let (file, label) = if family == AF_INET6 {
            (&self.v6, "TCP6:")
        } else {
            (&self.v4, "TCP:")
        };
        let Some(file) = file else {
            return true;
        };
        let mut buf = [0u8; 512];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        let text = buf.get(..n).and_then(|b| std::str::from_utf8(b).ok());
        text.and_then(|t| in_use(t, label)) != Some(0)
    }
}

/// The `inuse` count of the `label` line (`TCP: inuse 3 orphan 0 ...`) of a sockstat file.
fn in_use(text: &str, label: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(label))?;
    let mut words = line.split_whitespace().skip(1);
    while let Some(word) = words.next() {
        if word == "inuse" {
            return words.next()?.parse().ok();
        }
    }
    None
}

impl NetlinkTraffic {
    /// Opens the sockets; must run inside a tokio runtime on a thread in the namespace to watch.
    pub fn new() -> Result<Self, NetlinkError> {
        let (route, connection) = open_request_connection("netlink traffic sampling")?;
        Ok(Self {
            route,
            _route_connection: connection,
            diag: SockDiag::open()?,
            conntrack: CtSampler::open(),
            tcp_in_use: Arc::new(TcpInUse::open()),
            conn: open_conn().map(|c| Arc::new(Mutex::new(c))),
        })
    }

    /// Turns connection-tracking accounting on now (else the first sample does): flows opened
    /// before that carry no counters and are not watched until they are replaced.
    pub fn prepare(&self) {
        self.conntrack.ensure_accounting();
    }
}

/// The states in which a socket can have data or a SYN in flight.
fn wanted_states() -> StateFlags {
    StateFlags::ESTABLISHED
        | StateFlags::SYN_SENT
        | StateFlags::FIN_WAIT1
        | StateFlags::CLOSE_WAIT
        | StateFlags::LAST_ACK
        | StateFlags::CLOSING
}

fn phase(state: u8) -> TcpPhase {
    match state {
        TCP_SYN_SENT => TcpPhase::SynSent,
        TCP_ESTABLISHED | TCP_CLOSE_WAIT | TCP_FIN_WAIT1 | TCP_CLOSING | TCP_LAST_ACK => {
            TcpPhase::Open
        }
        _ => TcpPhase::Other,
    }
}

fn socket_sample(s: &DiagSocket) -> TcpSocketSample {
    let info = s.info.unwrap_or_default();
    TcpSocketSample {
        cookie: s.cookie(),
        local: s.local(),
        remote: s.remote(),
        phase: phase(s.state),
        unacked: info.unacked,
        retransmits: info.retransmits,
        total_retrans: info.total_retrans,
        last_ack_recv: info.last_ack_recv,
        rtt: info.rtt,
        bytes_acked: info.bytes_acked,
        bytes_received: info.bytes_received,
    }
}

/// The interface counters of one link message, `None` for a link without stats or name.
fn link_counters(link: &LinkMessage) -> Option<IfaceTraffic> {
    let mut name = None;
    let mut stats = None;
    for attr in &link.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Stats64(s) => stats = Some(s),
            _ => {}
        }
    }
    let stats = stats?;
    Some(IfaceTraffic {
        ifindex: link.header.index,
        name: name?,
        rx_packets: stats.rx_packets,
        tx_packets: stats.tx_packets,
        rx_multicast: stats.multicast,
        rx_bytes: stats.rx_bytes,
        tx_bytes: stats.tx_bytes,
        tcp: Vec::new(),
        subnets: Vec::new(),
        flows: None,
    })
}

/// The connected subnet of one address message: (address, prefix length, interface).
fn subnet_of(msg: &AddressMessage) -> Option<(IpAddr, u8, u32)> {
    address_of(msg).map(|(ip, ifindex)| (ip, msg.header.prefix_len, ifindex))
}

/// Which interface a socket belongs to: its bound device, else the owner of its source address.
fn owner(s: &DiagSocket, by_address: &HashMap<IpAddr, u32>) -> Option<u32> {
    if s.id.interface_id != 0 {
        return Some(s.id.interface_id);
    }
    let ip = match s.id.source_address {
        // An IPv4 socket on a dual-stack IPv6 socket shows as ::ffff:a.b.c.d.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    by_address.get(&ip).copied()
}

/// The link counters of `ifindexes`: one link dump.
async fn counters_of(
    route: &rtnetlink::Handle,
    ifindexes: &[u32],
) -> PortResult<Vec<IfaceTraffic>> {
    let links: Vec<LinkMessage> = route
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| port_error(format!("{WHAT}: links"), e))?;
    Ok(links
        .iter()
        .filter(|l| ifindexes.contains(&l.header.index))
        .filter_map(link_counters)
        .collect())
}

/// Receive buffer of the blocking socket: one link (a few KB) or one datagram of an address
/// dump (the kernel fills up to 32 KiB when the reader's buffer allows it).
const CONN_BUF_LEN: usize = 32 * 1024;

/// The blocking request socket, in the calling thread's namespace, asking the kernel to filter
/// an address dump by interface where it can (Linux 4.20 and later; else the caller filters).
fn open_conn() -> Option<Conn> {
    let conn = Conn::open_with(NETLINK_ROUTE, CONN_BUF_LEN).ok()?;
    let _ = conn.socket().set_netlink_get_strict_chk(true);
    Some(conn)
}

/// A whole sample's links and addresses on the blocking socket: `RTM_GETLINK` of each of
/// `ifindexes` (a link dump would format and parse every link of the namespace, a device
/// with containers has dozens) and the addresses of those interfaces (the only ones a sample
/// attributes sockets and flows to). Gone interfaces are left out.
fn links_get(
    conn: &Mutex<Conn>,
    ifindexes: &[u32],
) -> Result<(Vec<IfaceTraffic>, Vec<AddressMessage>), WireError> {
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(ifindexes.len());
    for &ifindex in ifindexes {
        let mut request = LinkMessage::default();
        request.header.index = ifindex;
        match conn.get(RouteNetlinkMessage::GetLink(request)) {
            Ok(RouteNetlinkMessage::NewLink(link)) => out.extend(link_counters(&link)),
            Ok(_) | Err(WireError::Errno(libc::ENODEV)) => {}
            Err(e) => return Err(e),
        }
    }
    let mut addresses = Vec::new();
    if out.is_empty() {
        return Ok((out, addresses));
    }
    let mut request = AddressMessage::default();
    if let [one] = out.as_slice() {
        request.header.index = one.ifindex;
    }
    conn.dump(RouteNetlinkMessage::GetAddress(request), |m| {
        if let RouteNetlinkMessage::NewAddress(a) = m {
            if ifindexes.contains(&a.header.index) {
                addresses.push(a);
            }
        }
    })?;
    Ok((out, addresses))
}

/// The link counters of `ifindexes`: one `RTM_GETSTATS` request per interface asking for
/// `IFLA_STATS_LINK_64` only (about 200 bytes), where a link dump has the kernel format (and us
/// parse) every attribute of every link, a few KB each. On a blocking socket of our own: the
/// kernel answers a request within the `sendto`, so the `recv` never waits, and the period's
/// read costs two system calls per interface instead of a round trip through a netlink
/// connection task (its wake-ups, its `epoll` registrations and its dump bookkeeping) — this
/// runs every `passive.period`. The stats answer carries no names, so `name` is left empty.
/// An interface that is gone is left out (as a dump would); `Ok(None)` when the kernel refuses
/// the request (before Linux 4.7).
fn stats_get(
    conn: &Mutex<Conn>,
    ifindexes: &[u32],
) -> Result<Option<Vec<IfaceTraffic>>, WireError> {
    // A poisoned lock still holds a usable socket (each request is one request/answer).
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::with_capacity(ifindexes.len());
    for &ifindex in ifindexes {
        let mut message = StatsMessage::default();
        message.header.ifindex = ifindex;
        message.header.filter_mask = StatsFilterMask::Link64;
        let answer = match conn.get(RouteNetlinkMessage::GetStats(message)) {
            Ok(RouteNetlinkMessage::NewStats(m)) => m,
            Ok(_) => continue,
            Err(WireError::Errno(libc::ENODEV)) => continue,
            Err(WireError::Errno(libc::EOPNOTSUPP | libc::EINVAL)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let stats = answer.attributes.iter().find_map(|a| match a {
            StatsAttribute::Link64(s) => Some(s),
            _ => None,
        });
        if let Some(s) = stats {
            out.push(IfaceTraffic {
                ifindex: answer.header.ifindex,
                name: String::new(),
                rx_packets: s.rx_packets,
                tx_packets: s.tx_packets,
                rx_multicast: s.multicast,
                rx_bytes: s.rx_bytes,
                tx_bytes: s.tx_bytes,
                tcp: Vec::new(),
                subnets: Vec::new(),
                flows: None,
            });
        }
    }
    Ok(Some(out))
}

/// A whole sample's links and addresses: on the blocking socket ([`links_get`]), else (it
/// failed or could not be opened) a link dump and an address dump on the netlink connection.
async fn links_and_addresses(
    route: &rtnetlink::Handle,
    conn: Option<&Mutex<Conn>>,
    ifindexes: &[u32],
) -> PortResult<(Vec<IfaceTraffic>, Vec<AddressMessage>)> {
    let read = conn.and_then(|c| {
        links_get(c, ifindexes)
            .map_err(|e| tracing::debug!(error = %e, "{WHAT}: links and addresses"))
            .ok()
    });
    if let Some(read) = read {
        return Ok(read);
    }
    let out = counters_of(route, ifindexes).await?;
    if out.is_empty() {
        return Ok((out, Vec::new()));
    }
    let addresses: Vec<AddressMessage> = route
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| port_error(format!("{WHAT}: addresses"), e))?;
    Ok((out, addresses))
}

impl TrafficSource for NetlinkTraffic {
    fn counters(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>> {
        let route = self.route.clone();
        let conn = self.conn.clone();
        async move {
            if let Some(conn) = conn {
                let read = stats_get(&conn, &ifindexes)
                    .map_err(|e| PortError::failed(format!("{WHAT}: link statistics"), e))?;
                if let Some(counters) = read {
                    return Ok(counters);
                }
            }
            counters_of(&route, &ifindexes).await
        }
        .boxed()
    }

    fn sample(&self, ifindexes: Vec<u32>) -> BoxFuture<'static, PortResult<Vec<IfaceTraffic>>> {
        let route = self.route.clone();
        let conn = self.conn.clone();
        let dump4 = self.diag.dump_tcp(AF_INET, wanted_states());
        let dump6 = self.diag.dump_tcp(AF_INET6, wanted_states());
        let tcp_in_use = self.tcp_in_use.clone();
        let conntrack = self.conntrack.clone();
        // Here, on the caller's thread: the sysctl is the namespace's the daemon samples.
        conntrack.ensure_accounting();
        async move {
            // One after the other: a netlink socket runs one dump at a time (a second one
            // started meanwhile fails with EBUSY).
            let (mut out, addresses) =
                links_and_addresses(&route, conn.as_deref(), &ifindexes).await?;
            if out.is_empty() {
                return Ok(out);
            }
            let by_address: HashMap<IpAddr, u32> =
                addresses.iter().filter_map(address_of).collect();
            for (ip, len, ifindex) in addresses.iter().filter_map(subnet_of) {
                if let Some(t) = out.iter_mut().find(|t| t.ifindex == ifindex) {
                    t.subnets.push((ip, len));
                }
            }
            let wanted: HashMap<IpAddr, u32> = by_address
                .iter()
                .filter(|(_, i)| out.iter().any(|t| t.ifindex == **i))
                .map(|(ip, i)| (*ip, *i))
                .collect();
            // An empty table needs no dump (nor a blocking thread): the flows are known empty.
            let flows = if conntrack.tracks_nothing() {
                future::ready(Ok(conntrack.usable().then(HashMap::new))).left_future()
            } else {
                tokio::task::spawn_blocking(move || conntrack.sample_blocking(&wanted))
                    .right_future()
            };
            // A family without any TCP socket in the namespace needs no dump (see TcpInUse);
            // read here, just before the dumps would run.
            let dump4 = if tcp_in_use.any(AF_INET) {
                dump4.left_future()
            } else {
                future::ready(Ok::<_, SockDiagError>(Vec::new())).right_future()
            };
            let dump6 = if tcp_in_use.any(AF_INET6) {
                dump6.left_future()
            } else {
                future::ready(Ok::<_, SockDiagError>(Vec::new())).right_future()
            };
            let (v4, v6, flows) = futures::join!(dump4, dump6, flows);
            // A failed blocking task (panic) only loses this sample's flows.
            if let Ok(Some(mut flows)) = flows {
                for t in &mut out {
                    t.flows = Some(flows.remove(&t.ifindex).unwrap_or_default());
                }
            }
            let v4 = v4.map_err(|e| PortError::failed(WHAT, e))?;
            // A kernel without IPv6 has no AF_INET6 sock_diag handler: IPv4 alone is a sample.
            let v6 = v6.unwrap_or_default();
            for s in v4.iter().chain(v6.iter()) {
                let Some(ifindex) = owner(s, &by_address) else {
                    continue;
                };
                if let Some(t) = out.iter_mut().find(|t| t.ifindex == ifindex) {
                    t.tcp.push(socket_sample(s));
                }
            }
            Ok(out)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_lines_give_the_tcp_in_use_counts() {
        let text =
            "sockets: used 18\nTCP: inuse 2 orphan 1 tw 0 alloc 7 mem 308\nUDP: inuse 0 mem 0\n";
        assert_eq!(in_use(text, "TCP:"), Some(2));
        assert_eq!(in_use("TCP6: inuse 0\nUDP6: inuse 1\n", "TCP6:"), Some(0));
        assert_eq!(in_use("UDP6: inuse 1\n", "TCP6:"), None);
        assert_eq!(in_use("TCP: orphan 1\n", "TCP:"), None);
    }

    #[test]
    fn an_open_listener_is_counted_through_the_file_opened_once() {
        // The test's own namespace (other tests' sockets may be counted too, so only "at least
        // one" is asserted), read twice through the same open file.
        let counts = TcpInUse::open();
        let text = |f: &Option<File>| {
            let mut buf = [0u8; 512];
            let n = f
                .as_ref()
                .map_or(0, |f| f.read_at(&mut buf, 0).unwrap_or(0));
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        assert!(counts.v4.is_some(), "sockstat readable");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        assert!(in_use(&text(&counts.v4), "TCP:").is_some_and(|n| n >= 1));
        assert!(in_use(&text(&counts.v4), "TCP:").is_some_and(|n| n >= 1));
        assert!(counts.any(AF_INET));
        drop(listener);
    }

    #[test]
    fn states_map_to_phases() {
        assert_eq!(phase(TCP_SYN_SENT), TcpPhase::SynSent);
        assert_eq!(phase(TCP_ESTABLISHED), TcpPhase::Open);
        assert_eq!(phase(TCP_LAST_ACK), TcpPhase::Open);
        assert_eq!(phase(7), TcpPhase::Other);
    }
}
