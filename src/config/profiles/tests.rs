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
        "p:1: error: profile skipped: connection.type is missing and no section names one (NetworkManager refuses the profile)"
    );
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
    let sys = crate::os::sysfs::tests::fake_sysfs();
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

fn warnings_of(text: &str) -> (LoadedProfile, Vec<String>) {
    let (p, problems) = load(text);
    (p.expect("profile loads"), problems)
}

#[test]
fn a_missing_type_comes_from_the_section_with_a_warning() {
    let (p, w) =
        warnings_of("[connection]\nid=x\n\n[802-3-ethernet]\nmac-address=02:00:00:00:00:01\n");
    assert_eq!(p.nm_type.short, "ethernet");
    assert!(p.is_managed());
    assert_eq!(p.profile.matches, IfaceMatch::Mac([2, 0, 0, 0, 0, 1]));
    assert_eq!(w, ["p:4: warning: connection.type is missing; type ethernet from the [ethernet] section, as NetworkManager infers it (add type=ethernet)"]);
    let (p, _) = warnings_of("[connection]\nid=x\n[wifi]\nssid=Example\n");
    assert_eq!(p.nm_type.short, "wifi");
    assert_eq!(p.profile.ipv4.metric.get(), 600);
    assert!(err("[connection]\nid=x\n[ethernet]\n[wifi]\nssid=E\n")
        .ends_with("connection.type is missing and [ethernet], [wifi] leave it ambiguous (NetworkManager refuses the profile)"));
    assert!(err("[connection]\nid=x\n[wifi]\nmode=ap\n").contains("wifi.ssid is missing"));
}

#[test]
fn route_metric_integers_as_networkmanager_reads_them() {
    let metric = |m: &str| {
        warnings_of(&format!(
            "[connection]\ntype=ethernet\n[ipv4]\nmethod=auto\nroute-metric={m}\n"
        ))
    };
    assert_eq!(metric("0x10").0.profile.ipv4.metric.get(), 16);
    assert_eq!(metric("010").0.profile.ipv4.metric.get(), 8);
    assert_eq!(metric("+5").0.profile.ipv4.metric.get(), 5);
    let (p, w) = metric("08");
    assert_eq!((p.profile.ipv4.metric.get(), w.len()), (100, 1));
    // Above 2^31-1 NetworkManager still accepts it; netfailover caps it, with a warning.
    let (p, w) = metric("4294967295");
    assert_eq!(p.profile.ipv4.metric.get(), 2_147_483_647);
    assert!(p.is_managed());
    assert!(
        w[0].starts_with("p:5: warning: ipv4.route-metric 4294967295 is above 2147483647"),
        "{w:?}"
    );
    let (p, w) = metric("4294967296");
    assert_eq!(p.profile.ipv4.metric.get(), 100);
    assert!(w[0].contains("out of range"), "{w:?}");
}

#[test]
fn a_port_type_comes_from_its_port_section() {
    let (p, w) = warnings_of(
        "[connection]\ntype=ethernet\ninterface-name=eth1\nmaster=br0\n[bridge-port]\n",
    );
    assert!(!p.is_managed());
    assert_eq!(
        p.not_managed.as_deref(),
        Some("a bridge port of br0 has no IP configuration of its own")
    );
    assert!(
        w[0].starts_with(
            "p:4: warning: connection.master without connection.slave-type; a bridge port"
        ),
        "{w:?}"
    );
    assert!(err("[connection]\ntype=ethernet\nmaster=br0\n")
        .contains("connection.master without connection.slave-type (NetworkManager"));
    assert!(
        err("[connection]\ntype=ethernet\nmaster=br0\n[bridge-port]\n[team-port]\n")
            .contains("several port sections")
    );
    assert!(
        err("[connection]\ntype=ethernet\nmaster=bond0\nslave-type=bond\n[bridge-port]\n")
            .contains("slave-type=bond with a [bridge-port] section")
    );
}

#[test]
fn the_deprecated_interface_name_of_the_type_section_binds() {
    let p = ok("[connection]\ntype=bond\n[bond]\ninterface-name=bond0\nmode=active-backup\n");
    assert_eq!(
        p.profile.matches,
        IfaceMatch::Name(IfaceName::new("bond0").unwrap())
    );
    assert!(err("[connection]\ntype=bridge\n[bridge]\nstp=false\n")
        .contains("connection.interface-name is missing"));
}

