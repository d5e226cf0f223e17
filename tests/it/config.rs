//! Integration tests for the config area: every fixture under `tests/data/config/{ok,bad}/`,
//! reloading a changed boot directory, huge files, and property tests that no input panics.
//!
//! A fixture case is a boot directory plus optional test inputs beside it: `sys/` (a fake sysfs
//! root; without it, an empty one so the host's interfaces never leak in), `resolv.conf`, `env`
//! (`KEY=VALUE` lines, the environment the loader sees). `expected.txt` is, for `ok/` cases, the
//! whole check-config output (exit code must be 0); for `bad/` cases, `exit: N` (1: something
//! rejected, 2: no configuration) then exactly the `error` lines it prints. Paths are shown relative to the case directory.
//! `UPDATE_EXPECT=1 cargo test -p netfailover --test it config::fixtures` rewrites them (review
//! the diff before committing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netfailover::config::{self, report, LoadOptions};

mod nm_differential;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config")
}

fn options_for(case: &Path) -> LoadOptions {
    let mut opts = LoadOptions::new(case);
    let sys = case.join("sys");
    opts.sysfs_root = if sys.is_dir() {
        sys
    } else {
        case.join("no-sysfs-here")
    };
    opts.resolv_conf = Some(case.join("resolv.conf")).filter(|p| p.exists());
    let env_text = std::fs::read_to_string(case.join("env")).unwrap_or_default();
    opts.env = Some(
        env_text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    opts
}

/// check-config output for a case, with the case directory stripped from paths.
fn run_case(case: &Path) -> (i32, String) {
    let mut out = Vec::new();
    let code = report::check_config_with(&options_for(case), &mut out);
    let text = String::from_utf8(out).expect("check-config prints UTF-8");
    let prefix = format!("{}/", case.display());
    (
        code,
        text.replace(&prefix, "")
            .replace(&case.display().to_string(), "BOOT"),
    )
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(data_dir().join(kind))
        .expect("fixture folder exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn check_fixture(case: &Path, got: &str) -> Option<String> {
    let expected_path = case.join("expected.txt");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, got).expect("write expected.txt");
        return None;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    (expected != got).then(|| {
        format!(
            "{}: output differs\n--- expected\n{expected}--- got\n{got}",
            case.display()
        )
    })
}

#[test]
fn fixtures_ok_cases_print_the_expected_config_and_exit_zero() {
    let cases = cases("ok");
    assert!(cases.len() >= 4, "ok fixtures missing");
    let mut failures = Vec::new();
    for case in &cases {
        let (code, out) = run_case(case);
        if code != 0 {
            failures.push(format!("{}: exit {code}\n{out}", case.display()));
        }
        failures.extend(check_fixture(case, &out));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixtures_bad_cases_print_the_exact_errors_and_exit_non_zero() {
    let cases = cases("bad");
    assert!(cases.len() >= 8, "bad fixtures missing");
    let mut failures = Vec::new();
    for case in &cases {
        let (code, out) = run_case(case);
        if code == 0 {
            failures.push(format!("{}: exit 0\n{out}", case.display()));
        }
        let error_lines: String = out
            .lines()
            .map(str::trim)
            .filter(|l| l.contains(": error: "))
            .map(|l| format!("{l}\n"))
            .collect();
        let errors = format!("exit: {code}\n{error_lines}");
        if error_lines.is_empty() {
            failures.push(format!("{}: no error lines\n{out}", case.display()));
        }
        failures.extend(check_fixture(case, &errors));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `tests/data/config/json/*/`: `check-config --json` of the case must equal its
/// `expected.json` (without `settings`; exit code in `expected-exit`). `UPDATE_EXPECT=1`
/// rewrites them.
#[test]
fn json_fixtures_print_the_expected_document() {
    let cases = cases("json");
    assert!(cases.len() >= 2, "json fixtures missing");
    let mut failures = Vec::new();
    for case in &cases {
        let mut out = Vec::new();
        let code = report::check_config_as(&options_for(case), report::Format::Json, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        let mut doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
        // `settings` lists every netfailover.toml key (the text fixtures cover them); leaving
        // it out keeps these fixtures about the boot partition when a key is added.
        let settings = doc.as_object_mut().and_then(|d| d.remove("settings"));
        assert!(
            settings.is_some_and(|s| s.get("adopt").is_some()),
            "{}: settings missing",
            case.display()
        );
        let got = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        let got = got.replace(&format!("{}/", case.display()), "");
        let want_code: i32 = std::fs::read_to_string(case.join("expected-exit"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(-1);
        let path = case.join("expected.json");
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, &got).unwrap();
            std::fs::write(case.join("expected-exit"), format!("{code}\n")).unwrap();
            continue;
        }
        if code != want_code {
            failures.push(format!(
                "{}: exit {code}, expected {want_code}",
                case.display()
            ));
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            failures.push(format!(
                "{}: differs\n--- expected\n{want}--- got\n{got}",
                case.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A copy of a stock balenaOS boot partition: meta-balena's two `.ignore` files, the docs'
/// `resin-wifi`, a cellular profile and `uri: "null"` — no error, checks off.
#[test]
fn a_stock_balena_boot_partition_is_clean() {
    let case = data_dir().join("json/balena-stock");
    let mut out = Vec::new();
    let code = report::check_config_as(&options_for(&case), report::Format::Json, &mut out);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["connectivity"]["enabled"], serde_json::json!(false));
    let problems = doc["problems"].as_array().unwrap();
    assert!(
        problems.iter().all(|p| p["severity"] == "warning"),
        "{problems:?}"
    );
    let files: Vec<&str> = doc["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        vec![
            "system-connections/balena-cellular-qmi",
            "system-connections/resin-wifi"
        ]
    );
}

/// 500 copies of one profile: one shared-metric note per family, not one per pair (which
/// printed 29 MB before).
#[test]
fn shared_metric_notes_are_one_line_per_metric() {
    let text = "[connection]\ntype=ethernet\n[ipv4]\nmethod=auto\n[ipv6]\nmethod=auto\n";
    let names: Vec<String> = (0..500)
        .map(|i| format!("system-connections/eth-{i:03}"))
        .collect();
    let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), text)).collect();
    let boot = temp_boot(&files);
    let mut out = Vec::new();
    let code = report::check_config_with(&isolated(boot.path()), &mut out);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(code, 0, "{out}");
    let notes: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("note: "))
        .collect();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes[0].contains("ipv4 metric 100 is shared by 500 profiles"),
        "{}",
        notes[0]
    );
    assert!(out.len() < 200_000, "{} bytes", out.len());
}

#[test]
fn a_broken_profile_is_skipped_while_the_others_load() {
    let case = data_dir().join("bad/metric-out-of-range");
    let loaded = config::load_with(&options_for(&case)).expect("loads");
    let ids: Vec<&str> = loaded
        .config
        .profiles
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    // NetworkManager only warns about a metric of -2 or 2^32 and uses the type's default, so
    // those two load; 3000000000 (beyond our headroom) loads capped at 2147483647 with a
    // warning; a Wi-Fi profile without [wifi] does not load.
    assert_eq!(
        ids,
        vec!["beyond our headroom", "still loads", "negative", "too big"]
    );
    assert_eq!(loaded.config.profiles[0].ipv4.metric.get(), 2_147_483_647);
    assert_eq!(loaded.problems.iter().filter(|p| p.is_error()).count(), 1);
    assert!(loaded.problems.iter().any(|p| !p.is_error()
        && p.to_string()
            .contains("route-metric 3000000000 is above 2147483647")));
}

#[test]
fn seed_examples_mean_what_the_document_means() {
    let case = data_dir().join("ok/seed-examples");
    let loaded = config::load_with(&options_for(&case)).expect("loads");
    let p = &loaded.config.profiles[0];
    assert_eq!(p.ipv4.metric.get(), 40, "[ipv4] route-metric=40");
    assert_eq!(p.ipv6.metric.get(), 40, "[ipv46] read as [ipv6]");
    let warnings: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    assert!(
        warnings.iter().all(|w| w.contains(": warning: ")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("[ipv46]")));
    let wwan0 = netfailover::engine::model::IfaceName::new("wwan0").unwrap();
    assert_eq!(
        loaded.config.dns.bound[&wwan0],
        vec!["1.1.1.1:53".parse().unwrap()]
    );
    assert!(
        loaded.config.dns.global.is_empty(),
        "balenaOS adds no default once dnsServers is set"
    );
}

/// A boot directory in a temporary folder.
fn temp_boot(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn isolated(boot: &Path) -> LoadOptions {
    let mut opts = LoadOptions::new(boot);
    opts.sysfs_root = boot.join("no-sysfs-here");
    opts.resolv_conf = None;
    opts.env = Some(BTreeMap::new());
    opts
}

#[test]
fn reloading_a_changed_directory_yields_the_changed_metric() {
    let profile = |metric: u32| {
        format!("[connection]\nid=up\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=auto\nroute-metric={metric}\n")
    };
    let boot = temp_boot(&[("system-connections/eth0.nmconnection", &profile(40))]);
    let opts = isolated(boot.path());
    let first = config::load_with(&opts).unwrap();
    assert_eq!(first.config.profiles[0].ipv4.metric.get(), 40);
    // Loading again without changes gives the same config (idempotent).
    assert_eq!(config::load_with(&opts).unwrap().config, first.config);
    std::fs::write(
        boot.path().join("system-connections/eth0.nmconnection"),
        profile(250),
    )
    .unwrap();
    std::fs::write(
        boot.path().join("system-connections/wlan0"),
        "[connection]\ntype=wifi\ninterface-name=wlan0\n[wifi]\nssid=x\n",
    )
    .unwrap();
    let second = config::load_with(&opts).unwrap();
    assert_eq!(second.config.profiles[0].ipv4.metric.get(), 250);
    assert_eq!(second.config.profiles.len(), 2, "a new profile appears");
    assert_eq!(second.config.profiles[1].ipv4.metric.get(), 600);
}

#[test]
fn files_over_one_mib_are_refused_naming_the_file() {
    let huge = format!("[connection]\ntype=ethernet\n#{}\n", "x".repeat(1 << 20));
    let boot = temp_boot(&[
        ("system-connections/huge", &huge),
        ("system-connections/ok", "[connection]\ntype=ethernet\n"),
        (
            "config.json",
            &format!("{{\"x\": \"{}\"}}", "y".repeat(1 << 20)),
        ),
    ]);
    let loaded = config::load_with(&isolated(boot.path())).unwrap();
    assert_eq!(
        loaded.config.profiles.len(),
        1,
        "the other profile still loads"
    );
    let msgs: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
    let root = boot.path().display().to_string();
    let json_len = std::fs::metadata(boot.path().join("config.json"))
        .unwrap()
        .len();
    assert_eq!(
        msgs,
        vec![
            format!("{root}/config.json: error: file is {json_len} bytes; files over 1 MiB are refused; using defaults"),
            format!("{root}/system-connections/huge: error: profile skipped: file is {} bytes; files over 1 MiB are refused", huge.len()),
        ]
    );
}

#[test]
fn missing_boot_dir_is_fatal() {
    let opts = isolated(Path::new("/nonexistent/netfailover-boot"));
    let err = config::load_with(&opts).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("/nonexistent/netfailover-boot: boot directory cannot be read"));
    let mut out = Vec::new();
    assert_eq!(report::check_config_with(&opts, &mut out), 2);
}

#[test]
fn process_environment_is_read_when_not_injected() {
    // `load` (production entry point) reads the real environment; no test sets NETFAILOVER_*
    // variables in this process, so the defaults hold.
    let boot = temp_boot(&[]);
    let loaded = config::load(boot.path(), None).unwrap();
    assert_eq!(loaded.config.check.down_count, 2);
    assert_eq!(loaded.dispatcher_dir, boot.path().join("dispatcher.d"));
    assert_eq!(loaded.state_dir, PathBuf::from("/run/netfailover"));
    assert_eq!(loaded.netlink_rcvbuf, 4 << 20);
}

mod no_panic {
    //! Property tests: arbitrary bytes and mutated valid files never panic any parser, and
    //! every problem they produce renders as `FILE[:LINE]: severity: message`.

    use super::*;
    use netfailover::config::{config_json, keyfile, profiles};
    use proptest::prelude::*;

    const VALID_KEYFILE: &str = "[connection]\nid=Wired\nuuid=8d1f0a6e-2d9b-4b5e-9b1e-0d6c9c2a1f00\ntype=802-3-ethernet\ninterface-name=eth0\nautoconnect-priority=5\n\n[802-3-ethernet]\nmac-address=02:00:00:00:00:01\n\n[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\naddresses2=198.51.100.5;25;198.51.100.1;\ndns=192.0.2.53;bogus;\nroute-metric=40\nnever-default=false\n\n[ipv46]\nroute-metric=-1\nmethod=auto\n";
    const VALID_JSON: &str = r#"{"apiEndpoint": "https://api.example.test", "dnsServers": "192.0.2.53#5353@eth0 198.51.100.53 null", "os": {"network": {"connectivity": {"uri": "http://192.0.2.1/check", "interval": "300", "response": "ok"}}}}"#;
    const VALID_TOML: &str = "adopt = true\nstate_dir = \"/run/x\"\n[check]\ndown_count = 3\ntimeout = \"1500ms\"\n[route]\npenalty = 100\nprotocol = 78\nrp_filter = \"keep\"\n[dispatcher]\ndevice_events = \"all\"\n[netlink]\nrcvbuf = 8192\n";

    /// A valid text with a few random byte edits.
    fn mutated(base: &'static str) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8).prop_map(
            move |edits| {
                let mut bytes = base.as_bytes().to_vec();
                for (at, byte, op) in edits {
                    let i = at.index(bytes.len() + 1);
                    match op {
                        0 => bytes.insert(i, byte),
                        1 if i < bytes.len() => {
                            bytes.remove(i);
                        }
                        _ if i < bytes.len() => bytes[i] = byte,
                        _ => bytes.push(byte),
                    }
                }
                bytes
            },
        )
    }

    fn check_rendering(problems: &[config::Problem]) {
        for p in problems {
            let s = p.to_string();
            assert!(s.contains(": warning: ") || s.contains(": error: "), "{s}");
        }
    }

    fn keyfile_no_panic(bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let _ = keyfile::parse(&text);
        let mut problems = Vec::new();
        let _ = profiles::parse_profile(
            &text,
            Path::new("p"),
            Path::new("/nonexistent"),
            &mut problems,
        );
        check_rendering(&problems);
    }

    fn json_no_panic(bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let mut problems = Vec::new();
        let _ = config_json::parse(&text, Path::new("config.json"), &mut problems);
        check_rendering(&problems);
    }

    fn toml_no_panic(bytes: &[u8]) {
        let boot = tempfile::tempdir().unwrap();
        std::fs::write(boot.path().join("netfailover.toml"), bytes).unwrap();
        let mut out = Vec::new();
        let code = report::check_config_with(&isolated(boot.path()), &mut out);
        assert!((0..=2).contains(&code));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn keyfile_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            keyfile_no_panic(&bytes);
        }

        #[test]
        fn keyfile_mutated(bytes in mutated(VALID_KEYFILE)) {
            keyfile_no_panic(&bytes);
        }

        #[test]
        fn json_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            json_no_panic(&bytes);
        }

        #[test]
        fn json_mutated(bytes in mutated(VALID_JSON)) {
            json_no_panic(&bytes);
        }
    }

    proptest! {
        // Each case writes a file and runs the whole loader: fewer cases keep it fast.
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn toml_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            toml_no_panic(&bytes);
        }

        #[test]
        fn toml_mutated(bytes in mutated(VALID_TOML)) {
            toml_no_panic(&bytes);
        }
    }

    #[test]
    fn valid_samples_are_valid() {
        let mut problems = Vec::new();
        let p = profiles::parse_profile(
            VALID_KEYFILE,
            Path::new("p"),
            Path::new("/nonexistent"),
            &mut problems,
        );
        assert!(p.is_some(), "{problems:?}");
        let j = config_json::parse(VALID_JSON, Path::new("config.json"), &mut problems);
        assert_eq!(j.uri.as_str(), "http://192.0.2.1/check");
        let boot = tempfile::tempdir().unwrap();
        std::fs::write(boot.path().join("netfailover.toml"), VALID_TOML).unwrap();
        assert!(config::load_with(&isolated(boot.path())).is_ok());
    }
}

