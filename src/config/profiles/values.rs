//! Single values NetworkManager 1.42's `nm_connection_normalize()` checks and refuses the whole
//! profile for (`verify()` of `nm-setting-connection.c`, `nm-setting-wireless.c`,
//! `nm-setting-gsm.c`, `nm-setting-vlan.c`), and the UUID form it normalizes.

use netfailover_actors::model::IfaceName;

use crate::config::keyfile;
use crate::config::keyfile_reader::{reject, Reader, Reject};
use crate::config::nm_types::NmType;

fn refuse(line: usize, what: String) -> Result<(), Reject> {
    Err(reject(
        line,
        format!("{what} (NetworkManager refuses the profile)"),
    ))
}

/// The canonical form of `8-4-4-4-12` hexadecimal digits (any case), lowercased.
fn canonical_uuid(s: &str) -> Option<String> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    (lens == [8, 4, 4, 4, 12] && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()))
        .then(|| s.to_ascii_lowercase())
}

/// The old forms NetworkManager still accepts (`nm_uuid_is_valid_nmlegacy()`): hexadecimal
/// digits and `-` only, 36 characters with four dashes or 40 without.
fn legacy_uuid(s: &str) -> bool {
    let dashes = s.bytes().filter(|b| *b == b'-').count();
    s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && ((dashes == 4 && s.len() == 36) || (dashes == 0 && s.len() == 40))
}

/// The UUID NetworkManager puts in place of an old form (`nm_uuid_is_valid_nm()`): a version 5
/// (SHA-1) name-based UUID of the lowercased text in NetworkManager's own namespace.
fn uuid_from_legacy(text: &str) -> String {
    const NAMESPACE: [u8; 16] = [
        0x4e, 0x72, 0xf7, 0x09, 0xca, 0x95, 0x44, 0x05, 0x90, 0x53, 0x1f, 0x43, 0x29, 0x4a, 0x61,
        0x8c,
    ];
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&NAMESPACE);
    ctx.update(text.to_ascii_lowercase().as_bytes());
    let digest = ctx.finish();
    let mut u = [0u8; 16];
    for (dst, src) in u.iter_mut().zip(digest.as_ref()) {
        *dst = *src;
    }
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `connection.uuid`: a UUID in any case is reported lowercased, as NetworkManager normalizes
/// it; an old form is replaced, as NetworkManager replaces it, by a UUID derived from it (with a
/// warning); anything else rejects the profile.
pub(super) fn uuid(r: &mut Reader<'_>, text: String, line: usize) -> Result<String, Reject> {
    if let Some(canonical) = canonical_uuid(&text) {
        return Ok(canonical);
    }
    if legacy_uuid(&text) {
        let uuid = uuid_from_legacy(&text);
        r.warn(
            line,
            format!("connection.uuid {text:?} is an old form; NetworkManager (and netfailover) use {uuid} instead: write that"),
        );
        return Ok(uuid);
    }
    Err(reject(
        line,
        format!(
            "connection.uuid {text:?} is not a valid UUID (NetworkManager refuses the profile)"
        ),
    ))
}

/// Channels NetworkManager accepts per band (`nm_utils_wifi_is_channel_valid()`).
const CHANNELS_A: &[i64] = &[
    7, 8, 9, 11, 12, 16, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 56, 58, 60, 64, 100, 104, 108,
    112, 116, 120, 124, 128, 132, 136, 140, 149, 152, 153, 157, 160, 161, 165, 183, 184, 185, 187,
    188, 192, 196,
];

/// `wifi.channel`: 0 is any; another needs `band` and must be one of that band's channels.
fn channel(r: &mut Reader<'_>, band: Option<&str>) -> Result<(), Reject> {
    let Some((text, line)) = r.string("wifi", "channel") else {
        return Ok(());
    };
    match (keyfile::nm_int(&text), band) {
        (Some(0) | None, _) => Ok(()),
        (Some(c), None) => refuse(line, format!("wifi.channel {c} needs wifi.band")),
        (Some(c), Some("bg")) if (1..=14).contains(&c) => Ok(()),
        (Some(c), Some("a")) if CHANNELS_A.contains(&c) => Ok(()),
        (Some(c), Some(b)) => refuse(
            line,
            format!("wifi.channel {c} is not a channel of band {b}"),
        ),
    }
}

/// `wifi.wake-on-wlan` flags: `default` (0x1) or `ignore` (0x8000) alone, otherwise only the
/// event flags 0x2..=0x100.
fn wake_on_wlan(r: &mut Reader<'_>) -> Result<(), Reject> {
    let Some((text, line)) = r.string("wifi", "wake-on-wlan") else {
        return Ok(());
    };
    let Some(w) = keyfile::nm_int(&text).and_then(|v| u32::try_from(v).ok()) else {
        return Ok(());
    };
    let exclusive = w & 0x8001 != 0;
    if (exclusive && !w.is_power_of_two()) || (!exclusive && w & !0x1fe != 0) {
        return refuse(
            line,
            format!("wifi.wake-on-wlan {w:#x} mixes or names unknown flags"),
        );
    }
    Ok(())
}

