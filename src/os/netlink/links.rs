//! [`NetlinkLinks`]: the `LinkSource` port on a netlink multicast socket.
//!
//! Each `subscribe()` opens a new socket joined to the link, IPv4/IPv6 address and IPv4/IPv6
//! route groups, with its receive buffer set to `netlink.rcvbuf`; its connection task is aborted
//! when the returned stream is dropped. Messages become [`LinkUpdate`]s:
//!
//! | kernel message | update |
//! |---|---|
//! | `RTM_NEWLINK` (family `AF_UNSPEC`) | `Link(LinkInfo)` |
//! | `RTM_DELLINK` (family `AF_UNSPEC`) | `Removed { ifindex }` |
//! | `RTM_NEWADDR`, `RTM_DELADDR`, `RTM_NEWROUTE`, `RTM_DELROUTE` | `RoutesChanged` |
//! | ENOBUFS (`NetlinkPayload::Overrun`) | `Overrun` |
//!
//! `AF_BRIDGE` link messages are bridge-port notifications (a port joined or left a bridge),
//! not the device appearing or vanishing, so they are ignored. A name the kernel reports that is
//! not a valid [`IfaceName`] is skipped with a warning. `NETLINK_NO_ENOBUFS` is deliberately not
//! set: the overrun must reach the engine, which then dumps everything again; before yielding
//! it, the subscription swaps in a fresh socket so the notifications the kernel kept (older than
//! the lost ones) never follow it (see `Subscription`).
//!
//! `dump()` uses its own short-lived request socket: an overrun on a socket with a dump in
//! flight could be routed to the dump instead of the event stream (docs/kernel-facts.md §3).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::channel::mpsc::UnboundedReceiver;
use futures::future::{self, BoxFuture, FutureExt};
use futures::ready;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use netfailover_actors::model::{IfaceName, LinkInfo, LinkKind};
use netfailover_actors::ports::{LinkSource, LinkUpdate, PortResult};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as KernelLinkInfo, LinkLayerType, LinkMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::MulticastGroup;

use super::{open_request_connection, port_error, require_runtime, AbortOnDrop, NetlinkError};

/// Default `netlink.rcvbuf`: 4 MiB holds a few thousand link messages, enough for a burst of
/// link churn on a busy device while the engine is briefly busy.
pub const DEFAULT_RCVBUF: usize = 4 * 1024 * 1024;

/// The groups a subscription joins: links for carrier/admin state, addresses and routes because
/// any change there may need a route reconcile.
const GROUPS: [MulticastGroup; 5] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
];

/// The link source on netlink. Cheap to construct; sockets are opened per call, in the network
/// namespace of the calling thread.
#[derive(Clone, Debug)]
pub struct NetlinkLinks {
    rcvbuf: usize,
}

impl NetlinkLinks {
    /// `rcvbuf` is `netlink.rcvbuf` in bytes (as for `SO_RCVBUF`, the kernel doubles it for
    /// its bookkeeping).
    pub fn new(rcvbuf: usize) -> Self {
        Self { rcvbuf }
    }

    /// Opens the subscription (on this thread, hence in this thread's namespace).
    fn open_subscription(&self) -> Result<Subscription, NetlinkError> {
        let (messages, task) = open_multicast_socket(self.rcvbuf)?;
        Ok(Subscription {
            rcvbuf: self.rcvbuf,
            netns: current_netns(),
            messages,
            connection: task,
        })
    }
}

/// What a subscription socket's connection task forwards: every notification.
type Notifications = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// Opens a socket joined to [`GROUPS`] with the given receive buffer, and spawns its
/// connection task.
fn open_multicast_socket(rcvbuf: usize) -> Result<(Notifications, AbortOnDrop), NetlinkError> {
    const WHAT: &str = "netlink link subscription";
    require_runtime(WHAT)?;
    let socket_error = |error| NetlinkError::Socket { what: WHAT, error };
    let (mut connection, _handle, messages) =
        rtnetlink::new_multicast_connection(&GROUPS).map_err(socket_error)?;
    set_receive_buffer(connection.socket_mut().socket_mut(), rcvbuf).map_err(socket_error)?;
    Ok((messages, AbortOnDrop(tokio::spawn(connection))))
}

/// Identity (device, inode) of the calling thread's network namespace, if `/proc` tells.
fn current_netns() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

impl Default for NetlinkLinks {
    fn default() -> Self {
        Self::new(DEFAULT_RCVBUF)
    }
}

impl LinkSource for NetlinkLinks {
    fn subscribe(&self) -> BoxFuture<'static, PortResult<BoxStream<'static, LinkUpdate>>> {
        // Opened now, not when the future is first polled, so the socket is in the caller's
        // namespace whatever thread polls the future.
        let opened = self
            .open_subscription()
            .map(|subscription| subscription.boxed())
            .map_err(Into::into);
        future::ready(opened).boxed()
    }

