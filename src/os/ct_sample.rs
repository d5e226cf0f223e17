//! Passive health's view of connection tracking: every tracked flow that leaves through an
//! uplink (forwarded and NATed container traffic, UDP, the device's own), with per-direction
//! packet counters, from one ctnetlink dump per family and sample (`flows/conntrack.rs`).
//!
//! Counters exist only for entries created while `net.netfilter.nf_conntrack_acct` is 1, so
//! [`CtSampler::open`] turns it on when it is off (logged once, README "Passive health"); an
//! entry without counters is skipped. Where connection tracking is absent (no
//! `nf_conntrack` / ctnetlink) the sampler says so and the sample carries no flows: passive
//! health then sees the daemon's own sockets and the link counters only (`status` shows it).
//!
//! A flow is attributed by its reply direction's destination: for the device's own flows and
//! for masqueraded ones (containers behind the NAT bridge) that is the uplink's address, so
//! the flow belongs to the interface owning it. Flows arriving from outside (their reply goes
//! to a remote host) and flows forwarded without NAT are not attributed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use netlink_packet_core::Nla;
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, IPTuple, ProtoTuple, Protocol, Tuple,
};

use netfailover_actors::model::Family;
use netfailover_actors::ports::{FlowProto, FlowSample};

use super::flows::conntrack::{Conntrack, Entry};
use super::sysctl::ProcSysctl;

/// The sysctl that makes the kernel count packets per conntrack direction.
pub const ACCT_KEY: &str = "net.netfilter.nf_conntrack_acct";

/// `CTA_COUNTERS_ORIG`, `CTA_COUNTERS_REPLY`, `CTA_ID` (linux/netfilter/nfnetlink_conntrack.h).
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ID: u16 = 12;
/// `CTA_COUNTERS_PACKETS` (u64) and the old `CTA_COUNTERS32_PACKETS` (u32), big endian.
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS32_PACKETS: u16 = 3;

/// Dumps conntrack for passive health; cheap to clone (one socket behind a lock).
#[derive(Clone)]
pub struct CtSampler {
    conn: Option<Arc<Mutex<Conntrack>>>,
}

impl CtSampler {
    /// Opens the ctnetlink socket and turns accounting on, in the calling thread's namespace;
    /// without connection tracking the sampler is empty (logged, never an error).
    pub fn open() -> Self {
        let sysctl = ProcSysctl::new();
        match sysctl.read_now(ACCT_KEY) {
            Ok(v) if v.trim() == "0" => match sysctl.write_now(ACCT_KEY, "1") {
                Ok(()) => tracing::info!(
                    key = ACCT_KEY,
                    "passive health: enabled connection-tracking packet accounting, to watch forwarded, NATed and UDP flows"
                ),
                Err(e) => tracing::warn!(error = %e, key = ACCT_KEY, "passive health: cannot enable connection-tracking accounting; forwarded and UDP flows are not watched"),
            },
            Ok(_) => {}
            Err(e) => {
                tracing::info!(error = %e, "passive health: no connection tracking; watching the daemon's own sockets and link counters only");
                return Self { conn: None };
            }
        }
        match Conntrack::open() {
            Ok(c) => Self {
                conn: Some(Arc::new(Mutex::new(c))),
            },
            Err(e) => {
                tracing::info!(error = %e, "passive health: no ctnetlink; watching the daemon's own sockets and link counters only");
                Self { conn: None }
            }
        }
    }