#[test]
fn vlan_ids_as_networkmanager_reads_them() {
    let p = ok("[connection]\ntype=vlan\n[vlan]\nparent=eth0\nid=0x10\n");
    assert_eq!(
        p.profile.matches,
        IfaceMatch::Name(IfaceName::new("eth0.16").unwrap())
    );
    assert!(
        err("[connection]\ntype=vlan\n[vlan]\nparent=eth0\nid=4095\n")
            .contains("vlan.id 4095 is not in 0..=4094")
    );
}

#[test]
fn gateways_networkmanager_refuses_reject_the_profile() {
    for (fam, addr, gw) in [
        ("ipv6", "2001:db8::10/64", "fe80::1%eth0"),
        ("ipv4", "192.0.2.10/24", "192.0.2.1%eth0"),
        ("ipv4", "192.0.2.10/24", "garbage"),
        ("ipv4", "192.0.2.10/24", ""),
        ("ipv4", "192.0.2.10/24", "192.0.2.1 "),
        ("ipv4", "192.0.2.10/24", "2001:db8::1"),
    ] {
        let e = err(&format!(
            "[connection]\ntype=ethernet\n[{fam}]\nmethod=manual\naddress1={addr}\ngateway={gw}\n"
        ));
        assert!(
            e.starts_with(&format!("p:6: error: profile skipped: {fam}.gateway:")),
            "{gw:?}: {e}"
        );
    }
    let p = ok("[connection]\ntype=ethernet\n[ipv6]\nmethod=manual\naddress1=2001:db8::10/64\ngateway=fe80::1\n");
    assert_eq!(p.profile.ipv6.gateway, Some("fe80::1".parse().unwrap()));
}

#[test]
fn eap_settings_networkmanager_refuses_reject_the_profile() {
    let eap =
        |keys: &str| format!("[connection]\ntype=ethernet\ninterface-name=eth0\n[802-1x]\n{keys}");
    for (keys, why) in [
        ("identity=u\n", "802-1x.eap is missing"),
        ("eap=foo\nidentity=u\n", "802-1x.eap \"foo\" is not one of"),
        ("eap=tls\nidentity=u\n", "802-1x.client-cert is missing"),
        (
            "eap=tls\nidentity=u\nclient-cert=/c.pem\n",
            "802-1x.private-key is missing",
        ),
        (
            "eap=peap\nphase2-auth=mschapv2\n",
            "802-1x.identity is missing",
        ),
        ("eap=leap\nidentity=\n", "802-1x.identity is empty"),
        (
            "eap=ttls\nidentity=u\n",
            "exactly one of 802-1x.phase2-auth",
        ),
        (
            "eap=peap\nidentity=u\nphase2-auth=mschapv2\nphase1-peapver=2\n",
            "phase1-peapver",
        ),
        (
            "eap=peap\nidentity=u\nphase2-auth=\n",
            "802-1x.phase2-auth \"\" is not one of",
        ),
    ] {
        assert!(
            err(&eap(keys)).contains(why),
            "{keys:?}: {}",
            err(&eap(keys))
        );
    }
    ok(&eap("eap=peap\nidentity=u\nphase2-auth=mschapv2\n"));
    ok(&eap(
        "eap=tls\nidentity=u\nclient-cert=/c.pem\nprivate-key=/k.pem\n",
    ));
    assert!(err("[connection]\ntype=wifi\n[wifi]\nssid=E\n[wifi-security]\nkey-mgmt=wpa-eap\n[802-1x]\neap=md5\nidentity=u\noptional=true\n")
        .contains("802-1x.optional=true is only for Ethernet"));
}

