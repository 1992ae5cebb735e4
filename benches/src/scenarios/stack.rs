//! `stack-fast-failing-replica` and `balance-slow-timeout`: the documented client stack —
//! breaker → retry → buffer → balance, every layer with its defaults — over HTTP endpoints
//! (palisade-test's scripted backends, 200 for a success and 503 for a failure), with one
//! endpoint going bad while the others stay healthy. What a user relies on here is the
//! stack, not a layer: each layer is right alone, and composed they must still route around
//! one bad replica instead of failing the caller.
//!
//! - `stack-fast-failing-replica`: 2 or 10 endpoints answering in 5 ms, one of them
//!   answering every call at once with a 503; 32 callers, each sending a request as soon as
//!   its last one is answered, after 10 ms (a pool of workers, or wrk), for 30 s — so that
//!   the first 32 requests leave together, before any answer has taught the balancer
//!   anything.
//!   The systems: `palisade` (the documented stack), `retry-outside-breaker` (the order the
//!   docs gave before: retry → breaker → buffer → balance) and `no-breaker` (retry → buffer
//!   → balance). A request succeeds if its answer is a 200; latency is from its arrival to
//!   its answer.
//! - `balance-slow-timeout`: 2 endpoints answering in 20 ms; after 5 s one of them takes
//!   2 s for every call (no errors), and the retry layer has an attempt timeout of 500 ms;
//!   one caller sending a request 10 ms after its last answer, for 30 s (as a user
//!   trying it by hand would: each attempt cut at 500 ms frees the slow endpoint of its
//!   pending request, and nothing else then speaks against it). The systems: `palisade` (the documented stack) and
//!   `tower-p2c-peak-ewma` (the same retry over tower's P2C and `PeakEwma`, the balancer a
//!   user would otherwise take). `slow_endpoint_share` is the share of the attempts sent
//!   after the switch that went to the slow endpoint.

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, Response};
use http_body_util::Empty;
use palisade_balance::discover::static_list;
use palisade_balance::{Balance, BalanceConfig};
use palisade_breaker::{BreakerConfig, HttpCircuitBreakerLayer};
use palisade_core::HttpClassifier;
use palisade_retry::{HttpRetryLayer, RetryConfig};
use palisade_test::{Backend, Behaviour, Script, Stats};
use serde_json::{Map, json};
use tokio::time::Instant;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::util::BoxCloneService;
use tower::util::rng::HasherRng;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::report::Report;

const DURATION: Duration = Duration::from_secs(30);
/// Seeds the balancers and the layers' jitter: the scenarios replay exactly.
const SEED: u64 = 2026;

type Req = Request<Empty<Bytes>>;
/// A stack under test: a request in, whether its answer was a 200 out.
type Client = BoxCloneService<Req, bool, BoxError>;

/// What the stack under test is made of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    /// breaker → retry → buffer → balance, as docs/recipes.md gives it.
    Palisade,
    /// retry → breaker → buffer → balance: the order the docs gave before.
    RetryOutsideBreaker,
    /// retry → buffer → balance.
    NoBreaker,
    /// palisade's retry → buffer → tower's P2C over `PeakEwma`.
    TowerP2c,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Palisade => "palisade",
            System::RetryOutsideBreaker => "retry-outside-breaker",
            System::NoBreaker => "no-breaker",
            System::TowerP2c => "tower-p2c-peak-ewma",
        }
    }
}

fn retry_config(attempt_timeout: Option<Duration>) -> RetryConfig {
    let mut builder = RetryConfig::builder("orders").jitter_seed(SEED);
    if let Some(timeout) = attempt_timeout {
        builder = builder.attempt_timeout(timeout);
    }
    builder.build().expect("a valid retry configuration")
}

fn breaker() -> HttpCircuitBreakerLayer {
    let config = BreakerConfig::builder("orders")
        .jitter_seed(SEED)
        .build()
        .expect("the default breaker is valid");
    HttpCircuitBreakerLayer::with_config(config)
}

/// The stack `system` over `backends`, each an HTTP endpoint.
fn client(system: System, backends: &[Backend], attempt_timeout: Option<Duration>) -> Client {
    let endpoints = backends
        .iter()
        .enumerate()
        .map(|(i, b)| (i, b.clone().http()));
    let retry = HttpRetryLayer::with_config(retry_config(attempt_timeout));
    if system == System::TowerP2c {
        let discover = PeakEwmaDiscover::new::<Req>(
            static_list(endpoints),
            Duration::from_millis(30),
            Duration::from_secs(10),
            CompleteOnResponse::default(),
        );
        let rng = HasherRng::with_hasher(BuildHasherDefault::<DefaultHasher>::default());
        let p2c = tower::balance::p2c::Balance::from_rng(discover, rng);
        let stack = ServiceBuilder::new().layer(retry).buffer(1024).service(p2c);
        return BoxCloneService::new(stack.map_response(ok));
    }
    let config = BalanceConfig::builder("orders")
        .build()
        .expect("the default balancer is valid");
    let balance =
        Balance::with_classifier(static_list(endpoints), config, HttpClassifier::default())
            .seed(SEED);
    match system {
        System::Palisade => BoxCloneService::new(
            ServiceBuilder::new()
                .layer(breaker())
                .layer(retry)
                .buffer(1024)
                .service(balance)
                .map_response(ok),
        ),
        System::RetryOutsideBreaker => BoxCloneService::new(
            ServiceBuilder::new()
                .layer(retry)
                .layer(breaker())
                .buffer(1024)
                .service(balance)
                .map_response(ok),
        ),
        System::NoBreaker => BoxCloneService::new(
            ServiceBuilder::new()
                .layer(retry)
                .buffer(1024)
                .service(balance)
                .map_response(ok),
        ),
        System::TowerP2c => unreachable!("built above"),
    }
}

