//! A profile's `[ipv4]` / `[ipv6]` section read as NetworkManager 1.42's keyfile reader and
//! `nm_connection_normalize()` do (`src/libnm-core-impl/nm-keyfile.c` and `nm-setting-ip*-config.c`
//! in NetworkManager): `method` (refused when the section has none or an invalid one),
//! `route-metric`, `never-default`, `addressN=ADDR[/LEN][,GW]` where `/ ; ,` are interchangeable
//! separators and the last field is the gateway, the old `addressesN=`, `gateway=`,
//! `routeN=DEST/LEN,NH[,METRIC]` (a `0.0.0.0/0` or `::/0` route is a default route) and `dns=`.
//! What NetworkManager only warns about is a warning here too, with the value it uses instead;
//! a `gateway=` it refuses (not exactly one address of the family, an IPv6 zone) rejects the
//! profile. The one deliberate difference: a `route-metric` above 2147483647 is capped there.

use std::net::IpAddr;

use netfailover_actors::model::{Family, FamilyConfig, IfaceAddr, Method, Metric};

use super::keyfile;
use super::keyfile_reader::{reject, Reader, Reject};

/// One family as read.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FamilyRead {
    pub config: FamilyConfig,
    /// NetworkManager's method string (`auto`, `manual`, `disabled`, …).
    pub method: String,
    pub metric_origin: MetricOrigin,
    pub dns: Vec<IpAddr>,
    /// The gateway came from a `routeN=0.0.0.0/0,GW` line, not `gateway=`/`addressN=`.
    pub gateway_from_route: bool,
}

impl FamilyRead {
    /// Whether a managed profile installs a default route of this family: an automatic method,
    /// or manual with a gateway, and no `never-default`.
    pub fn has_default_route(&self) -> bool {
        self.config.manage_default
            && (self.config.method == Method::Auto || self.config.gateway.is_some())
    }
}

/// Where a family's metric came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetricOrigin {
    /// `route-metric=` on that line.
    RouteMetric { line: usize },
    /// Absent or `-1`: the per-type default.
    TypeDefault,
}

/// Methods NetworkManager accepts, and whether each gives a default route we manage.
fn method_of(fam: Family, name: &str) -> Option<(Method, bool)> {
    Some(match (fam, name) {
        (_, "auto") => (Method::Auto, true),
        (Family::V6, "dhcp") => (Method::Auto, true),
        (_, "manual") => (Method::Manual, true),
        (_, "disabled" | "link-local" | "shared") | (Family::V6, "ignore") => (Method::Auto, false),
        _ => return None,
    })
}

/// `GROUP.method` (the type's default when absent): (name, line to point at, method, whether
/// it manages a default route).
fn read_method(
    r: &mut Reader<'_>,
    group: &str,
    fam: Family,
    default_method: &str,
) -> Result<(String, Option<usize>, Method, bool), Reject> {
    let section_line = r.kf.group_line(group);
    let method_name = match (r.string(group, "method"), section_line) {
        (Some((m, _)), _) => m,
        (None, None) => default_method.to_string(),
        (None, Some(line)) => {
            // A deliberate difference (docs/config.md): balenaOS's own documentation shows a
            // section with only `route-metric`, which NetworkManager 1.42 refuses.
            r.warn(
                line,
                format!("[{group}] has no method: NetworkManager 1.42 refuses this profile; netfailover reads it as method=auto (add method=auto)"),
            );
            default_method.to_string()
        }
    };
    let method_line = r.kf.get(group, "method").map(|e| e.line).or(section_line);
    let valid = match fam {
        Family::V4 => "auto, manual, link-local, shared, disabled",
        Family::V6 => "auto, dhcp, manual, link-local, shared, ignore, disabled",
    };
    let (method, method_manages) = method_of(fam, &method_name).ok_or_else(|| {
        reject(
            method_line,
            format!("{group}.method {method_name:?} is not one of {valid}"),
        )
    })?;
    Ok((method_name, method_line, method, method_manages))
}

/// `GROUP.addressN` and `GROUP.gateway`: the addresses and the gateway (the explicit key over
/// the first address's; an unspecified one is none).
fn read_addresses(
    r: &mut Reader<'_>,
    group: &str,
    fam: Family,
) -> Result<(Vec<IfaceAddr>, Option<IpAddr>), Reject> {
    let mut addresses: Vec<IfaceAddr> = Vec::new();
    let mut gateway: Option<IpAddr> = None;
    for (key, line) in numbered_keys(r, group, "address", "addresses") {
        if let Some((addr, gw)) = address_or_route(r, group, &key, line, fam, false) {
            addresses.push(addr);
            if gateway.is_none() {
                gateway = gw;
            }
        }
    }
    if let Some((text, line)) = r.string(group, "gateway") {
        gateway = Some(strict_ip(&text, fam).map_err(|why| {
            reject(
                line,
                format!("{group}.gateway: {why} (NetworkManager refuses the profile)"),
            )
        })?);
    }
    gateway = gateway.filter(|g| !g.is_unspecified());
    Ok((addresses, gateway))
}

