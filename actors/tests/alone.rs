//! Each actor started alone, without the tree: its ports are fakes and the actors it talks to
//! are collectors (a recipient that records the messages it gets and answers from a closure).
//! This is what the typed `Slot`s of `peers.rs` buy: no actor needs another to be tested.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::broadcast;

use netfailover_actors::board::Board;
use netfailover_actors::dispatcher::Dispatcher;
use netfailover_actors::event_log::EventLog;
use netfailover_actors::fake::{
    event, pass, settle, FakeKernel, FakeProbe, FakeScripts, FakeTraffic, MemJournal, MemStateStore,
};
use netfailover_actors::flow_resetter::FlowResetter;
use netfailover_actors::link_watcher::{LinkFacts, LinkWatcher};
use netfailover_actors::messages::{
    BudgetExhausted, Confirm, ConnectivityChanged, GetUplinks, LinkChanged, LinkRemoved,
    LinkSnapshot, NextCheck, ProbeDone, ProbeSpent, Reconfigure, ResetChecks, RouteInUseMoved,
    RoutesChanged, Uplink, UplinksChanged,
};
use netfailover_actors::model::{
    CheckConfig, Config, Connectivity, EventKind, Family, IfaceName, KernelRoute, LinkKind,
};
use netfailover_actors::peers::Slot;
use netfailover_actors::ports::{ProbeRequest, Verdict};
use netfailover_actors::probe_scheduler::{ProbeDeps, ProbeScheduler};
use netfailover_actors::prober::Prober;
use netfailover_actors::route_manager::{RouteDeps, RouteManager};
use netfailover_actors::traffic_watcher::{TrafficDeps, TrafficWatcher};

// ---------------------------------------------------------------------------------------------
// The collector
// ---------------------------------------------------------------------------------------------

type Reply<M> = Box<dyn FnMut(&M) -> <M as Message>::Result>;

/// Records every `M` it receives and answers with `reply`.
struct Collector<M: Message> {
    seen: Arc<Mutex<Vec<M>>>,
    reply: Reply<M>,
}

impl<M: Message + Unpin + 'static> Actor for Collector<M> {
    type Context = Context<Self>;
}

impl<M> Handler<M> for Collector<M>
where
    M: Message + Unpin + 'static,
    M::Result: 'static,
{
    type Result = MessageResult<M>;
    fn handle(&mut self, msg: M, _: &mut Self::Context) -> Self::Result {
        let answer = (self.reply)(&msg);
        self.seen
            .lock()
            .expect("no test panics holding it")
            .push(msg);
        MessageResult(answer)
    }
}

/// What a collector has received so far.
struct Seen<M>(Arc<Mutex<Vec<M>>>);

impl<M: Clone> Seen<M> {
    fn all(&self) -> Vec<M> {
        self.0.lock().expect("no test panics holding it").clone()
    }
}

