//! Router-advertised IPv6 default routes.

use super::*;

/// Polls `ip -6 route get` (the kernel's own choice) and the RA route on the primary until both
/// match; panics with the last answers after [`CONVERGE_TIMEOUT`].
async fn wait_ipv6(dev: &Netns, what: &str, chosen_dev: &str, ra_metric: Option<u32>) {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let chosen = ipv6_route_get(dev).await;
        let ra = ip(
            dev,
            &["-6", "route", "show", "default", "dev", "u0", "proto", "ra"],
        )
        .await;
        let ra_ok = match ra_metric {
            Some(m) => ra.contains(&format!("metric {m} ")),
            None => ra.trim().is_empty(),
        };
        if chosen.contains(&format!("dev {chosen_dev} ")) && ra_ok {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: route get says {chosen:?}; RA routes on u0: {ra:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// u0's IPv6 default route comes from router advertisements (`proto ra`), u1's is ours. The
/// RA route carries IPv6 traffic while u0 is FULL, is demoted on a penalty (ra_defrtr_metric and
/// one Router Solicitation: the router's answer re-installs it at the new metric) and is gone
/// on carrier loss; the engine's solicitations when the carrier is back bring it back (the
/// kernel does not solicit on carrier return, and this router, unlike real ones, sends no
/// periodic advertisements, so nothing else could).
#[test]
fn engine_moves_router_advertised_routes_with_penalties_and_link_loss() {
    let w = test_setup!(world("nlra", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    // A router: forwarding, so it joins all-routers (ff02::2) and hears solicitations.
    u0.isp
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding");
    // Its link-local address (the advertisements' source) survives the link bounce below.
    u0.isp
        .sysctl(
            &format!("net.ipv6.conf.{}.keep_addr_on_down", u0.isp_iface),
            "1",
        )
        .expect("keep_addr_on_down");
    let router =
        netfailover_lab::router::Advertiser::start(&u0.isp, &u0.isp_iface).expect("test router");
    let mut primary = profile(u0, Method::Manual, 100);
    primary.ipv6.method = Method::Auto;
    primary.ipv6.addresses.clear();
    primary.ipv6.gateway = None;
    let config = config_with(vec![primary, profile(u1, Method::Manual, 200)], true);
    let rig = Rig::new();
    rig.run(&w.dev, config, async |_kernel, engine| {
        wait_ipv6(&w.dev, "FULL", "u0", Some(100)).await;
        let asked = router.solicitations();

        rig.probe.set("u0", Verdict::Limited);
        wait_ipv6(&w.dev, "penalty", "u1", Some(100 + PENALTY)).await;
        assert!(router.solicitations() > asked, "the penalty solicited");

        rig.probe.set("u0", Verdict::Full);
        wait_ipv6(&w.dev, "FULL again", "u0", Some(100)).await;

        ip(&u0.isp, &["link", "set", &u0.isp_iface, "down"]).await;
        wait_ipv6(&w.dev, "carrier lost", "u1", None).await;

        let asked = router.solicitations();
        ip(&u0.isp, &["link", "set", &u0.isp_iface, "up"]).await;
        wait_ipv6(&w.dev, "carrier back", "u0", Some(100)).await;
        assert!(
            router.solicitations() > asked,
            "the carrier's return solicited"
        );
        engine.shutdown().await.expect("clean shutdown");
    });
}
