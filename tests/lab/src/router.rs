//! A minimal IPv6 router for namespace tests: on one interface it advertises itself as default
//! router (RFC 4861 Router Advertisement, router lifetime 1800 s, no prefixes) once at start and
//! in answer to every Router Solicitation (retried until it can be sent), and counts the
//! solicitations. It runs on its own
//! thread inside its namespace, every receive bounded by 100 ms, until dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use netfailover::os::ndisc::{
    icmpv6_socket, receive_type, send_link_multicast, ALL_NODES, ROUTER_ADVERTISEMENT,
    ROUTER_SOLICITATION,
};

use super::netns::{enter_named, Netns, NetnsError};

/// See the module doc. Stops when dropped.
pub struct Advertiser {
    stop: Arc<AtomicBool>,
    solicitations: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// A Router Advertisement: type, code, checksum (the kernel's), hop limit 64, no flags,
/// router lifetime 1800 s, reachable time and retransmission timer unspecified.
const ADVERTISEMENT: [u8; 16] = [
    ROUTER_ADVERTISEMENT,
    0,
    0,
    0,
    64,
    0,
    0x07,
    0x08,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
];

impl Advertiser {
    /// Starts advertising on `iface` of `ns`.
    pub fn start(ns: &Netns, iface: &str) -> Result<Self, NetnsError> {
        let ifindex = ns.ifindex(iface)?;
        let stop = Arc::new(AtomicBool::new(false));
        let solicitations = Arc::new(AtomicUsize::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (ns_name, iface) = (ns.name().to_string(), iface.to_string());
            let (stop, solicitations) = (stop.clone(), solicitations.clone());
            std::thread::spawn(move || {
                let opened = enter_named(&ns_name)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        icmpv6_socket(&iface, Duration::from_millis(100)).map_err(|e| e.to_string())
                    });
                let fd = match opened {
                    Ok(fd) => {
                        let _ = ready_tx.send(Ok(()));
                        fd
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // An advertisement that could not be sent (no link-local address yet, right
                // after the link came up) is tried again after the next receive timeout.
                let advertise =
                    || send_link_multicast(&fd, &iface, ifindex, ALL_NODES, &ADVERTISEMENT).is_ok();
                let mut owed = !advertise();
                while !stop.load(Ordering::Relaxed) {
                    if receive_type(&fd) == Some(ROUTER_SOLICITATION) {
                        solicitations.fetch_add(1, Ordering::Relaxed);
                        owed = true;
                    }
                    if owed {
                        owed = !advertise();
                    }
                }
            })
        };
        let started = ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        if let Err(message) = started {
            stop.store(true, Ordering::Relaxed);
            return Err(NetnsError::Enter {
                name: ns.name().to_string(),
                message: format!("test router on {iface}: {message}"),
            });
        }
        Ok(Self {
            stop,
            solicitations,
            thread: Some(thread),
        })
    }

    /// Router Solicitations received so far.
    pub fn solicitations(&self) -> usize {
        self.solicitations.load(Ordering::Relaxed)
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