/// A started collector answering with `reply`, as a slot and a view of what it got.
fn collector<M>(reply: impl FnMut(&M) -> M::Result + 'static) -> (Slot<M>, Seen<M>)
where
    M: Message + Send + Unpin + 'static,
    M::Result: Send + 'static,
{
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = Collector {
        seen: seen.clone(),
        reply: Box::new(reply),
    }
    .start();
    (Slot::to(addr.recipient()), Seen(seen))
}

/// A collector of messages without an answer.
fn sink<M>() -> (Slot<M>, Seen<M>)
where
    M: Message<Result = ()> + Send + Unpin + 'static,
{
    collector(|_| ())
}

fn name(n: &str) -> IfaceName {
    IfaceName::new(n).expect("a valid test name")
}

fn checks_on() -> Config {
    Config {
        check: CheckConfig {
            uri: "http://192.0.2.80/check".into(),
            ..CheckConfig::default()
        },
        ..Config::default()
    }
}

fn uplink(n: &str, ifindex: u32, metric: u32, connectivity: Connectivity) -> Uplink {
    Uplink {
        name: name(n),
        ifindex,
        usable: true,
        dns: vec![],
        routed: vec![Family::V4],
        expects_default: true,
        connectivity,
        metric,
        cellular: false,
        metered: false,
        in_use: false,
    }
}

// ---------------------------------------------------------------------------------------------
// RouteManager
// ---------------------------------------------------------------------------------------------

#[actix::test]
async fn route_manager_alone_adopts_a_route_and_reports_uplinks_and_moves() {
    tokio::time::pause();
    let kernel = FakeKernel::new();
    let mut ifindexes = Vec::new();
    for (i, (n, metric)) in [("eth0", 100), ("wlan0", 600)].into_iter().enumerate() {
        let ifindex = kernel.add_link(n, LinkKind::Other);
        kernel.add_route_by_hand(KernelRoute {
            family: Family::V4,
            ifindex,
            gateway: Some(format!("192.0.2.{}", i + 1).parse().expect("an address")),
            metric,
            protocol: 16, // DHCP
        });
        ifindexes.push(ifindex);
    }
    let (uplinks, reported) = sink::<UplinksChanged>();
    let (reset_checks, _) = sink::<ResetChecks>();
    let (moved, moves) = sink::<RouteInUseMoved>();
    let (tx, _) = broadcast::channel(16);
    let board = Board::default();
    let deps = RouteDeps {
        links: Arc::new(kernel.clone()),
        routes: Arc::new(kernel.clone()),
        sysctl: Arc::new(kernel.clone()),
        store: Arc::new(MemStateStore::default()),
        log: EventLog::new(Arc::new(MemJournal::default()), tx, board.clone(), 100),
        uplinks,
        reset_checks,
        moved,
        recovery: Default::default(),
        board,
    };
    // No LinkWatcher: the test hands it the link facts itself.
    let rm = RouteManager::new(Arc::new(Config::default()), deps, true).start();
    rm.do_send(LinkSnapshot(vec![
        kernel.link("eth0"),
        kernel.link("wlan0"),
    ]));
    pass(Duration::from_millis(500)).await;
    let last = reported.all().pop().expect("the uplinks were reported");
    let names: Vec<&str> = last.0.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["eth0", "wlan0"]);
    assert_eq!(kernel.best_iface().as_deref(), Some("eth0"));
    // The checks' verdicts, as ProbeScheduler would send them (a move off an interface whose
    // state is still UNKNOWN is held until it is known).
    for n in ["eth0", "wlan0"] {
        rm.do_send(ConnectivityChanged {
            iface: name(n),
            state: Connectivity::Full,
            reason: "test".into(),
        });
    }
    pass(Duration::from_millis(500)).await;
    assert!(moves.all().is_empty(), "nothing moved yet");

    // eth0 loses its carrier: the route in use moves to wlan0, and FlowResetter is told.
    kernel.set_carrier_unannounced("eth0", false);
    rm.do_send(LinkChanged(kernel.link("eth0")));
    pass(Duration::from_millis(500)).await;
    assert_eq!(kernel.best_iface().as_deref(), Some("wlan0"));
    let moves: Vec<(String, String, u32)> = moves
        .all()
        .into_iter()
        .map(|m| (m.from.to_string(), m.to.to_string(), m.from_ifindex))
        .collect();
    assert_eq!(
        moves,
        [("eth0".to_string(), "wlan0".to_string(), ifindexes[0])]
    );
}

// ---------------------------------------------------------------------------------------------
// LinkWatcher
// ---------------------------------------------------------------------------------------------

#[actix::test]
async fn link_watcher_alone_dumps_then_forwards_changes() {
    tokio::time::pause();
    let kernel = FakeKernel::new();
    let eth0 = kernel.add_link("eth0", LinkKind::Other);
    let (changed, changes) = sink::<LinkChanged>();
    let (removed, removals) = sink::<LinkRemoved>();
    let (snapshot, snapshots) = sink::<LinkSnapshot>();
    let (routes, _) = sink::<RoutesChanged>();
    let to = LinkFacts {
        changed,
        removed,
        snapshot,
        routes,
    };
    let _watcher = LinkWatcher::new(Arc::new(kernel.clone()), to).start();
    settle().await;
    let dumps = snapshots.all();
    assert_eq!(dumps.len(), 1, "one dump after subscribing");
    assert_eq!(
        dumps[0].0.iter().map(|l| l.ifindex).collect::<Vec<_>>(),
        [eth0]
    );

    kernel.set_carrier("eth0", false);
    settle().await;
    let last = changes
        .all()
        .pop()
        .expect("the carrier change was forwarded");
    assert_eq!((last.0.ifindex, last.0.carrier), (eth0, false));

    kernel.overrun();
    settle().await;
    assert_eq!(snapshots.all().len(), 2, "an overrun dumps again");

    kernel.remove_link("eth0");
    settle().await;
    assert_eq!(
        removals.all().iter().map(|r| r.ifindex).collect::<Vec<_>>(),
        [eth0]
    );
}

