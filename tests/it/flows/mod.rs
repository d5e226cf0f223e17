//! Flow resets (docs/semantics.md §9.8) on the real kernel: the adapter alone
//! (`kernel.rs`), and the daemon in the lab world with applications that feel the failover
//! (`daemon.rs`: TCP connections of the device; `container.rs`: a NATed container's UDP flow;
//! `ipv6.rs`: an IPv6 connection with the default routes from router advertisements).

mod container;
mod daemon;
mod ipv6;
mod kernel;
