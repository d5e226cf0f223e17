//! Finding a modem's network interface from its control device through sysfs.
//!
//! gsm/cdma profiles often name the device ModemManager talks to (`interface-name=cdc-wdm0`,
//! `ttyUSB2`, `wwan0mbim0`), not the network interface that carries the route (`wwan0`). Both
//! hang off the same physical device: for USB modems, the same USB device (`1-1`), whose
//! interfaces (`1-1:1.8`) carry the control port and the net device; for PCIe modems, the same
//! device node. So we resolve both `device` links and compare the device they belong to.
//!
//! An adapter (only sysfs reads): the link adapter (`netlink/links.rs`) asks it at run time and
//! the configuration (`config/profiles/binding.rs`, `check-config`) when reading profiles.

use std::path::{Path, PathBuf};

use netfailover_actors::model::IfaceName;

/// sysfs classes that hold modem control ports.
const CONTROL_CLASSES: [&str; 3] = ["usbmisc", "tty", "wwan"];

/// What sysfs says about a name in a gsm/cdma profile.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ControlLookup {
    /// A network interface of that name exists.
    NetIface,
    /// A control device of that name exists and this network interface shares its device.
    Mapped {
        iface: IfaceName,
        class: &'static str,
    },
    /// A control device of that name exists but no network interface shares its device (yet).
    ControlWithoutNet { class: &'static str },
    /// Nothing of that name exists now, but the name looks like a control device.
    LooksLikeControl,
    /// Nothing of that name exists now: assume it is a network interface that will appear.
    Unknown,
}

/// Looks `name` up under `sysfs_root` (normally `/sys`).
pub fn lookup(sysfs_root: &Path, name: &str) -> ControlLookup {
    if sysfs_root.join("class/net").join(name).exists() {
        return ControlLookup::NetIface;
    }
    for class in CONTROL_CLASSES {
        let Ok(control) = sysfs_root
            .join("class")
            .join(class)
            .join(name)
            .join("device")
            .canonicalize()
        else {
            continue;
        };
        let want = device_key(&control);
        return match net_ifaces(sysfs_root)
            .into_iter()
            .find(|(_, dev)| device_key(dev) == want)
        {
            Some((iface, _)) => ControlLookup::Mapped { iface, class },
            None => ControlLookup::ControlWithoutNet { class },
        };
    }
    if looks_like_control(name) {
        ControlLookup::LooksLikeControl
    } else {
        ControlLookup::Unknown
    }
}

/// The network interface of control device `device` now, if both exist (what the engine asks
/// whenever links appear: a modem may show up, or re-enumerate, after the start).
pub fn control_device_net(sysfs_root: &Path, device: &str) -> Option<IfaceName> {
    match lookup(sysfs_root, device) {
        ControlLookup::Mapped { iface, .. } => Some(iface),
        _ => None,
    }
}

/// True if a network interface of that name exists under `sysfs_root`.
pub fn iface_exists(sysfs_root: &Path, name: &str) -> bool {
    sysfs_root.join("class/net").join(name).exists()
}

/// Network interfaces with a device link, sorted by name so the result is deterministic.
fn net_ifaces(sysfs_root: &Path) -> Vec<(IfaceName, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(sysfs_root.join("class/net")) else {
        return Vec::new();
    };
    let mut out: Vec<(IfaceName, PathBuf)> = dir
        .flatten()
        .filter_map(|entry| {
            let name = IfaceName::new(entry.file_name().to_string_lossy().into_owned()).ok()?;
            let dev = entry.path().join("device").canonicalize().ok()?;
            Some((name, dev))
        })
        .collect();
    out.sort();
    out
}

/// The physical device a sysfs device path belongs to: the USB device (`1-1.2`, the nearest
/// ancestor named `BUS-PORT[.PORT…]` without a `:`), else the path itself.
fn device_key(dev: &Path) -> PathBuf {
    dev.ancestors()
        .find(|a| {
            a.file_name()
                .is_some_and(|n| is_usb_device_name(&n.to_string_lossy()))
        })
        .unwrap_or(dev)
        .to_path_buf()
}

