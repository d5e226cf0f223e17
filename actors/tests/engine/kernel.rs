//! The kernel's route table: retried writes, drift and overrun repair, unique metrics, manual
//! profiles, interfaces that vanish.

use super::*;

#[actix::test]
async fn failed_route_writes_are_retried() {
    let w = world();
    let h = started(&w, config()).await;
    w.kernel.fail_route_writes(4);
    w.kernel.set_carrier("eth0", false);
    settle().await;
    // Retries back off from 250 ms, doubling: the fifth attempt (after 3.75 s) succeeds.
    pass(Duration::from_secs(5)).await;
    assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
    assert!(owned_metrics(&w).iter().all(|(n, _)| n != "eth0"));
    assert!(
        h.status().actors.iter().all(|a| a.restarts == 0),
        "nothing crashed"
    );
}

#[actix::test]
async fn drift_is_repaired_and_overruns_resync() {
    let w = world();
    let h = started(&w, config()).await;
    let eth0 = KernelRoute {
        family: Family::V4,
        ifindex: 2,
        gateway: Some(gw(1)),
        metric: 100,
        protocol: OURS,
    };
    w.kernel.delete_route_by_hand(&eth0);
    settle().await;
    assert!(
        w.kernel.routes().contains(&eth0),
        "hand-deleted route restored"
    );
    let stray = KernelRoute {
        metric: 5000,
        ..eth0.clone()
    };
    w.kernel.add_route_by_hand(stray.clone());
    settle().await;
    assert!(
        !w.kernel.routes().contains(&stray),
        "stray duplicate removed"
    );
    // A DHCP renewal re-adds its own route: replaced again.
    let dhcp = KernelRoute {
        protocol: DHCP,
        metric: 300,
        ..eth0.clone()
    };
    w.kernel.add_route_by_hand(dhcp.clone());
    settle().await;
    assert!(!w.kernel.routes().contains(&dhcp));
    assert_eq!(owned_metrics(&w)[0], ("eth0".into(), 100));
    // Periodic reconcile repairs drift nobody announced.
    pass(Duration::from_secs(11)).await;
    assert_eq!(h.status().interfaces[0].effective_metric, Some(100));
}

#[actix::test]
async fn merged_flap_and_overrun_produce_down_and_up() {
    let w = world();
    let h = started(&w, config()).await;
    let n = h.history().len();
    w.kernel.merged_flap("wlan0");
    settle().await;
    let ev: Vec<_> = events(&h)[n..].iter().map(|e| (e.0, e.1.clone())).collect();
    assert_eq!(
        ev[..3],
        [
            (EventKind::Down, "wlan0".into()),
            (EventKind::DeviceConnectivityChange, "wlan0".into()),
            (EventKind::Up, "wlan0".into())
        ],
        "{ev:?}"
    );
    pass(Duration::from_millis(100)).await;
    assert_eq!(state_of(&h, "wlan0"), Connectivity::Full, "re-checked");
    // Overrun: the kernel changed without telling; the resync finds it.
    w.kernel.set_carrier_unannounced("eth0", false);
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("eth0"),
        "not noticed yet"
    );
    w.kernel.overrun();
    settle().await;
    assert_eq!(
        w.kernel.best_iface().as_deref(),
        Some("wlan0"),
        "noticed by the resync"
    );
}

#[actix::test]
async fn equal_metrics_are_made_unique_and_device_events_all() {
    let w = world();
    let mut cfg = config();
    cfg.profiles[1].ipv4.metric = Metric::new(100).unwrap();
    cfg.dispatcher.device_events = DeviceEvents::All;
    let h = started(&w, cfg).await;
    assert_eq!(
        owned_metrics(&w)[..2],
        [("eth0".into(), 100), ("wlan0".into(), 101)]
    );
    let wlan = h
        .status()
        .interfaces
        .into_iter()
        .find(|i| i.name.as_str() == "wlan0")
        .unwrap();
    assert_eq!((wlan.metric, wlan.effective_metric), (100, Some(101)));
    let dcc = events(&h)
        .into_iter()
        .filter(|e| e.0 == EventKind::DeviceConnectivityChange)
        .count();
    assert!(
        dcc >= 6,
        "all mode reports NONE->UNKNOWN->FULL for each of 3 interfaces: {dcc}"
    );
}