#[test]
fn single_values_networkmanager_refuses_reject_the_profile() {
    for (text, why) in [
        (
            "[connection]\ntype=ethernet\nuuid=not-a-uuid\n",
            "connection.uuid \"not-a-uuid\" is not a valid UUID",
        ),
        (
            "[connection]\ntype=wifi\n[wifi]\nssid=ExampleExampleExampleExampleExample1\n",
            "is not 1 to 32 bytes long",
        ),
        (
            "[connection]\ntype=wifi\n[wifi]\nssid=E\nmode=foo\n",
            "wifi.mode \"foo\"",
        ),
        (
            "[connection]\ntype=wifi\n[wifi]\nssid=E\nband=x\n",
            "wifi.band \"x\"",
        ),
        (
            "[connection]\ntype=wifi\n[wifi]\nssid=E\n[wifi-security]\nkey-mgmt=wpa-foo\n",
            "key-mgmt \"wpa-foo\"",
        ),
        (
            "[connection]\ntype=gsm\n[gsm]\napn=bad apn!\n",
            "gsm.apn \"bad apn!\"",
        ),
        (
            "[connection]\ntype=vlan\n[vlan]\nparent=bad name\nid=5\n",
            "vlan.parent \"bad name\"",
        ),
    ] {
        assert!(err(text).contains(why), "{text:?}: {}", err(text));
    }
    let p = ok("[connection]\ntype=ethernet\nuuid=1B6E2D0C-3F4A-4B5C-8D6E-7F8091A2B3C4\n");
    assert_eq!(
        p.profile.uuid.as_deref(),
        Some("1b6e2d0c-3f4a-4b5c-8d6e-7f8091a2b3c4")
    );
    let (p, w) =
        warnings_of("[connection]\ntype=ethernet\nuuid=1b6e2d0c3f4a4b5c8d6e7f8091a2b3c4aabbccdd\n");
    assert_eq!(
        p.profile.uuid.as_deref(),
        Some("d7d4c2c5-d350-5987-abeb-1a23c863150f")
    );
    assert!(w[0].contains("old form"), "{w:?}");
    ok("[connection]\ntype=wifi\n[wifi]\nssid=69;120;97;109;\nmode=mesh\nband=a\n");
}

