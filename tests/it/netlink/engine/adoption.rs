//! Metrics and adoption: same-metric uplinks, foreign default routes.

use super::*;

#[test]
fn engine_same_metric_uplinks_both_get_a_route_the_later_at_plus_one() {
    let w = test_setup!(world("nlsame", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    assert!(u1.ifindex > u0.ifindex);
    let managed = ifindexes(&w);
    // Strict reverse-path filtering on u1: the engine relaxes it to loose.
    w.dev.sysctl("net.ipv4.conf.u1.rp_filter", "1").unwrap();
    let profiles = vec![
        profile(u0, Method::Manual, 100),
        profile(u1, Method::Manual, 100),
    ];
    Rig::new().run(
        &w.dev,
        config_with(profiles, false),
        async |kernel, engine| {
            let table = kernel
                .converge("same metric", &managed, &both(&[(u0, 100), (u1, 101)]))
                .await;
            assert_first(&table, u0);
            let status = engine.status();
            let u1s = status
                .interfaces
                .iter()
                .find(|s| s.name.as_str() == "u1")
                .expect("u1");
            assert_eq!(
                (u1s.effective_metric, u1s.effective_metric6),
                (Some(101), Some(101))
            );
            engine.shutdown().await.expect("clean shutdown");
        },
    );
    let rp = w
        .dev
        .exec(&["sysctl", "-n", "net.ipv4.conf.u1.rp_filter"])
        .unwrap();
    assert_eq!(
        rp.trim(),
        "2",
        "strict rp_filter relaxed to loose in the namespace"
    );
}

#[test]
fn engine_adopts_foreign_default_routes_keeping_their_gateways() {
    let w = test_setup!(world("nladopt", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    // A DHCP client's routes: u0 at a different metric (add ours, delete theirs), u1 at the
    // metric we want (replace in place).
    add_dhcp_default(&w.dev, "192.0.2.1", "u0", 1024);
    add_dhcp_default(&w.dev, "2001:db8::1", "u0", 1024);
    add_dhcp_default(&w.dev, "198.51.100.1", "u1", 200);
    add_dhcp_default(&w.dev, "2001:db8:1::1", "u1", 200);
    let profiles = vec![
        profile(u0, Method::Auto, 100),
        profile(u1, Method::Auto, 200),
    ];
    Rig::new().run(
        &w.dev,
        config_with(profiles, false),
        async |kernel, engine| {
            let table = kernel
                .converge("adopted", &managed, &both(&[(u0, 100), (u1, 200)]))
                .await;
            for up in [u0, u1] {
                for (family, gateway) in [
                    (Family::V4, IpAddr::from(up.gateway_v4)),
                    (Family::V6, up.gateway_v6.into()),
                ] {
                    let route = table
                        .iter()
                        .find(|r| r.ifindex == up.ifindex && r.family == family)
                        .expect("adopted route");
                    assert_eq!(route.gateway, Some(gateway), "gateway kept: {route:?}");
                }
            }
            assert!(table.iter().all(|r| r.protocol != DHCP), "{table:#?}");
            engine.shutdown().await.expect("clean shutdown");
        },
    );
    // Router advertisements would install u0's IPv6 default route at its effective metric.
    let ra = w
        .dev
        .exec(&["sysctl", "-n", "net.ipv6.conf.u0.ra_defrtr_metric"])
        .unwrap();
    assert_eq!(ra.trim(), "100");
}