/// A `gateway=` or `dns=` entry as NetworkManager checks it (`inet_pton`): exactly one
/// address of the family, no whitespace around it, no IPv6 zone (`fe80::1%eth0`), not empty.
fn strict_ip(text: &str, fam: Family) -> Result<IpAddr, BadIp> {
    if text.trim() != text || text.contains('%') {
        return Err(BadIp::NotAnIp(text.to_string()));
    }
    parse_ip_of(text, fam)
}

/// The next hop of the first default route among `GROUP.routeN`, if any.
fn read_route_gateway(r: &mut Reader<'_>, group: &str, fam: Family) -> Option<IpAddr> {
    let mut route_gateway = None;
    for (key, line) in numbered_keys(r, group, "route", "routes") {
        if let Some((dest, nh)) = address_or_route(r, group, &key, line, fam, true) {
            if dest.prefix_len == 0 && route_gateway.is_none() {
                route_gateway = nh.filter(|n| !n.is_unspecified());
            }
        }
    }
    route_gateway
}

/// `GROUP.dns`: the valid addresses, without repeats, in order.
fn read_dns(r: &mut Reader<'_>, group: &str, fam: Family) -> Vec<IpAddr> {
    let mut dns = Vec::new();
    if let Some(e) = r.kf.get(group, "dns").cloned() {
        for item in e.list() {
            match strict_ip(&item, fam) {
                Ok(ip) if !dns.contains(&ip) => dns.push(ip),
                Ok(_) => {}
                Err(why) => r.warn(e.line, format!("{group}.dns entry {item:?} dropped: {why}")),
            }
        }
    }
    dns
}

/// Reads one family. `type_metric` is the type's default metric; `no_ip_default` is the method
/// NetworkManager gives a type without the section (`disabled` for wireguard and dummy).
pub fn read(
    r: &mut Reader<'_>,
    fam: Family,
    type_metric: u32,
    default_method: &str,
) -> Result<FamilyRead, Reject> {
    let group = match fam {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    };
    let (method_name, method_line, method, method_manages) =
        read_method(r, group, fam, default_method)?;
    let (metric, metric_origin) = metric(r, group, type_metric)?;
    let never_default = r.bool(group, "never-default", false);

    let (addresses, mut gateway) = read_addresses(r, group, fam)?;
    let mut route_gateway = read_route_gateway(r, group, fam);

    if !addresses.is_empty() && matches!(method_name.as_str(), "disabled" | "link-local" | "ignore")
    {
        return Err(reject(
            method_line,
            format!("{group}.method={method_name} does not allow addresses (NetworkManager refuses the profile)"),
        ));
    }
    if method_name == "manual" && addresses.is_empty() {
        return Err(reject(
            method_line,
            format!("{group}.method=manual needs an address ({group}.address1=ADDR/LEN[,GW])"),
        ));
    }
    if gateway.is_some() && addresses.is_empty() {
        return Err(reject(
            r.kf.get(group, "gateway").map(|e| e.line).or(method_line),
            format!("{group}: a gateway without an address (NetworkManager refuses the profile)"),
        ));
    }
    if never_default {
        // NetworkManager's normalize drops the gateway of a never-default family.
        gateway = None;
        route_gateway = None;
    }
    let gateway_from_route = gateway.is_none() && route_gateway.is_some();
    if gateway_from_route {
        gateway = route_gateway;
    }
    if method == Method::Manual && gateway.is_none() && !never_default {
        r.warn(
            method_line,
            format!("{group}.method=manual without a gateway: no {group} default route for this profile"),
        );
    }

    let dns = read_dns(r, group, fam);
    Ok(FamilyRead {
        config: FamilyConfig {
            manage_default: method_manages && !never_default,
            method,
            metric,
            addresses,
            gateway,
        },
        method: method_name,
        metric_origin,
        dns,
        gateway_from_route,
    })
}

