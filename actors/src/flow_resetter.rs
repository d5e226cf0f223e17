//! FlowResetter: after the route in use moved off an interface, resets the flows pinned to it
//! (local TCP sockets destroyed, conntrack entries deleted) so applications reconnect through
//! the new uplink at once instead of hanging until TCP gives up.
//!
//! Owns: the decision whether a move resets (`[flows]`: a failover does when `enabled`; a
//! fail-back onto a more preferred uplink with `on_failback`, on by default, and always off a
//! cellular backup), the call to the `FlowTable`
//! port, and the `flows-reset` record (history and counters on the board). What is pinned is
//! `flows.rs`'s rule, applied by the port.
//!
//! Talks to: RouteManager sends it [`RouteInUseMoved`] after a reconcile applied routes that
//! move the route in use of a family to another interface, with the addresses that interface
//! last had (RouteManager remembers them per interface: a vanished interface has none left,
//! but its sockets still hold them); it sends nothing back. It is its own
//! actor so a slow or failing reset never delays routing or events: RouteManager only posts a
//! message, and event delivery runs in the Dispatcher concurrently with the reset. On a reload
//! the supervisor sends it `Reconfigure`; the next move is decided with the new `[flows]`.
//!
//! A `flows-reset` is not a dispatcher event: no id, no scripts, not in the journal. Resets run
//! one at a time, each bounded by [`RESET_TIMEOUT`]. On failure the supervisor restarts it; a
//! move that arrived while it was down is not replayed (the next move resets again).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::board::Board;
use crate::messages::{Reconfigure, RouteInUseMoved};
use crate::model::Config;
use crate::ports::{FlowFailure, FlowFailureKind, FlowResetReport, FlowScope, FlowTable};
use crate::status::FlowResetRecord;

/// Longest one reset may take; past it the reset is recorded as failed (the port's work is
/// dropped, and the adapter's blocking part finishes on its own).
pub const RESET_TIMEOUT: Duration = Duration::from_secs(10);

/// See the module doc.
pub struct FlowResetter {
    cfg: Arc<Config>,
    flows: Arc<dyn FlowTable>,
    board: Board,
}

impl FlowResetter {
    pub fn new(cfg: Arc<Config>, flows: Arc<dyn FlowTable>, board: Board) -> Self {
        Self { cfg, flows, board }
    }

    /// Whether this move resets flows under the current settings.
    pub fn wanted(&self, moved: &RouteInUseMoved) -> bool {
        let f = &self.cfg.flows;
        f.enabled && (!moved.failback || f.on_failback || moved.from_cellular)
    }
}

impl Actor for FlowResetter {
    type Context = Context<Self>;
}

impl Handler<RouteInUseMoved> for FlowResetter {
    type Result = ();
    fn handle(&mut self, msg: RouteInUseMoved, ctx: &mut Self::Context) {
        let _span =
            tracing::info_span!("flow_resetter", iface = %msg.from, ifindex = msg.from_ifindex)
                .entered();
        if !self.wanted(&msg) {
            tracing::info!(family = ?msg.family, from = %msg.from, to = %msg.to, failback = msg.failback, "route in use moved; flows left alone ([flows] settings)");
            return;
        }
        let scope = FlowScope {
            iface: msg.from.clone(),
            ifindex: msg.from_ifindex,
            family: msg.family,
            last_addresses: msg.from_addresses.clone(),
        };
        let reset = self.flows.reset(scope);
        let bounded = async move {
            match tokio::time::timeout(RESET_TIMEOUT, reset).await {
                Ok(report) => report,
                Err(_) => FlowResetReport {
                    failures: vec![FlowFailure {
                        kind: FlowFailureKind::Failed,
                        what: "resetting flows".into(),
                        message: format!("gave up after {} s", RESET_TIMEOUT.as_secs()),
                    }],
                    ..FlowResetReport::default()
                },
            }
        };
        ctx.wait(bounded.into_actor(self).map(move |report, act, _| {
            let _span = tracing::info_span!("flow_resetter", iface = %msg.from, ifindex = msg.from_ifindex)
                .entered();
            let record = FlowResetRecord {
                at_unix_ms: crate::ports::unix_ms_now(),
                family: msg.family,
                iface: msg.from,
                to: msg.to,
                failback: msg.failback,
                sockets_destroyed: report.sockets_destroyed,
                conntrack_deleted: report.conntrack_deleted,
                failures: report.failures,
                elapsed_ms: msg.at.elapsed().as_secs_f64() * 1000.0,
            };
            if record.failures.is_empty() {
                tracing::info!(family = ?record.family, iface = %record.iface, to = %record.to, sockets = record.sockets_destroyed, conntrack = record.conntrack_deleted, elapsed_ms = record.elapsed_ms, "flows-reset");
            } else {
                for f in &record.failures {
                    tracing::warn!(family = ?record.family, iface = %record.iface, kind = ?f.kind, error = %f, "flows-reset: part failed");
                }
            }
            act.board.record_flow_reset(record);
        }));
    }
}

impl Handler<Reconfigure> for FlowResetter {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, _: &mut Self::Context) {
        self.cfg = msg.0;
    }
}
