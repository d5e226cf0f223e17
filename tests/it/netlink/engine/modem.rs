//! Modems named by their control device.

use super::*;

/// A gsm profile naming a control device that has no network interface here: a USB gadget
/// `usb0` present at the start is never taken as the modem, and the modem's `wwan0` appearing
/// after the start is (the control-device fallback is `wwan*` only).
#[test]
fn engine_takes_a_late_modem_and_never_a_usb_gadget_for_a_control_device() {
    test_setup!();
    use netfailover::engine::model::{FamilyConfig, IfaceAddr, IfaceMatch, UplinkType};
    let dev = Netns::new("nlmdm").expect("namespace");
    let link = |name: &str| {
        // A veth pair inside the namespace (carrier on once both ends are up).
        let peer = format!("p{name}");
        dev.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])
            .expect("veth");
        dev.ip(&["link", "set", &peer, "up"]).expect("peer up");
        dev.ip(&["addr", "add", "192.0.2.2/24", "dev", name])
            .expect("address");
        dev.ip(&["link", "set", name, "up"]).expect("up");
    };
    link("usb0");
    let v4 = FamilyConfig {
        manage_default: true,
        method: Method::Manual,
        metric: Metric::new(700).expect("metric"),
        addresses: vec![IfaceAddr {
            addr: "192.0.2.2".parse().expect("address"),
            prefix_len: 24,
        }],
        gateway: Some("192.0.2.1".parse().expect("gateway")),
    };
    let modem = Profile {
        id: "modem".into(),
        uuid: None,
        file: "modem.nmconnection".into(),
        uplink_type: UplinkType::Gsm,
        // A control device this machine's sysfs does not have (no real modem in a test).
        matches: IfaceMatch::ControlDevice("cdc-wdm97".into()),
        managed: true,
        ipv4: v4.clone(),
        ipv6: FamilyConfig {
            manage_default: false,
            addresses: vec![],
            gateway: None,
            ..v4
        },
        dns: vec![],
        metered: netfailover_actors::model::Metered::guess(UplinkType::Gsm),
    };
    Rig::new().run(
        &dev,
        config_with(vec![modem], false),
        async |_kernel, engine| {
            // usb0 is never the modem: watched at every moment for a second (no event ends a
            // "never"), instead of one look after a pause.
            let end = tokio::time::Instant::now() + Duration::from_secs(1);
            while tokio::time::Instant::now() < end {
                let routes = ip(&dev, &["route", "show", "default", "proto", "78"]).await;
                assert_eq!(routes, "", "usb0 is not the modem");
                assert!(
                    engine.status().interfaces.is_empty(),
                    "{:?}",
                    engine.status()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::task::spawn_blocking({
                let name = dev.name().to_string();
                move || {
                    for args in [
                        vec![
                            "link", "add", "wwan0", "type", "veth", "peer", "name", "pwwan0",
                        ],
                        vec!["link", "set", "pwwan0", "up"],
                        vec!["addr", "add", "192.0.2.2/24", "dev", "wwan0"],
                        vec!["link", "set", "wwan0", "up"],
                    ] {
                        let mut argv = vec!["ip", "-n", name.as_str()];
                        argv.extend(args);
                        run(&argv).expect("wwan0");
                    }
                }
            })
            .await
            .expect("ip task");
            // Poll without blocking the engine's thread.
            let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
            let mut routes = String::new();
            while tokio::time::Instant::now() < deadline {
                routes = ip(&dev, &["route", "show", "default", "proto", "78"]).await;
                if routes.contains("dev wwan0") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                routes.contains("dev wwan0"),
                "no route on the late modem: {routes:?}"
            );
            assert!(!routes.contains("usb0"), "{routes}");
            engine.shutdown().await.expect("clean shutdown");
        },
    );
}