    fn dump(&self) -> BoxFuture<'static, PortResult<Vec<LinkInfo>>> {
        const WHAT: &str = "netlink link dump";
        let opened = open_request_connection(WHAT);
        async move {
            let (handle, _task) = opened?;
            let messages: Vec<LinkMessage> = handle
                .link()
                .get()
                .execute()
                .try_collect()
                .await
                .map_err(|e| port_error(WHAT.to_string(), e))?;
            Ok(messages.iter().filter_map(link_info).collect())
        }
        .boxed()
    }

    fn control_device_net(&self, device: &str) -> Option<IfaceName> {
        // The daemon's /sys: the namespace it was started in (as `ip netns exec` mounts it).
        crate::os::sysfs::control_device_net(std::path::Path::new("/sys"), device)
    }
}

/// The stream a subscription hands out. Dropping it stops the connection task, which closes
/// the socket.
///
/// On an overrun the kernel reports ENOBUFS *before* the notifications it kept, and those are
/// older than the ones it dropped. Delivered after `Overrun`, they would reach the engine after
/// its resync dump and leave it with a stale picture (a link believed up that went down in the
/// lost part). So on ENOBUFS the subscription replaces its socket with a fresh one, discarding
/// the old queue, and only then yields `Overrun`: the engine's dump comes after the new socket
/// joined the groups, so nothing after it is missed and nothing before it follows it.
struct Subscription {
    rcvbuf: usize,
    /// The namespace the subscription was opened in: the replacement socket must be there too.
    netns: Option<(u64, u64)>,
    messages: Notifications,
    /// The socket's connection task; replacing or dropping it closes the socket.
    connection: AbortOnDrop,
}

impl Subscription {
    /// Swaps in a fresh socket (the old one is closed when its task is aborted). Refused if this
    /// thread is in another namespace than the one subscribed from.
    fn reopen(&mut self) -> Result<(), NetlinkError> {
        if current_netns() != self.netns {
            return Err(NetlinkError::Socket {
                what: "netlink link subscription",
                error: std::io::Error::other(
                    "overrun handled on a thread in another network namespace",
                ),
            });
        }
        let (messages, task) = open_multicast_socket(self.rcvbuf)?;
        self.messages = messages;
        self.connection = task;
        Ok(())
    }
}

impl Stream for Subscription {
    type Item = LinkUpdate;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LinkUpdate>> {
        loop {
            let Some((message, _from)) = ready!(self.messages.poll_next_unpin(cx)) else {
                return Poll::Ready(None);
            };
            match link_update(message) {
                Some(LinkUpdate::Overrun) => {
                    return match self.reopen() {
                        Ok(()) => Poll::Ready(Some(LinkUpdate::Overrun)),
                        Err(error) => {
                            // Ending the stream makes the LinkWatcher resubscribe from its own
                            // thread, which dumps everything anyway.
                            tracing::error!(%error, "cannot replace the overrun socket");
                            Poll::Ready(None)
                        }
                    };
                }
                Some(update) => return Poll::Ready(Some(update)),
                None => continue,
            }
        }
    }
}

