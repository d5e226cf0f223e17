//! TrafficWatcher: passive health — watches the device's own traffic on every managed
//! interface and asks ProbeScheduler to confirm a suspected stall with checks.
//!
//! Owns: the sampling timer (`passive.period`) and one `passive::Tracker` per sampled
//! interface. Each period it asks RouteManager for the uplinks (`GetUplinks`: which are usable,
//! their state and configured metric), samples their counters and TCP sockets through the
//! `TrafficSource` port, feeds the pure rule (`passive.rs`) and sends `Confirm` to
//! ProbeScheduler for each trigger, naming the standby that would take over when the suspect
//! carries the route in use. It publishes each interface's passive state on the status board.
//! For a metered interface whose sample showed two-way progress it tells ProbeScheduler
//! (`TwoWayTraffic`: a periodic check may be skipped on it); that costs no extra sampling.
//!
//! Idle cost: each period costs one link dump (`TrafficSource::counters`) of the *watched*
//! interfaces, the only ones whose evidence can change a decision: the FULL uplink carrying the
//! route in use (of each family), and, only while that one is suspect, the standby that would
//! take over from it (the next FULL uplink by penalised metric: about to be needed). A standby
//! whose primary is healthy is not sampled: its evidence could only move traffic that is not on
//! it (its own check still runs before the route moves onto it, `Confirm::standby`). The whole
//! sample (addresses, TCP sockets, connection tracking) of a watched interface is taken only
//! when it sent packets since its last whole sample or that sample was not settled (data or a
//! SYN outstanding, a stall's clock running: `Tracker::settled`): an interface that sent
//! nothing since a settled sample cannot show new evidence. An interface not watched (not
//! FULL, or a standby not about to be needed) keeps what its tracker knew, without a
//! suspicion, until it is watched again.
//!
//! It never touches routes or states: a wrong suspicion costs a check (bounded by the rule's
//! back-off), never a failover. While healthy it sends nothing at all; sampling is local
//! netlink dumps only. Disabled (`passive.enabled = false`, or checks off) it samples nothing.
//! On a reload the supervisor sends it `Reconfigure`: a change of `[passive]` or the checks
//! restarts the sampling with it.
//!
//! Asked by a Prober whose confirmation ran out of its short deadline before connecting
//! (`AnsweredSince`), it says whether the interface's traffic was answered since the
//! confirmation started: progress in a sample since then, or in a fresh sample of that one
//! interface compared with the last (the fresh sample is not fed to the rule).
//!
//! On failure (panic, kill) the supervisor restarts it; it starts with empty trackers, which
//! costs at most one window of history (the trackers rebuild from the next samples).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::time::Instant;

use crate::board::Board;
use crate::messages::{AnsweredSince, Confirm, GetUplinks, Reconfigure, TwoWayTraffic, Uplink};
use crate::model::{Config, Connectivity, Family, IfaceName};
use crate::passive::{Context as RuleContext, RuleParams, Tracker, Trigger};
use crate::peers::Slot;
use crate::ports::{IfaceTraffic, PortError, TrafficSource};
use crate::status::{PassiveState, Sees};

/// Shared dependencies of every incarnation.
#[derive(Clone)]
pub struct TrafficDeps {
    pub traffic: Arc<dyn TrafficSource>,
    /// The uplinks come from RouteManager, suspicions go to ProbeScheduler, in the tree.
    pub get_uplinks: Slot<GetUplinks>,
    pub confirm: Slot<Confirm>,
    /// Two-way traffic through a metered interface (ProbeScheduler skips a check on it).
    pub two_way: Slot<TwoWayTraffic>,
    pub board: Board,
}

/// See the module doc.
pub struct TrafficWatcher {
    cfg: Arc<Config>,
    deps: TrafficDeps,
    state: State,
}

#[derive(Default)]
struct State {
    trackers: BTreeMap<IfaceName, Tracker>,
    timer: Option<SpawnHandle>,
    busy: bool,
    /// Consecutive failed samples (the first is logged as a warning, the rest at debug).
    failures: u32,
    /// By ifindex: the transmitted packets at the interface's last whole sample, kept while
    /// that sample was settled (no new whole sample until it sends again).
    settled_tx: BTreeMap<u32, u64>,
}

