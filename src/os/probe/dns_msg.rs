//! DNS messages of a check's lookup (RFC 1035): the one-question query the resolver sends and
//! what it reads from an answer — the question echoed back, the response code, the truncation
//! flag and the A/AAAA records of the name (through any CNAME chain) with their TTL.
//!
//! A check asks for one name's addresses and nothing else: no EDNS, no DNSSEC, no other record
//! types; this is the whole of it (docs/decisions.md, "DNS"). Every length and pointer in an
//! answer is checked: garbage, loops and counts past the end are an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const HEADER: usize = 12;
const CLASS_IN: u16 = 1;
const TYPE_CNAME: u16 = 5;
/// Longest name on the wire (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// Longest label.
const MAX_LABEL: usize = 63;
/// Compression pointers followed in one name: more is a loop (a name has at most 127 labels).
const MAX_JUMPS: usize = 127;
/// TTLs above a day are read as a day (what resolvers commonly cap at).
const MAX_TTL: u32 = 86_400;

/// The record type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }
}

/// A name that cannot be put in a query.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid DNS name")]
pub struct BadName(pub String);

/// The query for `name`'s `rtype` records with id `id`: recursion desired, one question, class IN.
/// `name` is ASCII (a URI host is already in its ASCII form); a trailing dot is optional.
pub fn query(id: u16, name: &str, rtype: RecordType) -> Result<Vec<u8>, BadName> {
    let bad = || BadName(name.to_string());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || !trimmed.is_ascii() || trimmed.len() + 2 > MAX_NAME {
        return Err(bad());
    }
    let mut msg = Vec::with_capacity(HEADER + trimmed.len() + 6);
    msg.extend_from_slice(&id.to_be_bytes());
    // Flags: a standard query with RD set; one question, no other records.
    msg.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL {
            return Err(bad());
        }
        // Length checked just above: at most 63.
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0);
    msg.extend_from_slice(&rtype.code().to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(msg)
}

/// What a datagram says about our query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Not an answer to this query (another id, another question, not a response, too short
    /// to tell): to be ignored while waiting for the real one (RFC 1035 §7.3).
    NotOurs,
    /// The name's addresses of the asked type (possibly none: NODATA) and how long they may be
    /// kept (the smallest TTL of the records used).
    Addresses { addrs: Vec<IpAddr>, ttl: Duration },
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The server failed (SERVFAIL, REFUSED, ...), or the answer is truncated or malformed.
    Failed(String),
}

/// Reads `reply` as the answer to `query` (as built by [`query`]).
pub fn parse(reply: &[u8], query: &[u8]) -> Reply {
    let (Some(ours), Some(theirs)) = (query.get(..2), reply.get(..2)) else {
        return Reply::NotOurs;
    };
    if ours != theirs || reply.len() < HEADER {
        return Reply::NotOurs;
    }
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16::from_be_bytes([reply[4], reply[5]]);
    if !is_response || opcode != 0 || qdcount != 1 {
        return Reply::NotOurs;
    }
    let mut at = HEADER;
    let Some(question) = read_name(reply, &mut at) else {
        return Reply::NotOurs;
    };
    let (Some(qtype), Some(qclass)) = (read_u16(reply, &mut at), read_u16(reply, &mut at)) else {
        return Reply::NotOurs;
    };
    let mut q_at = HEADER;
    let (Some(asked), Some(asked_type)) = (read_name(query, &mut q_at), read_u16(query, &mut q_at))
    else {
        return Reply::NotOurs;
    };
    if !question.eq_ignore_ascii_case(&asked) || qtype != asked_type || qclass != CLASS_IN {
        return Reply::NotOurs;
    }
    match flags & 0xf {
        0 => {}
        3 => return Reply::NoSuchName,
        rcode => return Reply::Failed(format!("server answered {}", rcode_name(rcode))),
    }
    let truncated = flags & 0x0200 != 0;
    let ancount = u16::from_be_bytes([reply[6], reply[7]]);
    let mut records = Vec::with_capacity(usize::from(ancount).min(16));
    for _ in 0..ancount {
        match read_record(reply, &mut at) {
            Some(record) => records.push(record),
            // A truncated answer may end mid-record: use the complete ones.
            None if truncated => break,
            None => return Reply::Failed("malformed answer".to_string()),
        }
    }
    let (addrs, ttl) = addresses(&asked, asked_type, &records);
    if addrs.is_empty() && truncated {
        return Reply::Failed("truncated answer".to_string());
    }
    Reply::Addresses { addrs, ttl }
}

/// One resource record of the answer section.
struct Record {
    name: String,
    rtype: u16,
    ttl: u32,
    data: RecordData,
}

enum RecordData {
    Addr(IpAddr),
    Alias(String),
    Other,
}