// ---------------------------------------------------------------------------------------------
// Prober
// ---------------------------------------------------------------------------------------------

fn request(routed: Vec<Family>) -> ProbeRequest {
    ProbeRequest {
        iface: name("eth0"),
        ifindex: 2,
        dns: vec![],
        routed,
    }
}

#[actix::test]
async fn prober_alone_checks_at_once_then_on_the_schedule_it_is_given() {
    tokio::time::pause();
    let probe = FakeProbe::default();
    probe.set("eth0", Verdict::Full);
    let (done, results) =
        collector::<ProbeDone>(|_| Some(NextCheck::After(Duration::from_secs(10))));
    let done = done.get().expect("filled");
    let prober = Prober::new(
        request(vec![Family::V4]),
        Arc::new(probe.clone()),
        done,
        Duration::from_secs(5),
    )
    .start();
    pass(Duration::from_millis(100)).await;
    let first = results.all();
    assert_eq!(first.len(), 1, "a check at start");
    assert_eq!(
        (first[0].iface.as_str(), first[0].report.verdict),
        ("eth0", Verdict::Full)
    );
    pass(Duration::from_secs(5)).await;
    assert_eq!(
        results.all().len(),
        1,
        "nothing before the 10 s it was told"
    );
    pass(Duration::from_secs(5)).await;
    assert_eq!(results.all().len(), 2, "the next check after 10 s");
    assert!(prober.connected());
}

#[actix::test]
async fn prober_alone_answers_none_without_a_route_and_stops_when_told() {
    tokio::time::pause();
    let probe = FakeProbe::default();
    probe.set("eth0", Verdict::Full);
    let (done, results) = collector::<ProbeDone>(|_| None);
    let prober = Prober::new(
        request(vec![]),
        Arc::new(probe.clone()),
        done.get().expect("filled"),
        Duration::from_secs(5),
    )
    .start();
    settle().await;
    let got = results.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].report.verdict, Verdict::None, "{:?}", got[0].report);
    assert!(probe.checks("eth0").is_empty(), "no check without a route");
    assert!(!prober.connected(), "a `None` reply stops the prober");
}

// ---------------------------------------------------------------------------------------------
// ProbeScheduler
// ---------------------------------------------------------------------------------------------

#[actix::test]
async fn probe_scheduler_alone_asks_for_uplinks_and_reports_connectivity() {
    tokio::time::pause();
    let probe = FakeProbe::default();
    probe.set("eth0", Verdict::Full);
    let (get_uplinks, asked) =
        collector::<GetUplinks>(|_| vec![uplink("eth0", 2, 100, Connectivity::Unknown)]);
    let (connectivity, facts) = sink::<ConnectivityChanged>();
    let deps = ProbeDeps {
        probe: Arc::new(probe.clone()),
        connectivity,
        get_uplinks,
        answered_since: Default::default(),
        spent: Default::default(),
        board: Board::default(),
    };
    let scheduler = ProbeScheduler::new(Arc::new(checks_on()), deps).start();
    pass(Duration::from_millis(100)).await;
    assert_eq!(asked.all().len(), 1, "asked RouteManager once, on start");
    assert_eq!(probe.checks("eth0").len(), 1, "its Prober checked at once");
    let got: Vec<(String, Connectivity)> = facts
        .all()
        .into_iter()
        .map(|c| (c.iface.to_string(), c.state))
        .collect();
    assert_eq!(got, [("eth0".to_string(), Connectivity::Full)]);
    assert!(scheduler.connected());
}

