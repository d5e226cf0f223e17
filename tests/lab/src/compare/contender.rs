//! The two daemons of the comparison, started alike in a world: the same keyfiles (static
//! addresses, `eth0` metric 100, `wlan0` metric 600), the same check (plain HTTP to the check
//! server's IP literal every `interval` seconds, 204 meaning online), each otherwise with its
//! own defaults. Also [`ByteCounter`], the nftables counters that weigh the checks on the wire.

use std::path::{Path, PathBuf};
use std::time::Duration;

use netfailover_actors::model::Connectivity;

use super::{write, CompareOptions, BACKUP, PRIMARY};
use crate::daemon::{query_status, DaemonProcess};
use crate::dbus::{NetworkManagerInNetns, PrivateBus};
use crate::world::{LabError, World, CHECK_ADDR, CHECK_HOST};

/// The check URI both daemons use: an IP literal, so no DNS in the cost of a check.
fn check_uri() -> String {
    format!("http://{CHECK_ADDR}/connectivity-check")
}

/// Which daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    NetworkManager,
    Netfailover,
}

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::NetworkManager => "NetworkManager",
            Contender::Netfailover => "netfailover",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Contender::NetworkManager => "nm",
            Contender::Netfailover => "netfailover",
        }
    }
}

/// The keyfile of one uplink, the same text for both daemons (NetworkManager wants the
/// `.nmconnection` name, netfailover reads either).
fn keyfile(world: &World, iface: &str) -> Result<String, LabError> {
    let u = world.uplink(iface)?;
    Ok(format!(
        "[connection]\nid=lab-{iface}\ntype=ethernet\ninterface-name={iface}\n\n\
         [ipv4]\nmethod=manual\naddress1={}/30,{}\nroute-metric={}\n\n[ipv6]\nmethod=ignore\n",
        u.device_addr,
        u.gateway,
        // Ethernet's and Wi-Fi's balenaOS metrics: the same order as the lab's other worlds.
        if iface == PRIMARY { 100 } else { 600 },
    ))
}

/// Points the check of the boot folder's `config` at [`check_uri`] instead of the lab's check
/// host name.
fn use_check_uri(config: &Path) -> Result<(), LabError> {
    let text = std::fs::read_to_string(config).map_err(|error| LabError::Write {
        path: config.to_path_buf(),
        error,
    })?;
    write(
        config,
        &text.replace(
            &format!("http://{CHECK_HOST}/connectivity-check"),
            &check_uri(),
        ),
    )
}

/// A started daemon; stopped (and its bus with it) on drop.
pub enum Running {
    Nm {
        // Field order: NetworkManager stops before its bus.
        nm: NetworkManagerInNetns,
        _bus: PrivateBus,
    },
    Netfailover {
        daemon: DaemonProcess,
        socket: PathBuf,
        log: PathBuf,
        runtime: tokio::runtime::Runtime,
    },
}

impl Running {
    /// Starts `contender` in `world`, its files under `dir`.
    pub fn start(
        contender: Contender,
        world: &World,
        dir: &Path,
        options: &CompareOptions,
    ) -> Result<Self, LabError> {
        let keyfiles = [
            (PRIMARY, keyfile(world, PRIMARY)?),
            (BACKUP, keyfile(world, BACKUP)?),
        ];
        match contender {
            Contender::NetworkManager => Self::start_nm(world, dir, options, &keyfiles),
            Contender::Netfailover => Self::start_netfailover(world, dir, options, &keyfiles),
        }
    }

    /// NetworkManager on its own private bus, the keyfiles as `.nmconnection` profiles and
    /// the shared check as its `[connectivity]` section.
    fn start_nm(
        world: &World,
        dir: &Path,
        options: &CompareOptions,
        keyfiles: &[(&str, String)],
    ) -> Result<Self, LabError> {
        let bus = PrivateBus::start(&dir.join("bus"))
            .map_err(|e| LabError::Compare(format!("starting dbus-daemon: {e}")))?;
        let names: Vec<String> = keyfiles
            .iter()
            .map(|(iface, _)| format!("lab-{iface}.nmconnection"))
            .collect();
        let files: Vec<(&str, &str)> = names
            .iter()
            .zip(keyfiles)
            .map(|(name, (_, text))| (name.as_str(), text.as_str()))
            .collect();
        // An empty `response` means "204 or an empty body" (NetworkManager.conf(5)).
        let connectivity = format!(
            "enabled=true\nuri={}\ninterval={}\nresponse=\n",
            check_uri(),
            options.interval
        );
        let nm = NetworkManagerInNetns::start_with(
            &world.device,
            &bus,
            &dir.join("nm"),
            &[PRIMARY, BACKUP],
            &files,
            &connectivity,
        )
        .map_err(|e| LabError::Compare(format!("starting NetworkManager: {e}")))?;
        Ok(Running::Nm { nm, _bus: bus })
    }

