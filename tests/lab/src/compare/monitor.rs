//! The comparison's observer of the device's kernel, the same for both daemons: every 5 ms it
//! asks the kernel which interface it would send a packet to the check server through
//! (`RTM_GETROUTE` for that address, what `ip route get` does: the route the kernel really
//! uses, whatever its flags, `linkdown` included) and whether the watched interface still has a
//! default route in the main table (the product's own table listing,
//! `netfailover::os::netlink::NetlinkRoutes`), and keeps every change with its time. The
//! comparison then asks when a state first held after a fault ([`RouteMonitor::wait`]).
//!
//! Also here: [`CarrierSwitch`], the in-process carrier fault (the ISP end of a veth down or
//! up over netlink, so no `ip` process start is in the timed path, as in the failover bench).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::stream::TryStreamExt;
use netfailover::os::netlink::NetlinkRoutes;
use netfailover_actors::model::Family;
use netfailover_actors::ports::RouteTable;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::RouteMessageBuilder;

use crate::daemon::interrupted;
use crate::netns::{enter_named, Netns};
use crate::uplinks::run_in_netns;
use crate::world::LabError;

/// How often the monitor asks the kernel.
pub const POLL: Duration = Duration::from_millis(5);

/// What the monitor saw at one poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteState {
    /// The interface (ifindex) the kernel would use towards the target; `None`: no route.
    pub via: Option<u32>,
    /// The watched interface has an IPv4 default route in the main table.
    pub watched_default: bool,
}

/// The kernel's route choices over time, observed from a thread in the device namespace;
/// stops on drop.
pub struct RouteMonitor {
    log: Arc<Mutex<Vec<(Instant, RouteState)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RouteMonitor {
    /// Starts polling in `ns`: the route towards `target` and the default route of the
    /// interface `watched` (ifindex). Returns once the first observation is in.
    pub fn start(ns: &Netns, target: Ipv4Addr, watched: u32) -> Result<Self, LabError> {
        let log: Arc<Mutex<Vec<(Instant, RouteState)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let name = ns.name().to_string();
        let (thread_log, thread_stop) = (log.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("route-monitor".into())
            .spawn(move || {
                let runtime = match enter_named(&name)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(poll(target, watched, thread_log, thread_stop, ready_tx));
            })
            .map_err(|e| LabError::Compare(format!("route monitor thread: {e}")))?;
        let monitor = Self {
            log,
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(monitor),
            Ok(Err(e)) => Err(LabError::Compare(format!("route monitor: {e}"))),
            Err(_) => Err(LabError::Compare(
                "route monitor: no first observation within 10 s".into(),
            )),
        }
    }

    /// The latest observation.
    pub fn now(&self) -> Option<RouteState> {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .map(|(_, s)| *s)
    }

    /// How long after `since` the kernel first showed a state for which `holds` is true,
    /// waiting up to `timeout`: zero when it already held at `since`, `Ok(None)` when it never
    /// did in time. Stops early on Ctrl-C ([`LabError::Interrupted`]).
    pub fn wait(
        &self,
        since: Instant,
        timeout: Duration,
        holds: impl Fn(&RouteState) -> bool,
    ) -> Result<Option<Duration>, LabError> {
        loop {
            let found = {
                let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
                let before = log.iter().rev().find(|(at, _)| *at <= since);
                if before.is_some_and(|(_, s)| holds(s)) {
                    Some(Duration::ZERO)
                } else {
                    log.iter()
                        .find(|(at, s)| *at > since && holds(s))
                        .map(|(at, _)| *at - since)
                }
            };
            if found.is_some() {
                return Ok(found);
            }
            if since.elapsed() > timeout {
                return Ok(None);
            }
            interrupted()?;
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The polling loop: one route lookup and one table listing every [`POLL`], a log entry on
/// every change.
async fn poll(
    target: Ipv4Addr,
    watched: u32,
    log: Arc<Mutex<Vec<(Instant, RouteState)>>>,
    stop: Arc<AtomicBool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let opened = rtnetlink::new_connection().map_err(|e| e.to_string());
    let table = NetlinkRoutes::new().map_err(|e| e.to_string());
    let ((connection, handle, _), table) = match (opened, table) {
        (Ok(opened), Ok(table)) => (opened, table),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let connection = tokio::spawn(connection);
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = None;
    let mut ready = Some(ready);
    while !stop.load(Ordering::SeqCst) {
        ticks.tick().await;
        let via = route_via(&handle, target).await;
        let watched_default = table.list_defaults().await.is_ok_and(|routes| {
            routes
                .iter()
                .any(|r| r.family == Family::V4 && r.ifindex == watched)
        });
        let state = RouteState {
            via,
            watched_default,
        };
        if last != Some(state) {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((Instant::now(), state));
            last = Some(state);
        }
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
    }
    connection.abort();
}

/// `ip route get <target>`: the output interface of the kernel's answer, `None` when it has no
/// route (the request fails with ENETUNREACH).
async fn route_via(handle: &rtnetlink::Handle, target: Ipv4Addr) -> Option<u32> {
    // With a destination the request is a lookup, not a dump (rtnetlink's `RouteGetRequest`).
    let request = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(target, 32)
        .build();
    let answers: Vec<RouteMessage> = handle
        .route()
        .get(request)
        .execute()
        .try_collect()
        .await
        .ok()?;
    answers.iter().find_map(|m| {
        m.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(index) => Some(*index),
            _ => None,
        })
    })
}

/// The carrier of one device interface, switched from its ISP end (`down0`) over a netlink
/// socket opened in the ISP namespace.
pub struct CarrierSwitch {
    runtime: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    peer: u32,
}

impl CarrierSwitch {
    /// For the veth end `iface` in `isp`.
    pub fn new(isp: &Netns, iface: &str) -> Result<Self, LabError> {
        let peer = isp.ifindex(iface)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::Compare(format!("carrier switch runtime: {e}")))?;
        // The socket is opened on a thread inside the ISP namespace, registered with this
        // runtime's reactor, then driven from the caller's thread.
        let (connection, handle, _) = run_in_netns(isp, || {
            let _reactor = runtime.enter();
            rtnetlink::new_connection()
        })?
        .map_err(|e| LabError::Compare(format!("carrier switch socket: {e}")))?;
        runtime.spawn(connection);
        Ok(Self {
            runtime,
            handle,
            peer,
        })
    }

    /// Carrier on (`true`) or off; returns once the kernel acknowledged.
    pub fn set(&self, up: bool) -> Result<(), LabError> {
        let message = rtnetlink::LinkUnspec::new_with_index(self.peer);
        let message = if up { message.up() } else { message.down() };
        self.runtime
            .block_on(self.handle.link().set(message.build()).execute())
            .map_err(|e| {
                LabError::Compare(format!(
                    "setting the carrier {}: {e}",
                    if up { "on" } else { "off" }
                ))
            })
    }
}
