//! The recovery ladder's D-Bus and HTTP rungs against real peers: `modem-reset` and the logind
//! reboot against small fake services on a private bus that record the calls (zbus servers in
//! this test; ModemManager would need a modem), the balena supervisor's `POST /v1/reboot`
//! against a fake supervisor on loopback, and `reconnect` against NetworkManager 1.42 running
//! in a test namespace with its own bus (`netfailover_lab::dbus`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netfailover::engine::ports::ActionOutcome;
use netfailover::os::recovery::dbus::{Bus, LOGIND, LOGIND_PATH, MM, MM_PATH};
use netfailover::os::recovery::BalenaSupervisor;
use netfailover_lab::dbus::{have_programs, NetworkManagerInNetns, PrivateBus};
use netfailover_lab::netns::{veth, wait_for, Netns};
use netfailover_lab::test_setup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Calls = Arc<Mutex<Vec<String>>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

struct FakeModem(Calls);

#[zbus::interface(name = "org.freedesktop.ModemManager1.Modem")]
impl FakeModem {
    #[zbus(property)]
    fn ports(&self) -> Vec<(String, u32)> {
        vec![("cdc-wdm0".into(), 6), ("wwan0".into(), 2)]
    }

    fn reset(&self) {
        self.0.lock().unwrap().push("Reset".into());
    }
}

struct FakeLogind(Calls);

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    fn reboot(&self, interactive: bool) {
        self.0
            .lock()
            .unwrap()
            .push(format!("Reboot({interactive})"));
    }
}

#[test]
fn modem_reset_and_logind_reboot_reach_the_services_and_absent_ones_are_skipped() {
    if !have_programs(
        "recovery_dbus::modem_reset_and_logind_reboot",
        &["dbus-daemon"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start(dir.path()).expect("dbus-daemon");
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = PrivateBus::start(empty_dir.path()).expect("a second dbus-daemon");
    let calls: Calls = Arc::default();
    runtime().block_on(async {
        let _mm = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name(MM)
            .unwrap()
            .serve_at(MM_PATH, zbus::fdo::ObjectManager)
            .unwrap()
            .serve_at(format!("{MM_PATH}/Modem/0"), FakeModem(calls.clone()))
            .unwrap()
            .build()
            .await
            .expect("the fake ModemManager");
        let _logind = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name(LOGIND)
            .unwrap()
            .serve_at(LOGIND_PATH, FakeLogind(calls.clone()))
            .unwrap()
            .build()
            .await
            .expect("the fake logind");
        let on = Bus::at(bus.address.clone());
        assert_eq!(on.mm_reset("wwan0").await, ActionOutcome::Done);
        assert_eq!(
            on.mm_reset("eth0").await,
            ActionOutcome::Skipped("no ModemManager modem has the port eth0".into())
        );
        assert_eq!(on.logind_reboot().await, ActionOutcome::Done);
        assert_eq!(*calls.lock().unwrap(), vec!["Reset", "Reboot(false)"]);

        let off = Bus::at(empty.address.clone());
        for (outcome, name) in [
            (off.mm_reset("wwan0").await, MM),
            (off.logind_reboot().await, LOGIND),
            (
                off.nm_reconnect("eth0").await,
                "org.freedesktop.NetworkManager",
            ),
        ] {
            assert_eq!(
                outcome,
                ActionOutcome::Skipped(format!("{name} is not running"))
            );
        }
        let nowhere = Bus::at(format!("unix:path={}/none", empty_dir.path().display()));
        assert!(matches!(
            nowhere.logind_reboot().await,
            ActionOutcome::Skipped(_)
        ));
    });
    assert_eq!(calls.lock().unwrap().len(), 2, "nothing more was called");
}

/// A one-request HTTP server on loopback answering `status`; returns its address and the
/// request it got.
async fn fake_supervisor(status: &'static str) -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        // Head and the small JSON body.
        while !String::from_utf8_lossy(&got).contains("}") {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        s.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&got).into_owned()
    });
    (format!("http://{addr}"), served)
}

#[test]
fn the_balena_supervisor_is_asked_to_reboot_with_its_api_key() {
    runtime().block_on(async {
        let (address, served) = fake_supervisor("202 Accepted").await;
        let supervisor = BalenaSupervisor {
            address,
            api_key: "s3cr3t".into(),
        };
        assert_eq!(supervisor.reboot().await, ActionOutcome::Done);
        let request = served.await.unwrap();
        assert!(
            request.starts_with("POST /v1/reboot?apikey=s3cr3t HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.ends_with("{\"force\":false}"), "{request}");

        let (address, _) = fake_supervisor("401 Unauthorized").await;
        let refused = BalenaSupervisor {
            address,
            api_key: "wrong".into(),
        };
        assert_eq!(
            refused.reboot().await,
            ActionOutcome::Failed("the balena supervisor answered 401".into())
        );
    });
}

/// The active connection's D-Bus path on `iface` (a new one after every activation).
fn active_path(nm: &NetworkManagerInNetns, iface: &str) -> Option<String> {
    let out = nm
        .nmcli(&[
            "-t",
            "-f",
            "DEVICE,ACTIVE-PATH",
            "connection",
            "show",
            "--active",
        ])
        .ok()?;
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{iface}:")).map(str::to_string))
}

fn connected(nm: &NetworkManagerInNetns, iface: &str) -> bool {
    nm.nmcli(&["-t", "-f", "DEVICE,STATE", "device"])
        .is_ok_and(|o| o.lines().any(|l| l == format!("{iface}:connected")))
}

#[test]
fn reconnect_reactivates_the_interfaces_connection_in_a_real_networkmanager() {
    test_setup!();
    if !have_programs(
        "recovery_dbus::reconnect",
        &["dbus-daemon", "NetworkManager", "nmcli"],
    ) {
        return;
    }
    let device = Netns::new("nmdev").unwrap();
    let isp = Netns::new("nmisp").unwrap();
    veth((&device, "eth0"), (&isp, "down0")).unwrap();
    isp.ip(&["addr", "add", "192.0.2.1/30", "dev", "down0"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bus = PrivateBus::start(&dir.path().join("bus")).expect("dbus-daemon");
    let keyfile = "[connection]\nid=wired\ntype=ethernet\ninterface-name=eth0\n\n\
                   [ipv4]\nmethod=manual\naddress1=192.0.2.2/30,192.0.2.1\n\n[ipv6]\nmethod=ignore\n";
    let nm = NetworkManagerInNetns::start(
        &device,
        &bus,
        &dir.path().join("nm"),
        &["eth0"],
        &[("wired.nmconnection", keyfile)],
    )
    .expect("NetworkManager in the namespace");
    let before = wait_for(Duration::from_secs(30), || {
        connected(&nm, "eth0")
            .then(|| active_path(&nm, "eth0"))
            .flatten()
    });
    let before = before.unwrap_or_else(|| panic!("eth0 never connected; NM log:\n{}", nm.log()));

    let bus_at = Bus::at(bus.address.clone());
    let outcome = runtime().block_on(bus_at.nm_reconnect("eth0"));
    assert_eq!(outcome, ActionOutcome::Done, "NM log:\n{}", nm.log());
    let after = wait_for(Duration::from_secs(30), || {
        let path = active_path(&nm, "eth0")?;
        (path != before && connected(&nm, "eth0")).then_some(path)
    });
    assert!(
        after.is_some(),
        "eth0 was not re-activated (still {before}); NM log:\n{}",
        nm.log()
    );
    assert_eq!(
        runtime().block_on(bus_at.nm_reconnect("eth9")),
        ActionOutcome::Skipped("NetworkManager does not know eth9".into())
    );
}