/// Bytes of `wifi.ssid`: a `;`-separated list of byte values, or the string.
fn ssid_len(ssid: &str) -> usize {
    let items: Vec<&str> = ssid.split(';').filter(|i| !i.is_empty()).collect();
    let bytes = ssid.contains(';') && items.iter().all(|i| i.parse::<u8>().is_ok());
    if bytes {
        items.len()
    } else {
        ssid.len()
    }
}

/// A UUID (any form NetworkManager takes) or an interface name: what `parent` keys may hold.
fn uuid_or_ifname(s: &str) -> bool {
    IfaceName::new(s).is_ok() || legacy_uuid(s) || canonical_uuid(s).is_some()
}

/// `[gsm]` and `[cdma]`: keys that may be absent but not empty, and the digit codes.
fn modem(r: &mut Reader<'_>) -> Result<(), Reject> {
    for (group, key) in [
        ("gsm", "number"),
        ("gsm", "device-id"),
        ("gsm", "sim-id"),
        ("cdma", "number"),
    ] {
        if let Some((_, line)) = r.string(group, key).filter(|(v, _)| v.is_empty()) {
            refuse(
                line,
                format!("{group}.{key} is empty (leave the key out instead)"),
            )?;
        }
    }
    for key in ["network-id", "sim-operator-id"] {
        if let Some((v, line)) = r.string("gsm", key) {
            if !(5..=6).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_digit()) {
                refuse(line, format!("gsm.{key} {v:?} is not 5 or 6 digits"))?;
            }
        }
    }
    Ok(())
}

/// `[bluetooth]`: the type (`dun`, `panu`, `nap`; absent, `dun` with a `[gsm]`/`[cdma]`
/// section or `nap` with a `[bridge]` one), `dun` with its modem section, `nap` with an
/// interface name, the others with a valid `bdaddr`.
fn bluetooth(r: &mut Reader<'_>) -> Result<(), Reject> {
    let section = r.kf.group_line("bluetooth").unwrap_or(1);
    let has = |r: &Reader<'_>, g: &str| r.kf.group_line(g).is_some();
    let modem = has(r, "gsm") || has(r, "cdma");
    let (kind, line) = match r.string("bluetooth", "type") {
        Some(t) => t,
        None if modem => ("dun".to_string(), section),
        None if has(r, "bridge") => ("nap".to_string(), section),
        None => return refuse(section, "bluetooth.type is missing".to_string()),
    };
    match kind.as_str() {
        "dun" if !modem => refuse(
            line,
            "bluetooth type dun needs a [gsm] or [cdma] section".to_string(),
        ),
        "nap" if r.string("connection", "interface-name").is_none() => refuse(
            line,
            "bluetooth type nap needs connection.interface-name".to_string(),
        ),
        "nap" => Ok(()),
        "dun" | "panu" => match r.string("bluetooth", "bdaddr") {
            Some((a, _)) if super::binding::parse_mac(&a).is_some() => Ok(()),
            _ => refuse(
                section,
                "bluetooth.bdaddr is missing or not a MAC address".to_string(),
            ),
        },
        other => refuse(
            line,
            format!("bluetooth.type {other:?} is not dun, panu or nap"),
        ),
    }
}

/// Settings of any profile: `ethernet.duplex` (`half`, `full`), `connection.mdns` and
/// `connection.llmnr` (-1..=2), `connection.permissions` (`user:NAME[:]` items), `proxy.method`
/// (0 none, 1 auto). Integers NetworkManager cannot read are only its warning, not a refusal.
fn any_type(r: &mut Reader<'_>) -> Result<(), Reject> {
    if let Some((d, line)) = r.string("ethernet", "duplex") {
        if d != "half" && d != "full" {
            refuse(line, format!("ethernet.duplex {d:?} is not half or full"))?;
        }
    }
    for (group, key, range) in [
        ("connection", "mdns", -1..=2),
        ("connection", "llmnr", -1..=2),
        ("proxy", "method", 0..=1),
    ] {
        if let Some((text, line)) = r.string(group, key) {
            let value = keyfile::nm_int(&text).filter(|v| i32::try_from(*v).is_ok());
            if let Some(v) = value.filter(|v| !range.contains(v)) {
                refuse(line, format!("{group}.{key} {v} is not in {range:?}"))?;
            }
        }
    }
    if let Some(e) = r.kf.get("connection", "permissions") {
        let line = e.line;
        let valid = |p: &str| {
            p.strip_prefix("user:")
                .map(|n| n.strip_suffix(':').unwrap_or(n))
                .is_some_and(|n| !n.is_empty() && !n.contains(':'))
        };
        if let Some(bad) = e.list().into_iter().find(|p| !valid(p)) {
            refuse(
                line,
                format!("connection.permissions {bad:?} is not user:NAME"),
            )?;
        }
    }
    Ok(())
}