    /// netfailover from the world's boot folder, with the keyfiles, the shared check and no
    /// dispatcher script, plus the runtime its `status` queries run on.
    fn start_netfailover(
        world: &World,
        dir: &Path,
        options: &CompareOptions,
        keyfiles: &[(&str, String)],
    ) -> Result<Self, LabError> {
        let boot = dir.join("boot");
        let socket = dir.join("sock");
        let log = dir.join("daemon.log");
        world.write_boot_dir(&boot, "", &dir.join("state"), &dir.join("scripts.log"))?;
        for (iface, text) in keyfiles {
            write(
                &boot.join("system-connections").join(format!("lab-{iface}")),
                text,
            )?;
        }
        // NetworkManager runs no dispatcher scripts here; neither does netfailover.
        let _ = std::fs::remove_file(boot.join("dispatcher.d").join("50-log"));
        use_check_uri(&boot.join("config.json"))?;
        world.set_interval(&boot, options.interval)?;
        let daemon = DaemonProcess::start(&options.daemon_exe, world, &boot, &socket, &log, &[])?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::Compare(format!("status runtime: {e}")))?;
        Ok(Running::Netfailover {
            daemon,
            socket,
            log,
            runtime,
        })
    }

    /// The daemon's process id (for `/proc/PID/stat` and `status`).
    pub fn pid(&self) -> u32 {
        match self {
            Running::Nm { nm, .. } => nm.id(),
            Running::Netfailover { daemon, .. } => daemon.id(),
        }
    }

    /// Both uplinks connected and judged fully online by the daemon itself.
    pub fn all_full(&mut self) -> bool {
        match self {
            Running::Nm { nm, .. } => [PRIMARY, BACKUP].iter().all(|iface| {
                nm.nmcli(&[
                    "-t",
                    "-f",
                    "GENERAL.STATE,GENERAL.IP4-CONNECTIVITY",
                    "device",
                    "show",
                    iface,
                ])
                .is_ok_and(|out| out.contains("(connected)") && out.contains("(full)"))
            }),
            Running::Netfailover {
                socket, runtime, ..
            } => query_status(runtime, socket).is_some_and(|s| {
                s.interfaces.len() == 2
                    && s.interfaces
                        .iter()
                        .all(|i| i.connectivity == Connectivity::Full)
            }),
        }
    }

    /// An error (with the log's tail) if the daemon has exited.
    pub fn check_alive(&mut self) -> Result<(), LabError> {
        let exited = match self {
            Running::Nm { nm, .. } => nm.exited(),
            Running::Netfailover { daemon, .. } => daemon.exited(),
        };
        match exited {
            None => Ok(()),
            Some(status) => Err(LabError::Compare(format!(
                "the daemon exited ({status}); its log:\n{}",
                self.log_tail()
            ))),
        }
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let log = match self {
            Running::Nm { nm, .. } => nm.log(),
            Running::Netfailover { log, .. } => std::fs::read_to_string(log).unwrap_or_default(),
        };
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the daemon (netfailover: SIGTERM, then SIGKILL; NetworkManager and its bus on drop).
    pub fn stop(self) {
        if let Running::Netfailover { mut daemon, .. } = self {
            daemon.stop(Duration::from_secs(5));
        }
    }
}

/// nftables counters in the Internet namespace on the check server's HTTP traffic, both
/// directions (IP packets: headers, handshake and teardown included).
pub struct ByteCounter {
    internet: String,
}

/// The nftables table the counters live in (inside the world's Internet namespace only).
const TABLE: &str = "nfcompare";

impl ByteCounter {
    pub fn install(world: &World) -> Result<Self, LabError> {
        let ns = &world.internet;
        let addr = CHECK_ADDR.to_string();
        ns.exec(&["nft", "add", "table", "inet", TABLE])?;
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            ns.exec(&[
                "nft",
                "add",
                "chain",
                "inet",
                TABLE,
                chain,
                &format!("{{ type filter hook {hook} priority 0 ; }}"),
            ])?;
        }
        ns.exec(&[
            "nft", "add", "rule", "inet", TABLE, "in", "ip", "daddr", &addr, "tcp", "dport", "80",
            "counter",
        ])?;
        ns.exec(&[
            "nft", "add", "rule", "inet", TABLE, "out", "ip", "saddr", &addr, "tcp", "sport", "80",
            "counter",
        ])?;
        Ok(Self {
            internet: ns.name().to_string(),
        })
    }

    /// Bytes counted so far, both directions.
    pub fn bytes(&self) -> Result<u64, LabError> {
        let json = crate::netns::run(&[
            "ip",
            "netns",
            "exec",
            &self.internet,
            "nft",
            "-j",
            "list",
            "table",
            "inet",
            TABLE,
        ])?;
        let value: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| LabError::Compare(format!("reading the nftables counters: {e}")))?;
        Ok(counter_bytes(&value))
    }
}

/// The sum of every `"counter": {"bytes": …}` in `nft -j` output.
fn counter_bytes(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, v)| match (key.as_str(), v.get("bytes")) {
                ("counter", Some(bytes)) => bytes.as_u64().unwrap_or(0),
                _ => counter_bytes(v),
            })
            .sum(),
        serde_json::Value::Array(items) => items.iter().map(counter_bytes).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::counter_bytes;

    #[test]
    fn counters_of_nft_json_are_summed() {
        let json = serde_json::json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "nfcompare"}},
            {"rule": {"chain": "in", "expr": [
                {"match": {"op": "==", "left": {}, "right": "203.0.113.10"}},
                {"counter": {"packets": 6, "bytes": 400}}]}},
            {"rule": {"chain": "out", "expr": [{"counter": {"packets": 4, "bytes": 344}}]}}
        ]});
        assert_eq!(counter_bytes(&json), 744);
    }
}
