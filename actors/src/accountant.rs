//! Accountant: what checking costs, per interface and calendar month (UTC), and the monthly
//! budget of metered uplinks (docs/semantics.md §10; the pure rules are `accounting.rs`).
//!
//! Owns: the month's accounts ([`Accounts`]: check bytes, link rx/tx bytes, the budget
//! thresholds announced), loaded from the `accounts` port on start and saved through it every
//! [`SAVE_PERIOD`] when something changed, at once when a threshold is announced (so a restart
//! never announces it again), and on a clean stop ([`FlushAccounts`], from the supervisor). It
//! reads the link counters of the managed interfaces every [`SAMPLE_PERIOD`] (the
//! `TrafficSource` port's counters-only read: one link dump) and turns the month on the
//! `Calendar` port's clock. It pushes the `budget` dispatcher events (75 %, 95 %, 100 %) into
//! the engine's `EventLog` and tells ProbeScheduler which uplinks' periodic checks stop
//! ([`BudgetExhausted`]), and publishes the board's `accounting` part.
//!
//! Talks to: ProbeScheduler sends it every check's bytes ([`ProbeSpent`]); it asks RouteManager
//! for the uplinks ([`GetUplinks`]: names, ifindexes, metered) on start, on a reload and every
//! sample.
//!
//! On failure: restarted; it loads the accounts again (what changed since the last save is
//! lost: at most [`SAVE_PERIOD`] of link bytes, and the checks whose bytes arrived meanwhile).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::accounting::{Accounts, LinkCounters, Month};
use crate::board::Board;
use crate::event_log::EventLog;
use crate::messages::{
    BudgetExhausted, FlushAccounts, GetUplinks, ProbeSpent, Reconfigure, Uplink,
};
use crate::model::{BudgetInfo, Config, Connectivity, Event, EventKind, IfaceName};
use crate::peers::Slot;
use crate::ports::{Calendar, Store, TrafficSource};
use crate::status::{AccountingStatus, IfaceAccounting};

/// How often the link counters are read (and the uplinks asked for).
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(300);

/// How often changed accounts are saved (a threshold announced is saved at once).
pub const SAVE_PERIOD: Duration = Duration::from_secs(300);

/// Longest a flush on stop may take (one link dump, one file write).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the Accountant needs from outside, shared by its incarnations.
#[derive(Clone)]
pub struct AccountantDeps {
    pub store: Arc<dyn Store<Accounts>>,
    pub calendar: Arc<dyn Calendar>,
    pub traffic: Arc<dyn TrafficSource>,
    pub get_uplinks: Slot<GetUplinks>,
    pub exhausted: Slot<BudgetExhausted>,
    pub log: EventLog,
    pub board: Board,
}

/// See the module doc.
pub struct Accountant {
    cfg: Arc<Config>,
    deps: AccountantDeps,
    /// `None` until loaded (the load blocks the mailbox: no message is handled before it).
    accounts: Option<Accounts>,
    uplinks: Vec<Uplink>,
    /// Changed since the last save.
    dirty: bool,
}

impl Accountant {
    pub fn new(cfg: Arc<Config>, deps: AccountantDeps) -> Self {
        Self {
            cfg,
            deps,
            accounts: None,
            uplinks: Vec::new(),
            dirty: false,
        }
    }

    fn month(&self) -> Month {
        Month::of_unix_ms(self.deps.calendar.now_unix_ms())
    }

    fn metered(&self) -> BTreeSet<IfaceName> {
        self.uplinks
            .iter()
            .filter(|u| u.metered)
            .map(|u| u.name.clone())
            .collect()
    }

    /// Counts one check; announces the thresholds it reached (saving at once).
    fn spend(&mut self, msg: ProbeSpent) {
        let month = self.month();
        let budget = self.cfg.metered.budget_month;
        let metered = self.metered().contains(&msg.iface);
        let Some(accounts) = self.accounts.as_mut() else {
            return;
        };
        let a = accounts.account(&msg.iface, month);
        a.add_check(msg.bytes, msg.dns_bytes);
        self.dirty = true;
        let due = if metered {
            a.announce(budget)
        } else {
            Vec::new()
        };
        let (probe_bytes, month) = (a.probe_bytes, a.month);
        for percent in &due {
            self.announce(&msg.iface, *percent, probe_bytes, month);
        }
        if !due.is_empty() {
            self.save();
        }
    }