/// Per type: the modem keys, Bluetooth, a MACVLAN's parent, InfiniBand's transport mode.
fn per_type(r: &mut Reader<'_>, t: &NmType) -> Result<(), Reject> {
    match t.short {
        "gsm" | "cdma" => modem(r),
        "bluetooth" => bluetooth(r),
        "macvlan" => match r.string("macvlan", "parent").filter(|(p, _)| !p.is_empty()) {
            Some((p, line)) if !uuid_or_ifname(&p) => refuse(
                line,
                format!("macvlan.parent {p:?} is neither a UUID nor an interface name"),
            ),
            Some(_) => Ok(()),
            None if r.kf.get("ethernet", "mac-address").is_some() => Ok(()),
            None => refuse(
                r.kf.group_line("macvlan").unwrap_or(1),
                "macvlan.parent is missing and so is ethernet.mac-address".to_string(),
            ),
        },
        "infiniband" => match r.string("infiniband", "transport-mode") {
            Some((m, _)) if m == "datagram" || m == "connected" => Ok(()),
            _ => refuse(
                r.kf.group_line("infiniband").unwrap_or(1),
                "infiniband.transport-mode is not datagram or connected".to_string(),
            ),
        },
        _ => Ok(()),
    }
}

/// Wi-Fi `mode`, `band`, SSID length; `gsm.apn`; `vlan.parent`; then [`per_type`].
pub(super) fn check(r: &mut Reader<'_>, t: &NmType) -> Result<(), Reject> {
    any_type(r)?;
    per_type(r, t)?;

    if t.short == "wifi" {
        if let Some((ssid, line)) = r.string("wifi", "ssid") {
            if !(1..=32).contains(&ssid_len(&ssid)) {
                refuse(
                    line,
                    format!("wifi.ssid {ssid:?} is not 1 to 32 bytes long"),
                )?;
            }
        }
        if let Some((mode, line)) = r.string("wifi", "mode") {
            if !["infrastructure", "adhoc", "ap", "mesh"].contains(&mode.as_str()) {
                refuse(
                    line,
                    format!("wifi.mode {mode:?} is not infrastructure, adhoc, ap or mesh"),
                )?;
            }
        }
        let band = r.string("wifi", "band");
        if let Some((band, line)) = &band {
            if !["a", "bg"].contains(&band.as_str()) {
                refuse(*line, format!("wifi.band {band:?} is not a or bg"))?;
            }
        }
        channel(r, band.as_ref().map(|(b, _)| b.as_str()))?;
        wake_on_wlan(r)?;
    }
    if let Some((apn, line)) = r.string("gsm", "apn") {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if apn.len() > 64 || !apn.bytes().all(allowed) {
            refuse(
                line,
                format!("gsm.apn {apn:?} is longer than 64 or has characters other than A-Z a-z 0-9 . _ -"),
            )?;
        }
    }
    if t.short == "vlan" {
        if let Some((parent, line)) = r.string("vlan", "parent").filter(|(p, _)| !p.is_empty()) {
            if !uuid_or_ifname(&parent) {
                refuse(
                    line,
                    format!("vlan.parent {parent:?} is neither a UUID nor an interface name"),
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_forms() {
        assert_eq!(
            canonical_uuid("1B6E2D0C-3F4A-4B5C-8D6E-7F8091A2B3C4").as_deref(),
            Some("1b6e2d0c-3f4a-4b5c-8d6e-7f8091a2b3c4")
        );
        assert_eq!(canonical_uuid("1b6e2d0c3f4a4b5c8d6e7f8091a2b3c4"), None);
        assert!(legacy_uuid("1b6e2d0c3f4a4b5c8d6e7f8091a2b3c4aabbccdd"));
        assert!(legacy_uuid("1b6e2d0c3f4a4b5c8d6e7f8091a2b3c4----"));
        assert!(!legacy_uuid("not-a-uuid"));
        assert!(!legacy_uuid("1b6e2d0c3f4a4b5c8d6e7f8091a2b3c4"));
    }

    #[test]
    fn old_uuids_are_replaced_as_networkmanager_replaces_them() {
        // Values printed by libnm 1.42 for these two files (tests/data/nm-corpus/files/uuid-legacy-*).
        assert_eq!(
            uuid_from_legacy("1b6e2d0c3f4a4b5c8d6e7f8091a2b3c4----"),
            "828e7a94-dbba-5c55-9230-4ce4614f52f3"
        );
        assert_eq!(
            uuid_from_legacy("1B6E2D0C3F4A4B5C8D6E7F8091A2B3C4AABBCCDD"),
            "d7d4c2c5-d350-5987-abeb-1a23c863150f"
        );
    }

    #[test]
    fn ssid_lengths() {
        assert_eq!(ssid_len("Example"), 7);
        assert_eq!(ssid_len("69;120;97;109;"), 4);
        // Not decimal bytes: the string itself.
        assert_eq!(ssid_len("45;78;61;6d;"), 12);
        assert_eq!(ssid_len("a;b"), 3);
    }
}
