//! A device namespace wired to up to three "ISP" namespaces, one veth pair each, on
//! documentation addresses: the world of the netlink namespace tests and of the failover bench.
//!
//! Uplink `i` is `u<i>` in the device namespace and `p<i>` in ISP namespace `i`:
//!
//! | uplink | device side | ISP side (gateway) |
//! |---|---|---|
//! | 0 | 192.0.2.2/24, 2001:db8::2/64 | 192.0.2.1, 2001:db8::1 |
//! | 1 | 198.51.100.2/24, 2001:db8:1::2/64 | 198.51.100.1, 2001:db8:1::1 |
//! | 2 | 203.0.113.2/24, 2001:db8:2::2/64 | 203.0.113.1, 2001:db8:2::1 |
//!
//! IPv6 duplicate address detection is off in every namespace (addresses usable at once), and
//! each ISP namespace is padded so `p<i>`'s ifindex differs from `u<i>`'s: the kernel rate-limits
//! the link events of a veth whose ifindex equals its peer's like a physical NIC's (docs/kernel-facts.md
//! §3), which would make carrier tests slow and flaky.
//!
//! Also here: [`Uplink::profile`] (the engine profile of an uplink), [`CountingLinks`] (a
//! `LinkSource` decorator counting overruns and dumps), and [`run_in_netns`] /
//! [`block_on_in_netns`] to run code on a thread inside a namespace.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{BoxStream, StreamExt};
use netfailover_actors::model::{
    FamilyConfig, IfaceAddr, IfaceMatch, IfaceName, LinkInfo, Method, Metric, Profile, UplinkType,
};
use netfailover_actors::ports::{LinkSource, LinkUpdate, PortResult};

use super::netns::{veth, Netns, NetnsError};

/// The per-uplink /24s and /64s (documentation ranges only).
const V4_NETS: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];

/// One uplink: its ISP namespace, interface names and addresses.
#[derive(Debug)]
pub struct Uplink {
    pub isp: Netns,
    /// `u<i>`, in the device namespace.
    pub dev_iface: String,
    /// `p<i>`, in the ISP namespace.
    pub isp_iface: String,
    /// ifindex of `dev_iface` in the device namespace.
    pub ifindex: u32,
    pub dev_v4: Ipv4Addr,
    pub gateway_v4: Ipv4Addr,
    pub dev_v6: Ipv6Addr,
    pub gateway_v6: Ipv6Addr,
}

impl Uplink {
    /// An ethernet profile binding this uplink by name, both families with `method` and
    /// `metric`; `Manual` applies the device-side addresses and the ISP gateway.
    pub fn profile(&self, method: Method, metric: Metric) -> Profile {
        let manual = method == Method::Manual;
        let family = |addr: IfaceAddr, gateway: std::net::IpAddr| FamilyConfig {
            manage_default: true,
            method,
            metric,
            addresses: if manual { vec![addr] } else { Vec::new() },
            gateway: manual.then_some(gateway),
        };
        let v4 = IfaceAddr {
            addr: self.dev_v4.into(),
            prefix_len: 24,
        };
        let v6 = IfaceAddr {
            addr: self.dev_v6.into(),
            prefix_len: 64,
        };
        Profile {
            id: self.dev_iface.clone(),
            uuid: None,
            file: PathBuf::from(format!("{}.nmconnection", self.dev_iface)),
            uplink_type: UplinkType::Ethernet,
            matches: match IfaceName::new(self.dev_iface.as_str()) {
                Ok(name) => IfaceMatch::Name(name),
                // `u<i>` is always a valid name; fall back to type matching all the same.
                Err(_) => IfaceMatch::ByType,
            },
            managed: true,
            ipv4: family(v4, self.gateway_v4.into()),
            ipv6: family(v6, self.gateway_v6.into()),
            dns: Vec::new(),
            metered: netfailover_actors::model::Metered::guess(UplinkType::Ethernet),
        }
    }
}

/// The device namespace and its uplinks; every namespace is deleted on drop.
#[derive(Debug)]
pub struct UplinkWorld {
    pub dev: Netns,
    pub uplinks: Vec<Uplink>,
}