mod drives_the_engine {
    //! The loader's output runs the real engine (on in-memory fakes): the
    //! configured metrics reach the kernel table, and a reload after editing a keyfile moves
    //! the routes with no moment without a default route (what SIGHUP does in the daemon).

    use super::*;
    use netfailover::engine::fake::FakeWorld;
    use netfailover::engine::model::{Family, KernelRoute, LinkKind};
    use std::time::Duration;

    const DHCP: u8 = 16;

    fn keyfile(iface: &str, kind: &str, metric: Option<u32>) -> String {
        let metric = metric.map_or(String::new(), |m| {
            format!("[ipv4]\nmethod=auto\nroute-metric={m}\n")
        });
        format!("[connection]\nid={iface}\ntype={kind}\ninterface-name={iface}\n[wifi]\nssid=x\n[ipv6]\nmethod=ignore\n{metric}")
    }

    /// Polls (real time, bounded) until the fake kernel's owned routes are `want`.
    async fn until_owned(w: &FakeWorld, want: &[(u32, u32)]) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while owned(w) != want && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(owned(w), want);
    }

    fn owned(w: &FakeWorld) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = w
            .kernel
            .routes()
            .into_iter()
            .filter(|r| r.protocol == netfailover::engine::model::DEFAULT_ROUTE_PROTOCOL)
            .map(|r| (r.ifindex, r.metric))
            .collect();
        v.sort();
        v
    }

    #[actix::test]
    async fn loaded_config_sets_metrics_and_reload_moves_them_without_a_gap() {
        let boot = temp_boot(&[
            (
                "config.json",
                r#"{"os": {"network": {"connectivity": {"uri": "http://192.0.2.80/check", "interval": "30"}}}}"#,
            ),
            (
                "netfailover.toml",
                "adopt = false\n[check]\ntimeout = 2\nconnect_timeout = 1\n",
            ),
            (
                "system-connections/eth0",
                &keyfile("eth0", "802-3-ethernet", Some(40)),
            ),
            ("system-connections/wlan0", &keyfile("wlan0", "wifi", None)),
        ]);
        let opts = isolated(boot.path());
        let loaded = config::load_with(&opts).unwrap();
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);

        let w = FakeWorld::new();
        let mut ifindex = Vec::new();
        for (i, name) in ["eth0", "wlan0"].into_iter().enumerate() {
            let idx = w.kernel.add_link(name, LinkKind::Other);
            w.kernel.add_route_by_hand(KernelRoute {
                family: Family::V4,
                ifindex: idx,
                gateway: Some(format!("192.0.2.{}", i + 1).parse().unwrap()),
                metric: 100 + i as u32,
                protocol: DHCP,
            });
            ifindex.push(idx);
        }
        let h = netfailover::engine::start(loaded.config, w.ports());
        until_owned(&w, &[(ifindex[0], 40), (ifindex[1], 600)]).await;
        assert_eq!(w.kernel.best_iface().as_deref(), Some("eth0"));

        // Edit the keyfiles as a person would, then reload (the daemon does this on SIGHUP).
        std::fs::write(
            boot.path().join("system-connections/eth0"),
            keyfile("eth0", "802-3-ethernet", Some(900)),
        )
        .unwrap();
        let reloaded = config::load_with(&opts).unwrap();
        h.reload(reloaded.config);
        until_owned(&w, &[(ifindex[0], 900), (ifindex[1], 600)]).await;
        assert_eq!(w.kernel.best_iface().as_deref(), Some("wlan0"));
        assert_eq!(w.kernel.gaps(), 0, "never without a default route");
        h.shutdown().await.unwrap();
    }
}
