//! Failover on link loss, and a penalty that changes the metric without a moment without a
//! default route.

use super::*;

#[derive(Clone, Copy, Debug)]
enum Loss {
    /// The ISP end goes down: carrier loss on the device side.
    PeerCarrier,
    /// `ip link set dev u<i> down` on the device.
    DeviceAdmin,
}

async fn lose(w: &UplinkWorld, i: usize, loss: Loss, down: bool) {
    let state = if down { "down" } else { "up" };
    let up = &w.uplinks[i];
    match loss {
        Loss::PeerCarrier => ip(&up.isp, &["link", "set", &up.isp_iface, state]).await,
        Loss::DeviceAdmin => ip(&w.dev, &["link", "set", &up.dev_iface, state]).await,
    };
}

/// Loses the uplinks one after the other down to the last (each time the next one must be
/// first), then brings them back in reverse order (each time the returning one is first again,
/// at its configured metric), in both families.
fn failover_round_trip(tag: &str, count: usize, loss: Loss) {
    let w = world(tag, count);
    let managed = ifindexes(&w);
    let metric_of = |i: usize| (&w.uplinks[i], METRICS[i]);
    let alive =
        |from: usize| -> BTreeSet<Key> { both(&(from..count).map(metric_of).collect::<Vec<_>>()) };
    Rig::new().run(&w.dev, config(&w, false), async |kernel, engine| {
        let table = kernel.converge("start", &managed, &alive(0)).await;
        assert_first(&table, &w.uplinks[0]);

        for i in 0..count - 1 {
            lose(&w, i, loss, true).await;
            let table = kernel
                .converge(&format!("{loss:?} on u{i}"), &managed, &alive(i + 1))
                .await;
            assert_first(&table, &w.uplinks[i + 1]);
            let chosen = ipv6_route_get(&w.dev).await;
            assert!(chosen.contains(&format!("dev u{} ", i + 1)), "{chosen}");
        }
        for i in (0..count - 1).rev() {
            lose(&w, i, loss, false).await;
            let table = kernel
                .converge(&format!("u{i} back"), &managed, &alive(i))
                .await;
            assert_first(&table, &w.uplinks[i]);
        }
        let status = engine.status();
        let u0 = status
            .interfaces
            .iter()
            .find(|s| s.name.as_str() == "u0")
            .expect("u0 in status");
        assert_eq!(
            (u0.link.as_str(), u0.effective_metric),
            ("up", Some(METRICS[0]))
        );
        engine.shutdown().await.expect("clean shutdown");
    });
}

#[test]
fn engine_two_uplinks_fail_over_on_peer_carrier_loss_and_back() {
    test_setup!();
    failover_round_trip("nlec2", 2, Loss::PeerCarrier);
}

#[test]
fn engine_three_uplinks_fail_over_on_peer_carrier_loss_and_back() {
    test_setup!();
    failover_round_trip("nlec3", 3, Loss::PeerCarrier);
}

#[test]
fn engine_two_uplinks_fail_over_on_admin_down_and_back() {
    test_setup!();
    failover_round_trip("nlea2", 2, Loss::DeviceAdmin);
}

#[test]
fn engine_three_uplinks_fail_over_on_admin_down_and_back() {
    test_setup!();
    failover_round_trip("nlea3", 3, Loss::DeviceAdmin);
}

/// Sets the flag when dropped, so the watcher stops even if the engine side panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls the table from its own thread (in the namespace) until stopped (at most a minute);
/// returns the number of samples and how many of them lacked a default route of either family.
fn watch_for_gaps(ns: &Netns, stop: &AtomicBool) -> (usize, usize) {
    netfailover_lab::uplinks::block_on_in_netns(ns, || async {
        let routes = NetlinkRoutes::new().expect("watcher route socket");
        let (mut samples, mut gaps) = (0, 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
            let table = routes.list_defaults().await.expect("watcher listing");
            samples += 1;
            if first(&table, Family::V4).is_none() || first(&table, Family::V6).is_none() {
                gaps += 1;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        (samples, gaps)
    })
    .expect("watcher thread")
}

#[test]
fn engine_penalty_changes_the_metric_without_a_moment_without_default_route() {
    test_setup!();
    // One uplink: any delete-before-add would leave the table without a default route.
    let w = world("nlpen", 1);
    let u0 = &w.uplinks[0];
    let managed = ifindexes(&w);
    let rig = Rig::new();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let engine_side = scope.spawn(|| {
            rig.run(&w.dev, config(&w, true), async |kernel, engine| {
                // UNKNOWN is penalised until the first check; the fake answers FULL.
                let _stop_watcher = StopOnDrop(&stop);
                kernel.converge("FULL", &managed, &both(&[(u0, 100)])).await;
                for round in 0..2 {
                    rig.probe.set("u0", Verdict::Limited);
                    kernel
                        .converge(
                            &format!("LIMITED #{round}"),
                            &managed,
                            &both(&[(u0, 100 + PENALTY)]),
                        )
                        .await;
                    rig.probe.set("u0", Verdict::Full);
                    kernel
                        .converge(&format!("FULL #{round}"), &managed, &both(&[(u0, 100)]))
                        .await;
                }
                rig.probe.set("u0", Verdict::Limited);
                kernel
                    .converge(
                        "LIMITED before shutdown",
                        &managed,
                        &both(&[(u0, 100 + PENALTY)]),
                    )
                    .await;
                engine.shutdown().await.expect("clean shutdown");
                // Penalties removed, owned routes left at their configured metric.
                let table = kernel.defaults().await;
                let keys: BTreeSet<Key> = table.iter().map(key).collect();
                (keys, table)
            })
        });
        let watcher = scope.spawn(|| {
            // Wait for the first default route, then sample until told to stop.
            netfailover_lab::netns::wait_for(CONVERGE_TIMEOUT, || {
                let routes = run(&["ip", "-n", w.dev.name(), "route", "show", "default"]).ok()?;
                routes.contains("proto 78").then_some(())
            });
            watch_for_gaps(&w.dev, &stop)
        });
        let (keys, table) = engine_side
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let (samples, gaps) = watcher
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        assert_eq!(keys, both(&[(u0, 100)]), "after shutdown: {table:#?}");
        assert!(samples > 50, "the watcher sampled only {samples} times");
        assert_eq!(gaps, 0, "{gaps} of {samples} samples saw no default route");
    });
}
