//! Tests of `profiles.rs`: keyfiles read as NetworkManager reads them.

use super::binding::parse_mac;
use super::*;
use netfailover_actors::model::IfaceName;

fn load(text: &str) -> (Option<LoadedProfile>, Vec<String>) {
    let mut problems = Vec::new();
    let p = parse_profile(
        text,
        Path::new("p"),
        Path::new("/nonexistent"),
        &mut problems,
    );
    (p, problems.iter().map(ToString::to_string).collect())
}

fn ok(text: &str) -> LoadedProfile {
    let (p, problems) = load(text);
    assert!(problems.is_empty(), "{problems:?}");
    p.expect("profile loads")
}

fn err(text: &str) -> String {
    let (p, problems) = load(text);
    assert!(p.is_none(), "expected rejection");
    problems.last().cloned().unwrap_or_default()
}

#[test]
fn seed_route_metric_example() {
    let p = ok(
        "[connection]\nid=eth\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nroute-metric=40\nmethod=auto\n",
    );
    assert_eq!(p.profile.ipv4.metric.get(), 40);
    assert_eq!(p.ipv4.metric_origin, MetricOrigin::RouteMetric { line: 6 });
    assert_eq!(p.profile.ipv6.metric.get(), 100);
    assert_eq!(
        p.profile.matches,
        IfaceMatch::Name(IfaceName::new("eth0").unwrap())
    );
}

#[test]
fn ipv46_is_ipv6_with_a_warning() {
    let (p, problems) =
        load("[connection]\ntype=wifi\n[wifi]\nssid=x\n[ipv46]\nmethod=auto\nroute-metric=40\n");
    assert_eq!(p.unwrap().profile.ipv6.metric.get(), 40);
    assert_eq!(
        problems,
        vec!["p:5: warning: [ipv46] is not a NetworkManager section; reading it as [ipv6] (NetworkManager ignores it)"]
    );
}

#[test]
fn type_defaults_and_minus_one() {
    for (t, m) in [
        ("802-3-ethernet", 100),
        ("802-11-wireless", 600),
        ("gsm", 700),
        ("cdma", 700),
        ("vlan", 400),
    ] {
        let p = ok(&format!(
            "[connection]\ntype={t}\n[wifi]\nssid=x\n[vlan]\nparent=x\n[ipv4]\nmethod=auto\nroute-metric=-1\n"
        ));
        assert_eq!(p.profile.ipv4.metric.get(), m, "{t}");
        assert_eq!(p.ipv4.metric_origin, MetricOrigin::TypeDefault);
    }
}

