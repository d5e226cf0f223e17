//! Drift repair, restart after a crash (and after a SIGKILL), overrun.

use super::*;

#[test]
fn engine_repairs_a_hand_deleted_route_and_removes_a_stray_duplicate() {
    let w = test_setup!(world("nldrift", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    let want = both(&[(u0, 100), (u1, 200)]);
    Rig::new().run(&w.dev, config(&w, false), async |kernel, engine| {
        kernel.converge("start", &managed, &want).await;

        ip(
            &w.dev,
            &[
                "route",
                "del",
                "default",
                "via",
                "192.0.2.1",
                "dev",
                "u0",
                "metric",
                "100",
                "proto",
                "78",
            ],
        )
        .await;
        ip(
            &w.dev,
            &[
                "-6",
                "route",
                "del",
                "default",
                "via",
                "2001:db8:1::1",
                "dev",
                "u1",
                "metric",
                "200",
                "proto",
                "78",
            ],
        )
        .await;
        kernel
            .converge("hand-deleted routes restored", &managed, &want)
            .await;

        ip(
            &w.dev,
            &[
                "route",
                "add",
                "default",
                "via",
                "192.0.2.1",
                "dev",
                "u0",
                "metric",
                "5000",
                "proto",
                "78",
            ],
        )
        .await;
        ip(
            &w.dev,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                "2001:db8::1",
                "dev",
                "u0",
                "metric",
                "5000",
                "proto",
                "78",
            ],
        )
        .await;
        kernel
            .converge("stray duplicates removed", &managed, &want)
            .await;

        // A competing foreign default route on a managed interface is taken over.
        ip(
            &w.dev,
            &[
                "route",
                "add",
                "default",
                "via",
                "198.51.100.1",
                "dev",
                "u1",
                "metric",
                "50",
                "proto",
                "dhcp",
            ],
        )
        .await;
        kernel
            .converge("competing route replaced", &managed, &want)
            .await;
        engine.shutdown().await.expect("clean shutdown");
    });
}

#[test]
fn engine_restart_without_shutdown_adopts_its_leftover_routes() {
    let w = test_setup!(world("nlcrash", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    let rig = Rig::new();
    // First run: u0 is LIMITED (penalised), then the process "dies" (no shutdown).
    rig.probe.set("u0", Verdict::Limited);
    let penalised = both(&[(u0, 100 + PENALTY), (u1, 200)]);
    rig.run(&w.dev, config(&w, true), async |kernel, _engine| {
        kernel.converge("first run", &managed, &penalised).await;
    });
    let shown = w.dev.ip(&["route", "show", "default"]).unwrap();
    assert!(
        shown.contains("metric 20100"),
        "the crash left the routes: {shown}"
    );

    // Second run on the same state_dir: one owned route each, u0 still penalised.
    rig.run(&w.dev, config(&w, true), async |kernel, engine| {
        kernel.converge("second run", &managed, &penalised).await;
        still_one_route_each(kernel, &rig, &managed, &penalised).await;
        rig.probe.set("u0", Verdict::Full);
        kernel
            .converge("u0 FULL", &managed, &both(&[(u0, 100), (u1, 200)]))
            .await;
        engine.shutdown().await.expect("clean shutdown");
    });
    let v4 = w
        .dev
        .ip(&["route", "show", "default", "proto", "78"])
        .unwrap();
    let v6 = w
        .dev
        .ip(&["-6", "route", "show", "default", "proto", "78"])
        .unwrap();
    for (family, shown) in [("v4", &v4), ("v6", &v6)] {
        assert_eq!(
            shown.lines().count(),
            2,
            "{family}: one owned route per interface:\n{shown}"
        );
    }
}

#[test]
fn engine_overrun_ends_with_a_resync_and_the_desired_table() {
    let w = test_setup!(world("nlovr", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    // First 100 MTU changes of u0 (each says: u0 up, with carrier), then 1001 carrier toggles
    // of u0 (the ISP end), ending down. The few messages a 4 KiB buffer keeps are the first
    // MTU ones: stale "u0 up" news that must not outlive the resync.
    let mtu: String = (0..100)
        .map(|i| format!("link set dev u0 mtu {}\n", 1400 + (i % 2) * 100))
        .collect();
    let toggles: String = (0..1001)
        .map(|i| {
            format!(
                "link set dev p0 {}\n",
                if i % 2 == 0 { "down" } else { "up" }
            )
        })
        .collect();
    let mtu_batch = std::env::temp_dir().join(format!("{}-mtu.txt", w.dev.name()));
    let batch = std::env::temp_dir().join(format!("{}-storm.txt", u0.isp.name()));
    std::fs::write(&mtu_batch, mtu).unwrap();
    std::fs::write(&batch, toggles).unwrap();
    let rig = Rig::with_rcvbuf(4096);
    rig.run(&w.dev, config(&w, false), async |kernel, engine| {
        kernel
            .converge("start", &managed, &both(&[(u0, 100), (u1, 200)]))
            .await;
        let dumps_before = rig.links.dumps();
        // The storm runs while the engine's thread is blocked in the commands, so nobody
        // drains the 4 KiB socket: notifications are lost for sure, the last one (carrier
        // down) among them.
        w.dev.ip(&["-batch", mtu_batch.to_str().unwrap()]).unwrap();
        u0.isp.ip(&["-batch", batch.to_str().unwrap()]).unwrap();
        kernel
            .converge("after the storm", &managed, &both(&[(u1, 200)]))
            .await;
        // And it stays so: no stale "u0 up" brings its route back (checks are off: no event
        // ends this window, it is watched for 1.5 s).
        let table = kernel
            .stays(
                "a while after the storm",
                &managed,
                &both(&[(u1, 200)]),
                after(Duration::from_millis(1500)),
            )
            .await;
        assert_first(&table, u1);
        assert!(rig.links.overruns() >= 1, "the engine saw no overrun");
        assert!(
            rig.links.dumps() > dumps_before,
            "no resync dump after the overrun"
        );

        // Still watching: u0 back → first again.
        ip(&u0.isp, &["link", "set", "p0", "up"]).await;
        let table = kernel
            .converge("u0 back", &managed, &both(&[(u0, 100), (u1, 200)]))
            .await;
        assert_first(&table, u0);
        engine.shutdown().await.expect("clean shutdown");
    });
    let _ = std::fs::remove_file(batch);
    let _ = std::fs::remove_file(mtu_batch);
}

/// Set in the child process of the SIGKILL test: the device namespace to run the engine in.
const CRASH_CHILD_ENV: &str = "NF_NETLINK_SIGKILL_CHILD";
/// The child's engine configuration, as JSON.
const SIGKILL_CONFIG_ENV: &str = "NF_NETLINK_SIGKILL_CONFIG";
/// This test's path inside the `it` binary, to run it again as the child.
const SIGKILL_TEST: &str =
    "netlink::engine::repair::engine_second_start_after_sigkill_keeps_one_route_each";

/// Kills the child process (SIGKILL) when dropped, so it never outlives a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Still one route each after later reconciles (no duplicate appears): after two more checks of
/// each uplink.
async fn still_one_route_each(kernel: &Kernel, rig: &Rig, managed: &[u32], want: &BTreeSet<Key>) {
    wait_until(
        "two more checks",
        after_checks(&rig.probe, &["u0", "u1"], 2),
    )
    .await;
    kernel.converge("still one route each", managed, want).await;
}

/// The child's role: the engine in the named namespace, u0 LIMITED, until killed (at most a
/// minute).
fn sigkill_child(ns_name: &str) {
    let config: Config =
        serde_json::from_str(&std::env::var(SIGKILL_CONFIG_ENV).expect("child: config"))
            .expect("child: config JSON");
    let path = format!("/run/netns/{ns_name}");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let ns = std::fs::File::open(&path).expect("child: namespace file");
            nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("child: setns");
            let rig = Rig::new();
            rig.probe.set("u0", Verdict::Limited);
            rig.run_here(config, async |_kernel, _engine| {
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        });
    });
}

/// A real crash: the engine runs in a child process (this test binary, re-run as the child),
/// which is SIGKILLed once its routes are in; a second engine then starts on the leftovers.
#[test]
fn engine_second_start_after_sigkill_keeps_one_route_each() {
    if let Ok(ns_name) = std::env::var(CRASH_CHILD_ENV) {
        return sigkill_child(&ns_name);
    }
    let w = test_setup!(world("nlkill", 2));
    let (u0, u1) = (&w.uplinks[0], &w.uplinks[1]);
    let managed = ifindexes(&w);
    let penalised = both(&[(u0, 100 + PENALTY), (u1, 200)]);
    let config_json = serde_json::to_string(&config(&w, true)).expect("config to JSON");
    let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", SIGKILL_TEST, "--test-threads=1", "--nocapture"])
        .env(CRASH_CHILD_ENV, w.dev.name())
        .env(SIGKILL_CONFIG_ENV, config_json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the child engine");
    let mut child = KillOnDrop(child);
    let shows_penalised = || {
        let v4 = w
            .dev
            .ip(&["route", "show", "default", "proto", "78"])
            .ok()?;
        let v6 = w
            .dev
            .ip(&["-6", "route", "show", "default", "proto", "78"])
            .ok()?;
        let installed = [&v4, &v6]
            .iter()
            .all(|t| t.contains("dev u0 metric 20100") && t.contains("dev u1 metric 200"));
        installed.then_some(())
    };
    netfailover_lab::netns::wait_for(CONVERGE_TIMEOUT, shows_penalised)
        .expect("the child engine never installed its routes");
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaping the child");
    assert!(
        shows_penalised().is_some(),
        "SIGKILL leaves the routes in place"
    );

    let rig = Rig::new();
    rig.probe.set("u0", Verdict::Limited);
    rig.run(&w.dev, config(&w, true), async |kernel, engine| {
        kernel.converge("after SIGKILL", &managed, &penalised).await;
        still_one_route_each(kernel, &rig, &managed, &penalised).await;
        engine.shutdown().await.expect("clean shutdown");
    });
    for family in ["-4", "-6"] {
        let shown = w
            .dev
            .ip(&[family, "route", "show", "default", "proto", "78"])
            .unwrap();
        assert_eq!(
            shown.lines().count(),
            2,
            "{family}: one owned route per interface:\n{shown}"
        );
    }
}
