//! Router-advertised IPv6 default routes: demoted on a penalty, removed with the link, and a
//! kernel without `ra_defrtr_metric`.

use super::*;

/// A router-advertised IPv6 default route (`proto ra`) on eth0: demoted through
/// `ra_defrtr_metric` plus one Router Solicitation on a penalty, deleted on link loss and
/// solicited back (with a bounded back-off) when the link returns.
#[actix::test]
async fn router_advertised_routes_are_demoted_and_removed_with_the_link() {
    const RA: u8 = 9;
    let w = world();
    let eth0 = w.kernel.link("eth0").ifindex;
    let ra = KernelRoute {
        family: Family::V6,
        ifindex: eth0,
        gateway: Some("fe80::1".parse().unwrap()),
        metric: 1024,
        protocol: RA,
    };
    w.kernel.add_route_by_hand(ra.clone());
    let mut cfg = config();
    cfg.profiles[0].ipv6.manage_default = true; // method auto: the IPv6 route comes from RAs
    let h = started(&w, cfg).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Full);
    assert!(h
        .status()
        .interfaces
        .iter()
        .all(|i| i.ipv6_penalty_unavailable.is_none()));
    let key = "net.ipv6.conf.eth0.ra_defrtr_metric";
    assert_eq!(w.kernel.sysctl_get(key).as_deref(), Some("100"));
    // The RA route was at another metric: solicitations so the router's answer moves it (one
    // per metric change: penalised while UNKNOWN, then FULL).
    let at_start = w.kernel.solicitations();
    assert!(
        !at_start.is_empty() && at_start.iter().all(|i| *i == eth0),
        "{at_start:?}"
    );
    // The router answers: the kernel re-installs its route at the new metric.
    w.kernel.delete_route_by_hand(&ra);
    let ra = KernelRoute { metric: 100, ..ra };
    w.kernel.add_route_by_hand(ra.clone());
    settle().await;
    assert_eq!(
        w.kernel.solicitations(),
        at_start,
        "no repeat once it moved"
    );

    // A penalty: the RA metric follows, with a solicitation; the route is never re-added by us.
    w.probe.set("eth0", Verdict::Limited);
    pass(Duration::from_secs(40)).await;
    assert_eq!(state_of(&h, "eth0"), Connectivity::Limited);
    assert_eq!(
        w.kernel.sysctl_get(key).as_deref(),
        Some(&*(100 + PENALTY).to_string())
    );
    // This router does not answer: asked again after 1, 2 and 4 s, then left to its own
    // periodic advertisements.
    assert_eq!(w.kernel.solicitations().len(), at_start.len() + 4);
    let ours_v6 = w
        .kernel
        .routes()
        .into_iter()
        .filter(|r| r.family == Family::V6 && r.protocol != RA)
        .count();
    assert_eq!(ours_v6, 0, "never added by us");

    // Link loss: the RA route goes at once (the kernel would keep it, linkdown).
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert!(
        !w.kernel.routes().contains(&ra),
        "RA route deleted on carrier loss: {:?}",
        w.kernel.routes()
    );
    // Link back: solicited at once (the kernel does not solicit on carrier return), and again
    // after 1, 2 and 4 s while no advertisement comes (the first may be lost while the router's
    // side comes up); then left to the router's periodic advertisements.
    let before = w.kernel.solicitations().len();
    w.kernel.set_carrier("eth0", true);
    settle().await;
    assert_eq!(w.kernel.solicitations().len(), before + 1);
    let mut counts = Vec::new();
    for _ in 0..12 {
        pass(Duration::from_secs(1)).await;
        counts.push(w.kernel.solicitations().len() - before);
    }
    assert_eq!(
        counts,
        [2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4],
        "at 0, 1, 3, 7 s"
    );
    assert_eq!(
        w.kernel.sysctl_get(key).as_deref(),
        Some(&*(100 + PENALTY).to_string()),
        "still penalised"
    );

    // The router's periodic advertisement brings the route; another flap, and this time the
    // router answers the first solicitation: no more are sent.
    let ra = KernelRoute {
        metric: 100 + PENALTY,
        ..ra
    };
    w.kernel.add_route_by_hand(ra.clone());
    settle().await;
    w.kernel.set_carrier("eth0", false);
    settle().await;
    assert!(!w.kernel.routes().contains(&ra), "deleted with the link");
    let before = w.kernel.solicitations().len();
    w.kernel.set_carrier("eth0", true);
    settle().await;
    assert_eq!(w.kernel.solicitations().len(), before + 1);
    w.kernel.add_route_by_hand(ra.clone());
    pass(Duration::from_secs(10)).await;
    assert_eq!(
        w.kernel.solicitations().len(),
        before + 1,
        "answered: no repeat"
    );
    assert!(w.kernel.routes().contains(&ra), "and the route stays");
}

/// A kernel without `ra_defrtr_metric` (before 5.12): the IPv6 penalty cannot work, which is
/// said in `status` (per interface) instead of being silently recorded as done (a kernel with
/// it says nothing: `router_advertised_routes_are_demoted_and_removed_with_the_link`).
#[actix::test]
async fn a_kernel_without_ra_defrtr_metric_shows_the_ipv6_penalty_unavailable() {
    const RA: u8 = 9;
    {
        let w = world();
        w.kernel.sysctl_missing("ra_defrtr_metric");
        let eth0 = w.kernel.link("eth0").ifindex;
        w.kernel.add_route_by_hand(KernelRoute {
            family: Family::V6,
            ifindex: eth0,
            gateway: Some("fe80::1".parse().unwrap()),
            metric: 1024,
            protocol: RA,
        });
        let mut cfg = config();
        cfg.profiles[0].ipv6.manage_default = true;
        let h = started(&w, cfg).await;
        let st = h.status();
        let why = |n: &str| {
            st.interfaces
                .iter()
                .find(|i| i.name.as_str() == n)
                .and_then(|i| i.ipv6_penalty_unavailable.clone())
        };
        assert!(why("eth0").is_some_and(|w| w.contains("5.12")), "{st:?}");
        assert!(why("wlan0").is_none(), "no IPv6 managed there");
        assert!(
            w.kernel.solicitations().is_empty(),
            "nothing to solicit for"
        );
    }
}
