//! Modems named by their control device: never a USB gadget, a late modem, the `wwan*` fallback.

use super::*;

/// A gsm profile naming a modem's control device: a USB gadget `usb0` is never taken as the
/// modem; a modem that appears after the start is found through its control device (a fake
/// sysfs), and without that, the fallback is the first `wwan*` only.
#[actix::test]
async fn a_control_device_profile_follows_the_modem_not_usb_gadgets() {
    let w = FakeWorld::new();
    let eth0 = w.kernel.add_link("eth0", LinkKind::Other);
    let usb0 = w.kernel.add_link("usb0", LinkKind::Other);
    for (ifindex, i, metric) in [(eth0, 1, 100), (usb0, 2, 800)] {
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i)),
            metric,
            protocol: DHCP,
        });
    }
    let mut cfg = config();
    cfg.profiles.truncate(1);
    let mut modem = profile("wwan9", UplinkType::Gsm, 700);
    modem.matches = IfaceMatch::ControlDevice("cdc-wdm0".into());
    cfg.profiles.push(modem);
    let h = started(&w, cfg).await;
    let managed = |h: &EngineHandle| -> Vec<String> {
        h.status()
            .interfaces
            .iter()
            .map(|i| i.name.to_string())
            .collect()
    };
    assert_eq!(managed(&h), vec!["eth0"], "usb0 is not the modem");
    // The modem enumerates after the start: net interface wwan3 of cdc-wdm0 (wwan0 exists too,
    // but the control device names its own interface).
    w.kernel.set_control_device("cdc-wdm0", "wwan3");
    let wwan0 = w.kernel.add_link("wwan0", LinkKind::Other);
    let wwan3 = w.kernel.add_link("wwan3", LinkKind::Other);
    for (ifindex, i) in [(wwan0, 3), (wwan3, 4)] {
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i)),
            metric: 700,
            protocol: DHCP,
        });
    }
    pass(Duration::from_millis(100)).await;
    let status = h.status();
    let modem = status
        .interfaces
        .iter()
        .find(|i| i.source.to_string().contains("wwan9-profile"))
        .map(|i| i.name.to_string());
    assert_eq!(modem.as_deref(), Some("wwan3"), "{status:?}");
}

/// Without a sysfs answer the control-device fallback is the first `wwan*`, never `usb*`.
#[actix::test]
async fn the_control_device_fallback_is_wwan_only() {
    let w = FakeWorld::new();
    let usb0 = w.kernel.add_link("usb0", LinkKind::Other);
    let wwan1 = w.kernel.add_link("wwan1", LinkKind::Other);
    for (ifindex, i) in [(usb0, 1), (wwan1, 2)] {
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(gw(i)),
            metric: 700,
            protocol: DHCP,
        });
    }
    let mut modem = profile("wwan9", UplinkType::Gsm, 700);
    modem.matches = IfaceMatch::ControlDevice("cdc-wdm0".into());
    let cfg = Config {
        profiles: vec![modem],
        ..config()
    };
    let h = started(&w, cfg).await;
    let names: Vec<String> = h
        .status()
        .interfaces
        .iter()
        .map(|i| i.name.to_string())
        .collect();
    assert_eq!(names, vec!["wwan1"]);
}