impl TrafficWatcher {
    pub fn new(cfg: Arc<Config>, deps: TrafficDeps) -> Self {
        Self {
            cfg,
            deps,
            state: State::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.cfg.passive.enabled && self.cfg.check.enabled()
    }

    fn params(&self) -> RuleParams {
        RuleParams::from_config(&self.cfg)
    }

    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.state.timer.take() {
            ctx.cancel_future(t);
        }
        self.state.trackers.clear();
        self.state.settled_tx.clear();
        if !self.enabled() {
            self.publish_off();
            return;
        }
        // A zero period would spin; the settings layer refuses it, this is the last guard.
        let period = self.cfg.passive.period.max(Duration::from_millis(100));
        self.state.timer = Some(ctx.run_interval(period, |act, ctx| act.tick(ctx)));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.state.busy {
            return; // the previous sample is still running: skip, never queue up
        }
        let Some(rm) = self.deps.get_uplinks.get() else {
            return;
        };
        self.state.busy = true;
        let traffic = self.deps.traffic.clone();
        let settled_tx = self.state.settled_tx.clone();
        let cfg = self.cfg.clone();
        // The interfaces suspect since the last sample: their standby is about to be needed.
        let suspects: Vec<IfaceName> = (self.state.trackers.iter())
            .filter(|(_, t)| t.suspect_since().is_some())
            .map(|(name, _)| name.clone())
            .collect();
        ctx.spawn(
            async move {
                let uplinks = rm.send(GetUplinks).await.ok()?;
                let watched = watched(&uplinks, &cfg, &suspects);
                let sample = whole_samples(&*traffic, watched.clone(), &settled_tx).await;
                Some((uplinks, watched, sample))
            }
            .into_actor(self)
            .map(|res, act, _| {
                act.state.busy = false;
                match res {
                    Some((uplinks, watched, Ok((sampled, samples)))) => {
                        act.state.failures = 0;
                        act.process(&uplinks, &watched, &sampled, &samples);
                    }
                    Some((_, _, Err(e))) => {
                        let _span = tracing::info_span!("traffic_watcher").entered();
                        act.state.failures += 1;
                        if act.state.failures == 1 {
                            tracing::warn!(error = %e, "passive health: sampling failed");
                        } else {
                            tracing::debug!(error = %e, "passive health: sampling failed");
                        }
                    }
                    None => {} // RouteManager restarting: next period
                }
            }),
        );
    }

    /// Feeds the rule the whole samples of `sampled` (ifindexes); a `watched` interface left
    /// out keeps its tracker as it was (it sent nothing since a settled sample).
    fn process(
        &mut self,
        uplinks: &[Uplink],
        watched: &[u32],
        sampled: &[u32],
        samples: &[IfaceTraffic],
    ) {
        let now = Instant::now();
        let params = self.params();
        let ranked = rank(uplinks, &self.cfg);
        let in_use = ranked.first().map(|u| u.name.clone());
        let standby = ranked
            .iter()
            .skip(1)
            .find(|u| u.connectivity == Connectivity::Full)
            .map(|u| u.name.clone());
        let usable: Vec<&Uplink> = uplinks.iter().filter(|u| u.usable).collect();
        self.state
            .trackers
            .retain(|name, _| usable.iter().any(|u| &u.name == name));
        self.state
            .settled_tx
            .retain(|i, _| usable.iter().any(|u| u.ifindex == *i));
        let mut triggers: Vec<(IfaceName, Trigger)> = Vec::new();
        for u in &usable {
            let tracker = self.state.trackers.entry(u.name.clone()).or_default();
            if u.connectivity != Connectivity::Full || !watched.contains(&u.ifindex) {
                // Not watched: its tracker keeps what it knew (a stall still there when it is
                // watched again costs one confirmation), showing no suspicion meanwhile.
                tracker.calm();
                self.state.settled_tx.remove(&u.ifindex);
                continue;
            }
            if !sampled.contains(&u.ifindex) {
                continue;
            }
            let sample = samples.iter().find(|s| s.ifindex == u.ifindex);
            let ctx = RuleContext {
                eligible: true,
                in_use: in_use.as_ref() == Some(&u.name),
            };
            if let Some(t) = tracker.observe(now, u.name.as_str(), sample, ctx, &params) {
                triggers.push((u.name.clone(), t));
            }
            if u.metered && tracker.last_two_way() == Some(now) {
                self.deps.two_way.do_send(TwoWayTraffic {
                    iface: u.name.clone(),
                    at: now,
                });
            }
            match sample.filter(|_| tracker.settled()) {
                Some(s) => self.state.settled_tx.insert(u.ifindex, s.tx_packets),
                None => self.state.settled_tx.remove(&u.ifindex),
            };
        }
        for (iface, trigger) in &triggers {
            let reason = trigger.describe();
            let _span = tracing::info_span!("traffic_watcher", iface = %iface).entered();
            tracing::info!(evidence = %reason, "passive health: suspected stall");
            let standby = standby
                .clone()
                .filter(|_| in_use.as_ref() == Some(iface))
                .filter(|s| s != iface);
            self.deps.confirm.do_send(Confirm {
                iface: iface.clone(),
                rtt: trigger.rtt,
                standby,
                reason,
            });
        }
        self.publish(now, &triggers);
    }

