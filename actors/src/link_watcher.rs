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

use crate::messages::{LinkChanged, LinkRemoved, LinkSnapshot, RoutesChanged};
use crate::peers::Slot;
use crate::ports::{LinkSource, LinkUpdate};

/// Where LinkWatcher sends its facts (RouteManager, in the tree).
#[derive(Clone, Default)]
pub struct LinkFacts {
    pub changed: Slot<LinkChanged>,
    pub removed: Slot<LinkRemoved>,
    pub snapshot: Slot<LinkSnapshot>,
    pub routes: Slot<RoutesChanged>,
}

/// See the module doc.
pub struct LinkWatcher {
    links: Arc<dyn LinkSource>,
    to: LinkFacts,
}

impl LinkWatcher {
    pub fn new(links: Arc<dyn LinkSource>, to: LinkFacts) -> Self {
        Self { links, to }
    }

    fn resync(&mut self, ctx: &mut Context<Self>) {
        let links = self.links.clone();
        ctx.wait(async move { links.dump().await }.into_actor(self).map(
            |dump, act, ctx| match dump {
                Ok(all) => {
                    let _span = tracing::info_span!("link_watcher").entered();
                    tracing::debug!(links = all.len(), "link dump");
                    act.to.snapshot.do_send(LinkSnapshot(all));
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
        let _span = tracing::info_span!("link_watcher").entered();
        tracing::debug!("subscribing to link events");
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
        let _span = tracing::info_span!("link_watcher").entered();
        match update {
            LinkUpdate::Link(info) => {
                let _span =
                    tracing::debug_span!("link", iface = %info.name, ifindex = info.ifindex)
                        .entered();
                tracing::debug!(carrier = info.carrier, admin_up = info.admin_up, "link");
                self.to.changed.do_send(LinkChanged(info));
            }
            LinkUpdate::Removed { ifindex } => {
                tracing::debug!(ifindex, "link removed");
                self.to.removed.do_send(LinkRemoved { ifindex });
            }
            LinkUpdate::RoutesChanged => {
                self.to.routes.do_send(RoutesChanged);
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
