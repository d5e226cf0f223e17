//! Tests of the probe's pure parts (`mod.rs`): check configuration and error texts.

use super::*;

fn check(uri: &str) -> CheckConfig {
    CheckConfig {
        uri: uri.into(),
        ..CheckConfig::default()
    }
}

#[test]
fn uris_are_validated_without_panics() {
    for bad in [
        "",
        "ftp://example.test/",
        "check.example/x",
        "http://",
        "http://user@host.test/",
        "https://bad host/",
    ] {
        assert!(
            matches!(HttpProbe::new(&check(bad)), Err(ProbeError::BadUri { .. })),
            "{bad}"
        );
    }
    let ok = HttpProbe::new(&check("http://[2001:db8::1]:8080")).unwrap();
    assert!(matches!(ok.inner.target.host, Host::Ip(IpAddr::V6(_))));
    assert_eq!(ok.inner.target.port, 8080);
    assert_eq!(ok.inner.target.request.path_and_query, "/");
    let named = HttpProbe::new(&check("https://Check.Example/connectivity-check?a=1")).unwrap();
    assert!(matches!(&named.inner.target.host, Host::Name(n) if n == "check.example"));
    assert_eq!(named.inner.target.port, 443);
    assert_eq!(
        named.inner.target.request.path_and_query,
        "/connectivity-check?a=1"
    );
}

#[test]
fn a_bad_ca_file_is_an_error() {
    let dir = std::env::temp_dir().join(format!("nf-probe-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    for path in [dir.join("missing.pem"), garbage] {
        let mut c = check("https://check.example/");
        c.ca_file = Some(path.clone());
        assert!(
            matches!(HttpProbe::new(&c), Err(ProbeError::CaFile { .. })),
            "{}",
            path.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_map_to_the_spec_table() {
    let iface = IfaceName::new("wwan0").unwrap();
    let addr: SocketAddr = "192.0.2.1:80".parse().unwrap();
    assert_eq!(
        CheckFailure::Missing {
            iface: iface.clone()
        }
        .verdict(),
        Verdict::None
    );
    assert_eq!(CheckFailure::Refused { addr }.verdict(), Verdict::Limited);
    assert_eq!(
        CheckFailure::LinkDown {
            iface: iface.clone()
        }
        .verdict(),
        Verdict::None
    );
    // An upstream's ICMP "unreachable" and a local "no route" share one errno: LIMITED.
    let unreachable = CheckFailure::Unreachable {
        iface: iface.clone(),
        addr,
        error: std::io::Error::from_raw_os_error(libc::ENETUNREACH),
    };
    assert_eq!(unreachable.verdict(), Verdict::Limited);
    assert_eq!(
        CheckFailure::Dns(DnsFailure::Unreachable {
            iface: iface.clone(),
            server: addr,
        })
        .verdict(),
        Verdict::Limited
    );
    let timeout = CheckFailure::ConnectTimeout {
        addr,
        after: Duration::from_secs(5),
    };
    assert_eq!(timeout.verdict(), Verdict::Limited);
    assert_eq!(
        timeout.to_string(),
        "connect timeout after 5s to 192.0.2.1:80"
    );
    let dns = CheckFailure::from(DnsFailure::NoAnswer {
        host: "check.example".into(),
        iface,
    });
    assert_eq!(
        dns.to_string(),
        "DNS: no answer for check.example via wwan0"
    );
    assert_eq!(dns.verdict(), Verdict::Limited);
}