/// `route-metric`: absent, -1 or unreadable (a warning, as in NetworkManager) → the type's
/// default. Read as NetworkManager reads integers ([`keyfile::nm_int`]: `0x10` is 16, `010` is
/// 8) and in its range -1..=4294967295. Above [`Metric::MAX`] (2147483647) netfailover uses
/// `Metric::MAX` with a warning: it keeps headroom for the penalty (a documented difference).
fn metric(
    r: &mut Reader<'_>,
    group: &str,
    type_metric: u32,
) -> Result<(Metric, MetricOrigin), Reject> {
    let type_default = Metric::new(i64::from(type_metric)).map(|m| (m, MetricOrigin::TypeDefault));
    let fallback = || {
        type_default
            .clone()
            .map_err(|e| reject(None, e.to_string()))
    };
    let Some((text, line)) = r.string(group, "route-metric") else {
        return fallback();
    };
    let Some(value) = keyfile::nm_int(&text) else {
        r.warn(
            line,
            format!("{group}.route-metric {text:?} is not a number; using the type default"),
        );
        return fallback();
    };
    if value == -1 {
        return fallback();
    }
    if !(-1..=i64::from(u32::MAX)).contains(&value) {
        r.warn(
            line,
            format!("{group}.route-metric {value} is out of range; using the type default"),
        );
        return fallback();
    }
    let metric = match Metric::new(value) {
        Ok(metric) => metric,
        Err(err) => {
            r.warn(
                line,
                format!(
                    "{group}.route-metric {value} is above {max}, the largest metric netfailover uses (it keeps headroom for the penalty); using {max} (NetworkManager uses {value})",
                    max = err.max
                ),
            );
            Metric::new(i64::from(err.max)).map_err(|e| reject(line, e.to_string()))?
        }
    };
    Ok((metric, MetricOrigin::RouteMetric { line }))
}

/// The keys `NAME`, `NAME0`, `NAME1`… and the old `NAMEs…` in NetworkManager's order: by
/// number (no number first), the short spelling before the long one; a repeated key counts
/// once (its last value).
fn numbered_keys(r: &Reader<'_>, group: &str, short: &str, long: &str) -> Vec<(String, usize)> {
    let mut keys: Vec<(i64, u8, String, usize)> = Vec::new();
    for e in r.kf.entries_in(group) {
        let parsed = key_index(&e.key, short)
            .map(|i| (i, 0))
            .or_else(|| key_index(&e.key, long).map(|i| (i, 1)));
        if let Some((index, kind)) = parsed {
            keys.retain(|k| k.2 != e.key);
            keys.push((index, kind, e.key.clone(), e.line));
        }
    }
    keys.sort();
    keys.into_iter()
        .map(|(_, _, key, line)| (key, line))
        .collect()
}

/// `base` → -1, `base0` → 0, `baseN` (N without a leading zero, fits an i32) → N.
fn key_index(key: &str, base: &str) -> Option<i64> {
    let rest = key.strip_prefix(base)?;
    match rest.as_bytes() {
        [] => Some(-1),
        [b'0'] => Some(0),
        [b'1'..=b'9', tail @ ..] if tail.iter().all(u8::is_ascii_digit) => {
            rest.parse::<i32>().ok().map(i64::from)
        }
        _ => None,
    }
}

/// One `addressN`/`routeN` value, split as NetworkManager's `read_field()` does: fields of
/// address characters or digits separated by any of `/ ; ,`: address, prefix length (optional),
/// gateway or next hop, and for routes a metric. A malformed value is dropped with a warning
/// (NetworkManager does the same, and then refuses a manual profile left without addresses).
fn address_or_route(
    r: &mut Reader<'_>,
    group: &str,
    key: &str,
    line: usize,
    fam: Family,
    route: bool,
) -> Option<(IfaceAddr, Option<IpAddr>)> {
    let (value, _) = r.string(group, key)?;
    let drop = |r: &mut Reader<'_>, why: String| {
        r.warn(line, format!("{group}.{key} {value:?} ignored: {why}"));
        None
    };
    let fields = match split_fields(&value, route) {
        Ok(f) => f,
        Err(why) => return drop(r, why),
    };
    let addr = match parse_ip_of(fields.addr, fam) {
        Ok(a) => a,
        Err(why) => return drop(r, why.to_string()),
    };
    let max = match fam {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    let default_len = match (route, fam) {
        (true, Family::V6) => 128,
        (_, Family::V6) => 64,
        (_, Family::V4) => 24,
    };
    let prefix_len = match fields.len {
        Some(l) => match l.parse::<u8>().ok().filter(|l| *l <= max) {
            Some(l) => l,
            None => {
                r.warn(
                    line,
                    format!("{group}.{key}: invalid prefix length {l:?}; assuming /{default_len}"),
                );
                default_len
            }
        },
        None => {
            r.warn(
                line,
                format!("{group}.{key}: no prefix length; assuming /{default_len}"),
            );
            default_len
        }
    };
    let gw = match fields.gateway.map(|g| parse_ip_of(g, fam)) {
        None => None,
        Some(Ok(g)) => Some(g),
        Some(Err(why)) => {
            if route {
                return drop(r, format!("next hop {why}"));
            }
            // NetworkManager's gateway property then fails verification: say so, ignore it.
            r.warn(line, format!("{group}.{key}: gateway {why}; ignored"));
            None
        }
    };
    Some((IfaceAddr { addr, prefix_len }, gw))
}

