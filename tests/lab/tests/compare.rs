//! The NetworkManager comparison (`netfailover-lab --compare-nm`, `scripts/compare-nm.sh`) in
//! a tiny mode: NetworkManager 1.42 and the daemon built from this tree, one carrier run each
//! and a short idle window, through the same machinery as the full table. Asserts that every
//! row is produced with plausible values, not how fast either daemon is.

use std::time::Duration;

use netfailover_lab::compare::{measure, CompareOptions, Series};
use netfailover_lab::setup::require_tool;
use netfailover_lab::{heavy_test_lock, test_name, test_setup};

#[test]
fn the_comparison_measures_networkmanager_and_netfailover_row_by_row() {
    test_setup!();
    for tool in ["NetworkManager", "nmcli", "dbus-daemon", "nft"] {
        if !require_tool(test_name!(), tool) {
            return;
        }
    }
    // Measured: route times against each daemon's own timers.
    let _heavy = heavy_test_lock();
    let mut options = CompareOptions::new(env!("CARGO_BIN_EXE_netfailover-lab").into(), true);
    options.runs = 1;
    // One check per uplink and daemon at least (interval 5 s).
    options.idle = Duration::from_secs(6);
    options.series = Series {
        carrier: true,
        upstream: false,
    };
    let report = measure(&options).expect("the comparison ran");
    let markdown = report.markdown();
    assert!(report.complete(), "{markdown}");
    for m in [&report.nm, &report.netfailover] {
        assert_eq!(m.carrier_runs, 1, "{markdown}");
        for (what, samples) in [
            ("backup", &m.carrier_backup),
            ("route gone", &m.carrier_removed),
            ("back", &m.carrier_back),
        ] {
            assert_eq!(samples.len(), 1, "{} {what}: {markdown}", m.name);
            // Within the comparison's own bound on any outcome.
            assert!(samples.max() <= Duration::from_secs(30), "{markdown}");
        }
        let idle = m.idle.as_ref().expect("an idle window");
        assert!(idle.window >= Duration::from_secs(6), "{markdown}");
        assert!(idle.rss_kib > 1024, "{} RSS: {markdown}", m.name);
        assert!(idle.cpu < idle.window, "{} CPU: {markdown}", m.name);
        assert!(idle.checks >= 1, "{} checked nothing: {markdown}", m.name);
        // A plain HTTP exchange with its TCP handshake: some hundred bytes, not kilobytes.
        let per_check = idle.bytes_per_check().unwrap_or(0);
        assert!((200..4000).contains(&per_check), "{markdown}");
    }
    // The table: a header, then one row per measure with both columns filled.
    let rows: Vec<&str> = markdown
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| measure"))
        .collect();
    assert_eq!(rows.len(), 6, "{markdown}");
    for row in &rows {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 4, "{row}");
        assert!(
            cells
                .iter()
                .all(|c| !c.trim().is_empty() && c.trim() != "–"),
            "{row}"
        );
    }
    assert!(
        markdown.contains("| measure | NetworkManager 1.42"),
        "{markdown}"
    );
}