/// The addresses of `name` (following CNAMEs in the answer) and the smallest TTL involved.
fn addresses(name: &str, rtype: u16, records: &[Record]) -> (Vec<IpAddr>, Duration) {
    let mut names = vec![name.to_string()];
    let mut ttl = MAX_TTL;
    // Each pass adds at most one alias; a chain longer than the answer is a loop.
    for _ in 0..records.len() {
        let next = records.iter().find_map(|r| match &r.data {
            RecordData::Alias(target)
                if names.iter().any(|n| n.eq_ignore_ascii_case(&r.name))
                    && !names.iter().any(|n| n.eq_ignore_ascii_case(target)) =>
            {
                Some((target.clone(), r.ttl))
            }
            _ => None,
        });
        let Some((target, alias_ttl)) = next else {
            break;
        };
        ttl = ttl.min(alias_ttl);
        names.push(target);
    }
    let mut addrs = Vec::new();
    for r in records {
        if let RecordData::Addr(ip) = r.data {
            if r.rtype == rtype && names.iter().any(|n| n.eq_ignore_ascii_case(&r.name)) {
                ttl = ttl.min(r.ttl);
                addrs.push(ip);
            }
        }
    }
    (addrs, Duration::from_secs(u64::from(ttl)))
}

fn read_record(msg: &[u8], at: &mut usize) -> Option<Record> {
    let name = read_name(msg, at)?;
    let rtype = read_u16(msg, at)?;
    let class = read_u16(msg, at)?;
    let ttl_hi = read_u16(msg, at)?;
    let ttl_lo = read_u16(msg, at)?;
    let len = usize::from(read_u16(msg, at)?);
    let start = *at;
    let rdata = msg.get(start..start.checked_add(len)?)?;
    *at = start + len;
    // RFC 2181 §8: a TTL with the top bit set is read as 0.
    let ttl = match u32::from(ttl_hi) << 16 | u32::from(ttl_lo) {
        ttl if ttl > i32::MAX as u32 => 0,
        ttl => ttl,
    };
    let data = match (class, rtype, rdata.len()) {
        (CLASS_IN, 1, 4) => RecordData::Addr(IpAddr::V4(Ipv4Addr::new(
            rdata[0], rdata[1], rdata[2], rdata[3],
        ))),
        (CLASS_IN, 28, 16) => {
            let octets: [u8; 16] = rdata.try_into().ok()?;
            RecordData::Addr(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        (CLASS_IN, TYPE_CNAME, _) => {
            let mut name_at = start;
            let target = read_name(msg, &mut name_at)?;
            RecordData::Alias(target)
        }
        _ => RecordData::Other,
    };
    Some(Record {
        name,
        rtype,
        ttl,
        data,
    })
}

/// A name at `*at` (labels and compression pointers), dotted, without the trailing dot;
/// `*at` moves past it. `None` for anything malformed: a label past the end, a pointer loop,
/// a name over 255 bytes, a reserved label type.
fn read_name(msg: &[u8], at: &mut usize) -> Option<String> {
    let mut name = String::new();
    let mut pos = *at;
    let mut wire_len = 1;
    let mut jumps = 0;
    let mut end = None;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                *at = end.unwrap_or(pos + 1);
                return Some(name);
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(len))?;
                wire_len += 1 + label.len();
                if wire_len > MAX_NAME {
                    return None;
                }
                if !name.is_empty() {
                    name.push('.');
                }
                // Anything outside printable ASCII is kept escaped: it only has to compare.
                for &b in label {
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(char::from(b));
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                pos += 1 + label.len();
            }
            0xc0 => {
                let low = *msg.get(pos + 1)?;
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            }
            _ => return None,
        }
    }
}

