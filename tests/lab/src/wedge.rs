//! A wedged uplink, the way the field has them (a modem registered with its bearer up that
//! passes no data, an ISP box that needs its link bounced): the ISP silently drops everything
//! from the device towards the Internet (a blackhole route, no ICMP back) while the link stays
//! up, and forwards again only after it has seen the carrier of its end of the veth (`down0`)
//! go away and come back. A watcher thread polls that interface's `carrier_changes` counter in
//! the ISP namespace (read through `ip netns exec`, which mounts the namespace's own sysfs);
//! dropping the [`Wedge`] stops it and leaves the ISP forwarding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netns::run;
use super::world::{LabError, World};

/// How often the watcher reads the counter: a relink keeps the link down for 500 ms.
const POLL: Duration = Duration::from_millis(100);

/// See the module doc.
pub struct Wedge {
    stop: Arc<AtomicBool>,
    cured: Arc<Mutex<Option<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

fn carrier_changes(isp: &str) -> Option<u64> {
    let out = run(&[
        "ip",
        "netns",
        "exec",
        isp,
        "cat",
        "/sys/class/net/down0/carrier_changes",
    ])
    .ok()?;
    out.trim().parse().ok()
}

impl Wedge {
    /// Wedges `iface`'s ISP now; it forwards again after the next carrier bounce on its end.
    pub fn start(world: &World, iface: &str) -> Result<Self, LabError> {
        let isp = world.uplink(iface)?.isp.name().to_string();
        let before = carrier_changes(&isp).unwrap_or(0);
        world.blackhole_upstream(iface)?;
        let stop = Arc::new(AtomicBool::new(false));
        let cured = Arc::new(Mutex::new(None));
        let (s, c) = (stop.clone(), cured.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if carrier_changes(&isp).is_some_and(|n| n > before) {
                    // The bounce is seen: forward again (as the ISP's box does once its port
                    // renegotiates).
                    let _ = run(&[
                        "ip",
                        "-n",
                        &isp,
                        "route",
                        "del",
                        "blackhole",
                        "203.0.113.0/24",
                    ]);
                    *c.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    return;
                }
                std::thread::sleep(POLL);
            }
            let _ = run(&[
                "ip",
                "-n",
                &isp,
                "route",
                "del",
                "blackhole",
                "203.0.113.0/24",
            ]);
        });
        Ok(Self {
            stop,
            cured,
            thread: Some(thread),
        })
    }

    /// When the ISP saw the bounce and forwarded again, if it did.
    pub fn cured_at(&self) -> Option<Instant> {
        *self.cured.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Wedge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
