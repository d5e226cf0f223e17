//! Engine benches on the fake ports (wall clock, real actix System):
//! - decision path: carrier-loss message in → the failed uplink's route deleted in the table;
//! - restart: `kill route-manager` → the replacement has handled a link fact.
//!
//! Criterion reports the mean; a second pass prints p50/p99 over 1000 samples, which is what
//! docs/benchmarks.md quotes.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use netfailover_actors::fake::FakeWorld;
use netfailover_actors::model::{
    CheckConfig, Config, FamilyConfig, IfaceMatch, IfaceName, KernelRoute, LinkKind, Method,
    Metric, Profile, UplinkType,
};
use netfailover_actors::{start, EngineHandle};

fn profile(iface: &str, metric: u32) -> Profile {
    let fam = FamilyConfig {
        manage_default: true,
        method: Method::Auto,
        metric: Metric::new(metric.into()).expect("valid metric"),
        addresses: vec![],
        gateway: None,
    };
    Profile {
        id: iface.into(),
        uuid: None,
        file: iface.into(),
        uplink_type: UplinkType::Ethernet,
        matches: IfaceMatch::Name(IfaceName::new(iface).expect("valid name")),
        managed: true,
        ipv4: fam.clone(),
        ipv6: FamilyConfig {
            manage_default: false,
            ..fam
        },
        dns: vec![],
        metered: netfailover_actors::model::Metered::guess(UplinkType::Ethernet),
    }
}

fn setup() -> (FakeWorld, EngineHandle) {
    let w = FakeWorld::new();
    for (i, n) in ["eth0", "eth1"].iter().enumerate() {
        let ifindex = w.kernel.add_link(n, LinkKind::Other);
        w.kernel.add_route_by_hand(KernelRoute {
            family: netfailover_actors::model::Family::V4,
            ifindex,
            gateway: Some(format!("192.0.2.{}", i + 1).parse().expect("ip")),
            metric: 100 + i as u32,
            protocol: 16,
        });
    }
    let cfg = Config {
        profiles: vec![profile("eth0", 100), profile("eth1", 600)],
        adopt: false,
        // Checks off: the bench measures the route decision, not probes.
        check: CheckConfig {
            interval: Duration::ZERO,
            ..CheckConfig::default()
        },
        ..Config::default()
    };
    let h = start(cfg, w.ports());
    (w, h)
}

async fn until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// One carrier loss + recovery; returns the time from the loss to the route's removal.
async fn failover_once(w: &FakeWorld) -> Duration {
    let t = Instant::now();
    w.kernel.set_carrier("eth0", false);
    until(|| w.kernel.best_iface().as_deref() == Some("eth1")).await;
    // From the moment LinkWatcher took the message off its stream to the route write: the
    // engine's own decision path, without this task's and the executor's scheduling.
    let d = match (w.kernel.last_delivery_at(), w.kernel.last_write_at()) {
        (Some(delivered), Some(written)) => written.saturating_duration_since(delivered),
        _ => t.elapsed(),
    };
    w.kernel.set_carrier("eth0", true);
    until(|| w.kernel.best_iface().as_deref() == Some("eth0")).await;
    d
}

/// One kill of route-manager; returns the time until its replacement acted on a link fact.
async fn restart_once(w: &FakeWorld, h: &EngineHandle) -> Duration {
    let t = Instant::now();
    let _ = h.kill("route-manager").await;
    w.kernel.set_carrier("eth0", false);
    until(|| w.kernel.best_iface().as_deref() == Some("eth1")).await;
    let d = t.elapsed();
    w.kernel.set_carrier("eth0", true);
    until(|| w.kernel.best_iface().as_deref() == Some("eth0")).await;
    d
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn benches(c: &mut Criterion) {
    let sys = actix_rt::System::new();
    let (w, h) = sys.block_on(async {
        let (w, h) = setup();
        until(|| w.kernel.best_iface().as_deref() == Some("eth0")).await;
        (w, h)
    });
    c.bench_function("decision path: carrier loss -> route removed", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += failover_once(&w).await;
                }
                total
            })
        })
    });
    c.bench_function("restart: kill route-manager -> replacement acts", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += restart_once(&w, &h).await;
                }
                total
            })
        })
    });
    let (decision, restart) = sys.block_on(async {
        let mut d = Vec::new();
        let mut r = Vec::new();
        for _ in 0..1000 {
            d.push(failover_once(&w).await);
        }
        for _ in 0..1000 {
            r.push(restart_once(&w, &h).await);
        }
        (percentiles(d), percentiles(r))
    });
    println!(
        "decision path p50 {:?} p99 {:?} (1000 samples)",
        decision.0, decision.1
    );
    println!(
        "restart       p50 {:?} p99 {:?} (1000 samples)",
        restart.0, restart.1
    );
    // Rows for scripts/bench.sh (the root crate's `lab::bench` format, written out here because
    // this crate does not depend on the root crate).
    let met = |p99: Duration, bound: Duration| if p99 <= bound { "yes" } else { "**no**" };
    println!(
        "@row | decision path on fakes: link-down message → route delete issued | 1000 | {:.1} µs | {:.1} µs | < 100 µs p99 | {} |",
        decision.0.as_secs_f64() * 1e6,
        decision.1.as_secs_f64() * 1e6,
        met(decision.1, Duration::from_micros(100))
    );
    println!(
        "@row | actor restart: kill route-manager → replacement acts on a link fact | 1000 | {:.2} ms | {:.2} ms | < 10 ms p99 | {} |",
        restart.0.as_secs_f64() * 1e3,
        restart.1.as_secs_f64() * 1e3,
        met(restart.1, Duration::from_millis(10))
    );
}

criterion_group!(engine, benches);
criterion_main!(engine);
