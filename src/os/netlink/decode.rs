//! Raw netlink datagrams decoded exactly as the adapters receive them: netlink-proto's codec
//! splits and parses the datagram (skipping what it cannot parse), then `link_update` maps
//! each notification and `kernel_route` each route of a dump. The kernel is trusted, but a
//! newer kernel or a corrupted buffer must never panic the daemon: this is the entry point of
//! the property tests below and of the `netlink_notification` fuzz target (`fuzz/`).

use bytes::BytesMut;
use netfailover_actors::model::KernelRoute;
use netfailover_actors::ports::LinkUpdate;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::proto::{NetlinkCodec, NetlinkMessageCodec};

use super::links::link_update;
use super::routes::kernel_route;

/// The messages in one datagram, as the connection task hands them on. Each decoded message
/// consumes at least a netlink header (16 bytes), so the loop is bounded by the length.
fn messages(datagram: &[u8]) -> Vec<NetlinkMessage<RouteNetlinkMessage>> {
    let mut buffer = BytesMut::from(datagram);
    let mut out = Vec::new();
    for _ in 0..=datagram.len() / 16 {
        match NetlinkCodec::decode::<RouteNetlinkMessage>(&mut buffer) {
            Ok(Some(message)) => out.push(message),
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// What the link subscription yields for one datagram from the multicast socket.
pub fn link_updates(datagram: &[u8]) -> Vec<LinkUpdate> {
    messages(datagram)
        .into_iter()
        .filter_map(link_update)
        .collect()
}

/// The default routes a route dump reply datagram lists (other routes are skipped).
pub fn default_routes(datagram: &[u8]) -> Vec<KernelRoute> {
    messages(datagram)
        .into_iter()
        .filter_map(|m| match m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(route)) => {
                kernel_route(&route)
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netfailover_actors::model::Family;
    use proptest::prelude::*;
    use rtnetlink::packet_core::NetlinkHeader;
    use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
    use rtnetlink::packet_route::route::{
        RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
    };
    use rtnetlink::packet_route::AddressFamily;

    fn datagram(inner: RouteNetlinkMessage) -> Vec<u8> {
        let mut message = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(inner),
        );
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    fn new_link(index: u32, name: &str, flags: u32, changes: u32) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::from_bits_retain(flags);
        link.attributes.push(LinkAttribute::IfName(name.into()));
        link.attributes.push(LinkAttribute::CarrierChanges(changes));
        datagram(RouteNetlinkMessage::NewLink(link))
    }

    fn default_route(gateway: [u8; 4], oif: u32, metric: u32) -> Vec<u8> {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.kind = RouteType::Unicast;
        route.header.protocol = RouteProtocol::Other(78);
        route.header.table = 254;
        route
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway.into())));
        route.attributes.push(RouteAttribute::Oif(oif));
        route.attributes.push(RouteAttribute::Priority(metric));
        datagram(RouteNetlinkMessage::NewRoute(route))
    }

    /// A valid datagram with some bytes changed and maybe cut short.
    fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let len = valid.len();
        (
            proptest::collection::vec((0..len, any::<u8>()), 0..8),
            0..=len,
        )
            .prop_map(move |(flips, keep)| {
                let mut bytes = valid.clone();
                for (at, value) in flips {
                    bytes[at] = value;
                }
                bytes.truncate(keep.max(1));
                bytes
            })
    }

    #[test]
    fn valid_messages_decode_to_what_the_engine_expects() {
        let updates = link_updates(&new_link(7, "eth0", 0x10041, 3));
        let [LinkUpdate::Link(info)] = updates.as_slice() else {
            panic!("{updates:?}");
        };
        assert_eq!((info.ifindex, info.name.as_str()), (7, "eth0"));
        assert!(info.admin_up && info.carrier);
        let routes = default_routes(&default_route([192, 0, 2, 1], 3, 100));
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(
            (routes[0].family, routes[0].ifindex, routes[0].metric),
            (Family::V4, 3, 100)
        );
        // Two messages in one datagram, as the kernel batches them.
        let mut two = new_link(7, "eth0", 1, 0);
        two.extend(new_link(8, "wlan0", 1, 0));
        assert_eq!(link_updates(&two).len(), 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let updates = link_updates(&bytes);
            // Every message is at least a 16-byte header.
            prop_assert!(updates.len() <= bytes.len() / 16);
            let _ = default_routes(&bytes);
        }

        #[test]
        fn mutated_link_messages_never_panic_and_names_stay_valid(
            bytes in mutated(new_link(7, "eth0", 0x10041, 3)),
        ) {
            for update in link_updates(&bytes) {
                if let LinkUpdate::Link(info) = update {
                    prop_assert!(netfailover_actors::model::IfaceName::new(info.name.as_str()).is_ok());
                }
            }
        }

        #[test]
        fn mutated_route_messages_never_panic(bytes in mutated(default_route([192, 0, 2, 1], 3, 100))) {
            prop_assert!(default_routes(&bytes).len() <= bytes.len() / 16);
        }

        #[test]
        fn any_name_the_kernel_sends_is_kept_or_skipped(name in "[^\\x00]{0,40}", index in any::<u32>()) {
            let updates = link_updates(&new_link(index, &name, 1, 0));
            let valid = netfailover_actors::model::IfaceName::new(name.as_str()).is_ok();
            prop_assert_eq!(updates.len(), usize::from(valid));
        }
    }
}
