//! How a keyfile profile finds its interface: `interface-name` (or a modem control device
//! behind it), a VLAN's `PARENT.ID`, `mac-address`, or only its type. Read for `profiles.rs`.

use std::path::Path;

use netfailover_actors::model::{IfaceMatch, IfaceName};

use crate::config::keyfile;
use crate::config::keyfile_reader::{reject, Reader, Reject};
use crate::config::nm_types::NmType;
use crate::os::sysfs::{self, ControlLookup};

/// How the profile finds its interface.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Binding {
    InterfaceName,
    /// A VLAN without `interface-name`: NetworkManager names it `PARENT.ID`.
    VlanName,
    /// `interface-name` named a modem control device; `class` is its sysfs class when found.
    ControlDevice {
        device: String,
        class: Option<&'static str>,
    },
    MacAddress,
    ByType,
}

/// `interface-name`, a modem control device, a VLAN's `PARENT.ID`, `mac-address`, or the type.
pub(super) fn binding(
    r: &mut Reader<'_>,
    t: &NmType,
    sysfs_root: &Path,
) -> Result<(IfaceMatch, Binding), Reject> {
    let mac_group = match t.short {
        "ethernet" | "vlan" | "pppoe" => Some("ethernet"),
        "wifi" => Some("wifi"),
        _ => None,
    };
    let mac = match mac_group.and_then(|g| r.string(g, "mac-address").map(|v| (g, v))) {
        Some((_, (text, _))) if text.is_empty() => None,
        Some((g, (text, line))) => match parse_mac(&text) {
            Some(mac) => Some((mac, line)),
            None => {
                r.warn(
                    line,
                    format!("{g}.mac-address {text:?} is not a MAC address; ignored (as NetworkManager does)"),
                );
                None
            }
        },
        None => None,
    };
    let Some((name, line)) = interface_name(r, t) else {
        if t.short == "vlan" {
            if let Some(name) = vlan_name(r) {
                return Ok((IfaceMatch::Name(name), Binding::VlanName));
            }
        }
        return Ok(match mac {
            Some((mac, _)) if t.short != "vlan" => (IfaceMatch::Mac(mac), Binding::MacAddress),
            _ => (IfaceMatch::ByType, Binding::ByType),
        });
    };
    let name = IfaceName::new(name)
        .map_err(|e| reject(line, format!("connection.interface-name: {e}")))?;
    if let Some((_, mac_line)) = mac {
        r.warn(
            mac_line,
            "mac-address is not used: interface-name already binds this profile",
        );
    }
    if !matches!(t.short, "gsm" | "cdma" | "bluetooth") {
        return Ok((IfaceMatch::Name(name), Binding::InterfaceName));
    }
    let device = name.as_str().to_string();
    Ok(match sysfs::lookup(sysfs_root, &device) {
        ControlLookup::NetIface | ControlLookup::Unknown => {
            (IfaceMatch::Name(name), Binding::InterfaceName)
        }
        // Resolved by the engine whenever links appear (a modem may appear, or re-enumerate,
        // after the start), through sysfs, else the first unclaimed `wwan*`.
        ControlLookup::Mapped { class, .. } | ControlLookup::ControlWithoutNet { class } => (
            IfaceMatch::ControlDevice(device.clone()),
            Binding::ControlDevice {
                device,
                class: Some(class),
            },
        ),
        ControlLookup::LooksLikeControl => (
            IfaceMatch::ControlDevice(device.clone()),
            Binding::ControlDevice {
                device,
                class: None,
            },
        ),
    })
}

/// `connection.interface-name`, or where NetworkManager still finds it when that is absent
/// (`nm_keyfile_read()`): the deprecated `interface-name` key of the section named by
/// `connection.type`'s setting name, as the file writes it (`[bond] interface-name=bond0`,
/// `[802-3-ethernet]` but not its alias `[ethernet]`). Not for a type inferred from the
/// sections, which NetworkManager only sets after that lookup.
pub(super) fn interface_name(r: &mut Reader<'_>, t: &NmType) -> Option<(String, usize)> {
    let named = r
        .string("connection", "interface-name")
        .filter(|(s, _)| !s.is_empty());
    if named.is_some() || r.kf.get("connection", "type").is_none() {
        return named;
    }
    let e = r.kf.get_as_written(t.setting, "interface-name")?;
    let (value, line) = (e.strict_string(), e.line);
    match value {
        Ok(name) if !name.is_empty() => Some((name, line)),
        Ok(_) => None,
        Err(why) => {
            r.warn(
                line,
                format!("{}.interface-name: {why}; ignored", t.setting),
            );
            None
        }
    }
}

/// NetworkManager's name for a VLAN without `interface-name` (`nm_utils_new_vlan_name()`):
/// `PARENT.ID`, the parent cut so the whole fits 15 bytes. `None` when the parent is a profile
/// UUID rather than an interface name (the interface is then only known at run time).
fn vlan_name(r: &mut Reader<'_>) -> Option<IfaceName> {
    let (parent, _) = r.string("vlan", "parent")?;
    // No id: NetworkManager's default, 0.
    let id = match r.string("vlan", "id") {
        Some((id, _)) => vlan_id(&id)?,
        None => 0,
    };
    if parent.len() == 36 && parent.matches('-').count() == 4 {
        return None;
    }
    let suffix = format!(".{id}");
    let keep = parent.len().min(15usize.saturating_sub(suffix.len()));
    let cut = parent.get(..keep)?;
    IfaceName::new(format!("{cut}{suffix}")).ok()
}

/// `vlan.id` as NetworkManager reads it (an integer in any of its notations, `0x10` is 16; what
/// is not a 32-bit number is 0, with the warning `required_section` gives): `None` above 4094,
/// which NetworkManager refuses.
pub(super) fn vlan_id(text: &str) -> Option<u16> {
    let id = keyfile::nm_int(text)
        .filter(|v| (0..=i64::from(u32::MAX)).contains(v))
        .unwrap_or(0);
    u16::try_from(id).ok().filter(|id| *id <= 4094)
}

/// `aa:bb:cc:dd:ee:ff` (or `-`-separated), or the old keyfile form `170;187;204;221;238;255;`.
pub(super) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let s = s.trim();
    let (parts, radix): (Vec<&str>, u32) = if s.contains(';') {
        (s.split(';').filter(|p| !p.trim().is_empty()).collect(), 10)
    } else {
        (s.split([':', '-']).collect(), 16)
    };
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        let part = part.trim();
        if part.is_empty() || (radix == 16 && part.len() > 2) {
            return None;
        }
        *byte = u8::from_str_radix(part, radix).ok()?;
    }
    Some(mac)
}
