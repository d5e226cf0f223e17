//! A DHCP server for tests: `dnsmasq` (Debian `dnsmasq-base`) serving one lease on one link of a
//! namespace (an ISP's device-facing end), for a DHCP client in the device namespace
//! (NetworkManager with `method=auto`, balenaOS's configuration). No DNS (`--port=0`), its lease
//! and pid files and its log in the test's directory, killed on drop, also when the test fails.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::netns::Netns;

/// See the module doc.
pub struct Dnsmasq {
    child: Child,
    log: PathBuf,
}

impl Dnsmasq {
    /// Serves `lease` (netmask `mask`, lease time 120 s: renewed about every minute) with
    /// `router` as its gateway on `iface` of `netns`; files go to `dir`. Starts in the
    /// foreground (`--no-daemon`) as this process's child; answers at once (`--no-ping`).
    pub fn start(
        netns: &Netns,
        iface: &str,
        lease: Ipv4Addr,
        mask: Ipv4Addr,
        router: Ipv4Addr,
        dir: &Path,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("dnsmasq.log");
        let file = |name: &str, file: &str| format!("--{name}={}", dir.join(file).display());
        let child = Command::new("ip")
            .args(["netns", "exec", netns.name(), "dnsmasq", "--no-daemon"])
            .args(["--conf-file=/dev/null", "--port=0", "--user=root"])
            .arg(format!("--interface={iface}"))
            .args(["--bind-interfaces", "--no-ping", "--log-dhcp"])
            .arg(format!("--dhcp-range={lease},{lease},{mask},120s"))
            .arg(format!("--dhcp-option=option:router,{router}"))
            .arg(file("dhcp-leasefile", "leases"))
            .arg(file("pid-file", "dnsmasq.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self { child, log })
    }

    /// What it logged (every DHCP exchange, `--log-dhcp`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
