//! `ratelimit-fleet`: four instances of a service share one limit of 1000 requests a
//! second; 3000 a second are offered, in bursts, and spread unevenly over the instances —
//! the busiest instance changes every two seconds, as a load balancer's long-lived
//! connections move.
//!
//! Systems:
//! - `local-per-instance`: governor in each instance, the limit split four ways (250 a
//!   second each), what a user does without a shared store; governor's clock is a
//!   `FakeRelativeClock` driven from the simulation's;
//! - `palisade-redis`: palisade's fleet layer, exact mode, over a store that answers after a
//!   1 ms round trip (a Redis on the same network), counting its round trips;
//! - `palisade-redis-batched`: the same in batched mode, leases of 30 cells for 200 ms.
//!
//! The quota's burst is 40 (40 ms of it) for both palisade systems.
//!
//! Reported: the rate admitted over the run and in each second (from the second second
//! on), the largest error of a second against the limit, and the store's round trips per
//! request.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use governor::clock::FakeRelativeClock;
use governor::{Quota as GovernorQuota, RateLimiter};
use http::{Request, Response, StatusCode};
use palisade_core::random::uniform;
use palisade_ratelimit::fleet::{Fleet, FleetRateLimitLayer};
use palisade_ratelimit::store::{MemoryStore, Store, StoreFuture, Take};
use palisade_ratelimit::{Policy, Quota, RateLimitConfig};
use serde_json::{Map, Value, json};
use tokio::time::{Instant, sleep, sleep_until};
use tower::{Layer, ServiceExt, service_fn};

use crate::plot::Series;
use crate::report::{Chart, Report};

const SEED: u64 = 17;
const INSTANCES: usize = 4;
const LIMIT: u32 = 1000;
const DURATION: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(1);
/// The plot's bins.
const BIN: Duration = Duration::from_millis(250);
const RTT: Duration = Duration::from_millis(1);
const SYSTEMS: [&str; 3] = [
    "local-per-instance",
    "palisade-redis",
    "palisade-redis-batched",
];

/// The offered rate at `t`: 3000 a second on average, in bursts of 250 ms between 2000 and
/// 4000 (always above the limit: every second the limit could be reached).
fn offered_rate(t: Duration) -> f64 {
    let phase = (t.as_millis() / 250) as u64;
    2000.0 + 2000.0 * uniform(SEED, phase)
}

/// Each instance's share of the traffic at `t`: 60 %, 25 %, 10 %, 5 %, rotating every 2 s.
fn share(instance: usize, t: Duration) -> f64 {
    const SHARES: [f64; INSTANCES] = [0.60, 0.25, 0.10, 0.05];
    let rotation = (t.as_secs() / 2) as usize;
    SHARES[(instance + rotation) % INSTANCES]
}

/// The requests that arrive at each instance in the tick at `t`: the expected count, with
/// its fraction drawn at random.
fn arrivals(instance: usize, tick: u64, t: Duration) -> u64 {
    let expected = offered_rate(t) * share(instance, t) * TICK.as_secs_f64();
    let whole = expected.floor();
    let extra = uniform(SEED ^ (instance as u64 + 1) << 32, tick) < expected - whole;
    whole as u64 + u64::from(extra)
}

/// A Redis a round trip away: a `MemoryStore` answering after `RTT`, counting round trips.
#[derive(Clone)]
struct SimulatedRedis {
    inner: MemoryStore,
    calls: Arc<AtomicU64>,
}

impl Store for SimulatedRedis {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a> {
        self.calls.fetch_add(1, Relaxed);
        Box::pin(async move {
            sleep(RTT / 2).await;
            let grant = self.inner.take(take).await;
            sleep(RTT / 2).await;
            grant
        })
    }
}

/// What happened to each request: when it arrived, and whether it was admitted.
type Outcomes = Arc<std::sync::Mutex<Vec<(Duration, bool)>>>;

