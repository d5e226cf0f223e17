//! Passive health's view of connection tracking: every tracked flow that leaves through an
//! uplink (forwarded and NATed container traffic, UDP, the device's own), with per-direction
//! packet counters, from one ctnetlink dump of both families per sample, on the blocking request
//! socket of `flows/wire.rs`; each entry is read straight from its bytes (a sample of 10 000
//! entries allocates nothing per entry: see the sampling-cost row of docs/benchmarks.md).
//!
//! Counters exist only for entries created while `net.netfilter.nf_conntrack_acct` is 1, so
//! the first sample turns it on when it is off ([`CtSampler::ensure_accounting`], logged once,
//! docs/semantics.md §9.6; a daemon with passive health off never touches it); an entry
//! without counters is skipped. Where connection tracking is absent (no
//! `nf_conntrack` / ctnetlink) the sampler says so and the sample carries no flows: passive
//! health then sees the daemon's own sockets and the link counters only (`status` shows it).
//!
//! A flow is attributed by its reply direction's destination: for the device's own flows and
//! for masqueraded ones (containers behind the NAT bridge) that is the uplink's address, so
//! the flow belongs to the interface owning it. Flows arriving from outside (their reply goes
//! to a remote host) and flows forwarded without NAT are not attributed.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader, NetlinkSerializable};
use netlink_sys::protocols::NETLINK_NETFILTER;

use netfailover_actors::ports::{FlowProto, FlowSample};

use super::flows::wire::Conn;
use super::sysctl::ProcSysctl;

/// The sysctl that makes the kernel count packets per conntrack direction.
pub const ACCT_KEY: &str = "net.netfilter.nf_conntrack_acct";

