//! The lab's throw-away world: a device namespace with three uplinks (`eth0`, `wlan0`, `wwan0`,
//! veths), one ISP namespace per uplink, and an "Internet" namespace that holds the check
//! server and the DNS server; plus the fault primitives the timeline plays and the boot
//! directory the daemon reads. Used by `netfailover-lab` and by the end-to-end tests.
//!
//! ```text
//!  device ns                 ISP ns (×3)                       Internet ns
//!  eth0  192.0.2.2/30  ── down0 192.0.2.1/30    up0 198.51.100.1/30 ── isp1 198.51.100.2/30
//!  wlan0 192.0.2.6/30  ── down0 192.0.2.5/30    up0 198.51.100.5/30 ── isp2 198.51.100.6/30
//!  wwan0 192.0.2.10/30 ── down0 192.0.2.9/30    up0 198.51.100.9/30 ── isp3 198.51.100.10/30
//!                                                                  lo: 203.0.113.10 (check)
//!                                                                      203.0.113.53 (DNS)
//! ```
//!
//! No NAT: the Internet namespace routes each device subnet back through its ISP, so the check
//! server sees which uplink a request came through. [`World::add_ipv6`] adds IPv6 on every
//! uplink the normal way, from router advertisements (one router per ISP, `src/lab/router.rs`):
//! device `2001:db8:N::2/64`, ISP `2001:db8:N::1`, Internet echo address [`ECHO6`]. Every namespace is deleted when the world
//! is dropped ([`Netns`] does it), also on error paths.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::internet::{Behaviour, CheckServer, DnsResponder, InternetError};
use super::netns::{self, Netns, NetnsError};
use super::router::Advertiser;

/// The check server's address in the Internet namespace.
pub const CHECK_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The DNS server's address in the Internet namespace.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 53);
/// The check host name (`.test` is reserved for testing, RFC 2606), answered by the lab DNS.
pub const CHECK_HOST: &str = "check.netfailover.test";
/// An IPv6 echo address in the Internet namespace (after [`World::add_ipv6`]).
pub const ECHO6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 7);
/// Where the captive portal redirects to.
pub const PORTAL_LOCATION: &str = "http://portal.netfailover.test/login";

/// Lab errors.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "netfailover-lab needs root: it creates network namespaces, veth pairs and routes \
         (CAP_SYS_ADMIN and CAP_NET_ADMIN), and runs the daemon inside them. \
         Run it again with sudo."
    )]
    NotRoot,
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("writing {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("uplink {iface} is not part of the lab")]
    NoSuchUplink { iface: String },
    #[error("starting the daemon: {error}")]
    Daemon { error: std::io::Error },
    #[error("the daemon did not become ready within {secs} s; its log:\n{log}")]
    DaemonNotReady { secs: u64, log: String },
    #[error("unknown scenario {name:?}; known: {known}")]
    UnknownScenario { name: String, known: String },
    #[error("the lab's Internet servers: {0}")]
    Internet(#[from] InternetError),
    #[error("interrupted")]
    Interrupted,
    #[error("comparison with NetworkManager: {0}")]
    Compare(String),
}

/// The kind of an uplink, which sets its keyfile type and metric (balenaOS defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UplinkKind {
    Ethernet,
    Wifi,
    Cellular,
}

impl UplinkKind {
    fn keyfile_type(self) -> &'static str {
        match self {
            UplinkKind::Ethernet => "ethernet",
            UplinkKind::Wifi => "wifi",
            UplinkKind::Cellular => "gsm",
        }
    }

    pub fn metric(self) -> u32 {
        match self {
            UplinkKind::Ethernet => 100,
            UplinkKind::Wifi => 600,
            UplinkKind::Cellular => 700,
        }
    }
}

/// One uplink: the device's interface, its ISP namespace and the addresses on the way.
#[derive(Debug)]
pub struct Uplink {
    pub iface: &'static str,
    pub kind: UplinkKind,
    pub isp: Netns,
    /// The device's address on this uplink (a /30 with `gateway`).
    pub device_addr: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// The /30 the device side lives in (what the Internet sees as the source).
    pub device_net: Ipv4Addr,
}

