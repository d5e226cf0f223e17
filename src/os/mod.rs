//! Real adapters of the engine's ports: netlink links and routes, flow resets (sock_diag and
//! ctnetlink), sysctls, the HTTP(S) probe
//! with per-interface DNS, dispatcher scripts, and the state files under `state_dir`.

pub mod flows;
pub mod netlink;
pub mod persist;
pub mod probe;
pub mod scripts;
pub mod sysctl;