/// Sets the socket's receive buffer to `bytes`. `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN) ignores
/// `net.core.rmem_max`, so both a tiny test buffer and 4 MiB on a host whose `rmem_max` is the
/// usual 208 KiB are honoured; without the capability, fall back to `SO_RCVBUF`, which the kernel
/// caps at `rmem_max`.
fn set_receive_buffer(socket: &rtnetlink::sys::Socket, bytes: usize) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::RcvBufForce};
    match setsockopt(socket, RcvBufForce, &bytes) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            socket.set_rx_buf_sz(bytes)?;
            tracing::warn!(
                requested = bytes,
                granted = socket.get_rx_buf_sz().unwrap_or_default(),
                "no CAP_NET_ADMIN for SO_RCVBUFFORCE: netlink.rcvbuf capped by net.core.rmem_max"
            );
            Ok(())
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Maps one message from the multicast socket; `None` for messages the engine does not need.
pub(crate) fn link_update(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkUpdate> {
    match message.payload {
        NetlinkPayload::Overrun(_) => Some(LinkUpdate::Overrun),
        NetlinkPayload::InnerMessage(inner) => match inner {
            RouteNetlinkMessage::NewLink(link) if is_device_message(&link) => {
                link_info(&link).map(LinkUpdate::Link)
            }
            RouteNetlinkMessage::DelLink(link) if is_device_message(&link) => {
                Some(LinkUpdate::Removed {
                    ifindex: link.header.index,
                })
            }
            RouteNetlinkMessage::NewAddress(_)
            | RouteNetlinkMessage::DelAddress(_)
            | RouteNetlinkMessage::NewRoute(_)
            | RouteNetlinkMessage::DelRoute(_) => Some(LinkUpdate::RoutesChanged),
            _ => None,
        },
        _ => None,
    }
}

/// True for messages about the device itself (family `AF_UNSPEC`), false for the `AF_BRIDGE`
/// port notifications the link group also carries.
fn is_device_message(link: &LinkMessage) -> bool {
    link.header.interface_family != AddressFamily::Bridge
}

/// The engine's view of one link; `None` (with a warning) if the kernel's name is unusable.
pub(crate) fn link_info(link: &LinkMessage) -> Option<LinkInfo> {
    let ifindex = link.header.index;
    let mut name = None;
    let mut carrier_changes = 0;
    let mut mac = None;
    let mut info_kind = None;
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.as_str()),
            LinkAttribute::CarrierChanges(n) => carrier_changes = *n,
            LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::LinkInfo(infos) => {
                info_kind = infos.iter().find_map(|info| match info {
                    KernelLinkInfo::Kind(kind) => Some(kind),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    let Some(name) = name else {
        tracing::warn!(ifindex, "link message without a name: skipped");
        return None;
    };
    let name = match IfaceName::new(name) {
        Ok(name) => name,
        Err(error) => {
            tracing::warn!(ifindex, %error, "kernel reported an unusable interface name: skipped");
            return None;
        }
    };
    let flags = link.header.flags;
    Some(LinkInfo {
        ifindex,
        name,
        kind: link_kind(flags, link.header.link_layer_type, info_kind),
        admin_up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        carrier_changes,
        mac,
    })
}

/// Loopback, bridge, veth or tunnel (never adopted without a profile), else `Other`.
fn link_kind(flags: LinkFlags, layer: LinkLayerType, kind: Option<&InfoKind>) -> LinkKind {
    if flags.contains(LinkFlags::Loopback) || layer == LinkLayerType::Loopback {
        return LinkKind::Loopback;
    }
    match kind {
        Some(InfoKind::Bridge) => LinkKind::Bridge,
        Some(InfoKind::Veth) => LinkKind::Veth,
        Some(kind) if is_tunnel_kind(kind) => LinkKind::Tunnel,
        // Tunnels whose driver has no rtnl_link_ops (the fallback devices such as tunl0,
        // gre0, sit0) still carry a tunnel link-layer type. ARPHRD_NONE is deliberately not
        // here: raw-IP modems (qmi_wwan, wwan) use it and must stay adoptable.
        _ if matches!(
            layer,
            LinkLayerType::Tunnel
                | LinkLayerType::Tunnel6
                | LinkLayerType::Sit
                | LinkLayerType::Ipgre
                | LinkLayerType::Ip6gre
        ) =>
        {
            LinkKind::Tunnel
        }
        _ => LinkKind::Other,
    }
}

/// Link kinds that encapsulate traffic in another network (VPNs, overlays, IP-in-IP).
fn is_tunnel_kind(kind: &InfoKind) -> bool {
    matches!(
        kind,
        InfoKind::IpIp
            | InfoKind::GreTun
            | InfoKind::GreTun6
            | InfoKind::GreTap
            | InfoKind::GreTap6
            | InfoKind::SitTun
            | InfoKind::Vti
            | InfoKind::Vti6
            | InfoKind::Ip6Tnl
            | InfoKind::Wireguard
            | InfoKind::Tun
            | InfoKind::Vxlan
            | InfoKind::Geneve
            | InfoKind::Xfrm
            | InfoKind::ErSpan
            | InfoKind::Ip6ErSpan
            | InfoKind::BareUdp
            | InfoKind::Gtp
            | InfoKind::Amt
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_core::NetlinkHeader;
    use rtnetlink::packet_route::address::AddressMessage;
    use rtnetlink::packet_route::route::RouteMessage;

    fn link(name: &str, flags: LinkFlags, kind: Option<InfoKind>) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = 7;
        message.header.flags = flags;
        message.header.link_layer_type = LinkLayerType::Ether;
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        message.attributes.push(LinkAttribute::CarrierChanges(5));
        message
            .attributes
            .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]));
        if let Some(kind) = kind {
            message
                .attributes
                .push(LinkAttribute::LinkInfo(vec![KernelLinkInfo::Kind(kind)]));
        }
        message
    }

    fn wrap(inner: RouteNetlinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
        NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(inner),
        )
    }

    #[test]
    fn new_link_maps_flags_counter_and_mac() {
        let up = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running;
        let got = link_update(wrap(RouteNetlinkMessage::NewLink(link("eth0", up, None))));
        let Some(LinkUpdate::Link(info)) = got else {
            panic!("expected a link update, got {got:?}");
        };
        assert_eq!(info.name.as_str(), "eth0");
        assert_eq!(info.ifindex, 7);
        assert!(info.admin_up && info.carrier);
        assert_eq!(info.carrier_changes, 5);
        assert_eq!(info.mac, Some([2, 0, 0, 0, 0, 9]));
        assert_eq!(info.kind, LinkKind::Other);

        let admin_only = link_info(&link("eth0", LinkFlags::Up, None)).unwrap();
        assert!(admin_only.admin_up && !admin_only.carrier);
        let carrier_only = link_info(&link("eth0", LinkFlags::LowerUp, None)).unwrap();
        assert!(!carrier_only.admin_up && carrier_only.carrier);
    }

    #[test]
    fn receive_buffer_is_honoured_beyond_rmem_max_with_cap_net_admin() {
        let socket = rtnetlink::sys::Socket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)
            .expect("netlink socket");
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .expect("net.core.rmem_max");
        let wanted = 2 * rmem_max;
        set_receive_buffer(&socket, wanted).expect("setting the buffer");
        let granted = socket.get_rx_buf_sz().expect("reading the buffer");
        if nix::unistd::geteuid().is_root() {
            // The kernel doubles what it is given.
            assert_eq!(granted, 2 * wanted, "SO_RCVBUFFORCE ignores rmem_max");
        } else {
            assert!(granted <= 2 * rmem_max, "SO_RCVBUF is capped by rmem_max");
        }
        set_receive_buffer(&socket, 4096).expect("a tiny buffer");
        assert_eq!(
            socket.get_rx_buf_sz().expect("reading the buffer"),
            2 * 4096
        );
    }

    #[test]
    fn kinds() {
        let kind = |flags, k| link_info(&link("x0", flags, k)).unwrap().kind;
        let none = LinkFlags::empty();
        assert_eq!(kind(LinkFlags::Loopback, None), LinkKind::Loopback);
        assert_eq!(kind(none, Some(InfoKind::Bridge)), LinkKind::Bridge);
        assert_eq!(kind(none, Some(InfoKind::Veth)), LinkKind::Veth);
        for tunnel in [
            InfoKind::IpIp,
            InfoKind::GreTun,
            InfoKind::GreTap,
            InfoKind::SitTun,
            InfoKind::Vti,
            InfoKind::Ip6Tnl,
            InfoKind::Wireguard,
            InfoKind::Tun,
            InfoKind::Vxlan,
        ] {
            assert_eq!(
                kind(none, Some(tunnel.clone())),
                LinkKind::Tunnel,
                "{tunnel}"
            );
        }
        assert_eq!(kind(none, Some(InfoKind::Wwan)), LinkKind::Other);
        assert_eq!(kind(none, None), LinkKind::Other);
        let mut fallback_tunnel = link("tunl0", none, None);
        fallback_tunnel.header.link_layer_type = LinkLayerType::Tunnel;
        assert_eq!(link_info(&fallback_tunnel).unwrap().kind, LinkKind::Tunnel);
        let mut raw_ip_modem = link("wwan0", none, None);
        raw_ip_modem.header.link_layer_type = LinkLayerType::None;
        assert_eq!(link_info(&raw_ip_modem).unwrap().kind, LinkKind::Other);
    }

    #[test]
    fn invalid_or_missing_names_are_skipped() {
        for bad in ["", "a/b", "x23456789012345678", "a b"] {
            assert_eq!(link_info(&link(bad, LinkFlags::Up, None)), None, "{bad:?}");
        }
        let mut nameless = LinkMessage::default();
        nameless.header.index = 3;
        assert_eq!(
            link_update(wrap(RouteNetlinkMessage::NewLink(nameless))),
            None
        );
    }

    #[test]
    fn removal_routes_overrun_and_bridge_port_messages() {
        let mut del = LinkMessage::default();
        del.header.index = 9;
        assert_eq!(
            link_update(wrap(RouteNetlinkMessage::DelLink(del.clone()))),
            Some(LinkUpdate::Removed { ifindex: 9 })
        );
        del.header.interface_family = AddressFamily::Bridge;
        assert_eq!(link_update(wrap(RouteNetlinkMessage::DelLink(del))), None);
        let mut port = link("eth0", LinkFlags::Up, None);
        port.header.interface_family = AddressFamily::Bridge;
        assert_eq!(link_update(wrap(RouteNetlinkMessage::NewLink(port))), None);

        for message in [
            RouteNetlinkMessage::NewRoute(RouteMessage::default()),
            RouteNetlinkMessage::DelRoute(RouteMessage::default()),
            RouteNetlinkMessage::NewAddress(AddressMessage::default()),
            RouteNetlinkMessage::DelAddress(AddressMessage::default()),
        ] {
            assert_eq!(link_update(wrap(message)), Some(LinkUpdate::RoutesChanged));
        }
        let overrun = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::<RouteNetlinkMessage>::Overrun(Vec::new()),
        );
        assert_eq!(link_update(overrun), Some(LinkUpdate::Overrun));
    }
}