    fn publish(&self, now: Instant, triggers: &[(IfaceName, Trigger)]) {
        let mut board = self.deps.board.lock();
        for (name, p) in board.passive_mut() {
            match self.state.trackers.get(name) {
                None => {
                    p.state = PassiveState::Off;
                    p.suspect_since_unix_ms = None;
                }
                Some(t) => match t.suspect_since() {
                    Some(since) => {
                        p.state = PassiveState::Suspect;
                        // Taken once, when the suspicion starts: the board shows wall-clock
                        // time, the tracker keeps the engine's (possibly virtual) clock.
                        if p.suspect_since_unix_ms.is_none() {
                            p.suspect_since_unix_ms = Some(unix_ms(now, since));
                        }
                    }
                    None => {
                        p.state = PassiveState::Quiet;
                        p.suspect_since_unix_ms = None;
                    }
                },
            }
            if let Some(t) = self.state.trackers.get(name) {
                p.held_by_ceiling += u64::from(t.capped());
                p.sees = match t.conntrack() {
                    None => Sees::Unsampled,
                    Some(true) => Sees::SocketsAndConntrack,
                    Some(false) => Sees::SocketsOnly,
                };
            }
            if let Some((_, t)) = triggers.iter().find(|(n, _)| n == name) {
                p.suspicions += 1;
                p.last_trigger = Some(t.describe());
                p.last_trigger_unix_ms = Some(unix_ms(now, now));
            }
        }
    }

    fn publish_off(&self) {
        let mut board = self.deps.board.lock();
        for (_, p) in board.passive_mut() {
            p.state = PassiveState::Off;
            p.suspect_since_unix_ms = None;
        }
    }
}

/// The interfaces (ifindexes) whose evidence can change a decision now: for each family, the
/// FULL uplink carrying the route in use, and while it is one of `suspects`, the next FULL
/// uplink of that family (the standby about to be needed). See the module doc.
fn watched(uplinks: &[Uplink], cfg: &Config, suspects: &[IfaceName]) -> Vec<u32> {
    let ranked = rank(uplinks, cfg);
    let mut out: Vec<u32> = Vec::new();
    for family in [Family::V4, Family::V6] {
        let mut full = ranked
            .iter()
            .filter(|u| u.routed.contains(&family))
            .filter(|u| u.connectivity == Connectivity::Full);
        // With checks on, a route not FULL is penalised behind every FULL one, so the first
        // FULL uplink is the one in use when it leads the ranking.
        let Some(in_use) = ranked
            .iter()
            .find(|u| u.routed.contains(&family))
            .filter(|u| u.connectivity == Connectivity::Full)
        else {
            continue;
        };
        out.push(in_use.ifindex);
        if suspects.contains(&in_use.name) {
            if let Some(standby) = full.find(|u| u.ifindex != in_use.ifindex) {
                out.push(standby.ifindex);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One period's reading: the link counters of `eligible`, then a whole sample of those that
/// sent packets since a settled sample or were not settled (`settled_tx`). Returns the
/// ifindexes sampled whole and their samples.
async fn whole_samples(
    traffic: &dyn TrafficSource,
    eligible: Vec<u32>,
    settled_tx: &BTreeMap<u32, u64>,
) -> Result<(Vec<u32>, Vec<IfaceTraffic>), PortError> {
    if eligible.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let quiet: Vec<u32> = if settled_tx.is_empty() {
        Vec::new()
    } else {
        let counters = traffic.counters(eligible.clone()).await?;
        counters
            .iter()
            .filter(|c| settled_tx.get(&c.ifindex) == Some(&c.tx_packets))
            .map(|c| c.ifindex)
            .collect()
    };
    let wanted: Vec<u32> = eligible
        .into_iter()
        .filter(|i| !quiet.contains(i))
        .collect();
    if wanted.is_empty() {
        return Ok((wanted, Vec::new()));
    }
    let samples = traffic.sample(wanted.clone()).await?;
    Ok((wanted, samples))
}

/// Wall-clock time (Unix ms) of `at`, a tokio instant up to now.
fn unix_ms(now: Instant, at: Instant) -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    wall.saturating_sub(now.duration_since(at)).as_millis() as u64
}

/// Usable uplinks with a route, best first, as the kernel would pick them: configured metric
/// plus the penalty while checks are on and the state is not FULL; ties by ifindex.
fn rank<'a>(uplinks: &'a [Uplink], cfg: &Config) -> Vec<&'a Uplink> {
    let mut usable: Vec<&Uplink> = uplinks
        .iter()
        .filter(|u| u.usable && !u.routed.is_empty())
        .collect();
    let effective = |u: &Uplink| {
        let penalty = if cfg.check.enabled() && u.connectivity != Connectivity::Full {
            cfg.route.penalty
        } else {
            0
        };
        u.metric.saturating_add(penalty)
    };
    usable.sort_by_key(|u| (effective(u), u.ifindex));
    usable
}

impl Actor for TrafficWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("traffic_watcher").entered();
        tracing::debug!(enabled = self.enabled(), "passive health sampling");
        self.schedule(ctx);
    }
}