/// The budget gate: the checks' bytes go to the Accountant's slot; once it says an uplink's
/// budget is exhausted, its periodic checks stop (0 bytes) and resume when it says otherwise.
#[actix::test]
async fn probe_scheduler_alone_reports_bytes_and_stops_periodic_checks_of_an_exhausted_uplink() {
    tokio::time::pause();
    let probe = FakeProbe::default();
    probe.set("eth0", Verdict::Full);
    let (get_uplinks, _) =
        collector::<GetUplinks>(|_| vec![uplink("eth0", 2, 100, Connectivity::Full)]);
    let (connectivity, _) = sink::<ConnectivityChanged>();
    let (spent, bytes) = sink::<ProbeSpent>();
    let deps = ProbeDeps {
        probe: Arc::new(probe.clone()),
        connectivity,
        get_uplinks,
        answered_since: Default::default(),
        spent,
        board: Board::default(),
    };
    let mut cfg = checks_on();
    cfg.check.interval = Duration::from_secs(30);
    let scheduler = ProbeScheduler::new(Arc::new(cfg), deps).start();
    pass(Duration::from_millis(100)).await;
    assert_eq!(probe.checks("eth0").len(), 1);
    let got: Vec<(String, u64)> = bytes
        .all()
        .into_iter()
        .map(|s| (s.iface.to_string(), s.bytes))
        .collect();
    assert_eq!(got, [("eth0".to_string(), 600)]);
    scheduler.do_send(BudgetExhausted([name("eth0")].into()));
    pass(Duration::from_secs(95)).await;
    assert_eq!(probe.checks("eth0").len(), 1, "periodic checks stopped");
    scheduler.do_send(BudgetExhausted(Default::default()));
    pass(Duration::from_secs(31)).await;
    assert_eq!(
        probe.checks("eth0").len(),
        2,
        "resumed at the next interval"
    );
}

#[actix::test]
async fn probe_scheduler_alone_restarts_a_prober_whose_port_panicked() {
    tokio::time::pause();
    let probe = FakeProbe::default();
    probe.set("eth0", Verdict::Full);
    probe.panic_next("eth0");
    let (get_uplinks, _) =
        collector::<GetUplinks>(|_| vec![uplink("eth0", 2, 100, Connectivity::Unknown)]);
    let (connectivity, facts) = sink::<ConnectivityChanged>();
    let board = Board::default();
    let deps = ProbeDeps {
        probe: Arc::new(probe.clone()),
        connectivity,
        get_uplinks,
        answered_since: Default::default(),
        spent: Default::default(),
        board: board.clone(),
    };
    let scheduler = ProbeScheduler::new(Arc::new(checks_on()), deps).start();
    pass(Duration::from_millis(50)).await;
    assert!(
        facts.all().is_empty(),
        "the first check panicked: no verdict yet"
    );
    // The prober's back-off starts at 100 ms.
    pass(Duration::from_millis(500)).await;
    assert_eq!(
        probe.checks("eth0").len(),
        2,
        "the restarted prober checked again"
    );
    assert_eq!(
        facts.all().iter().map(|c| c.state).collect::<Vec<_>>(),
        [Connectivity::Full]
    );
    let status = board.snapshot();
    let prober = status
        .actors
        .iter()
        .find(|a| a.name == "prober:eth0")
        .expect("the prober is on the board");
    assert!(prober.running, "{prober:?}");
    assert_eq!(
        (
            prober.restarts,
            prober.kills,
            prober.last_failure.map(|f| f.as_str())
        ),
        (1, 0, Some("panicked"))
    );
    assert!(scheduler.connected(), "only the prober failed");
}

// ---------------------------------------------------------------------------------------------
// Dispatcher
// ---------------------------------------------------------------------------------------------