    /// Pushes one `budget` dispatcher event.
    fn announce(&self, iface: &IfaceName, percent: u8, probe_bytes: u64, month: Month) {
        let budget = self.cfg.metered.budget_month;
        let state = self
            .uplinks
            .iter()
            .find(|u| &u.name == iface)
            .map_or(Connectivity::Unknown, |u| u.connectivity);
        let what = if percent >= 100 {
            "periodic checks stop until the month changes"
        } else {
            "checks go on"
        };
        let reason = format!(
            "checks spent {probe_bytes} of the {budget}-byte budget for {month} ({percent} %): {what}"
        );
        tracing::warn!(iface = %iface, percent, probe_bytes, budget, "budget: {reason}");
        self.deps.log.push(Event {
            id: 0,
            kind: EventKind::Budget,
            iface: Some(iface.clone()),
            state,
            previous: state,
            reason,
            connection_id: None,
            connection_uuid: None,
            ip4_gateway: None,
            ip4_nameservers: vec![],
            at_unix_ms: self.deps.calendar.now_unix_ms(),
            recovery: None,
            budget: Some(Box::new(BudgetInfo {
                percent,
                budget_bytes: budget,
                probe_bytes,
                month: month.to_string(),
            })),
        });
    }

    /// Turns the month of every account, announces what a changed budget or metered flag
    /// reached, and tells ProbeScheduler which uplinks' periodic checks stop; publishes.
    fn settle(&mut self) {
        let month = self.month();
        let budget = self.cfg.metered.budget_month;
        let metered = self.metered();
        let Some(accounts) = self.accounts.as_mut() else {
            return;
        };
        let mut due = Vec::new();
        for (name, a) in accounts.interfaces.iter_mut() {
            self.dirty |= a.roll(month);
            if metered.contains(name) {
                for p in a.announce(budget) {
                    due.push((name.clone(), p, a.probe_bytes, a.month));
                }
            }
        }
        let exhausted = accounts.exhausted(&metered, budget);
        for (name, p, bytes, m) in &due {
            self.announce(name, *p, *bytes, *m);
        }
        if !due.is_empty() {
            self.save();
        }
        self.deps.exhausted.do_send(BudgetExhausted(exhausted));
        self.publish();
    }

    /// Reads the link counters of the uplinks and adds their deltas.
    fn sample(&mut self, ctx: &mut Context<Self>) {
        let ifindexes: Vec<u32> = self.uplinks.iter().map(|u| u.ifindex).collect();
        if ifindexes.is_empty() || self.accounts.is_none() {
            return;
        }
        let read = self.deps.traffic.counters(ifindexes);
        ctx.spawn(read.into_actor(self).map(|read, act, _| match read {
            Ok(samples) => act.add_samples(&samples),
            Err(e) => tracing::debug!(error = %e, "accounting: cannot read the link counters"),
        }));
    }

    fn add_samples(&mut self, samples: &[crate::ports::IfaceTraffic]) {
        let month = self.month();
        let Some(accounts) = self.accounts.as_mut() else {
            return;
        };
        for s in samples {
            let Some(u) = self.uplinks.iter().find(|u| u.ifindex == s.ifindex) else {
                continue;
            };
            accounts.account(&u.name, month).add_link(LinkCounters {
                ifindex: s.ifindex,
                rx_bytes: s.rx_bytes,
                tx_bytes: s.tx_bytes,
            });
            self.dirty = true;
        }
        self.publish();
    }

    /// Saves the accounts if they changed (the write runs on its own; a failure is logged and
    /// retried at the next save).
    fn save(&mut self) {
        let Some(accounts) = self.accounts.clone() else {
            return;
        };
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let saved = self.deps.store.save(accounts);
        actix::spawn(async move {
            if let Err(e) = saved.await {
                tracing::warn!(error = %e, "accounting: cannot save the accounts");
            }
        });
    }