async fn palisade(batched: bool, outcomes: &Outcomes) -> u64 {
    let calls = Arc::new(AtomicU64::new(0));
    let store = SimulatedRedis {
        inner: MemoryStore::new(),
        calls: calls.clone(),
    };
    let config = RateLimitConfig::builder("fleet")
        .policy(Policy::new("fleet", Quota::per_second(LIMIT).burst(40)))
        .headers_on_success(false)
        .build()
        .expect("a valid config");
    let fleet = if batched {
        Fleet::batched(30).lease_ttl(Duration::from_millis(200))
    } else {
        Fleet::exact()
    };
    let instances: Vec<_> = (0..INSTANCES)
        .map(|_| {
            FleetRateLimitLayer::new(config.clone(), fleet, store.clone())
                .expect("a valid fleet")
                .layer(service_fn(|_: Request<()>| async {
                    Ok::<_, Infallible>(Response::new(()))
                }))
        })
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for tick in 0..(DURATION.as_millis() as u64) {
        let t = TICK * tick as u32;
        sleep_until(start + t).await;
        for (i, svc) in instances.iter().enumerate() {
            for _ in 0..arrivals(i, tick, t) {
                let (svc, outcomes) = (svc.clone(), outcomes.clone());
                tasks.push(tokio::spawn(async move {
                    let response = svc.oneshot(Request::new(())).await;
                    let admitted = response.is_ok_and(|r| r.status() == StatusCode::OK);
                    outcomes.lock().unwrap().push((t, admitted));
                }));
            }
        }
    }
    for task in tasks {
        task.await.expect("a request task does not panic");
    }
    calls.load(Relaxed)
}

async fn local(outcomes: &Outcomes) {
    let clock = FakeRelativeClock::default();
    let quota =
        GovernorQuota::per_second(std::num::NonZeroU32::new(LIMIT / INSTANCES as u32).unwrap())
            .allow_burst(std::num::NonZeroU32::new(5).unwrap());
    let limiters: Vec<_> = (0..INSTANCES)
        .map(|_| RateLimiter::direct_with_clock(quota, clock.clone()))
        .collect();
    let mut outcomes = outcomes.lock().unwrap();
    for tick in 0..(DURATION.as_millis() as u64) {
        let t = TICK * tick as u32;
        if tick > 0 {
            clock.advance(TICK);
        }
        for (i, limiter) in limiters.iter().enumerate() {
            for _ in 0..arrivals(i, tick, t) {
                outcomes.push((t, limiter.check().is_ok()));
            }
        }
    }
}

async fn simulate(system: &'static str) -> (Map<String, Value>, Series) {
    let outcomes: Outcomes = Arc::default();
    let calls = match system {
        "local-per-instance" => {
            local(&outcomes).await;
            0
        }
        "palisade-redis" => palisade(false, &outcomes).await,
        _ => palisade(true, &outcomes).await,
    };
    let outcomes = outcomes.lock().unwrap();
    let admitted_in = |from: Duration, len: Duration| {
        outcomes
            .iter()
            .filter(|(t, ok)| *ok && *t >= from && *t < from + len)
            .count() as f64
    };
    let seconds = DURATION.as_secs();
    let admitted = admitted_in(Duration::ZERO, DURATION);
    let max_window_error = (1..seconds)
        .map(|s| {
            (admitted_in(Duration::from_secs(s), Duration::from_secs(1)) - f64::from(LIMIT)).abs()
        })
        .fold(0.0, f64::max)
        / f64::from(LIMIT);
    let bins = DURATION.as_millis() / BIN.as_millis();
    let points = (0..bins as u32)
        .map(|b| {
            let from = BIN * b;
            (
                from.as_secs_f64(),
                admitted_in(from, BIN) / BIN.as_secs_f64(),
            )
        })
        .collect();
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let mut row = Map::new();
    row.insert("system".into(), json!(system));
    row.insert("limit_rps".into(), json!(LIMIT));
    row.insert(
        "offered_rps".into(),
        json!(round(outcomes.len() as f64 / DURATION.as_secs_f64())),
    );
    row.insert(
        "admitted_rps".into(),
        json!(round(admitted / DURATION.as_secs_f64())),
    );
    row.insert("max_window_error".into(), json!(round(max_window_error)));
    row.insert(
        "store_round_trips_per_request".into(),
        json!(round(calls as f64 / outcomes.len() as f64)),
    );
    let series = Series {
        name: system.to_owned(),
        points,
    };
    (row, series)
}

/// `ratelimit-fleet`: every system over the same offered traffic.
pub(crate) async fn fleet() -> Report {
    let mut results = Vec::new();
    let mut series = Vec::new();
    for system in SYSTEMS {
        let (row, line) = simulate(system).await;
        results.push(row);
        series.push(line);
    }
    series.push(Series {
        name: "limit".to_owned(),
        points: vec![
            (0.0, f64::from(LIMIT)),
            (DURATION.as_secs_f64(), f64::from(LIMIT)),
        ],
    });
    Report {
        scenario: "ratelimit-fleet",
        results,
        charts: vec![Chart {
            file: "ratelimit-fleet.svg",
            title: "4 instances, one limit of 1000/s, 3000/s offered unevenly".to_owned(),
            y_label: "admitted requests/s",
            series,
        }],
    }
}
