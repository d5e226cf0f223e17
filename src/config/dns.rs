//! DNS server lists: config.json's `dnsServers` (`ADDR[#PORT][@IFACE]` entries, balenaOS's
//! syntax) and the system resolver's `/etc/resolv.conf`, into the engine's [`DnsConfig`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use netfailover_actors::model::{DnsConfig, IfaceName, IfaceNameError};

use super::problems::Problem;
use super::read_text;

/// balenaOS's default when `dnsServers` is absent or empty.
pub const DEFAULT_DNS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)), 53);

/// One parsed `dnsServers` entry.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DnsEntry {
    pub server: SocketAddr,
    pub iface: Option<IfaceName>,
}

/// Why a `dnsServers` entry is dropped; printed with the file and line where it is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDnsEntry {
    #[error(transparent)]
    Iface(#[from] IfaceNameError),
    #[error("port {0:?} is not a number in 1..=65535")]
    Port(String),
    #[error("{0:?} is not an IP address")]
    Addr(String),
}

/// Parses one `ADDR[#PORT][@IFACE]` entry (IPv6 addresses may be bracketed: `[2001:db8::1]#53`).
pub fn parse_entry(entry: &str) -> Result<DnsEntry, BadDnsEntry> {
    let (rest, iface) = match entry.rsplit_once('@') {
        Some((rest, iface)) => {
            let iface = IfaceName::new(iface)?;
            (rest, Some(iface))
        }
        None => (entry, None),
    };
    let (addr, port) = match rest.rsplit_once('#') {
        Some((addr, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| BadDnsEntry::Port(port.to_string()))?;
            (addr, port)
        }
        None => (rest, 53),
    };
    let bare = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip: IpAddr = bare
        .parse()
        .map_err(|_| BadDnsEntry::Addr(addr.to_string()))?;
    Ok(DnsEntry {
        server: SocketAddr::new(ip, port),
        iface,
    })
}

/// Applies a `dnsServers` value (`None` = key absent) to `dns`; invalid entries are dropped with
/// a warning, as balenaOS's own scripts skip what they cannot use.
pub fn apply_dns_servers(
    value: Option<&str>,
    dns: &mut DnsConfig,
    file: &Path,
    line: Option<usize>,
    problems: &mut Vec<Problem>,
) {
    let value = value.map(str::trim).unwrap_or("");
    if value.is_empty() {
        dns.global = vec![DEFAULT_DNS];
        return;
    }
    if value == "null" {
        return;
    }
    for token in value.split_whitespace() {
        match parse_entry(token) {
            Ok(DnsEntry {
                server,
                iface: Some(iface),
            }) => push_unique(dns.bound.entry(iface).or_default(), server),
            Ok(DnsEntry {
                server,
                iface: None,
            }) => push_unique(&mut dns.global, server),
            Err(reason) => problems.push(Problem::warning(
                file,
                line,
                format!("dnsServers entry {token:?} dropped: {reason}"),
            )),
        }
    }
}

fn push_unique(list: &mut Vec<SocketAddr>, server: SocketAddr) {
    if !list.contains(&server) {
        list.push(server);
    }
}

/// The `nameserver` lines of a resolv.conf (missing or unreadable file: none; it is the
/// system's file, not an input the user wrote for us, so it gets no problem report).
pub fn read_resolv_conf(path: &Path) -> Vec<SocketAddr> {
    let Ok(text) = read_text(path) else {
        return Vec::new();
    };
    parse_resolv_conf(&text)
}

/// Parses resolv.conf text; link-local IPv6 servers with a `%scope` are skipped because a
/// server address without its scope cannot be reached through another interface.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        if let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) {
            push_unique(&mut out, SocketAddr::new(ip, 53));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn apply(value: Option<&str>) -> (DnsConfig, Vec<Problem>) {
        let mut dns = DnsConfig::default();
        let mut problems = Vec::new();
        apply_dns_servers(
            value,
            &mut dns,
            Path::new("config.json"),
            Some(2),
            &mut problems,
        );
        (dns, problems)
    }

    #[test]
    fn entries_with_port_and_iface() {
        assert_eq!(parse_entry("192.0.2.1").unwrap().server, sa("192.0.2.1:53"));
        let e = parse_entry("192.0.2.1#5353@wwan0").unwrap();
        assert_eq!(e.server, sa("192.0.2.1:5353"));
        assert_eq!(e.iface.unwrap().as_str(), "wwan0");
        assert_eq!(
            parse_entry("2001:db8::1#54").unwrap().server,
            sa("[2001:db8::1]:54")
        );
        assert_eq!(
            parse_entry("[2001:db8::1]@eth0").unwrap().server,
            sa("[2001:db8::1]:53")
        );
        assert!(parse_entry("dns.example").is_err());
        assert!(parse_entry("192.0.2.1#0").is_err());
        assert!(parse_entry("192.0.2.1#99999").is_err());
        assert!(parse_entry("192.0.2.1@").is_err());
        assert!(parse_entry("192.0.2.1@waytoolonginterfacename").is_err());
        assert_eq!(
            parse_entry("192.0.2.1#0"),
            Err(BadDnsEntry::Port("0".to_string()))
        );
        assert_eq!(
            parse_entry("dns.example").map_err(|e| e.to_string()),
            Err("\"dns.example\" is not an IP address".to_string())
        );
        assert!(matches!(
            parse_entry("192.0.2.1@a/b"),
            Err(BadDnsEntry::Iface(IfaceNameError::BadChar { .. }))
        ));
    }

    #[test]
    fn absent_empty_and_null() {
        assert_eq!(apply(None).0.global, vec![DEFAULT_DNS]);
        assert_eq!(apply(Some("  ")).0.global, vec![DEFAULT_DNS]);
        let (dns, problems) = apply(Some("null"));
        assert!(dns.global.is_empty() && dns.bound.is_empty() && problems.is_empty());
    }

    #[test]
    fn seed_example_binds_to_wwan0_and_adds_no_default() {
        let (dns, problems) = apply(Some("1.1.1.1@wwan0"));
        assert!(problems.is_empty());
        assert!(dns.global.is_empty());
        let wwan0 = IfaceName::new("wwan0").unwrap();
        assert_eq!(dns.bound[&wwan0], vec![sa("1.1.1.1:53")]);
    }

    #[test]
    fn garbage_entries_dropped_with_a_warning() {
        let (dns, problems) = apply(Some("192.0.2.1 bogus 198.51.100.1#5300 192.0.2.1"));
        assert_eq!(
            dns.global,
            vec![sa("192.0.2.1:53"), sa("198.51.100.1:5300")]
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "config.json:2: warning: dnsServers entry \"bogus\" dropped: \"bogus\" is not an IP address"
        );
    }

    #[test]
    fn resolv_conf_nameservers() {
        let text = "# x\nsearch lan\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\nnameserver\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![sa("192.0.2.53:53"), sa("[2001:db8::53]:53")]
        );
    }
}