impl UplinkWorld {
    /// Builds the device namespace and `count` (1..=3) uplinks, all links up and addressed.
    pub fn new(tag: &str, count: usize) -> Result<Self, NetnsError> {
        let count = count.clamp(1, V4_NETS.len());
        let dev = Netns::new(&format!("{tag}-dev"))?;
        disable_dad(&dev)?;
        let mut uplinks = Vec::with_capacity(count);
        for (i, net) in V4_NETS.iter().enumerate().take(count) {
            let isp = Netns::new(&format!("{tag}-isp{i}"))?;
            disable_dad(&isp)?;
            isp.pad_ifindex(i + 1)?;
            let dev_iface = format!("u{i}");
            let isp_iface = format!("p{i}");
            veth((&dev, &dev_iface), (&isp, &isp_iface))?;
            let v4 = |host: u8| Ipv4Addr::new(net[0], net[1], net[2], host);
            let v6 = |host: u16| Ipv6Addr::new(0x2001, 0xdb8, i as u16, 0, 0, 0, 0, host);
            let uplink = Uplink {
                ifindex: dev.ifindex(&dev_iface)?,
                dev_v4: v4(2),
                gateway_v4: v4(1),
                dev_v6: v6(2),
                gateway_v6: v6(1),
                isp,
                dev_iface,
                isp_iface,
            };
            address(&dev, &uplink.dev_iface, &format!("{}/24", uplink.dev_v4))?;
            address(&dev, &uplink.dev_iface, &format!("{}/64", uplink.dev_v6))?;
            address(
                &uplink.isp,
                &uplink.isp_iface,
                &format!("{}/24", uplink.gateway_v4),
            )?;
            address(
                &uplink.isp,
                &uplink.isp_iface,
                &format!("{}/64", uplink.gateway_v6),
            )?;
            let peer_index = uplink.isp.ifindex(&uplink.isp_iface)?;
            if peer_index == uplink.ifindex {
                return Err(NetnsError::Command {
                    cmd: format!("pad_ifindex for {}", uplink.isp_iface),
                    status: "ifindex clash".into(),
                    stderr: format!(
                        "{} and its peer both have ifindex {peer_index}",
                        uplink.dev_iface
                    ),
                });
            }
            uplinks.push(uplink);
        }
        Ok(Self { dev, uplinks })
    }
}

fn disable_dad(ns: &Netns) -> Result<(), NetnsError> {
    ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
    ns.sysctl("net.ipv6.conf.default.accept_dad", "0")
}

fn address(ns: &Netns, iface: &str, cidr: &str) -> Result<(), NetnsError> {
    ns.ip(&["addr", "add", cidr, "dev", iface, "nodad"])
        .or_else(|_| ns.ip(&["addr", "add", cidr, "dev", iface]))
        .map(drop)
}

/// Runs `body` on a new thread that entered `ns`, and returns its result; a panic in `body` is
/// re-raised here. The caller's thread never changes namespace.
pub fn run_in_netns<T: Send>(ns: &Netns, body: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| ns.enter_current_thread().map(|()| body()));
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// [`run_in_netns`] with a current-thread tokio runtime (time and I/O enabled) built on that
/// thread, so sockets the future opens belong to `ns`.
pub fn block_on_in_netns<F: std::future::Future>(
    ns: &Netns,
    make: impl FnOnce() -> F + Send,
) -> Result<F::Output, NetnsError>
where
    F::Output: Send,
{
    run_in_netns(ns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetnsError::Enter {
                name: ns.name().to_string(),
                message: format!("building a tokio runtime: {e}"),
            })?;
        Ok(runtime.block_on(make()))
    })?
}

/// A `LinkSource` decorator that counts what the engine was told and asked: overruns delivered
/// on its subscriptions and dumps made. Clones share the counters.
#[derive(Clone)]
pub struct CountingLinks<L> {
    inner: L,
    overruns: Arc<AtomicUsize>,
    dumps: Arc<AtomicUsize>,
}

impl<L: LinkSource> CountingLinks<L> {
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            overruns: Arc::default(),
            dumps: Arc::default(),
        }
    }

    pub fn overruns(&self) -> usize {
        self.overruns.load(Ordering::SeqCst)
    }

    pub fn dumps(&self) -> usize {
        self.dumps.load(Ordering::SeqCst)
    }
}

impl<L: LinkSource> LinkSource for CountingLinks<L> {
    fn subscribe(&self) -> BoxFuture<'static, PortResult<BoxStream<'static, LinkUpdate>>> {
        let overruns = self.overruns.clone();
        let subscribed = self.inner.subscribe();
        async move {
            let stream = subscribed.await?;
            Ok(stream
                .inspect(move |update| {
                    if *update == LinkUpdate::Overrun {
                        overruns.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .boxed())
        }
        .boxed()
    }

    fn dump(&self) -> BoxFuture<'static, PortResult<Vec<LinkInfo>>> {
        self.dumps.fetch_add(1, Ordering::SeqCst);
        self.inner.dump()
    }
}