#[test]
fn manual_addresses_in_both_spellings() {
    let p = ok("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\naddress1=192.0.2.10/24,192.0.2.1\ndns=192.0.2.53;\n");
    assert_eq!(p.ipv4.method, "manual");
    assert_eq!(p.profile.ipv4.addresses[0].to_string(), "192.0.2.10/24");
    assert_eq!(p.profile.ipv4.gateway, Some("192.0.2.1".parse().unwrap()));
    assert_eq!(p.profile.dns, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
    let p = ok("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\naddresses1=198.51.100.5;25;198.51.100.1;\n");
    assert_eq!(p.profile.ipv4.addresses[0].to_string(), "198.51.100.5/25");
    assert_eq!(
        p.profile.ipv4.gateway,
        Some("198.51.100.1".parse().unwrap())
    );
    let p = ok("[connection]\ntype=ethernet\n[ipv6]\nmethod=manual\naddress1=2001:db8::10/64\ngateway=2001:db8::1\n");
    assert_eq!(p.profile.ipv6.gateway, Some("2001:db8::1".parse().unwrap()));
}

#[test]
fn rejections_name_the_line() {
    assert_eq!(
        err("[connection]\ntype=ethernet\n[ipv4]\nmethod=dhcp\n"),
        "p:4: error: profile skipped: ipv4.method \"dhcp\" is not one of auto, manual, link-local, shared, disabled"
    );
    assert_eq!(
        err("[connection]\ntype=ethernet\ninterface-name=averyveryverylongname\n"),
        "p:3: error: profile skipped: connection.interface-name: interface name \"averyveryverylongname\" is 21 bytes long; the kernel allows at most 15"
    );
    assert_eq!(
        err("[connection]\nid=x\n"),
        "p:1: error: profile skipped: connection.type is missing"
    );
    assert!(err("[connection]\ntype=ethernet\n[ipv4]\nmethod=auto\nroute-metric=4294967295\n")
        .starts_with("p:5: error: profile skipped: ipv4.route-metric: route metric 4294967295 is out of range"));
    assert!(err("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\n")
        .starts_with("p:4: error: profile skipped: ipv4.method=manual needs an address"));
}

#[test]
fn mac_binding_and_never_default() {
    let p = ok("[connection]\ntype=ethernet\n[802-3-ethernet]\nmac-address=02:00:00:AA:bb:01\n[ipv6]\nmethod=auto\nnever-default=true\n");
    assert_eq!(p.profile.matches, IfaceMatch::Mac([2, 0, 0, 0xaa, 0xbb, 1]));
    assert!(p.profile.ipv4.manage_default);
    assert!(!p.profile.ipv6.manage_default);
    assert_eq!(
        parse_mac("2;0;0;170;187;1;"),
        Some([2, 0, 0, 0xaa, 0xbb, 1])
    );
    assert_eq!(parse_mac("02:00:00:aa:bb"), None);
}

#[test]
fn gsm_control_device_maps_through_sysfs() {
    let sys = super::super::matching::tests::fake_sysfs();
    let mut problems = Vec::new();
    let p = parse_profile(
        "[connection]\ntype=gsm\ninterface-name=cdc-wdm0\n",
        Path::new("p"),
        sys.path(),
        &mut problems,
    )
    .unwrap();
    // Symbolic: the engine maps it to wwan0 through sysfs whenever links appear.
    assert_eq!(
        p.profile.matches,
        IfaceMatch::ControlDevice("cdc-wdm0".into())
    );
    let p = parse_profile(
        "[connection]\ntype=gsm\ninterface-name=cdc-wdm7\n",
        Path::new("p"),
        sys.path(),
        &mut problems,
    )
    .unwrap();
    assert_eq!(
        p.profile.matches,
        IfaceMatch::ControlDevice("cdc-wdm7".into())
    );
    assert!(problems.is_empty());
}

#[test]
fn ignored_names_follow_networkmanager_for_etc() {
    for name in [
        "README.ignore",
        "balena-sample.ignore",
        ".hidden",
        "x~",
        "x.tmpABC",
        "ca.PEM",
        "k.der",
        "x.nmmeta",
    ] {
        assert!(ignored_file_name(name), "{name}");
    }
    for name in [
        "wifi.bak",
        "x.orig",
        "x.swp",
        "x.dpkg-old",
        "eth0",
        "a.nmconnection",
        ".pem".trim_start_matches('.'),
        "x.abcdefg",
        "x.abcde",
    ] {
        assert!(!ignored_file_name(name), "{name}");
    }
}

#[test]
fn booleans_follow_glib() {
    let (p, problems) = load(
        "[connection]\ntype=ethernet\nautoconnect=False\n[ipv4]\nmethod=auto\nnever-default=yes\n",
    );
    let p = p.unwrap();
    assert!(p.profile.managed);
    assert!(p.profile.ipv4.manage_default);
    assert_eq!(problems.len(), 2, "{problems:?}");
    let p = ok("[connection]\ntype=ethernet\nautoconnect=0\n");
    assert!(!p.profile.managed);
}

#[test]
fn ports_and_non_uplinks_are_never_managed() {
    let p = ok("[connection]\ntype=ethernet\nmaster=br0\nslave-type=bridge\n");
    assert!(!p.profile.managed);
    assert_eq!(p.profile.matches, IfaceMatch::ByType);
    let p = ok("[connection]\ntype=wireguard\ninterface-name=wg0\n");
    assert!(!p.profile.managed);
    let p = ok("[connection]\ntype=wifi\n[wifi]\nssid=x\nmode=ap\n[ipv4]\nmethod=shared\n");
    assert!(!p.profile.managed);
    let p = ok("[connection]\ntype=bond\ninterface-name=bond0\n");
    assert!(p.profile.managed);
    assert_eq!(p.profile.ipv4.metric.get(), 300);
}

#[test]
fn a_default_route_line_gives_the_gateway() {
    let p = ok("[connection]\ntype=ethernet\n[ipv4]\nmethod=manual\naddress1=192.0.2.5/24\nroute1=0.0.0.0/0,192.0.2.1\n");
    assert_eq!(p.profile.ipv4.gateway, Some("192.0.2.1".parse().unwrap()));
    assert!(p.ipv4.gateway_from_route);
}

#[test]
fn latin1_comment_is_fine_but_a_bom_is_refused() {
    let mut problems = Vec::new();
    let p = parse_profile_bytes(
        b"# caf\xe9\n[connection]\ntype=ethernet\n",
        Path::new("p"),
        Path::new("/x"),
        &mut problems,
    );
    assert!(p.is_some() && problems.is_empty(), "{problems:?}");
    assert!(err("\u{feff}[connection]\ntype=ethernet\n")
        .starts_with("p:1: error: profile skipped: line"));
}
