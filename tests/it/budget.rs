//! The monthly budget of a metered uplink on the real kernel (docs/semantics.md §10): the lab's
//! `wwan0` (a `gsm` profile: metered, guessed) as a standby with a budget of a few checks; the
//! `budget` events reach a dispatcher script in order with their numbers, the standby's
//! periodic checks stop (counted at the check server, which sees the uplink a request came
//! through), the unmetered uplinks go on being checked, and the month's counters survive a
//! daemon restart (status before and after; `persist_dir/accounting.json`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use netfailover::engine::status::IfaceAccounting;
use netfailover_lab::netns::wait_for;
use netfailover_lab::test_setup;
use netfailover_lab::world::FAST_SETTINGS;

use crate::daemon::E2e;

/// A little more than six plain HTTP checks (608 B each, docs/benchmarks.md): 75 % after the
/// fifth, 95 % and 100 % after the sixth (a seventh would not fit).
const BUDGET: u64 = 4_000;

/// wwan0's address: the check server sees it as the client (no NAT in the lab).
const WWAN0: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const ETH0: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

/// `netfailover.toml` (the lab's fast checks, `persist_dir` beside the boot directory, the
/// budget, the metered standby checked at `interval` like the others: `standby_interval` 1 s
/// is raised to `interval`) and a dispatcher script logging each `budget` event's environment.
fn prepare(boot: &Path) {
    let dir = boot.parent().expect("the boot directory has a parent");
    let text = format!(
        "state_dir = \"{}\"\npersist_dir = \"{}\"\n{FAST_SETTINGS}\n[metered]\nbudget_month = {BUDGET}\n# The standby at the lab's own interval, so its budget is spent within the test.\nstandby_interval = 1\n",
        dir.join("state").display(),
        dir.join("persist").display()
    );
    std::fs::write(boot.join("netfailover.toml"), text).expect("writing netfailover.toml");
    let events = boot.join("dispatcher.d").join("budget.d");
    std::fs::create_dir_all(&events).expect("dispatcher.d/budget.d");
    let script = events.join("10-record");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1 $NETFAILOVER_BUDGET_PERCENT $NETFAILOVER_BUDGET_BYTES \
             $NETFAILOVER_PROBE_BYTES\" >> '{}'\n",
            dir.join("budget.log").display()
        ),
    )
    .expect("writing the budget script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("chmod the budget script");
}

/// (iface, percent, budget, probe bytes) of every `budget` event the script saw.
fn logged(e2e: &E2e) -> Vec<(String, u8, u64, u64)> {
    std::fs::read_to_string(e2e.dir.path().join("budget.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

fn account(e2e: &E2e, iface: &str) -> Option<IfaceAccounting> {
    let name = netfailover::engine::model::IfaceName::new(iface).ok()?;
    e2e.status()?.accounting.interfaces.get(&name).cloned()
}

/// Requests the check server got through `from`.
fn served(e2e: &E2e, from: IpAddr) -> usize {
    let servers = e2e.world.servers.as_ref().expect("the lab servers run");
    servers.check.peers().iter().filter(|p| **p == from).count()
}

#[test]
fn a_metered_standby_stops_at_its_budget_and_the_counters_survive_a_restart() {
    test_setup!();
    let _heavy = crate::heavy_test_lock();
    let mut e2e = E2e::start_prepared(2, Vec::new(), |world, boot| {
        world.start_servers().expect("starting the lab servers");
        prepare(boot);
    });
    let three = wait_for(Duration::from_secs(60), || {
        (logged(&e2e).len() >= 3).then_some(())
    });
    assert!(
        three.is_some(),
        "no three budget events; script log: {:?}; log:\n{}",
        logged(&e2e),
        e2e.log()
    );
    let events = logged(&e2e);
    let percents: Vec<(String, u8, u64)> = events
        .iter()
        .map(|(i, p, b, _)| (i.clone(), *p, *b))
        .collect();
    assert_eq!(
        percents,
        vec![
            ("wwan0".into(), 75, BUDGET),
            ("wwan0".into(), 95, BUDGET),
            ("wwan0".into(), 100, BUDGET),
        ],
        "in order, once, only the metered uplink"
    );
    let at_100 = events[2].3;
    assert!(
        at_100 <= BUDGET && at_100 * 100 >= BUDGET * 75,
        "{events:?}"
    );

    // Periodic checks of wwan0 stop (interval 2 s); eth0 and wlan0 go on.
    std::thread::sleep(Duration::from_secs(1));
    let (wwan0, eth0) = (served(&e2e, WWAN0), served(&e2e, ETH0));
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        served(&e2e, WWAN0),
        wwan0,
        "no check of wwan0 reached the server in 10 s; log:\n{}",
        e2e.log()
    );
    assert!(served(&e2e, ETH0) >= eth0 + 3, "eth0 is still checked");
    let before = account(&e2e, "wwan0").expect("wwan0's account");
    assert!(before.budget_exhausted && before.metered, "{before:?}");
    assert!(before.probe_bytes <= BUDGET, "{before:?}");
    assert_eq!(before.probe_bytes, at_100, "what the script was told");
    assert!(!account(&e2e, "eth0").expect("eth0").metered);

    // A daemon restart: the month's counters come back from persist_dir, nothing is announced
    // again, and after the one check every start makes, wwan0 stays unchecked.
    e2e.signal(nix::sys::signal::Signal::SIGTERM);
    e2e.wait_exit();
    let saved = std::fs::read_to_string(e2e.dir.path().join("persist/accounting.json"))
        .expect("the accounts in persist_dir");
    assert!(saved.contains("wwan0"), "{saved}");
    e2e.spawn();
    let back = wait_for(Duration::from_secs(20), || {
        let a = account(&e2e, "wwan0")?;
        (a.checks > before.checks).then_some(a)
    })
    .unwrap_or_else(|| panic!("wwan0's account not restored; log:\n{}", e2e.log()));
    assert_eq!(back.month, before.month);
    assert_eq!(
        back.checks,
        before.checks + 1,
        "the start's check, counted on top"
    );
    assert!(back.probe_bytes > before.probe_bytes);
    assert!(back.budget_exhausted);
    // The stop read the link counters once more and saved them: eth0's month has bytes (the
    // first reading at the start was only the baseline; the next regular one is 5 min away).
    let eth0 = account(&e2e, "eth0").expect("eth0's account");
    assert!(eth0.rx_bytes > 0 && eth0.tx_bytes > 0, "{eth0:?}");
    let served_after_start = served(&e2e, WWAN0);
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(served(&e2e, WWAN0), served_after_start, "stopped again");
    assert_eq!(logged(&e2e).len(), 3, "no threshold announced twice");
    let text = String::from_utf8_lossy(&e2e.cli(&["status"]).stdout).into_owned();
    assert!(
        text.contains("periodic checks stopped"),
        "status shows it:\n{text}"
    );
}
