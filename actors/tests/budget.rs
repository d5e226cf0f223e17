//! The monthly accounts and the budget of metered uplinks in the whole engine on in-memory
//! ports, in virtual time (docs/semantics.md §10): the `budget` events at 75, 95 and 100 % in
//! order and once, periodic checks of the exhausted uplink stopping while the checks that
//! decide a failover still run (and are counted), the month rollover, the accounts restored by
//! a new engine from the store, and the link bytes from the counters.

use std::time::Duration;

use netfailover_actors::accounting::Month;
use netfailover_actors::fake::pass;
use netfailover_actors::model::{Config, Connectivity, EventKind, MeteredConfig, UplinkType};
use netfailover_actors::ports::Verdict;
use netfailover_actors::status::IfaceAccounting;
use netfailover_actors::EngineHandle;

#[path = "support/profiles.rs"]
mod profiles;
#[path = "support/world.rs"]
mod world;
use profiles::{checks_every_30s, name, profile};
use world::{again, dhcp_world, started, state_of};

/// What the fake probe reports per check.
const CHECK_BYTES: u64 = 600;

/// Four checks reach 75 % (2 400 B); the fifth 95 % (3 000 B), and a sixth would not fit.
const BUDGET: u64 = 3_100;

/// eth0 (Ethernet: not metered) and wwan0 (cellular: metered, guessed), checks every 30 s.
fn config(budget: u64) -> Config {
    Config {
        profiles: vec![
            profile("eth0", UplinkType::Ethernet, 100),
            profile("wwan0", UplinkType::Gsm, 700),
        ],
        adopt: false,
        check: checks_every_30s(),
        // The standby cadence at `interval`: wwan0 is checked as often as before the cadence
        // existed, so the budget alone stops its checks here (`metered.rs` tests the cadence).
        metered: MeteredConfig {
            budget_month: budget,
            standby_interval: Duration::from_secs(30),
        },
        ..Config::default()
    }
}

/// The `budget` events produced: (interface, percent, month).
fn budget_events(h: &EngineHandle) -> Vec<(String, u8, String)> {
    h.history()
        .into_iter()
        .filter(|r| r.event.kind == EventKind::Budget)
        .filter_map(|r| {
            let b = r.event.budget?;
            let iface = r.event.iface.map(|i| i.to_string()).unwrap_or_default();
            Some((iface, b.percent, b.month))
        })
        .collect()
}

fn account(h: &EngineHandle, iface: &str) -> IfaceAccounting {
    h.status()
        .accounting
        .interfaces
        .get(&name(iface))
        .cloned()
        .unwrap_or_else(|| panic!("{iface} has no account"))
}

#[actix::test]
async fn thresholds_come_in_order_once_and_periodic_checks_stop_at_100() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let h = started(&w, config(BUDGET)).await;
    pass(Duration::from_secs(600)).await;
    let month = Month::of_unix_ms(netfailover_actors::fake::FAKE_CALENDAR_START_MS).to_string();
    assert_eq!(
        budget_events(&h),
        vec![
            ("wwan0".into(), 75, month.clone()),
            ("wwan0".into(), 95, month.clone()),
            ("wwan0".into(), 100, month.clone()),
        ],
        "in order, once each, only for the metered uplink"
    );
    // Five checks (at 0, 30, 60, 90, 120 s), then none in the 8 minutes after.
    assert_eq!(w.probe.checks("wwan0").len(), 5);
    let a = account(&h, "wwan0");
    assert_eq!((a.probe_bytes, a.checks), (5 * CHECK_BYTES, 5));
    assert!(
        a.probe_bytes <= BUDGET,
        "never past the budget by periodic checks"
    );
    assert!(a.budget_exhausted && a.metered && a.budget_percent == 100);
    assert_eq!(a.month, month);
    // The periodic checks that did not run are counted as budget skips in `status`.
    let skipped = h
        .status()
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == "wwan0")
        .and_then(|i| i.checks.skipped.get("budget").copied())
        .unwrap_or(0);
    assert!(skipped >= 10, "budget skips in status: {skipped}");
    // The unmetered primary is checked on, and counted.
    let eth0 = w.probe.checks("eth0").len() as u64;
    assert!(eth0 >= 20, "{eth0}");
    let e = account(&h, "eth0");
    assert!(!e.metered && !e.budget_exhausted);
    assert_eq!(e.probe_bytes, eth0 * CHECK_BYTES);
    // The events reached the scripts with the numbers.
    let last = h
        .history()
        .into_iter()
        .rev()
        .find(|r| r.event.kind == EventKind::Budget)
        .and_then(|r| r.event.budget)
        .expect("a budget event");
    assert_eq!(
        (last.percent, last.budget_bytes, last.probe_bytes),
        (100, BUDGET, 5 * CHECK_BYTES)
    );
    // What the store holds says the thresholds were announced.
    let saved = w.accounts.get();
    assert_eq!(
        saved.interfaces[&name("wwan0")].announced,
        vec![75, 95, 100]
    );
}