    /// Asks RouteManager for the uplinks, then settles and reads the counters.
    fn refresh(&mut self, ctx: &mut Context<Self>) {
        let Some(rm) = self.deps.get_uplinks.get() else {
            self.settle();
            return;
        };
        ctx.spawn(
            async move { rm.send(GetUplinks).await.ok() }
                .into_actor(self)
                .map(|uplinks, act, ctx| {
                    if let Some(u) = uplinks {
                        act.uplinks = u;
                    }
                    act.settle();
                    act.sample(ctx);
                }),
        );
    }

    /// The Accountant's part of the board.
    fn publish(&self) {
        let budget = self.cfg.metered.budget_month;
        let metered = self.metered();
        let interfaces = self
            .accounts
            .iter()
            .flat_map(|a| a.interfaces.iter())
            .map(|(name, a)| {
                let is_metered = metered.contains(name);
                let level = if is_metered {
                    a.budget_level(budget)
                } else {
                    None
                };
                let status = IfaceAccounting {
                    month: a.month.to_string(),
                    metered: is_metered,
                    probe_bytes: a.probe_bytes,
                    probe_dns_bytes: a.probe_dns_bytes,
                    checks: a.checks,
                    rx_bytes: a.rx_bytes,
                    tx_bytes: a.tx_bytes,
                    budget_percent: level.unwrap_or(0),
                    budget_exhausted: level == Some(100),
                };
                (name.clone(), status)
            })
            .collect();
        self.deps.board.lock().status.accounting = AccountingStatus {
            budget_month: budget,
            interfaces,
        };
    }
}

impl Actor for Accountant {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("accountant").entered();
        let load = self.deps.store.load();
        ctx.wait(load.into_actor(self).map(|loaded, act, _| {
            act.accounts = Some(loaded.unwrap_or_else(|e| {
                tracing::error!(error = %e, "accounting: cannot read the accounts; counting from zero");
                Accounts::default()
            }));
        }));
        self.refresh(ctx);
        ctx.run_interval(SAMPLE_PERIOD, |act, ctx| act.refresh(ctx));
        ctx.run_interval(SAVE_PERIOD, |act, _| act.save());
    }
}

impl Handler<ProbeSpent> for Accountant {
    type Result = ();
    fn handle(&mut self, msg: ProbeSpent, ctx: &mut Self::Context) {
        let _span = tracing::info_span!("accountant", iface = %msg.iface).entered();
        let known = self.uplinks.iter().any(|u| u.name == msg.iface);
        self.spend(msg);
        if known {
            self.settle();
        } else {
            // A new uplink: whether it is metered comes with the uplinks (then it settles).
            self.refresh(ctx);
        }
    }
}

impl Handler<FlushAccounts> for Accountant {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, _: FlushAccounts, _: &mut Self::Context) -> Self::Result {
        let _span = tracing::info_span!("accountant").entered();
        let ifindexes: Vec<u32> = self.uplinks.iter().map(|u| u.ifindex).collect();
        let read = self.deps.traffic.counters(ifindexes);
        Box::pin(
            read.into_actor(self)
                .then(|read, act, _| {
                    if let Ok(samples) = read {
                        act.add_samples(&samples);
                    }
                    let store = act.deps.store.clone();
                    let accounts = act.accounts.clone();
                    act.dirty = false;
                    async move {
                        if let Some(a) = accounts {
                            if let Err(e) = store.save(a).await {
                                tracing::warn!(error = %e, "accounting: cannot save the accounts");
                            }
                        }
                    }
                    .into_actor(act)
                })
                .map(|_, _, _| ()),
        )
    }
}

impl Handler<Reconfigure> for Accountant {
    type Result = ();
    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.cfg = msg.0;
        // A new budget (or metered flag) takes effect at once: thresholds it reaches are
        // announced, a larger one lets periodic checks resume.
        self.refresh(ctx);
    }
}