fn read_u16(msg: &[u8], at: &mut usize) -> Option<u16> {
    let bytes = msg.get(*at..*at + 2)?;
    *at += 2;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn rcode_name(rcode: u16) -> String {
    match rcode {
        1 => "FORMERR".to_string(),
        2 => "SERVFAIL".to_string(),
        4 => "NOTIMP".to_string(),
        5 => "REFUSED".to_string(),
        other => format!("response code {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer a server gives to `query`: the header and question echoed, then `answers`
    /// (each a name pointer to the question, or a full record) appended as given.
    fn reply(query: &[u8], rcode: u8, ancount: u16, answers: &[u8]) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&ancount.to_be_bytes());
        r.extend_from_slice(answers);
        r
    }

    /// A record owned by the question's name (pointer to offset 12).
    fn record(rtype: u16, ttl: u32, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0xc0, 12];
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn query_is_the_classic_one_question_message() {
        let q = query(0xbeef, "check.example.", RecordType::A).unwrap();
        let mut expected = vec![0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x05check\x07example\x00\x00\x01\x00\x01");
        assert_eq!(q, expected);
        assert_eq!(
            query(1, "check.example", RecordType::A).unwrap()[2..],
            q[2..]
        );
        let v6 = query(1, "a.test", RecordType::Aaaa).unwrap();
        assert_eq!(v6[v6.len() - 4..], [0, 28, 0, 1]);
        let (long_label, long_name) = ("x".repeat(64), "a.".repeat(128));
        for bad in [
            "",
            ".",
            "a..b",
            "bücher.test",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(query(1, bad, RecordType::A).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_of_the_name_with_the_smallest_ttl() {
        let q = query(7, "check.test", RecordType::A).unwrap();
        let mut answers = record(1, 300, &[192, 0, 2, 1]);
        answers.extend(record(1, 60, &[192, 0, 2, 2]));
        // Another type in the answer section is not an address of this query.
        answers.extend(record(
            28,
            10,
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ));
        assert_eq!(
            parse(&reply(&q, 0, 3, &answers), &q),
            Reply::Addresses {
                addrs: vec![IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2])],
                ttl: Duration::from_secs(60),
            }
        );
        // NODATA: the name exists without records of this type.
        assert_eq!(
            parse(&reply(&q, 0, 0, &[]), &q),
            Reply::Addresses {
                addrs: vec![],
                ttl: Duration::from_secs(u64::from(MAX_TTL)),
            }
        );
        assert_eq!(parse(&reply(&q, 3, 0, &[]), &q), Reply::NoSuchName);
        assert_eq!(
            parse(&reply(&q, 2, 0, &[]), &q),
            Reply::Failed("server answered SERVFAIL".to_string())
        );
    }

    #[test]
    fn a_cname_chain_is_followed_within_the_answer() {
        let q = query(9, "check.test", RecordType::Aaaa).unwrap();
        // check.test CNAME edge.test (written out at offset 12 + 12 + ...), edge.test AAAA.
        let mut answers = record(TYPE_CNAME, 120, b"\x04edge\x04test\x00");
        let edge_at = (q.len() + 12) as u8;
        let v6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        answers.extend_from_slice(&[0xc0, edge_at, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16]);
        answers.extend_from_slice(&v6);
        // An address of an unrelated name is not used.
        answers.extend_from_slice(b"\x05other\x04test\x00\x00\x1c\x00\x01\x00\x00\x00\x1e\x00\x10");
        answers.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xee]);
        assert_eq!(
            parse(&reply(&q, 0, 3, &answers), &q),
            Reply::Addresses {
                addrs: vec![IpAddr::from(v6)],
                ttl: Duration::from_secs(30),
            }
        );
    }

    #[test]
    fn replies_to_something_else_are_not_ours() {
        let q = query(5, "check.test", RecordType::A).unwrap();
        let good = reply(&q, 0, 1, &record(1, 60, &[192, 0, 2, 1]));
        let mut wrong_id = good.clone();
        wrong_id[1] ^= 1;
        let other_q = query(5, "other.test", RecordType::A).unwrap();
        let other_question = reply(&other_q, 0, 1, &record(1, 60, &[192, 0, 2, 1]));
        let mut not_a_response = good.clone();
        not_a_response[2] &= 0x7f;
        for r in [
            &wrong_id,
            &other_question,
            &not_a_response,
            &good[..1].to_vec(),
            &good[..14].to_vec(),
        ] {
            assert_eq!(parse(r, &q), Reply::NotOurs, "{r:?}");
        }
        // The question's case may differ (0x20 randomisation by a forwarder).
        let mut upper = good.clone();
        upper[13] = b'C';
        assert!(matches!(parse(&upper, &q), Reply::Addresses { .. }));
    }

    #[test]
    fn malformed_answers_fail_without_panicking() {
        let q = query(5, "check.test", RecordType::A).unwrap();
        let good = reply(&q, 0, 1, &record(1, 60, &[192, 0, 2, 1]));
        let answer_at = q.len();
        let mut self_pointer = good.clone();
        self_pointer[answer_at..answer_at + 2]
            .copy_from_slice(&(answer_at as u16 | 0xc000).to_be_bytes());
        let mut outside = good.clone();
        outside[answer_at..answer_at + 2].copy_from_slice(&[0xff, 0xff]);
        let mut absurd = good.clone();
        absurd[6..8].copy_from_slice(&[0xff, 0xff]);
        let cut = good[..good.len() - 2].to_vec();
        for r in [&self_pointer, &outside, &absurd, &cut] {
            assert_eq!(
                parse(r, &q),
                Reply::Failed("malformed answer".to_string()),
                "{r:?}"
            );
        }
        // TC without a complete record.
        let mut truncated = reply(&q, 0, 1, &[]);
        truncated[2] |= 0x02;
        assert_eq!(
            parse(&truncated, &q),
            Reply::Failed("truncated answer".to_string())
        );
        // Every prefix and every single-byte change of a good answer parses to something.
        for n in 0..good.len() {
            let _ = parse(&good[..n], &q);
            for v in [0u8, 0x3f, 0xc0, 0xff] {
                let mut flipped = good.clone();
                flipped[n] = v;
                let _ = parse(&flipped, &q);
            }
        }
    }
}