#[actix::test]
async fn manual_profiles_get_addresses_and_gateways_again_after_admin_down() {
    use netfailover_actors::model::IfaceAddr;
    let w = FakeWorld::new();
    let eth0 = w.kernel.add_link("eth0", LinkKind::Other);
    let mut p = profile("eth0", UplinkType::Ethernet, 100);
    let v4 = IfaceAddr {
        addr: "192.0.2.10".parse().unwrap(),
        prefix_len: 24,
    };
    let v6 = IfaceAddr {
        addr: "2001:db8::10".parse().unwrap(),
        prefix_len: 64,
    };
    p.ipv4 = FamilyConfig {
        method: Method::Manual,
        addresses: vec![v4],
        gateway: Some(gw(1)),
        ..family(100)
    };
    p.ipv6 = FamilyConfig {
        method: Method::Manual,
        addresses: vec![v6],
        gateway: Some("2001:db8::1".parse().unwrap()),
        ..family(100)
    };
    let mut cfg = config();
    cfg.profiles = vec![p];
    cfg.check.interval = Duration::ZERO;
    let _h = started(&w, cfg).await;
    let want: Vec<(Family, u32)> = vec![(Family::V4, 100), (Family::V6, 100)];
    let owned = |w: &FakeWorld| -> Vec<(Family, u32)> {
        w.kernel
            .routes()
            .iter()
            .filter(|r| r.protocol == OURS)
            .map(|r| (r.family, r.metric))
            .collect()
    };
    assert_eq!(owned(&w), want);
    assert!(
        w.kernel.addresses().contains(&(eth0, v4)) && w.kernel.addresses().contains(&(eth0, v6))
    );
    w.kernel.set_admin("eth0", false);
    settle().await;
    assert!(owned(&w).is_empty(), "{:?}", w.kernel.routes());
    w.kernel.set_admin("eth0", true);
    settle().await;
    assert!(
        w.kernel.addresses().contains(&(eth0, v6)),
        "IPv6 address re-applied"
    );
    assert_eq!(owned(&w), want);
}

#[actix::test]
async fn every_managed_interface_that_vanishes_gets_down() {
    // eth0 by name, wlan0 matched by type, wwan0 by MAC, and an adopted usb0 (no profile).
    let w = world();
    let usb0 = w.kernel.add_link("usb0", LinkKind::Other);
    w.kernel.add_route_by_hand(KernelRoute {
        family: Family::V4,
        ifindex: usb0,
        gateway: Some(gw(9)),
        metric: 900,
        protocol: DHCP,
    });
    let mut cfg = config();
    cfg.adopt = true;
    cfg.profiles[1].matches = IfaceMatch::ByType;
    cfg.profiles[2].matches =
        IfaceMatch::Mac(w.kernel.link("wwan0").mac.expect("fake links have a MAC"));
    let h = started(&w, cfg).await;
    pass(Duration::from_secs(1)).await;
    assert_eq!(
        h.status().interfaces.len(),
        4,
        "{:?}",
        h.status().interfaces
    );
    for (i, iface) in ["usb0", "wlan0", "wwan0", "eth0"].into_iter().enumerate() {
        assert_eq!(state_of(&h, iface), Connectivity::Full, "{iface}");
        let n = h.history().len();
        w.kernel.remove_link(iface);
        settle().await;
        let ev: Vec<_> = transitions(&h)[n..]
            .iter()
            .map(|e| (e.0, e.1.clone(), e.3))
            .collect();
        let mut want = vec![
            (EventKind::Down, iface.to_string(), Connectivity::None),
            (
                EventKind::DeviceConnectivityChange,
                iface.to_string(),
                Connectivity::None,
            ),
        ];
        if i == 3 {
            // The last one: the device has no connectivity any more.
            want.push((
                EventKind::ConnectivityChange,
                String::new(),
                Connectivity::None,
            ));
        }
        assert_eq!(ev, want, "{iface} removed");
    }
}