#[test]
fn dns_entries_with_spaces_are_dropped_as_networkmanager_drops_them() {
    let (p, w) = warnings_of(
        "[connection]\ntype=ethernet\n[ipv4]\nmethod=auto\ndns=192.0.2.53; 198.51.100.53;203.0.113.53 ;\n",
    );
    assert_eq!(p.profile.dns, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
    assert_eq!(w.len(), 2, "{w:?}");
}

#[test]
fn the_deprecated_name_is_looked_up_under_the_setting_name_only() {
    let p = ok("[connection]\ntype=ethernet\n[802-3-ethernet]\ninterface-name=eth7\n");
    assert_eq!(
        p.profile.matches,
        IfaceMatch::Name(IfaceName::new("eth7").unwrap())
    );
    let p = ok("[connection]\ntype=ethernet\n[ethernet]\ninterface-name=eth7\n");
    assert_eq!(p.profile.matches, IfaceMatch::ByType);
}

#[test]
fn modem_bluetooth_macvlan_and_infiniband_values_networkmanager_refuses() {
    for (text, why) in [
        (
            "[connection]\ntype=gsm\n[gsm]\napn=internet\nnumber=\n",
            "gsm.number is empty",
        ),
        (
            "[connection]\ntype=gsm\n[gsm]\ndevice-id=\n",
            "gsm.device-id is empty",
        ),
        (
            "[connection]\ntype=gsm\n[gsm]\nnetwork-id=12a45\n",
            "gsm.network-id \"12a45\"",
        ),
        (
            "[connection]\ntype=gsm\n[gsm]\nsim-operator-id=1234\n",
            "gsm.sim-operator-id \"1234\"",
        ),
        (
            "[connection]\ntype=cdma\n[cdma]\nnumber=\n",
            "cdma.number is empty",
        ),
        (
            "[connection]\ntype=bluetooth\n[bluetooth]\nbdaddr=00:11:22:33:44:55\ntype=foo\n",
            "bluetooth.type \"foo\"",
        ),
        (
            "[connection]\ntype=bluetooth\n[bluetooth]\nbdaddr=00:11:22:33:44:55\ntype=dun\n",
            "needs a [gsm] or [cdma] section",
        ),
        (
            "[connection]\ntype=bluetooth\n[bluetooth]\ntype=panu\n",
            "bluetooth.bdaddr is missing",
        ),
        (
            "[connection]\ntype=bluetooth\n[bluetooth]\nbdaddr=00:11:22:33:44:55\n",
            "bluetooth.type is missing",
        ),
        (
            "[connection]\ntype=macvlan\ninterface-name=mv0\n[macvlan]\nmode=2\n",
            "macvlan.parent is missing",
        ),
        (
            "[connection]\ntype=infiniband\ninterface-name=ib0\n[infiniband]\nmtu=2044\n",
            "infiniband.transport-mode",
        ),
    ] {
        assert!(err(text).contains(why), "{text:?}: {}", err(text));
    }
    ok("[connection]\ntype=gsm\n[gsm]\napn=internet\nnetwork-id=310260\n");
    ok("[connection]\ntype=bluetooth\n[bluetooth]\nbdaddr=00:11:22:33:44:55\n[gsm]\napn=internet\n");
    ok("[connection]\ntype=macvlan\ninterface-name=mv0\n[macvlan]\nparent=eth0\nmode=2\n");
}

#[test]
fn a_vlan_without_id_is_parent_dot_zero() {
    let p = ok("[connection]\ntype=vlan\n[vlan]\nparent=eth0\n");
    assert_eq!(
        p.profile.matches,
        IfaceMatch::Name(IfaceName::new("eth0.0").unwrap())
    );
}

#[test]
fn wifi_security_and_other_values_networkmanager_refuses() {
    let wifi = |extra: &str| format!("[connection]\ntype=wifi\n[wifi]\nssid=E\n{extra}");
    for (text, why) in [
        (wifi("[wifi-security]\nkey-mgmt=wpa-psk\nauth-alg=leap\n"), "auth-alg=leap needs key-mgmt=ieee8021x"),
        (wifi("[wifi-security]\nkey-mgmt=none\nauth-alg=foo\n"), "auth-alg \"foo\""),
        (wifi("[wifi-security]\nkey-mgmt=wpa-psk\nauth-alg=shared\n"), "auth-alg=shared needs key-mgmt=none"),
        (wifi("[wifi-security]\nkey-mgmt=wpa-psk\nproto=foo;\n"), "wifi-security.proto \"foo\""),
        (wifi("[wifi-security]\nkey-mgmt=wpa-psk\npairwise=foo;\n"), "wifi-security.pairwise \"foo\""),
        (wifi("[wifi-security]\nkey-mgmt=wpa-psk\npmf=7\n"), "pmf 7 is not 0 to 3"),
        (wifi("[wifi-security]\nkey-mgmt=none\npmf=3\n"), "needs a WPA key-mgmt"),
        (wifi("[wifi-security]\nkey-mgmt=sae\npmf=2\n"), "allows only pmf 0"),
        ("[connection]\ntype=wifi\n[wifi]\nssid=E\nmode=mesh\n[wifi-security]\nkey-mgmt=wpa-psk\n".to_string(), "in a mesh"),
        (wifi("channel=6\n"), "wifi.channel 6 needs wifi.band"),
        (wifi("band=bg\nchannel=99\n"), "not a channel of band bg"),
        (wifi("wake-on-wlan=0x100000\n"), "wake-on-wlan"),
        ("[connection]\ntype=ethernet\n[ethernet]\nduplex=triple\n".to_string(), "ethernet.duplex"),
        ("[connection]\ntype=ethernet\nmdns=7\n".to_string(), "connection.mdns 7"),
        ("[connection]\ntype=ethernet\npermissions=foo;\n".to_string(), "connection.permissions \"foo\""),
        ("[connection]\ntype=ethernet\n[proxy]\nmethod=7\n".to_string(), "proxy.method 7"),
    ] {
        assert!(err(&text).contains(why), "{text:?}: {}", err(&text));
    }
    ok(&wifi("band=a\nchannel=36\nwake-on-wlan=0x8\n[wifi-security]\nkey-mgmt=ieee8021x\nauth-alg=leap\nleap-username=u\n"));
    ok("[connection]\ntype=ethernet\npermissions=user:root;\nmdns=2\n[ethernet]\nduplex=full\n");
}