/// Attribute numbers of linux/netfilter/nfnetlink_conntrack.h.
mod cta {
    pub const TUPLE_ORIG: u16 = 1;
    pub const TUPLE_REPLY: u16 = 2;
    pub const COUNTERS_ORIG: u16 = 9;
    pub const COUNTERS_REPLY: u16 = 10;
    pub const ID: u16 = 12;
    pub const TUPLE_IP: u16 = 1;
    pub const TUPLE_PROTO: u16 = 2;
    pub const IP_V4_DST: u16 = 2;
    pub const IP_V6_DST: u16 = 4;
    pub const PROTO_NUM: u16 = 1;
    /// `cta::COUNTERS_PACKETS` (u64) and the old `cta::COUNTERS32_PACKETS` (u32), big endian.
    pub const COUNTERS_PACKETS: u16 = 1;
    pub const COUNTERS32_PACKETS: u16 = 3;
}

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET`.
const CT_GET: u16 = (1 << 8) | 1;

/// A ctnetlink dump request, and each entry of its answer read straight from the bytes (only
/// the fields passive health needs: a sample of 10 000 entries allocates nothing per entry).
#[derive(Debug)]
enum CtMessage {
    /// A dump of every entry of both families (`AF_UNSPEC`: one walk of the table).
    GetAll,
    Entry(Row),
}

/// The fields of one conntrack entry that passive health reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Row {
    id: Option<u32>,
    proto: Option<u8>,
    /// The original direction's destination.
    peer: Option<IpAddr>,
    /// The reply direction's destination (the uplink's address when NATed or local).
    reply_dst: Option<IpAddr>,
    orig_packets: Option<u64>,
    reply_packets: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable ctnetlink message")]
pub struct CtDecodeError;

impl NetlinkSerializable for CtMessage {
    fn message_type(&self) -> u16 {
        CT_GET
    }

    fn buffer_len(&self) -> usize {
        4
    }

    fn serialize(&self, buffer: &mut [u8]) {
        // struct nfgenmsg: family (AF_UNSPEC: all), version (NFNETLINK_V0), resource id 0.
        if let Some(head) = buffer.get_mut(..4) {
            head.copy_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        }
    }
}

impl NetlinkDeserializable for CtMessage {
    type Error = CtDecodeError;

    fn deserialize(_: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        let attrs = payload.get(4..).ok_or(CtDecodeError)?;
        Ok(CtMessage::Entry(parse_row(attrs)))
    }
}

/// Calls `f` with each attribute (type without the nested/byte-order flags, value) of `buf`.
fn each_attr<'a>(mut buf: &'a [u8], mut f: impl FnMut(u16, &'a [u8])) {
    while buf.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let Some(value) = buf.get(4..len).filter(|_| len >= 4) else {
            return;
        };
        f(u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff, value);
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
    }
}

/// (destination address, protocol number) of a `CTA_TUPLE_*` nest.
fn tuple(nest: &[u8]) -> (Option<IpAddr>, Option<u8>) {
    let (mut dst, mut proto) = (None, None);
    each_attr(nest, |kind, value| match kind {
        cta::TUPLE_IP => each_attr(value, |k, v| match (k, v.len()) {
            (cta::IP_V4_DST, 4) => {
                dst = <[u8; 4]>::try_from(v)
                    .ok()
                    .map(|b| Ipv4Addr::from(b).into())
            }
            (cta::IP_V6_DST, 16) => {
                dst = <[u8; 16]>::try_from(v)
                    .ok()
                    .map(|b| Ipv6Addr::from(b).into())
            }
            _ => {}
        }),
        cta::TUPLE_PROTO => each_attr(value, |k, v| {
            if k == cta::PROTO_NUM {
                proto = v.first().copied();
            }
        }),
        _ => {}
    });
    (dst, proto)
}

/// The packet count of a `CTA_COUNTERS_*` nest.
fn packets(nest: &[u8]) -> Option<u64> {
    let mut out = None;
    each_attr(nest, |kind, value| match kind {
        cta::COUNTERS_PACKETS => {
            out = <[u8; 8]>::try_from(value).ok().map(u64::from_be_bytes);
        }
        cta::COUNTERS32_PACKETS if out.is_none() => {
            out = <[u8; 4]>::try_from(value)
                .ok()
                .map(|b| u64::from(u32::from_be_bytes(b)));
        }
        _ => {}
    });
    out
}

fn parse_row(attrs: &[u8]) -> Row {
    let mut row = Row::default();
    each_attr(attrs, |kind, value| match kind {
        cta::TUPLE_ORIG => (row.peer, row.proto) = tuple(value),
        cta::TUPLE_REPLY => row.reply_dst = tuple(value).0,
        cta::COUNTERS_ORIG => row.orig_packets = packets(value),
        cta::COUNTERS_REPLY => row.reply_packets = packets(value),
        cta::ID => row.id = <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes),
        _ => {}
    });
    row
}

/// One entry as a flow of the interface owning its reply destination; `None` for entries not
/// attributed (see the module doc) or without counters.
fn flow_of(row: &Row, by_address: &HashMap<IpAddr, u32>) -> Option<(u32, FlowSample)> {
    let ifindex = *by_address.get(&row.reply_dst?)?;
    let proto = match row.proto {
        Some(6) => FlowProto::Tcp,
        Some(17) => FlowProto::Udp,
        _ => FlowProto::Other,
    };
    Some((
        ifindex,
        FlowSample {
            id: u64::from(row.id?),
            proto,
            peer: row.peer?,
            orig_packets: row.orig_packets?,
            reply_packets: row.reply_packets?,
        },
    ))
}

/// The namespace's number of conntrack entries (read through a file opened once, so every read
/// is the opener's namespace: `/proc/sys/net` resolves the namespace when the file is opened).
const COUNT_PATH: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

/// Dumps conntrack for passive health; cheap to clone (one socket behind a lock).
#[derive(Clone)]
pub struct CtSampler {
    conn: Option<Arc<Mutex<Conn>>>,
    /// `nf_conntrack_count` of the namespace, when readable (see [`CtSampler::tracks_nothing`]).
    count: Option<Arc<File>>,
    /// Accounting was checked (on the first sample: only a daemon that samples touches the
    /// sysctl), and whether connection tracking turned out usable.
    checked: Arc<AtomicBool>,
    usable: Arc<AtomicBool>,
}

impl CtSampler {
    /// Opens the ctnetlink socket in the calling thread's namespace (none without connection
    /// tracking: the samples then carry no flows).
    pub fn open() -> Self {
        let conn = Conn::open(NETLINK_NETFILTER)
            .map_err(|e| tracing::debug!(error = %e, "no ctnetlink socket"))
            .ok();
        Self {
            usable: Arc::new(AtomicBool::new(conn.is_some())),
            conn: conn.map(|c| Arc::new(Mutex::new(c))),
            count: File::open(COUNT_PATH).ok().map(Arc::new),
            checked: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Once, on the calling thread (in the namespace sampled): turns packet accounting on when
    /// it is off, logged; without connection tracking, says so once.
    pub fn ensure_accounting(&self) {
        if self.checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let sysctl = ProcSysctl::new();
        let result = match sysctl.read_now(ACCT_KEY) {
            Ok(v) if v.trim() == "0" => sysctl.write_now(ACCT_KEY, "1").map(|()| true),
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        match (result, self.conn.is_some()) {
            (Ok(enabled), true) => {
                if enabled {
                    tracing::info!(key = ACCT_KEY, "passive health: enabled connection-tracking packet accounting, to watch forwarded, NATed and UDP flows");
                }
            }
            (Ok(_), false) | (Err(_), _) => {
                self.usable.store(false, Ordering::Relaxed);
                tracing::info!("passive health: no connection tracking (nf_conntrack / ctnetlink, or its accounting); watching the daemon's own sockets and link counters only");
            }
        }
    }

    /// Whether connection tracking is usable here (else samples carry no flows).
    pub fn usable(&self) -> bool {
        self.conn.is_some() && self.usable.load(Ordering::Relaxed)
    }

    /// True when the namespace holds no conntrack entry at all (`nf_conntrack_count` is 0,
    /// e.g. nothing in it uses connection tracking, so no hook tracks anything): the dump would
    /// find nothing, yet ctnetlink walks every bucket of the host's hash table to say so (about
    /// 12 ms with 262 144 buckets), so the sample skips it. False when the count is unreadable.
    pub fn tracks_nothing(&self) -> bool {
        let Some(file) = &self.count else {
            return false;
        };
        let mut buf = [0u8; 24];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        let text = buf.get(..n).and_then(|b| std::str::from_utf8(b).ok());
        text.and_then(|t| t.trim().parse::<u64>().ok()) == Some(0)
    }

    /// The flows leaving through the owners of `by_address`, by interface index; `None`
    /// without connection tracking. Blocking: call it on a blocking thread.
    pub fn sample_blocking(
        &self,
        by_address: &HashMap<IpAddr, u32>,
    ) -> Option<HashMap<u32, Vec<FlowSample>>> {
        let conn = self
            .conn
            .as_ref()
            .filter(|_| self.usable.load(Ordering::Relaxed))?;
        // A poisoned lock still holds a usable socket (a dump is one request/response).
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: HashMap<u32, Vec<FlowSample>> = HashMap::new();
        let dumped = conn.dump(CtMessage::GetAll, |m| {
            if let CtMessage::Entry(row) = m {
                if let Some((ifindex, f)) = flow_of(&row, by_address) {
                    out.entry(ifindex).or_default().push(f);
                }
            }
        });
        match dumped {
            Ok(()) => Some(out),
            Err(e) => {
                tracing::debug!(error = %e, "conntrack dump failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nest(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn counter_nests_parse_64_and_32_bit_packets() {
        let mut n = nest(2, &9u64.to_be_bytes()); // bytes first
        n.extend(nest(cta::COUNTERS_PACKETS, &7u64.to_be_bytes()));
        assert_eq!(packets(&n), Some(7));
        assert_eq!(
            packets(&nest(cta::COUNTERS32_PACKETS, &5u32.to_be_bytes())),
            Some(5)
        );
        assert_eq!(packets(&[1, 0]), None);
        assert_eq!(packets(&[]), None);
        assert_eq!(packets(&nest(2, &9u64.to_be_bytes())), None);
    }

    fn tuple_nest(dst: [u8; 4], proto: u8) -> Vec<u8> {
        let mut ip = nest(1, &[192, 0, 2, 66]);
        ip.extend(nest(cta::IP_V4_DST, &dst));
        let mut t = nest(cta::TUPLE_IP | 0x8000, &ip);
        t.extend(nest(
            cta::TUPLE_PROTO | 0x8000,
            &nest(cta::PROTO_NUM, &[proto]),
        ));
        t
    }

    #[test]
    fn an_entry_parses_and_is_attributed_by_its_reply_destination() {
        let mut attrs = nest(cta::TUPLE_ORIG | 0x8000, &tuple_nest([203, 0, 113, 20], 17));
        attrs.extend(nest(
            cta::TUPLE_REPLY | 0x8000,
            &tuple_nest([192, 0, 2, 2], 17),
        ));
        attrs.extend(nest(cta::COUNTERS_ORIG, &nest(1, &9u64.to_be_bytes())));
        attrs.extend(nest(cta::COUNTERS_REPLY, &nest(1, &4u64.to_be_bytes())));
        attrs.extend(nest(cta::ID, &77u32.to_be_bytes()));
        let row = parse_row(&attrs);
        let uplink = HashMap::from([(IpAddr::from([192, 0, 2, 2]), 5)]);
        let (ifindex, f) = flow_of(&row, &uplink).expect("attributed");
        assert_eq!(ifindex, 5);
        assert_eq!(
            f,
            FlowSample {
                id: 77,
                proto: FlowProto::Udp,
                peer: IpAddr::from([203, 0, 113, 20]),
                orig_packets: 9,
                reply_packets: 4,
            }
        );
        // Replies going elsewhere (an inbound flow, or forwarded without NAT): not ours.
        assert_eq!(flow_of(&row, &HashMap::new()), None);
        // Truncated garbage parses to nothing rather than panicking.
        assert_eq!(parse_row(&attrs[..7]), Row::default());
    }
}