/// The check server and DNS responder of the Internet namespace.
pub struct Servers {
    pub check: CheckServer,
    pub dns: DnsResponder,
}

/// The whole world. Field order matters: servers (threads inside the namespaces) stop first,
/// then the namespaces go (drop order is declaration order).
pub struct World {
    /// Captive portals running in an ISP namespace, by uplink.
    portals: Mutex<Vec<(String, CheckServer)>>,
    pub servers: Option<Servers>,
    /// IPv6 routers, one per ISP, after [`World::add_ipv6`]; the keyfiles then say
    /// `[ipv6] method=auto`.
    pub routers: Vec<Advertiser>,
    pub uplinks: Vec<Uplink>,
    pub device: Netns,
    pub internet: Netns,
}

/// Name of the Internet-side interface towards ISP `n` (1-based).
fn inet_side(n: usize) -> String {
    format!("isp{n}")
}

impl World {
    /// Builds the namespaces, links and routes of all three uplinks. Needs root.
    pub fn build() -> Result<Self, LabError> {
        Self::build_with(3)
    }

    /// [`World::build`] with only the first `count` (1..=3) uplinks of `eth0`, `wlan0`,
    /// `wwan0` (the NetworkManager comparison uses two).
    pub fn build_with(count: usize) -> Result<Self, LabError> {
        if !netns::is_root() {
            return Err(LabError::NotRoot);
        }
        let device = Netns::new("dev")?;
        let internet = Netns::new("inet")?;
        // Device interfaces get ifindexes that differ from their peers' (see `pad_ifindex`).
        device.pad_ifindex(4)?;
        for addr in [CHECK_ADDR, DNS_ADDR] {
            internet.ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
        }
        let plan = [
            ("eth0", UplinkKind::Ethernet),
            ("wlan0", UplinkKind::Wifi),
            ("wwan0", UplinkKind::Cellular),
        ];
        let mut uplinks = Vec::new();
        for (n, (iface, kind)) in plan.into_iter().take(count.clamp(1, 3)).enumerate() {
            let base = 4 * n as u8;
            let isp = Netns::new(&format!("isp{}", n + 1))?;
            isp.sysctl("net.ipv4.ip_forward", "1")?;
            let device_net = Ipv4Addr::new(192, 0, 2, base);
            let gateway = Ipv4Addr::new(192, 0, 2, base + 1);
            let device_addr = Ipv4Addr::new(192, 0, 2, base + 2);
            let isp_up = Ipv4Addr::new(198, 51, 100, base + 1);
            let inet_down = Ipv4Addr::new(198, 51, 100, base + 2);
            let inet_if = inet_side(n + 1);

            netns::veth((&device, iface), (&isp, "down0"))?;
            device.ip(&["addr", "add", &format!("{device_addr}/30"), "dev", iface])?;
            isp.ip(&["addr", "add", &format!("{gateway}/30"), "dev", "down0"])?;

            netns::veth((&isp, "up0"), (&internet, &inet_if))?;
            isp.ip(&["addr", "add", &format!("{isp_up}/30"), "dev", "up0"])?;
            internet.ip(&["addr", "add", &format!("{inet_down}/30"), "dev", &inet_if])?;
            isp.ip(&["route", "add", "default", "via", &inet_down.to_string()])?;
            internet.ip(&[
                "route",
                "add",
                &format!("{device_net}/30"),
                "via",
                &isp_up.to_string(),
            ])?;
            uplinks.push(Uplink {
                iface,
                kind,
                isp,
                device_addr,
                gateway,
                device_net,
            });
        }
        Ok(Self {
            portals: Mutex::new(Vec::new()),
            servers: None,
            routers: Vec::new(),
            uplinks,
            device,
            internet,
        })
    }

