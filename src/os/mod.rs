//! Real adapters of the engine's ports: netlink links and routes, router solicitations
//! (`ndisc`), sysctls, modem control devices in sysfs (`sysfs`), the HTTP(S) probe with per-interface DNS, dispatcher scripts, the state
//! files under `state_dir`, passive health's traffic sampling (link counters and TCP sockets
//! via sock_diag), flow resets (sock_diag and ctnetlink), the recovery ladder's actions
//! (netlink, D-Bus, the balena supervisor, a command).

pub mod ct_sample;
pub mod flows;
pub mod ndisc;
pub mod netlink;
pub mod persist;
pub mod probe;
pub mod recovery;
pub mod scripts;
pub mod sockdiag;
pub mod sysctl;
pub mod sysfs;
pub mod traffic;
