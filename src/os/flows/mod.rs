//! [`NetlinkFlows`], the `ports::FlowTable` adapter: after the route in use moved off an
//! interface, destroys the local TCP sockets pinned to it (sock_diag `SOCK_DESTROY`, as
//! `ss -K`) and deletes the conntrack entries pinned to it (ctnetlink), both families. What is
//! pinned is decided by `netfailover_actors::flows::Pinned`, the rule the engine's fake uses
//! too; this module only talks to the kernel.
//!
//! Files: `wire.rs` (blocking netlink request connection: dumps, acked requests, timeouts),
//! `destroy.rs` (`SOCK_DESTROY`), `conntrack.rs` (ctnetlink dump and delete). The TCP socket
//! dump is the one passive health samples with (`os/sockdiag.rs`).
//!
//! Threads and namespaces: a reset is a burst of blocking round trips, so it runs on a thread of
//! its own, which first enters the network namespace the adapter was created in (netlink
//! sockets belong to the namespace of the thread that opens them) and drives the shared async
//! dump on a small runtime of its own; the engine's executor never blocks. Failures never abort the reset as a whole: each part reports a typed
//! `FlowFailure` (missing `CONFIG_INET_DIAG_DESTROY`, no CAP_NET_ADMIN, no ctnetlink, ...).

pub mod conntrack;
pub mod destroy;
pub mod wire;

use std::fs::File;
use std::net::IpAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use netfailover_actors::flows::{merge_addresses, Pinned};
use netfailover_actors::model::{Family, IfaceAddr};
use netfailover_actors::ports::{
    FlowFailure, FlowFailureKind, FlowResetReport, FlowScope, FlowTable,
};
use nix::ifaddrs::getifaddrs;
use nix::sched::{setns, CloneFlags};

use self::conntrack::Conntrack;
use self::destroy::{connected_states, flow_of, Destroyer};
use self::wire::WireError;
use super::sockdiag::{SockDiag, AF_INET, AF_INET6};

/// The production `FlowTable`. See the module doc.
pub struct NetlinkFlows {
    /// The network namespace of the thread that created the adapter.
    netns: Option<Arc<File>>,
}

impl Default for NetlinkFlows {
    fn default() -> Self {
        Self::new()
    }
}

impl NetlinkFlows {
    /// An adapter for the calling thread's network namespace.
    pub fn new() -> Self {
        let netns = File::open("/proc/thread-self/ns/net")
            .map_err(|e| tracing::warn!(error = %e, "cannot pin the network namespace for flow resets; they run in the process's namespace"))
            .ok()
            .map(Arc::new);
        Self { netns }
    }
}

impl FlowTable for NetlinkFlows {
    fn reset(&self, scope: FlowScope) -> BoxFuture<'static, FlowResetReport> {
        let (tx, rx) = futures::channel::oneshot::channel();
        let netns = self.netns.clone();
        let spawned = std::thread::Builder::new()
            .name("flows-reset".into())
            .spawn(move || {
                let report = match netns.map(|ns| setns(&*ns, CloneFlags::CLONE_NEWNET)) {
                    Some(Err(e)) => report_of(failure(
                        FlowFailureKind::Failed,
                        "entering the network namespace",
                        e,
                    )),
                    _ => reset_blocking(&scope),
                };
                let _ = tx.send(report);
            });
        async move {
            if let Err(e) = spawned {
                return report_of(failure(FlowFailureKind::Failed, "starting a thread", e));
            }
            rx.await.unwrap_or_else(|_| {
                report_of(failure(
                    FlowFailureKind::Failed,
                    "resetting flows",
                    "the reset thread ended without a report",
                ))
            })
        }
        .boxed()
    }
}

fn failure(kind: FlowFailureKind, what: &str, message: impl ToString) -> FlowFailure {
    FlowFailure {
        kind,
        what: what.into(),
        message: message.to_string(),
    }
}

fn report_of(f: FlowFailure) -> FlowResetReport {
    FlowResetReport {
        failures: vec![f],
        ..FlowResetReport::default()
    }
}

/// The failure kind of an errno.
fn kind_of(errno: i32) -> FlowFailureKind {
    match errno {
        libc::EOPNOTSUPP | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT => {
            FlowFailureKind::Unsupported
        }
        libc::EPERM | libc::EACCES => FlowFailureKind::NoPermission,
        _ => FlowFailureKind::Failed,
    }
}

fn errno_of(e: &WireError) -> Option<i32> {
    match e {
        WireError::Errno(n) => Some(*n),
        WireError::Io(io) => io.raw_os_error(),
        WireError::Decode(_) => None,
    }
}

fn wire_failure(what: &str, e: &WireError, hint: &str) -> FlowFailure {
    let kind = errno_of(e).map_or(FlowFailureKind::Failed, kind_of);
    let message = match kind {
        FlowFailureKind::NoPermission => format!("{e}: needs CAP_NET_ADMIN"),
        FlowFailureKind::Unsupported => format!("{e}: {hint}"),
        FlowFailureKind::Failed => e.to_string(),
    };
    failure(kind, what, message)
}

/// The interface's addresses of every family (`getifaddrs`, in the calling thread's namespace).
pub fn interface_addresses(iface: &str) -> std::io::Result<Vec<IfaceAddr>> {
    let mut out = Vec::new();
    for ifa in getifaddrs().map_err(std::io::Error::from)? {
        if ifa.interface_name != iface {
            continue;
        }
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let pair: Option<(IpAddr, u32)> = match (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            (Some(a), Some(m)) => Some((IpAddr::V4(a.ip()), m.ip().to_bits().count_ones())),
            _ => match (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                (Some(a), Some(m)) => Some((IpAddr::V6(a.ip()), m.ip().to_bits().count_ones())),
                _ => None,
            },
        };
        if let Some((addr, len)) = pair {
            out.push(IfaceAddr {
                addr,
                prefix_len: len as u8,
            });
        }
    }
    Ok(out)
}