    /// Starts the check server (HTTP on [`CHECK_ADDR`]:80, answering 204) and the DNS
    /// responder ([`DNS_ADDR`]:53, [`CHECK_HOST`] → [`CHECK_ADDR`], TTL 0 so that no cache
    /// hides a DNS fault) in the Internet namespace.
    pub fn start_servers(&mut self) -> Result<(), LabError> {
        let check = CheckServer::start(&self.internet, SocketAddr::from((CHECK_ADDR, 80)), None)?;
        let dns = DnsResponder::start(
            &self.internet,
            SocketAddr::from((DNS_ADDR, 53)),
            &[(CHECK_HOST, CHECK_ADDR.into())],
            0,
        )?;
        self.servers = Some(Servers { check, dns });
        Ok(())
    }

    /// IPv6 on every uplink, from router advertisements: the device gets `2001:db8:N::2/64`
    /// (static, no prefix in the advertisements) and learns its default route from ISP `N`'s
    /// router (`2001:db8:N::1`, advertising on `down0`), whose upstream is `2001:db8:ff:N::/64`
    /// towards the Internet, which routes `2001:db8:N::/64` back through ISP `N` and holds
    /// [`ECHO6`] on `lo`. The keyfiles written after this say `[ipv6] method=auto`.
    pub fn add_ipv6(&mut self) -> Result<(), LabError> {
        self.internet
            .ip(&["addr", "add", &format!("{ECHO6}/128"), "dev", "lo"])?;
        self.internet.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        for (n, u) in self.uplinks.iter().enumerate() {
            let (net, up) = (format!("2001:db8:{n}::"), format!("2001:db8:ff:{n}::"));
            let inet_if = inet_side(n + 1);
            self.device.ip(&[
                "addr",
                "add",
                &format!("{net}2/64"),
                "dev",
                u.iface,
                "nodad",
            ])?;
            // A router joins all-routers (ff02::2) and hears solicitations; its link-local
            // address (the advertisements' source) survives a pulled cable.
            u.isp.sysctl("net.ipv6.conf.all.forwarding", "1")?;
            u.isp.sysctl("net.ipv6.conf.down0.keep_addr_on_down", "1")?;
            u.isp.ip(&[
                "addr",
                "add",
                &format!("{net}1/64"),
                "dev",
                "down0",
                "nodad",
            ])?;
            u.isp
                .ip(&["addr", "add", &format!("{up}1/64"), "dev", "up0", "nodad"])?;
            self.internet.ip(&[
                "addr",
                "add",
                &format!("{up}2/64"),
                "dev",
                &inet_if,
                "nodad",
            ])?;
            u.isp
                .ip(&["-6", "route", "add", "default", "via", &format!("{up}2")])?;
            self.internet.ip(&[
                "-6",
                "route",
                "add",
                &format!("{net}/64"),
                "via",
                &format!("{up}1"),
            ])?;
            self.routers.push(Advertiser::start(&u.isp, "down0")?);
        }
        Ok(())
    }

    pub fn uplink(&self, iface: &str) -> Result<&Uplink, LabError> {
        self.uplinks
            .iter()
            .find(|u| u.iface == iface)
            .ok_or_else(|| LabError::NoSuchUplink {
                iface: iface.to_string(),
            })
    }

    // -----------------------------------------------------------------------------------------
    // Faults
    // -----------------------------------------------------------------------------------------