fn is_usb_device_name(name: &str) -> bool {
    let Some((bus, ports)) = name.split_once('-') else {
        return false;
    };
    !bus.is_empty()
        && bus.bytes().all(|b| b.is_ascii_digit())
        && !ports.is_empty()
        && ports
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Names ModemManager uses for control ports (no network interface is called like this).
fn looks_like_control(name: &str) -> bool {
    name.starts_with("cdc-wdm")
        || name.starts_with("tty")
        || ["at", "mbim", "qmi", "qcdm", "firehose", "xmmrpc"]
            .iter()
            .any(|port| {
                name.strip_prefix("wwan")
                    .and_then(|rest| rest.split_once(port))
                    .is_some_and(|(n, m)| {
                        !n.is_empty()
                            && n.bytes().all(|b| b.is_ascii_digit())
                            && m.bytes().all(|b| b.is_ascii_digit())
                    })
            })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake sysfs with one USB modem (1-1: qmi on 1-1:1.8 = wwan0 + cdc-wdm0, serial on
    /// 1-1:1.2 = ttyUSB2), one USB modem whose net interface is missing (2-1: cdc-wdm1) and a
    /// PCI NIC (eth0).
    pub(crate) fn fake_sysfs() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let dev = |p: &str| {
            let d = r.join("devices").join(p);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let link = |class: &str, name: &str, target: &Path| {
            let d = r.join("class").join(class).join(name);
            std::fs::create_dir_all(&d).unwrap();
            symlink(target, d.join("device")).unwrap();
        };
        let qmi = dev("pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.8");
        let serial = dev("pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.2/ttyUSB2");
        let other = dev("pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.8");
        let nic = dev("pci0000:00/0000:00:1f.6");
        link("net", "wwan0", &qmi);
        link("usbmisc", "cdc-wdm0", &qmi);
        link("tty", "ttyUSB2", &serial);
        link("usbmisc", "cdc-wdm1", &other);
        link("net", "eth0", &nic);
        // A virtual interface has no device link.
        std::fs::create_dir_all(r.join("class/net/lo")).unwrap();
        root
    }

    #[test]
    fn control_devices_map_to_the_modem_net_iface() {
        let sys = fake_sysfs();
        let wwan0 = IfaceName::new("wwan0").unwrap();
        assert_eq!(
            lookup(sys.path(), "cdc-wdm0"),
            ControlLookup::Mapped {
                iface: wwan0.clone(),
                class: "usbmisc"
            }
        );
        assert_eq!(
            lookup(sys.path(), "ttyUSB2"),
            ControlLookup::Mapped {
                iface: wwan0,
                class: "tty"
            }
        );
        assert_eq!(
            lookup(sys.path(), "cdc-wdm1"),
            ControlLookup::ControlWithoutNet { class: "usbmisc" }
        );
        assert_eq!(lookup(sys.path(), "wwan0"), ControlLookup::NetIface);
        assert_eq!(
            lookup(sys.path(), "ttyUSB0"),
            ControlLookup::LooksLikeControl
        );
        assert_eq!(
            lookup(sys.path(), "wwan0mbim0"),
            ControlLookup::LooksLikeControl
        );
        assert_eq!(lookup(sys.path(), "wwan1"), ControlLookup::Unknown);
        assert!(iface_exists(sys.path(), "eth0"));
        assert!(!iface_exists(sys.path(), "eth1"));
    }

    #[test]
    fn a_modem_that_appears_later_is_mapped_when_asked_again() {
        let sys = fake_sysfs();
        // cdc-wdm1's modem has no network interface yet (it is still enumerating).
        assert_eq!(control_device_net(sys.path(), "cdc-wdm1"), None);
        let qmi = sys
            .path()
            .join("devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.8");
        let net = sys.path().join("class/net/wwan1");
        std::fs::create_dir_all(&net).unwrap();
        symlink(&qmi, net.join("device")).unwrap();
        assert_eq!(
            control_device_net(sys.path(), "cdc-wdm1"),
            Some(IfaceName::new("wwan1").unwrap())
        );
        assert_eq!(
            control_device_net(sys.path(), "cdc-wdm0"),
            Some(IfaceName::new("wwan0").unwrap())
        );
        assert_eq!(control_device_net(sys.path(), "ttyUSB9"), None);
    }

    #[test]
    fn usb_device_names() {
        assert!(is_usb_device_name("1-1"));
        assert!(is_usb_device_name("3-1.4.2"));
        assert!(!is_usb_device_name("1-1:1.8"));
        assert!(!is_usb_device_name("usb1"));
        assert!(!is_usb_device_name("0000:00:14.0"));
    }
}