struct Fields<'a> {
    addr: &'a str,
    len: Option<&'a str>,
    gateway: Option<&'a str>,
}

const ADDRESS_CHARS: &str = "0123456789abcdefABCDEF:.%";

/// NetworkManager's `read_field()` sequence over one value.
fn split_fields(value: &str, route: bool) -> Result<Fields<'_>, String> {
    let mut rest = Some(value);
    let mut field = |chars: &str| -> Result<Option<&str>, String> {
        let Some(cur) = rest.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let end = cur.find(|c: char| !chars.contains(c)).unwrap_or(cur.len());
        match cur[end..].chars().next() {
            None => {
                rest = None;
                Ok(Some(&cur[..end]))
            }
            Some('/' | ';' | ',') => {
                rest = Some(&cur[end + 1..]);
                Ok(Some(&cur[..end]))
            }
            Some(bad) => Err(format!("unexpected character {bad:?}")),
        }
    };
    let addr = field(ADDRESS_CHARS)?.ok_or("empty value")?;
    let len = field("0123456789").unwrap_or(None);
    let gateway = field(ADDRESS_CHARS)?;
    if route {
        field("0123456789")?;
    }
    if rest.is_some_and(|r| !r.is_empty()) {
        return Err("garbage at the end".to_string());
    }
    Ok(Fields {
        addr,
        len: len.filter(|l| !l.is_empty()),
        gateway: gateway.filter(|g| !g.is_empty()),
    })
}

/// Why a keyfile value is not an address of the family asked for; the reader prints it with
/// the key and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadIp {
    #[error("{0:?} is not an IP address")]
    NotAnIp(String),
    #[error("{0} is not an IPv4 address")]
    NotV4(IpAddr),
    #[error("{0} is not an IPv6 address")]
    NotV6(IpAddr),
}

/// An address of the given family, or why not.
pub fn parse_ip_of(s: &str, fam: Family) -> Result<IpAddr, BadIp> {
    let ip: IpAddr = s
        .trim()
        .parse()
        .map_err(|_| BadIp::NotAnIp(s.to_string()))?;
    match (Family::of(&ip), fam) {
        (Family::V4, Family::V4) | (Family::V6, Family::V6) => Ok(ip),
        (_, Family::V4) => Err(BadIp::NotV4(ip)),
        (_, Family::V6) => Err(BadIp::NotV6(ip)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_the_wrong_family_say_so() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(parse_ip_of(" 192.0.2.1 ", Family::V4), Ok(v4));
        assert_eq!(parse_ip_of("192.0.2.1", Family::V6), Err(BadIp::NotV6(v4)));
        assert_eq!(
            parse_ip_of("x", Family::V4).unwrap_err().to_string(),
            "\"x\" is not an IP address"
        );
    }

    #[test]
    fn fields_split_on_any_separator_and_the_last_is_the_gateway() {
        for v in [
            "192.0.2.5/24,192.0.2.1",
            "192.0.2.5/24;192.0.2.1",
            "192.0.2.5,24,192.0.2.1",
            "192.0.2.5;24;192.0.2.1;",
        ] {
            let f = split_fields(v, false).unwrap();
            assert_eq!(
                (f.addr, f.len, f.gateway),
                ("192.0.2.5", Some("24"), Some("192.0.2.1")),
                "{v}"
            );
        }
        let f = split_fields("192.0.2.5", false).unwrap();
        assert_eq!((f.len, f.gateway), (None, None));
        assert!(split_fields("192.0.2.5/24, 192.0.2.1", false).is_err());
        assert!(split_fields("192.0.2.5/24;198.51.100.5/24", false).is_err());
        let f = split_fields("0.0.0.0/0,192.0.2.1,50", true).unwrap();
        assert_eq!(f.gateway, Some("192.0.2.1"));
    }

    #[test]
    fn key_order_is_networkmanagers() {
        assert_eq!(key_index("address", "address"), Some(-1));
        assert_eq!(key_index("address0", "address"), Some(0));
        assert_eq!(key_index("address01", "address"), None);
        assert_eq!(key_index("address12", "address"), Some(12));
        assert_eq!(key_index("addresses1", "address"), None);
    }
}
