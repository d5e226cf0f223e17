//! Connection tracking through ctnetlink (`NETLINK_NETFILTER`, subsystem `CTNETLINK`, on
//! `netlink-packet-netfilter`): a dump of one family's entries and the deletion of one entry by
//! its original tuple (and zone), as `conntrack -D` does — without shelling out to it. The lab's
//! benchmark also creates UDP entries (as `conntrack -I` does) to fill a table without traffic.

use std::net::SocketAddr;

use netlink_packet_core::{Nla, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::protocols::NETLINK_NETFILTER;

use netfailover_actors::flows::ConntrackFlow;
use netfailover_actors::model::Family;

use super::wire::{Conn, WireError};

/// `CTA_ZONE` (linux/netfilter/nfnetlink_conntrack.h): entries in different zones may share a
/// tuple, so a deletion names the zone too.
const CTA_ZONE: u16 = 18;

/// A ctnetlink connection in the calling thread's network namespace.
pub struct Conntrack(Conn);

/// One conntrack entry of a dump.
#[derive(Clone, Debug)]
pub struct Entry {
    family: Family,
    attributes: Vec<ConntrackAttribute>,
}

fn proto_family(family: Family) -> NetfilterProtoFamily {
    match family {
        Family::V4 => NetfilterProtoFamily::IPv4,
        Family::V6 => NetfilterProtoFamily::IPv6,
    }
}

fn message(family: Family, inner: ConntrackMessage) -> NetfilterMessage {
    // NFNETLINK_V0, resource id 0 (every table).
    NetfilterMessage::new(NetfilterHeader::new(proto_family(family), 0, 0), inner)
}

/// Source and destination of a tuple.
fn addresses(tuple: &[Tuple]) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
    let ip = tuple.iter().find_map(|t| match t {
        Tuple::Ip(ip) => Some(ip),
        _ => None,
    })?;
    let src = ip.iter().find_map(|i| match i {
        IPTuple::SourceAddress(a) => Some(*a),
        _ => None,
    })?;
    let dst = ip.iter().find_map(|i| match i {
        IPTuple::DestinationAddress(a) => Some(*a),
        _ => None,
    })?;
    Some((src, dst))
}

impl Entry {
    /// Every attribute the kernel sent (the lab and the tests read counters and ids from
    /// them).
    pub fn attributes(&self) -> &[ConntrackAttribute] {
        &self.attributes
    }

    /// The reply direction, for `flows.rs`; `None` for an entry without one.
    pub fn flow(&self) -> Option<ConntrackFlow> {
        let reply = self.attributes.iter().find_map(|a| match a {
            ConntrackAttribute::CtaTupleReply(t) => Some(t),
            _ => None,
        })?;
        let (reply_src, reply_dst) = addresses(reply)?;
        Some(ConntrackFlow {
            reply_src,
            reply_dst,
        })
    }
}

impl Conntrack {
    pub fn open() -> std::io::Result<Self> {
        Conn::open(NETLINK_NETFILTER).map(Self)
    }

    /// Every entry of `family`.
    pub fn dump(&mut self, family: Family) -> Result<Vec<Entry>, WireError> {
        let mut out = Vec::new();
        let request = message(family, ConntrackMessage::Get(Vec::new()));
        self.0.dump(request, |m| {
            if let netlink_packet_netfilter::NetfilterMessageInner::Conntrack(
                ConntrackMessage::New(attributes),
            ) = m.inner
            {
                out.push(Entry { family, attributes });
            }
        })?;
        Ok(out)
    }

    /// Deletes one entry (ENOENT if it is gone already).
    pub fn delete(&mut self, entry: &Entry) -> Result<(), WireError> {
        let keep = entry
            .attributes
            .iter()
            .filter(|a| match a {
                ConntrackAttribute::CtaTupleOrig(_) => true,
                ConntrackAttribute::Other(nla) => nla.kind() == CTA_ZONE,
                _ => false,
            })
            .cloned()
            .collect();
        self.0
            .request(message(entry.family, ConntrackMessage::Delete(keep)))
    }

    /// Creates a UDP entry `orig` (source → destination) whose reply comes from `reply.0` to
    /// `reply.1` (a NATed flow when that is not `orig` reversed), expiring after
    /// `timeout_secs`. For the lab's benchmark: a full table without sending a packet.
    pub fn create_udp(
        &mut self,
        orig: (SocketAddr, SocketAddr),
        reply: (SocketAddr, SocketAddr),
        timeout_secs: u32,
    ) -> Result<(), WireError> {
        let tuple = |(src, dst): (SocketAddr, SocketAddr)| {
            vec![
                Tuple::Ip(vec![
                    IPTuple::SourceAddress(src.ip()),
                    IPTuple::DestinationAddress(dst.ip()),
                ]),
                Tuple::Proto(vec![
                    ProtoTuple::Protocol(Protocol::Udp),
                    ProtoTuple::SourcePort(src.port()),
                    ProtoTuple::DestinationPort(dst.port()),
                ]),
            ]
        };
        let family = Family::of(&orig.0.ip());
        let attributes = vec![
            ConntrackAttribute::CtaTupleOrig(tuple(orig)),
            ConntrackAttribute::CtaTupleReply(tuple(reply)),
            ConntrackAttribute::CtaTimeout(timeout_secs),
        ];
        self.0.request_with(
            message(family, ConntrackMessage::New(attributes)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}