#[actix::test]
async fn checks_that_decide_a_failover_still_run_on_an_exhausted_uplink_and_count() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let h = started(&w, config(BUDGET)).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(300)).await;
    assert!(account(&h, "wwan0").budget_exhausted);
    assert_eq!(w.probe.checks("wwan0").len(), 5);
    // wwan0 broke meanwhile; nobody checks it periodically. The primary's traffic stalls:
    // passive health confirms it and has the stale standby checked once; that check fails and
    // the one that decides wwan0 left FULL follows at once.
    w.probe.set("wwan0", Verdict::Limited);
    w.traffic.stall(2, true);
    pass(Duration::from_secs(10)).await;
    assert_eq!(
        w.probe.checks("wwan0").len(),
        7,
        "the standby's confirmation and the deciding check ran"
    );
    assert_eq!(state_of(&h, "wwan0"), Connectivity::Limited);
    let a = account(&h, "wwan0");
    assert_eq!(
        (a.checks, a.probe_bytes),
        (7, 7 * CHECK_BYTES),
        "counted, past the budget"
    );
    // Not FULL and exhausted: the fast re-checks of a failed uplink are periodic ones; none.
    pass(Duration::from_secs(300)).await;
    assert_eq!(w.probe.checks("wwan0").len(), 7);
    assert_eq!(budget_events(&h).len(), 3, "no threshold announced twice");
}

#[actix::test]
async fn a_new_month_starts_over_and_checks_resume() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let h = started(&w, config(BUDGET)).await;
    pass(Duration::from_secs(300)).await;
    assert!(account(&h, "wwan0").budget_exhausted);
    let before = w.probe.checks("wwan0").len();
    let next = Month::of_unix_ms(netfailover_actors::fake::FAKE_CALENDAR_START_MS).next();
    w.calendar.set(next.start_unix_ms() + 1_000);
    // The month turns at the next sample (at most 5 min), the gate opens at the next interval.
    pass(Duration::from_secs(330)).await;
    let after = w.probe.checks("wwan0").len();
    assert!(after > before, "checks resumed ({before} → {after})");
    let a = account(&h, "wwan0");
    assert_eq!(a.month, next.to_string());
    assert!(
        a.checks >= 1 && a.checks as usize == after - before,
        "{a:?}"
    );
    // The new month announces its own thresholds, in order.
    pass(Duration::from_secs(300)).await;
    let ev = budget_events(&h);
    let new: Vec<u8> = ev
        .iter()
        .filter(|(_, _, m)| *m == next.to_string())
        .map(|(_, p, _)| *p)
        .collect();
    assert_eq!(new, vec![75, 95, 100], "{ev:?}");
    // An earlier clock (a device before NTP) never undoes the month counted.
    w.calendar.set(0);
    pass(Duration::from_secs(330)).await;
    assert_eq!(account(&h, "wwan0").month, next.to_string());
}

#[actix::test]
async fn a_new_engine_restores_the_accounts_and_announces_nothing_again() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let h = started(&w, config(BUDGET)).await;
    w.traffic.busy(2, "eth0");
    pass(Duration::from_secs(300)).await;
    let first = account(&h, "wwan0");
    assert!(first.budget_exhausted);
    h.shutdown().await.expect("clean stop");
    // The stop saved the link bytes read at the end as well.
    let saved = w.accounts.get();
    let eth0 = &saved.interfaces[&name("eth0")];
    assert!(eth0.rx_bytes > 0, "{eth0:?}");

    let h = again(&w, config(BUDGET)).await;
    pass(Duration::from_secs(600)).await;
    let a = account(&h, "wwan0");
    // One check at the start (a restarted engine checks every uplink once), then none.
    assert_eq!(w.probe.checks("wwan0").len(), 6);
    assert_eq!(
        (a.checks, a.probe_bytes),
        (first.checks + 1, first.probe_bytes + CHECK_BYTES)
    );
    assert!(a.budget_exhausted);
    assert!(budget_events(&h).is_empty(), "announced before the restart");
    assert!(account(&h, "eth0").rx_bytes >= eth0.rx_bytes);
}

#[actix::test]
async fn link_bytes_come_from_the_counters_every_few_minutes() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    tokio::time::pause();
    // 5 packets of 100 bytes a second each way, from the start: the first reading (at once) is
    // the baseline, the next ones every 5 minutes add what passed.
    w.traffic.busy(2, "eth0");
    let h = again(&w, config(0)).await;
    pass(Duration::from_secs(290)).await;
    assert_eq!(account(&h, "eth0").rx_bytes, 0, "only the baseline so far");
    pass(Duration::from_secs(311)).await;
    let e = account(&h, "eth0");
    assert!(
        (295_000..=300_000).contains(&e.rx_bytes) && (295_000..=300_000).contains(&e.tx_bytes),
        "{e:?}"
    );
    // No budget: no event, nothing stops.
    assert!(budget_events(&h).is_empty());
    assert!(!account(&h, "wwan0").budget_exhausted);
    assert!(w.probe.checks("wwan0").len() >= 20);
}

#[actix::test]
async fn a_larger_budget_on_reload_lets_periodic_checks_resume() {
    let w = dhcp_world(&[("eth0", 100), ("wwan0", 700)]);
    let h = started(&w, config(BUDGET)).await;
    pass(Duration::from_secs(300)).await;
    assert_eq!(w.probe.checks("wwan0").len(), 5);
    h.reload(config(100 * BUDGET));
    pass(Duration::from_secs(120)).await;
    assert!(w.probe.checks("wwan0").len() > 5);
    assert!(!account(&h, "wwan0").budget_exhausted);
}
