//! Router advertisements the engine is waiting for, and when to ask again (pure rules).
//!
//! A router-advertised IPv6 default route comes back only with the router's next advertisement.
//! Two moves of ours need one soon: after we deleted an interface's advertised routes on link
//! loss (the link is back), and after a new `ra_defrtr_metric` (the route must move to it). The
//! kernel does not solicit on carrier return (its router solicitations follow address
//! configuration, which a carrier flap does not redo), and one solicitation of ours can be lost
//! while the router's side is still coming up. So the advertisement stays *owed* until the
//! kernel shows the route (at the wanted metric), solicited again after 1 s, 2 s and 4 s
//! (RFC 4861 §6.3.7 allows three solicitations; one more covers the first, sent into a link
//! that was just coming up). Then the engine gives up: the router's periodic advertisements
//! (every 200–600 s by default) bring the route, and an uplink whose router went away is not
//! solicited forever (a metered link pays for every one). docs/semantics.md §9.6.

use std::time::Duration;

use tokio::time::Instant;

use crate::model::{Family, KernelRoute, RTPROT_RA};

/// Solicitations per owed advertisement, the first included.
pub const SOLICITATIONS: u32 = 4;
/// Wait after the first solicitation; doubled after each further one.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// An advertisement the engine waits for on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwedAdvert {
    /// Solicitations sent (or tried) so far.
    pub sent: u32,
    /// When the next one is due.
    pub next: Instant,
    /// The metric the route must have to count, `None` for any (after link loss).
    pub metric: Option<u32>,
}

/// What planning does with an owed advertisement of a usable interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwedStep {
    /// The route is there: nothing is owed any more.
    Arrived,
    /// Solicit now.
    Solicit,
    /// Every solicitation went unanswered: leave it to the router's own advertisements.
    GiveUp,
    /// Wait for `next`.
    Wait,
}

impl OwedAdvert {
    /// Owed after the interface's advertised routes were deleted on link loss: solicited as soon
    /// as the link is usable again.
    pub fn after_link_loss(now: Instant) -> Self {
        Self {
            sent: 0,
            next: now,
            metric: None,
        }
    }

    /// Owed after `metric` was written and one solicitation sent at `now`.
    pub fn after_metric_change(metric: u32, now: Instant) -> Self {
        Self {
            sent: 1,
            next: now + FIRST_WAIT,
            metric: Some(metric),
        }
    }

    /// The step for `ifindex` against the kernel's default routes at `now`.
    pub fn step(&self, ifindex: u32, kernel: &[KernelRoute], now: Instant) -> OwedStep {
        let arrived = kernel.iter().any(|r| {
            r.protocol == RTPROT_RA
                && r.family == Family::V6
                && r.ifindex == ifindex
                && self.metric.is_none_or(|m| r.metric == m)
        });
        if arrived {
            OwedStep::Arrived
        } else if now < self.next {
            OwedStep::Wait
        } else if self.sent >= SOLICITATIONS {
            OwedStep::GiveUp
        } else {
            OwedStep::Solicit
        }
    }

    /// After one more solicitation at `now` (sent or failed alike: a failure is retried on the
    /// same back-off, never on every reconcile).
    pub fn solicited(self, now: Instant) -> Self {
        let sent = self.sent + 1;
        Self {
            sent,
            next: now + FIRST_WAIT * 2u32.pow(sent.saturating_sub(1).min(8)),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Family;

    fn ra(ifindex: u32, metric: u32) -> KernelRoute {
        KernelRoute {
            family: Family::V6,
            ifindex,
            gateway: Some("fe80::1".parse().expect("literal")),
            metric,
            protocol: RTPROT_RA,
        }
    }

    #[test]
    fn solicits_at_once_after_link_loss_then_backs_off_and_gives_up() {
        let t0 = Instant::now();
        let mut owed = OwedAdvert::after_link_loss(t0);
        let mut at = t0;
        let mut sent_at = Vec::new();
        // Step through 20 s in 100 ms ticks with no advertisement arriving.
        for _ in 0..200 {
            match owed.step(3, &[], at) {
                OwedStep::Solicit => {
                    sent_at.push(at.duration_since(t0).as_millis());
                    owed = owed.solicited(at);
                }
                OwedStep::GiveUp => break,
                OwedStep::Wait => {}
                OwedStep::Arrived => panic!("nothing arrived"),
            }
            at += Duration::from_millis(100);
        }
        assert_eq!(sent_at, vec![0, 1000, 3000, 7000]);
        assert_eq!(owed.step(3, &[], at), OwedStep::GiveUp);
    }

    #[test]
    fn any_route_ends_a_link_loss_wait_only_the_wanted_metric_a_metric_change() {
        let t0 = Instant::now();
        let after_loss = OwedAdvert::after_link_loss(t0);
        assert_eq!(after_loss.step(3, &[ra(3, 1024)], t0), OwedStep::Arrived);
        assert_eq!(after_loss.step(3, &[ra(4, 1024)], t0), OwedStep::Solicit);
        let moved = OwedAdvert::after_metric_change(20_100, t0);
        assert_eq!(moved.step(3, &[ra(3, 100)], t0), OwedStep::Wait);
        assert_eq!(
            moved.step(3, &[ra(3, 100)], t0 + FIRST_WAIT),
            OwedStep::Solicit
        );
        assert_eq!(moved.step(3, &[ra(3, 20_100)], t0), OwedStep::Arrived);
    }
}
