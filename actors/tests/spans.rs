//! Per-actor tracing spans: each actor works inside a span named after it, and spans carry only
//! the fixed field names (`iface`, `ifindex`, `metric`, `state`, `event_id`), so logs can be
//! filtered the same way for every actor (docs/architecture.md, adding an actor).
//!
//! A recording subscriber (thread-local default: actix tests run on one thread) collects the
//! spans created while actors run alone on fakes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::broadcast;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use netfailover_actors::apply::apply;
use netfailover_actors::board::Board;
use netfailover_actors::dispatcher::Dispatcher;
use netfailover_actors::event_log::EventLog;
use netfailover_actors::fake::{event, pass, FakeKernel, FakeProbe, FakeScripts, MemJournal};
use netfailover_actors::link_watcher::{LinkFacts, LinkWatcher};
use netfailover_actors::messages::ProbeDone;
use netfailover_actors::model::{
    EventKind, Family, IfaceName, KernelRoute, LinkKind, RpFilterPolicy,
};
use netfailover_actors::plan::{Ops, Plan};
use netfailover_actors::ports::ProbeRequest;
use netfailover_actors::prober::Prober;

const FIXED: [&str; 5] = ["iface", "ifindex", "metric", "state", "event_id"];

/// A span's name and its field names.
type SpanShape = (String, Vec<String>);

/// Records each new span's name and field names.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<SpanShape>>>,
    next: Arc<AtomicU64>,
}

impl Recorder {
    fn spans(&self) -> Vec<SpanShape> {
        self.spans
            .lock()
            .expect("no test panics holding it")
            .clone()
    }

    fn named(&self, name: &str) -> Vec<Vec<String>> {
        self.spans()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f)
            .collect()
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let fields = span
            .metadata()
            .fields()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        self.spans
            .lock()
            .expect("no test panics holding it")
            .push((span.metadata().name().to_string(), fields));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[actix::test]
async fn actors_work_in_named_spans_with_the_fixed_field_names() {
    tokio::time::pause();
    let recorder = Recorder::default();
    let _default = tracing::subscriber::set_default(recorder.clone());

    let kernel = FakeKernel::new();
    kernel.add_link("eth0", LinkKind::Other);
    let _watcher = LinkWatcher::new(Arc::new(kernel.clone()), LinkFacts::default()).start();
    pass(Duration::from_millis(10)).await;
    kernel.set_carrier("eth0", false);

    let request = ProbeRequest {
        iface: IfaceName::new("eth0").expect("valid"),
        ifindex: 2,
        dns: vec![],
        routed: vec![Family::V4],
    };
    let done = Collector.start().recipient::<ProbeDone>();
    let _prober = Prober::new(
        request,
        Arc::new(FakeProbe::default()),
        done,
        Duration::from_secs(5),
    )
    .start();

    let (tx, _) = broadcast::channel(16);
    let log = EventLog::new(Arc::new(MemJournal::default()), tx, Board::default(), 100);
    log.push(event(EventKind::Up, "eth0"));
    let _dispatcher = Dispatcher::new(Arc::new(FakeScripts::default()), log).start();
    pass(Duration::from_millis(200)).await;

    assert!(
        !recorder.named("link_watcher").is_empty(),
        "{:?}",
        recorder.spans()
    );
    let link: BTreeSet<Vec<String>> = recorder.named("link").into_iter().collect();
    assert!(
        link.contains(&vec!["iface".to_string(), "ifindex".to_string()]),
        "{link:?}"
    );
    let prober = recorder.named("prober");
    assert!(
        prober.iter().any(|f| f == &["iface", "ifindex"]),
        "{prober:?}"
    );
    // A route write (the applier RouteManager runs) carries the interface index and metric.
    let ifindex = kernel.link("eth0").ifindex;
    let route = KernelRoute {
        family: Family::V4,
        ifindex,
        gateway: Some("192.0.2.1".parse().expect("an address")),
        metric: 100,
        protocol: 16,
    };
    let plan = Plan {
        managed: vec![],
        desired: vec![],
        ops: Ops {
            add: vec![route],
            ..Ops::default()
        },
        learned: vec![],
        rp_filter: vec![],
        ra_metric: vec![],
        addresses: vec![],
        rp_policy: RpFilterPolicy::Keep,
        ra_routes: vec![],
        ra_delete: vec![],
        ra_resolicit: vec![],
        ra_settled: vec![],
    };
    let _ = apply(&kernel, &kernel, &plan).await;
    assert!(
        recorder
            .named("route_write")
            .iter()
            .any(|f| f == &["ifindex", "metric"]),
        "{:?}",
        recorder.spans()
    );
    assert!(!recorder.named("dispatcher").is_empty());
    assert!(
        recorder
            .named("deliver")
            .iter()
            .any(|f| f == &["event_id", "iface"]),
        "{:?}",
        recorder.spans()
    );
    for (name, fields) in recorder.spans() {
        for f in fields {
            assert!(FIXED.contains(&f.as_str()), "span {name} has field {f}");
        }
    }
}

/// Answers every `ProbeDone` with "check again in an hour".
struct Collector;

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<ProbeDone> for Collector {
    type Result = Option<netfailover_actors::messages::NextCheck>;
    fn handle(&mut self, _: ProbeDone, _: &mut Self::Context) -> Self::Result {
        Some(netfailover_actors::messages::NextCheck::After(
            Duration::from_secs(3600),
        ))
    }
}