/// Whether an answer is a success.
fn ok<B>(response: Response<B>) -> bool {
    response.status().is_success()
}

/// How the requests of a run ended.
struct Outcomes {
    offered: u64,
    successes: u64,
    /// Microseconds from arrival to answer, every request.
    latency: Histogram<u64>,
}

impl Outcomes {
    fn new() -> Self {
        Self {
            offered: 0,
            successes: 0,
            latency: Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid bounds"),
        }
    }

    fn record(&mut self, ok: bool, latency: Duration) {
        self.offered += 1;
        self.successes += u64::from(ok);
        self.latency
            .saturating_record(latency.as_micros().max(1) as u64);
    }

    fn success_rate(&self) -> f64 {
        self.successes as f64 / self.offered.max(1) as f64
    }

    fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `callers` callers, each sending a request `think` after its last one was answered,
/// until `DURATION` has passed.
async fn drive_closed(client: Client, callers: usize, think: Duration) -> Outcomes {
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while start.elapsed() < DURATION {
                    let sent = Instant::now();
                    let request = Request::get("/stock")
                        .body(Empty::new())
                        .expect("a request");
                    let ok = matches!(client.clone().oneshot(request).await, Ok(true));
                    seen.push((ok, sent.elapsed()));
                    tokio::time::sleep(think).await;
                }
                seen
            })
        })
        .collect();
    let mut outcomes = Outcomes::new();
    for task in tasks {
        for (ok, latency) in task.await.expect("a caller does not panic") {
            outcomes.record(ok, latency);
        }
    }
    outcomes
}

/// `stack-fast-failing-replica`.
pub(crate) async fn fast_failing_replica() -> Report {
    let systems = [
        System::Palisade,
        System::RetryOutsideBreaker,
        System::NoBreaker,
    ];
    let mut results = Vec::new();
    for endpoints in [2, 10] {
        for system in systems {
            let backends: Vec<Backend> = (0..endpoints)
                .map(|i| {
                    let behaviour = if i == 0 {
                        Behaviour::failing()
                    } else {
                        Behaviour::healthy(Duration::from_millis(5))
                    };
                    Backend::new(Script::always(behaviour).seed(SEED + i as u64))
                })
                .collect();
            let client = client(system, &backends, None);
            let outcomes = drive_closed(client, 32, Duration::from_millis(10)).await;
            let mut row = Map::new();
            row.insert("system".into(), json!(system.name()));
            row.insert("endpoints".into(), json!(endpoints));
            row.insert("offered".into(), json!(outcomes.offered));
            row.insert("success_rate".into(), json!(outcomes.success_rate()));
            row.insert("p99_ms".into(), json!(outcomes.latency_ms(0.99)));
            row.insert("max_ms".into(), json!(outcomes.max_ms()));
            row.insert(
                "calls_to_failing".into(),
                json!(backends[0].stats().calls()),
            );
            results.push(row);
        }
    }
    Report {
        scenario: "stack-fast-failing-replica",
        results,
        charts: Vec::new(),
    }
}

/// The callers of `balance-slow-timeout`, each waiting for its answer.
const CALLERS: usize = 1;
/// When the slow endpoint of `balance-slow-timeout` turns slow.
const SLOW_FROM: Duration = Duration::from_secs(5);

/// `balance-slow-timeout`.
pub(crate) async fn slow_timeout() -> Report {
    let mut results = Vec::new();
    for system in [System::Palisade, System::TowerP2c] {
        let fast = Behaviour::healthy(Duration::from_millis(20));
        let backends = [
            Backend::new(
                Script::new()
                    .then(SLOW_FROM, fast)
                    .forever(Behaviour::healthy(Duration::from_secs(2))),
            ),
            Backend::new(Script::always(fast)),
        ];
        let client = client(system, &backends, Some(Duration::from_millis(500)));
        let at_switch = Arc::new(std::sync::Mutex::new([0u64; 2]));
        let watch = {
            let stats: Vec<Arc<Stats>> = backends.iter().map(|b| Arc::clone(b.stats())).collect();
            let at_switch = Arc::clone(&at_switch);
            tokio::spawn(async move {
                tokio::time::sleep(SLOW_FROM).await;
                let mut calls = at_switch.lock().unwrap_or_else(|e| e.into_inner());
                *calls = [stats[0].calls(), stats[1].calls()];
            })
        };
        let outcomes = drive_closed(client, CALLERS, Duration::from_millis(10)).await;
        watch.await.expect("the watch does not panic");
        let before = *at_switch.lock().unwrap_or_else(|e| e.into_inner());
        let after = [
            backends[0].stats().calls() - before[0],
            backends[1].stats().calls() - before[1],
        ];
        let mut row = Map::new();
        row.insert("system".into(), json!(system.name()));
        row.insert("offered".into(), json!(outcomes.offered));
        row.insert("success_rate".into(), json!(outcomes.success_rate()));
        row.insert(
            "slow_endpoint_share".into(),
            json!(round3(
                after[0] as f64 / (after[0] + after[1]).max(1) as f64
            )),
        );
        row.insert("attempts_to_slow".into(), json!(after[0]));
        row.insert("p99_ms".into(), json!(outcomes.latency_ms(0.99)));
        results.push(row);
    }
    Report {
        scenario: "balance-slow-timeout",
        results,
        charts: Vec::new(),
    }
}