    /// Pulls the cable: the ISP's end goes down, so the device's interface loses carrier.
    pub fn pull_cable(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["link", "set", "down0", "down"])?;
        Ok(())
    }

    pub fn plug_cable(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["link", "set", "down0", "up"])?;
        Ok(())
    }

    /// The ISP loses its upstream: everything towards the Internet's 203.0.113.0/24 is
    /// blackholed in the ISP (the link to the device stays up).
    pub fn blackhole_upstream(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["route", "replace", "blackhole", "203.0.113.0/24"])?;
        Ok(())
    }

    pub fn restore_upstream(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["route", "del", "blackhole", "203.0.113.0/24"])?;
        Ok(())
    }

    /// Every ISP drops packets from its customer side whose source is not its customer's
    /// (ingress filtering, BCP 38, as real ISPs do or their NAT implies): a device that sends
    /// through the backup with the primary's source address gets no answer, instead of being
    /// answered over the primary's path (the lab's Internet routes each device subnet back
    /// through its own ISP). Strict reverse-path filtering on the ISP's `down0`.
    pub fn filter_foreign_sources(&self) -> Result<(), LabError> {
        for u in &self.uplinks {
            // The effective mode is the larger of `all` and the interface's: both strict.
            u.isp.sysctl("net.ipv4.conf.all.rp_filter", "1")?;
            u.isp.sysctl("net.ipv4.conf.down0.rp_filter", "1")?;
        }
        Ok(())
    }

    /// The ISP loses its upstream and says so (a "noisy" loss): its router answers ICMP
    /// "network unreachable" at once for the Internet's 203.0.113.0/24 (a policy rule of type
    /// `unreachable`), so the device's checks fail with ENETUNREACH. The link stays up.
    pub fn unreachable_upstream(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["rule", "add", "to", "203.0.113.0/24", "unreachable"])?;
        Ok(())
    }

    pub fn restore_reachable_upstream(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["rule", "del", "to", "203.0.113.0/24", "unreachable"])?;
        Ok(())
    }

    /// Only the DNS server is unreachable through this uplink (the balena 3016 case: HTTP
    /// would work, name resolution does not).
    pub fn kill_dns(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?.isp.ip(&[
            "route",
            "replace",
            "blackhole",
            &format!("{DNS_ADDR}/32"),
        ])?;
        Ok(())
    }

    pub fn restore_dns(&self, iface: &str) -> Result<(), LabError> {
        self.uplink(iface)?
            .isp
            .ip(&["route", "del", "blackhole", &format!("{DNS_ADDR}/32")])?;
        Ok(())
    }

    /// A captive portal on this uplink's path: the ISP answers for the check server's address
    /// itself (as a portal intercepting traffic does) with a 302 to [`PORTAL_LOCATION`]. DNS
    /// and everything else still reach the Internet.
    pub fn portal_on(&self, iface: &str) -> Result<(), LabError> {
        let u = self.uplink(iface)?;
        u.isp
            .ip(&["addr", "add", &format!("{CHECK_ADDR}/32"), "dev", "lo"])?;
        let server = match CheckServer::start(&u.isp, SocketAddr::from((CHECK_ADDR, 80)), None) {
            Ok(s) => s,
            Err(e) => {
                let _ = u
                    .isp
                    .ip(&["addr", "del", &format!("{CHECK_ADDR}/32"), "dev", "lo"]);
                return Err(e.into());
            }
        };
        server.set(Behaviour::Redirect(PORTAL_LOCATION.into()));
        self.portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((iface.to_string(), server));
        Ok(())
    }

    /// Lifts the captive portal of this uplink.
    pub fn portal_off(&self, iface: &str) -> Result<(), LabError> {
        let u = self.uplink(iface)?;
        self.portals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| i != iface);
        u.isp
            .ip(&["addr", "del", &format!("{CHECK_ADDR}/32"), "dev", "lo"])?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Observation
    // -----------------------------------------------------------------------------------------

    /// The interface the device's kernel would use to reach the check server now
    /// (`ip route get`), or `None` when it has no route.
    pub fn route_to_check_server(&self) -> Option<String> {
        self.route_dev(CHECK_ADDR)
    }

    /// The interface the device's kernel would use to reach `to` now (`ip route get`: the
    /// route actually used, whatever its flags), or `None` when it has no route.
    pub fn route_dev(&self, to: Ipv4Addr) -> Option<String> {
        let out = self.device.ip(&["route", "get", &to.to_string()]).ok()?;
        let mut words = out.split_whitespace();
        while let Some(w) = words.next() {
            if w == "dev" {
                return words.next().map(str::to_string);
            }
        }
        None
    }

    /// Rewrites the check interval in `dir/config.json` (written by [`World::write_boot_dir`]).
    pub fn set_interval(&self, dir: &Path, secs: u32) -> Result<(), LabError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|error| LabError::Write {
            path: path.clone(),
            error,
        })?;
        let text = text.replace("\"interval\": \"2\"", &format!("\"interval\": \"{secs}\""));
        std::fs::write(&path, text).map_err(|error| LabError::Write { path, error })
    }

    /// The device's IPv4 default routes as `ip -n <dev> route show default` prints them.
    pub fn default_routes(&self) -> Result<String, LabError> {
        Ok(self.device.ip(&["-4", "route", "show", "default"])?)
    }

    // -----------------------------------------------------------------------------------------
    // Boot directory
    // -----------------------------------------------------------------------------------------

    /// Writes a balenaOS-like boot directory for the device: config.json (check URI on the lab
    /// server, DNS on the lab server), one keyfile per uplink with balenaOS's metrics, a
    /// dispatcher script that appends every event to `script_log`, and `netfailover.toml`
    /// with `settings`.
    pub fn write_boot_dir(
        &self,
        dir: &Path,
        settings: &str,
        state_dir: &Path,
        script_log: &Path,
    ) -> Result<(), LabError> {
        let write = |path: PathBuf, text: &str| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|error| LabError::Write {
                    path: parent.to_path_buf(),
                    error,
                })?;
            }
            std::fs::write(&path, text).map_err(|error| LabError::Write { path, error })
        };
        write(
            dir.join("config.json"),
            &format!(
                "{{\n  \"apiEndpoint\": \"http://{CHECK_HOST}\",\n  \"dnsServers\": \"{DNS_ADDR}\",\n  \
                 \"os\": {{\n    \"network\": {{\n      \"connectivity\": {{\n        \
                 \"uri\": \"http://{CHECK_HOST}/connectivity-check\",\n        \"interval\": \"2\"\n      }}\n    }}\n  }}\n}}\n"
            ),
        )?;
        for u in &self.uplinks {
            let mut keyfile = String::new();
            let _ =
                write!(
                keyfile,
                "[connection]\nid=lab-{iface}\ntype={kind}\ninterface-name={iface}\n\n{section}\
                 [ipv4]\nmethod=manual\naddress1={addr}/30,{gw}\nroute-metric={metric}\n\n\
                 [ipv6]\nmethod={v6}\n",
                iface = u.iface,
                kind = u.kind.keyfile_type(),
                // NetworkManager (and so check-config) refuses a Wi-Fi profile without an SSID.
                section = if u.kind == UplinkKind::Wifi { "[wifi]\nssid=lab\n\n" } else { "" },
                addr = u.device_addr,
                gw = u.gateway,
                metric = u.kind.metric(),
                v6 = if self.routers.is_empty() { "ignore" } else { "auto" },
            );
            write(
                dir.join("system-connections")
                    .join(format!("lab-{}", u.iface)),
                &keyfile,
            )?;
        }
        let script = dir.join("dispatcher.d").join("50-log");
        write(
            script.clone(),
            &format!(
                "#!/bin/sh\n# Appends every dispatcher event to the lab's script log.\n\
                 echo \"$(date +%s.%N) $NETFAILOVER_EVENT_ID $2 ${{1:--}} $CONNECTIVITY_STATE\" >> '{}'\n",
                script_log.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(
            |error| LabError::Write {
                path: script.clone(),
                error,
            },
        )?;
        // `settings` may name its own persist_dir (the wedge scenario keeps its reboot times).
        let top = if settings.contains("persist_dir") {
            format!("state_dir = \"{}\"\n", state_dir.display())
        } else {
            dir_settings(state_dir)
        };
        write(dir.join("netfailover.toml"), &format!("{top}{settings}"))?;
        Ok(())
    }
}

/// The top of a lab `netfailover.toml`: `state_dir`, and `persist_dir` beside it (`persist`), so
/// no lab or test daemon writes the host's `/var/lib/netfailover` (the default).
pub fn dir_settings(state_dir: &Path) -> String {
    format!(
        "state_dir = \"{}\"\npersist_dir = \"{}\"\n",
        state_dir.display(),
        state_dir.with_file_name("persist").display()
    )
}

/// Check settings short enough for a lab run under a minute (docs/semantics.md §3 bounds: leaving FULL
/// within `interval + 2 × timeout + 1 s` = 5 s, returning within `min(recheck_max, interval)
/// + 2 × timeout + 1 s` = 5 s).
pub const FAST_SETTINGS: &str = "\
[check]
down_count = 2
up_count = 2
connect_timeout = 1
timeout = 1
recheck_max = 2
";