#[actix::test]
async fn dispatcher_alone_delivers_pending_events_in_order() {
    tokio::time::pause();
    let (tx, _) = broadcast::channel(16);
    let log = EventLog::new(Arc::new(MemJournal::default()), tx, Board::default(), 100);
    log.push(event(EventKind::Up, "eth0"));
    log.push(event(EventKind::ConnectivityChange, "eth0"));
    let scripts = FakeScripts::default();
    let _dispatcher = Dispatcher::new(Arc::new(scripts.clone()), log.clone()).start();
    pass(Duration::from_secs(1)).await;
    let kinds: Vec<EventKind> = scripts.finished().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Up, EventKind::ConnectivityChange]);
    assert!(
        log.pending_ids().is_empty(),
        "delivered events leave the log"
    );
}

// ---------------------------------------------------------------------------------------------
// FlowResetter
// ---------------------------------------------------------------------------------------------

fn moved(failback: bool) -> RouteInUseMoved {
    RouteInUseMoved {
        family: Family::V4,
        from: name("eth0"),
        from_ifindex: 2,
        from_addresses: Vec::new(),
        from_cellular: false,
        to: name("wlan0"),
        failback,
        at: tokio::time::Instant::now(),
    }
}

#[actix::test]
async fn flow_resetter_alone_resets_a_failover_and_a_failback_by_default_but_no_failback_when_off()
{
    tokio::time::pause();
    let kernel = FakeKernel::new();
    let flows = netfailover_actors::fake::FakeFlows::watching(kernel);
    let board = Board::default();
    let resetter = FlowResetter::new(
        Arc::new(Config::default()),
        Arc::new(flows.clone()),
        board.clone(),
    )
    .start();
    resetter.do_send(moved(false));
    settle().await;
    resetter.do_send(moved(true));
    settle().await;
    let resets = flows.resets();
    assert_eq!(resets.len(), 2, "the failover and the fail-back");
    assert_eq!(
        (resets[0].scope.iface.as_str(), resets[0].scope.ifindex),
        ("eth0", 2)
    );
    assert_eq!(board.flow_resets().len(), 2, "recorded on the board");
    let mut cfg = Config::default();
    cfg.flows.on_failback = false;
    resetter.do_send(Reconfigure(Arc::new(cfg)));
    resetter.do_send(moved(true));
    resetter.do_send(moved(false));
    settle().await;
    assert_eq!(flows.resets().len(), 3, "the failover only");
    // A cellular backup's flows move back whatever `on_failback` says.
    resetter.do_send(RouteInUseMoved {
        from_cellular: true,
        ..moved(true)
    });
    settle().await;
    assert_eq!(flows.resets().len(), 4, "off the cellular backup");
}

// ---------------------------------------------------------------------------------------------
// TrafficWatcher
// ---------------------------------------------------------------------------------------------

#[actix::test]
async fn traffic_watcher_alone_asks_to_confirm_a_stall_naming_the_standby() {
    tokio::time::pause();
    let traffic = FakeTraffic::default();
    traffic.busy(2, "eth0");
    let (get_uplinks, _) = collector::<GetUplinks>(|_| {
        vec![
            uplink("eth0", 2, 100, Connectivity::Full),
            uplink("wlan0", 3, 600, Connectivity::Full),
        ]
    });
    let (confirm, confirms) = sink::<Confirm>();
    let deps = TrafficDeps {
        traffic: Arc::new(traffic.clone()),
        get_uplinks,
        confirm,
        two_way: Slot::default(),
        board: Board::default(),
    };
    let _watcher = TrafficWatcher::new(Arc::new(checks_on()), deps).start();
    for _ in 0..30 {
        pass(Duration::from_secs(1)).await;
    }
    assert!(traffic.samples() > 0, "it samples");
    assert!(confirms.all().is_empty(), "healthy traffic asks nothing");
    traffic.stall(2, true);
    // Bounded: the default window is a few seconds; a minute is far past it.
    for _ in 0..60 {
        pass(Duration::from_secs(1)).await;
        if !confirms.all().is_empty() {
            break;
        }
    }
    let got = confirms.all();
    let first = got.first().expect("a stall is reported within a minute");
    assert_eq!(first.iface.as_str(), "eth0");
    assert_eq!(first.standby.as_ref().map(|s| s.as_str()), Some("wlan0"));
}