/// The whole reset, blocking, in the calling thread's namespace.
pub fn reset_blocking(scope: &FlowScope) -> FlowResetReport {
    let mut report = FlowResetReport::default();
    let mut addresses = match interface_addresses(scope.iface.as_str()) {
        Ok(a) => a,
        // Without the current ones the remembered addresses still match (a vanished
        // interface's flows are what they are for).
        Err(e) if !scope.last_addresses.is_empty() => {
            tracing::warn!(iface = %scope.iface, error = %e, "reading the interface's addresses failed; resetting with the last ones known");
            Vec::new()
        }
        Err(e) => {
            return report_of(failure(
                FlowFailureKind::Failed,
                &format!("reading the addresses of {}", scope.iface),
                e,
            ))
        }
    };
    merge_addresses(&mut addresses, &scope.last_addresses);
    let pinned = Pinned::new(scope.family, &addresses);
    report.addresses = pinned.addresses().to_vec();
    if report.addresses.is_empty() {
        // No address of the family, now or remembered: nothing can be matched, nothing is
        // touched.
        return report;
    }
    destroy_sockets(scope, &pinned, &mut report);
    delete_conntrack(scope, &pinned, &mut report);
    report
}

fn destroy_sockets(scope: &FlowScope, pinned: &Pinned, report: &mut FlowResetReport) {
    const WHAT: &str = "destroying TCP sockets";
    const NO_DIAG: &str = "no sock_diag/inet_diag in this kernel";
    // The shared dump is async: drive it on a runtime of this (namespace-pinned) thread.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report
                .failures
                .push(failure(FlowFailureKind::Failed, WHAT, e));
            return;
        }
    };
    let opened = runtime.block_on(async { SockDiag::open() });
    let (diag, mut destroyer) = match (opened, Destroyer::open()) {
        (Ok(d), Ok(x)) => (d, x),
        (Err(e), _) => {
            report
                .failures
                .push(failure(FlowFailureKind::Failed, WHAT, e));
            return;
        }
        (_, Err(e)) => {
            report
                .failures
                .push(wire_failure(WHAT, &WireError::Io(e), NO_DIAG));
            return;
        }
    };
    // IPv4 connections of dual-stack sockets show up in the IPv6 dump, IPv4-mapped.
    let dumps: &[u8] = match scope.family {
        Family::V4 => &[AF_INET, AF_INET6],
        Family::V6 => &[AF_INET6],
    };
    let mut pinned_sockets = Vec::new();
    for family in dumps {
        match runtime.block_on(diag.dump_tcp(*family, connected_states())) {
            Ok(all) => {
                pinned_sockets.extend(all.into_iter().filter(|s| pinned.socket(&flow_of(s))))
            }
            Err(e) => report
                .failures
                .push(failure(FlowFailureKind::Failed, WHAT, e)),
        }
    }
    let total = pinned_sockets.len();
    let mut failed = 0usize;
    let mut first_error = None;
    for s in &pinned_sockets {
        match destroyer.destroy(s) {
            Ok(()) => report.sockets_destroyed += 1,
            // Closed in the meantime: nothing left to do.
            Err(WireError::Errno(libc::ENOENT)) => {}
            Err(e) => {
                let fatal = matches!(
                    errno_of(&e).map(kind_of),
                    Some(FlowFailureKind::Unsupported | FlowFailureKind::NoPermission)
                );
                failed += 1;
                first_error.get_or_insert(e);
                if fatal {
                    // The same answer for every socket: stop asking.
                    failed = total - report.sockets_destroyed as usize;
                    break;
                }
            }
        }
    }
    if let Some(e) = first_error {
        let mut f = wire_failure(
            WHAT,
            &e,
            "the kernel was built without CONFIG_INET_DIAG_DESTROY, so sockets cannot be destroyed",
        );
        f.message = format!(
            "{}; {failed} of {total} TCP sockets pinned to {} keep hanging until TCP gives up",
            f.message, scope.iface
        );
        report.failures.push(f);
    }
}

fn delete_conntrack(scope: &FlowScope, pinned: &Pinned, report: &mut FlowResetReport) {
    const WHAT: &str = "deleting conntrack entries";
    const HINT: &str = "no connection tracking netlink in this kernel (nf_conntrack_netlink)";
    let mut ct = match Conntrack::open() {
        Ok(c) => c,
        Err(e) => {
            report
                .failures
                .push(wire_failure(WHAT, &WireError::Io(e), HINT));
            return;
        }
    };
    let entries = match ct.dump(scope.family) {
        Ok(e) => e,
        Err(e) => {
            report.failures.push(wire_failure(WHAT, &e, HINT));
            return;
        }
    };
    let mut failed = 0usize;
    let mut first_error = None;
    for entry in entries
        .iter()
        .filter(|e| e.flow().is_some_and(|f| pinned.conntrack(&f)))
    {
        match ct.delete(entry) {
            Ok(()) => report.conntrack_deleted += 1,
            Err(WireError::Errno(libc::ENOENT)) => {}
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        let mut f = wire_failure(WHAT, &e, HINT);
        f.message = format!(
            "{}; {failed} entries pinned to {} kept",
            f.message, scope.iface
        );
        report.failures.push(f);
    }
}