impl Handler<Reconfigure> for TrafficWatcher {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        if msg.0.passive != self.cfg.passive || msg.0.check != self.cfg.check {
            self.cfg = msg.0;
            self.schedule(ctx);
        } else {
            self.cfg = msg.0;
        }
    }
}

impl Handler<AnsweredSince> for TrafficWatcher {
    type Result = ResponseActFuture<Self, bool>;
    fn handle(&mut self, msg: AnsweredSince, _: &mut Self::Context) -> Self::Result {
        if !self.state.trackers.contains_key(&msg.iface) {
            return Box::pin(actix::fut::ready(false));
        }
        let sample = self.deps.traffic.sample(vec![msg.ifindex]);
        Box::pin(sample.into_actor(self).map(move |res, act, _| {
            let fresh = res.ok().and_then(|all| {
                all.into_iter()
                    .find(|s| s.ifindex == msg.ifindex && s.name == msg.iface.as_str())
            });
            let answered = match (act.state.trackers.get(&msg.iface), fresh) {
                (Some(t), Some(fresh)) => t.answered_since(msg.since, &fresh),
                _ => false,
            };
            let _span = tracing::info_span!("traffic_watcher", iface = %msg.iface).entered();
            tracing::debug!(
                answered,
                "passive health: traffic answered during a confirmation?"
            );
            answered
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uplink(name: &str, ifindex: u32, metric: u32, c: Connectivity) -> Uplink {
        Uplink {
            name: IfaceName::new(name).unwrap(),
            ifindex,
            usable: true,
            dns: vec![],
            routed: vec![Family::V4],
            expects_default: true,
            connectivity: c,
            metric,
            cellular: false,
            metered: false,
            in_use: false,
        }
    }

    #[test]
    fn ranking_follows_penalised_metrics() {
        let cfg = Config::default();
        let ups = [
            uplink("eth0", 2, 100, Connectivity::Limited),
            uplink("wlan0", 3, 600, Connectivity::Full),
            uplink("wwan0", 4, 700, Connectivity::Full),
        ];
        let names: Vec<&str> = rank(&ups, &cfg).iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["wlan0", "wwan0", "eth0"]);
        let mut no_route = ups.clone();
        no_route[1].routed.clear();
        let names: Vec<&str> = rank(&no_route, &cfg)
            .iter()
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(names, ["wwan0", "eth0"]);
    }

    #[test]
    fn only_the_route_in_use_is_watched_and_its_standby_while_it_is_suspect() {
        let cfg = Config::default();
        let name = |n: &str| IfaceName::new(n).unwrap();
        let mut ups = vec![
            uplink("eth0", 2, 100, Connectivity::Full),
            uplink("wlan0", 3, 600, Connectivity::Full),
            uplink("wwan0", 4, 700, Connectivity::Full),
        ];
        assert_eq!(watched(&ups, &cfg, &[]), [2]);
        // A suspect standby changes nothing; a suspect primary adds the next FULL uplink.
        assert_eq!(watched(&ups, &cfg, &[name("wlan0")]), [2]);
        assert_eq!(watched(&ups, &cfg, &[name("eth0")]), [2, 3]);
        ups[1].connectivity = Connectivity::Limited;
        assert_eq!(watched(&ups, &cfg, &[name("eth0")]), [2, 4]);
        // The primary penalised: the route in use is wwan0's.
        ups[0].connectivity = Connectivity::Limited;
        assert_eq!(watched(&ups, &cfg, &[]), [4]);
        // Nothing FULL: nothing is watched.
        ups[2].connectivity = Connectivity::None;
        assert_eq!(watched(&ups, &cfg, &[]), Vec::<u32>::new());
        // Each family's route in use: IPv6 only through wlan0.
        let mut dual = vec![
            uplink("eth0", 2, 100, Connectivity::Full),
            uplink("wlan0", 3, 600, Connectivity::Full),
        ];
        dual[1].routed = vec![Family::V6];
        assert_eq!(watched(&dual, &cfg, &[]), [2, 3]);
    }
}
