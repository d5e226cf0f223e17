//! LinkWatcher: turns the kernel's link notifications into facts for RouteManager.
//!
//! Owns: one subscription of the `LinkSource` port (a dedicated netlink multicast socket in
//! production), opened on every (re)start, followed by a full dump so nothing between the two is
//! missed. On `Overrun` (notifications lost) it dumps again and sends the whole snapshot; route
//! and address notifications become `RoutesChanged` (a reconcile request).
//!
//! On failure: if the subscription cannot be opened or the stream ends, it stops and the
//! supervisor restarts it with back-off; nothing is lost because the new incarnation dumps.

use std::sync::Arc;

use actix::prelude::*;

use crate::peers::Peers;
use crate::ports::{LinkSource, LinkUpdate};
use crate::route_manager::{LinkChanged, LinkRemoved, LinkSnapshot, RoutesChanged};

/// See the module doc.
pub struct LinkWatcher {
    links: Arc<dyn LinkSource>,
    peers: Peers,
}

impl LinkWatcher {
    pub fn new(links: Arc<dyn LinkSource>, peers: Peers) -> Self {
        Self { links, peers }
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        let links = self.links.clone();
        ctx.wait(async move { links.dump().await }.into_actor(self).map(
            |dump, act, ctx| match dump {
                Ok(all) => {
                    act.peers.route_manager.do_send(LinkSnapshot(all));
                }
                Err(e) => {
                    tracing::error!(error = %e, "link dump failed; restarting the watcher");
                    ctx.stop();
                }
            },
        ));
    }
}

impl Actor for LinkWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let links = self.links.clone();
        ctx.wait(
            async move { links.subscribe().await }.into_actor(self).map(
                |sub, act, ctx| match sub {
                    Ok(stream) => {
                        ctx.add_stream(stream);
                        act.resync(ctx);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot subscribe to link events");
                        ctx.stop();
                    }
                },
            ),
        );
    }
}

impl StreamHandler<LinkUpdate> for LinkWatcher {
    fn handle(&mut self, update: LinkUpdate, ctx: &mut Self::Context) {
        let rm = &self.peers.route_manager;
        match update {
            LinkUpdate::Link(info) => {
                tracing::debug!(iface = %info.name, ifindex = info.ifindex, carrier = info.carrier, admin_up = info.admin_up, "link");
                rm.do_send(LinkChanged(info));
            }
            LinkUpdate::Removed { ifindex } => {
                rm.do_send(LinkRemoved { ifindex });
            }
            LinkUpdate::RoutesChanged => {
                rm.do_send(RoutesChanged);
            }
            LinkUpdate::Overrun => {
                tracing::warn!(
                    "netlink receive buffer overrun: notifications lost, resynchronising"
                );
                self.resync(ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        tracing::warn!("link event stream ended");
        ctx.stop();
    }
}

/// Test hook (feature `fake`): makes the actor panic inside a handler.
#[cfg(feature = "fake")]
impl Handler<crate::supervisor::Crash> for LinkWatcher {
    type Result = ();
    fn handle(&mut self, _: crate::supervisor::Crash, _: &mut Self::Context) {
        panic!("LinkWatcher: crash requested by a test");
    }
}