    /// The flows leaving through the owners of `by_address`, by interface index; `None`
    /// without connection tracking. Blocking: call it on a blocking thread.
    pub fn sample_blocking(
        &self,
        by_address: &HashMap<IpAddr, u32>,
    ) -> Option<HashMap<u32, Vec<FlowSample>>> {
        let conn = self.conn.as_ref()?;
        // A poisoned lock still holds a usable socket (a dump is one request/response).
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: HashMap<u32, Vec<FlowSample>> = HashMap::new();
        let mut any = false;
        for family in [Family::V4, Family::V6] {
            let entries = match conn.dump(family) {
                Ok(e) => e,
                // IPv4 is what tells whether conntrack works; a kernel without IPv6 still has it.
                Err(e) if family == Family::V4 => {
                    tracing::debug!(error = %e, "conntrack dump failed");
                    return None;
                }
                Err(_) => continue,
            };
            any = true;
            for e in &entries {
                if let Some((ifindex, f)) = flow_of(e, by_address) {
                    out.entry(ifindex).or_default().push(f);
                }
            }
        }
        any.then_some(out)
    }
}

fn tuple_parts(t: &[Tuple]) -> (Option<IpAddr>, Option<IpAddr>, Option<FlowProto>) {
    let (mut src, mut dst, mut proto) = (None, None, None);
    for part in t {
        match part {
            Tuple::Ip(ip) => {
                for i in ip {
                    match i {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(p) => {
                for i in p {
                    if let ProtoTuple::Protocol(p) = i {
                        proto = Some(match p {
                            Protocol::Tcp => FlowProto::Tcp,
                            Protocol::Udp => FlowProto::Udp,
                            _ => FlowProto::Other,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    (src, dst, proto)
}

/// The packet count of a `CTA_COUNTERS_*` nest.
fn packets(nest: &[u8]) -> Option<u64> {
    let mut rest = nest;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        let value = rest.get(4..len.max(4))?;
        match (kind, value.len()) {
            (CTA_COUNTERS_PACKETS, 8) => {
                return value.try_into().ok().map(u64::from_be_bytes);
            }
            (CTA_COUNTERS32_PACKETS, 4) => {
                return value
                    .try_into()
                    .ok()
                    .map(|b| u64::from(u32::from_be_bytes(b)));
            }
            _ => {}
        }
        rest = rest.get(((len + 3) & !3).max(4)..)?;
    }
    None
}

/// One entry as a flow of the interface owning its reply destination; `None` for entries not
/// attributed (see the module doc) or without counters.
pub fn flow_of(e: &Entry, by_address: &HashMap<IpAddr, u32>) -> Option<(u32, FlowSample)> {
    let (mut orig, mut reply) = (None, None);
    let (mut orig_packets, mut reply_packets, mut id) = (None, None, None);
    for a in e.attributes() {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = Some(tuple_parts(t)),
            ConntrackAttribute::CtaTupleReply(t) => reply = Some(tuple_parts(t)),
            ConntrackAttribute::Other(nla) => {
                let mut value = vec![0u8; nla.value_len()];
                nla.emit_value(&mut value);
                match nla.kind() & 0x3fff {
                    CTA_COUNTERS_ORIG => orig_packets = packets(&value),
                    CTA_COUNTERS_REPLY => reply_packets = packets(&value),
                    CTA_ID => {
                        id = <[u8; 4]>::try_from(value.as_slice())
                            .ok()
                            .map(u32::from_be_bytes)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let (Some((_, peer, proto)), Some((_, reply_dst, _))) = (orig, reply) else {
        return None;
    };
    let ifindex = *by_address.get(&reply_dst?)?;
    Some((
        ifindex,
        FlowSample {
            id: u64::from(id?),
            proto: proto.unwrap_or(FlowProto::Other),
            peer: peer?,
            orig_packets: orig_packets?,
            reply_packets: reply_packets?,
        },
    ))
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
        n.extend(nest(CTA_COUNTERS_PACKETS, &7u64.to_be_bytes()));
        assert_eq!(packets(&n), Some(7));
        assert_eq!(
            packets(&nest(CTA_COUNTERS32_PACKETS, &5u32.to_be_bytes())),
            Some(5)
        );
        assert_eq!(packets(&[1, 0]), None);
        assert_eq!(packets(&nest(2, &9u64.to_be_bytes())), None);
    }
}
