//! `balance-slow` and `balance-blackhole`: ten endpoints, each a simulated server of 4
//! workers with lognormal service times around 10 ms, behind a balancer. In `balance-slow`
//! one of them is ten times slower (100 ms); in `balance-blackhole` one answers every
//! request at once with an error (a 503 in the generic model). Poisson arrivals for 30 s
//! at 60 % of what the endpoints that answer can serve, no retries anywhere.
//!
//! The systems: a round robin, tower's P2C over `PeakEwmaDiscover` (seeded), and palisade's
//! `Balance` (seeded); in `balance-slow` also palisade with hedging above its balancer
//! (`palisade-hedged`: palisade-retry's `Hedge::at_percentile(0.97)`, 2 attempts, over a
//! `Buffer` of the balancer), and palisade with the same arrivals and ten healthy
//! endpoints, the bar to meet. The figures: success rate, latency percentiles of the
//! successes (from arrival to answer), the bad endpoint's share of the requests, and the
//! extra load (calls reaching the endpoints ÷ requests − 1).

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hdrhistogram::Histogram;
use palisade_balance::discover::static_list;
use palisade_balance::{Balance, BalanceConfig};
use palisade_core::random::uniform;
use palisade_retry::hedge::Hedge;
use palisade_retry::{RetryConfig, RetryLayer};
use serde_json::{Map, json};
use tokio::time::Instant;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::util::rng::HasherRng;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::plot::Series;
use crate::report::{Chart, Report};
use crate::server::{Server, ServiceTime};

const ENDPOINTS: usize = 10;
/// The slow endpoint, or the black hole.
const BAD: usize = ENDPOINTS - 1;
pub(crate) const WORKERS: usize = 4;
pub(crate) const MEAN_SERVICE: Duration = Duration::from_millis(10);
const SLOWDOWN: u32 = 10;
pub(crate) const SIGMA: f64 = 0.5;
const LOAD: f64 = 0.6;
const DURATION: Duration = Duration::from_secs(30);
/// The balancers' starting estimate and decay, the same for tower's and palisade's.
pub(crate) const DEFAULT_RTT: Duration = Duration::from_millis(30);
pub(crate) const DECAY: Duration = Duration::from_secs(10);
const ARRIVAL_SEED: u64 = 0xba1a_0001;
pub(crate) const SERVICE_SEED: u64 = 0xba1a_0100;
pub(crate) const BALANCER_SEED: u64 = 2026;

/// What the bad endpoint does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Slow,
    BlackHole,
}

/// The black hole's answer.
#[derive(Debug)]
struct Unavailable;

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("503 service unavailable")
    }
}

impl std::error::Error for Unavailable {}

pub(crate) type EndpointFuture = Pin<Box<dyn Future<Output = Result<usize, BoxError>> + Send>>;

/// One endpoint: a server, or a black hole. It answers with its index, so that each
/// request knows where it went.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) index: usize,
    pub(crate) server: Option<Server>,
    /// Calls to every endpoint of the run.
    pub(crate) calls: Arc<AtomicU64>,
}

impl Service<()> for Endpoint {
    type Response = usize;
    type Error = BoxError;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> EndpointFuture {
        self.calls.fetch_add(1, Relaxed);
        let index = self.index;
        match &mut self.server {
            Some(server) => {
                let answer = server.call(());
                Box::pin(async move { answer.await.map(|()| index) })
            }
            None => Box::pin(std::future::ready(Err(Unavailable.into()))),
        }
    }
}

fn endpoints(fault: Fault, calls: &Arc<AtomicU64>) -> Vec<Endpoint> {
    (0..ENDPOINTS)
        .map(|index| {
            let mean = match fault {
                Fault::Slow if index == BAD => MEAN_SERVICE * SLOWDOWN,
                _ => MEAN_SERVICE,
            };
            let service = ServiceTime::lognormal(mean, SIGMA, SERVICE_SEED + index as u64);
            let server =
                (fault != Fault::BlackHole || index != BAD).then(|| Server::new(WORKERS, service));
            Endpoint {
                index,
                server,
                calls: calls.clone(),
            }
        })
        .collect()
}

/// What the endpoints that answer can serve, in requests a second.
fn capacity_rps(fault: Fault) -> f64 {
    let per_endpoint =
        |mean| WORKERS as f64 / ServiceTime::lognormal(mean, SIGMA, 0).mean().as_secs_f64();
    let healthy = per_endpoint(MEAN_SERVICE);
    match fault {
        Fault::None => ENDPOINTS as f64 * healthy,
        Fault::Slow => (ENDPOINTS - 1) as f64 * healthy + per_endpoint(MEAN_SERVICE * SLOWDOWN),
        Fault::BlackHole => (ENDPOINTS - 1) as f64 * healthy,
    }
}

/// Poisson arrivals at `rate` a second for the whole run.
fn arrivals(rate: f64) -> Vec<Duration> {
    poisson_arrivals(rate, DURATION)
}

/// Poisson arrivals at `rate` a second for `duration`, from the scenarios' arrival seed.
pub(crate) fn poisson_arrivals(rate: f64, duration: Duration) -> Vec<Duration> {
    let mut t = 0.0;
    (1..)
        .map(|n| {
            t += -(1.0 - uniform(ARRIVAL_SEED, n)).ln() / rate;
            t
        })
        .take_while(|&t| t < duration.as_secs_f64())
        .map(Duration::from_secs_f64)
        .collect()
}

/// A round robin: each call to the next endpoint in turn.
struct RoundRobin {
    endpoints: Vec<Endpoint>,
    next: usize,
}

impl Service<()> for RoundRobin {
    type Response = usize;
    type Error = BoxError;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let next = self.next;
        self.endpoints[next].poll_ready(cx)
    }

    fn call(&mut self, (): ()) -> EndpointFuture {
        let next = self.next;
        self.next = (next + 1) % self.endpoints.len();
        self.endpoints[next].call(())
    }
}

fn keyed(endpoints: Vec<Endpoint>) -> impl Iterator<Item = (usize, Endpoint)> {
    endpoints.into_iter().map(|e| (e.index, e))
}

pub(crate) struct Record {
    pub(crate) arrival: Duration,
    pub(crate) latency: Duration,
    /// The endpoint that answered, or whether the error was the black hole's.
    pub(crate) served_by: Result<usize, bool>,
}

impl Record {
    pub(crate) fn ok(&self) -> bool {
        self.served_by.is_ok()
    }

    fn to_bad(&self) -> bool {
        matches!(self.served_by, Ok(BAD) | Err(true))
    }
}

pub(crate) struct Run {
    pub(crate) system: &'static str,
    pub(crate) records: Vec<Record>,
    /// Calls that reached the endpoints.
    calls: u64,
}

/// Sends each arrival through `svc` at its time, each answer awaited in a task of its own.
pub(crate) async fn drive<S>(
    system: &'static str,
    mut svc: S,
    arrivals: &[Duration],
    calls: &AtomicU64,
) -> Run
where
    S: Service<(), Response = usize, Error = BoxError>,
    S::Future: Send + 'static,
{
    let start = Instant::now();
    let mut answers = Vec::with_capacity(arrivals.len());
    for &arrival in arrivals {
        tokio::time::sleep_until(start + arrival).await;
        let answer = match svc.ready().await {
            Ok(svc) => svc.call(()),
            Err(error) => panic!("{system}: the balancer failed: {error}"),
        };
        answers.push(tokio::spawn(async move {
            let result = answer.await;
            Record {
                arrival,
                latency: start.elapsed() - arrival,
                served_by: result.map_err(|e| e.downcast_ref::<Unavailable>().is_some()),
            }
        }));
    }
    let mut records = Vec::with_capacity(answers.len());
    for answer in answers {
        records.push(answer.await.expect("a request task does not panic"));
    }
    Run {
        system,
        records,
        calls: calls.load(Relaxed),
    }
}

async fn simulate(system: &'static str, fault: Fault, arrivals: &[Duration]) -> Run {
    let calls = Arc::new(AtomicU64::new(0));
    let endpoints = endpoints(fault, &calls);
    match system {
        "round-robin" => drive(system, RoundRobin { endpoints, next: 0 }, arrivals, &calls).await,
        "tower-p2c-peak-ewma" => {
            let discover = PeakEwmaDiscover::new::<()>(
                static_list(keyed(endpoints)),
                DEFAULT_RTT,
                DECAY,
                CompleteOnResponse::default(),
            );
            let rng = HasherRng::with_hasher(BuildHasherDefault::<DefaultHasher>::default());
            let balance = tower::balance::p2c::Balance::from_rng(discover, rng);
            drive(system, balance, arrivals, &calls).await
        }
        "palisade" | "palisade-all-healthy" => {
            let config = BalanceConfig::builder("scenario")
                .default_rtt(DEFAULT_RTT)
                .decay(DECAY)
                .build()
                .expect("a valid configuration");
            let balance =
                Balance::with_config(static_list(keyed(endpoints)), config).seed(BALANCER_SEED);
            drive(system, balance, arrivals, &calls).await
        }
        "palisade-hedged" => {
            let config = BalanceConfig::builder("scenario")
                .default_rtt(DEFAULT_RTT)
                .decay(DECAY)
                .build()
                .expect("a valid configuration");
            let balance =
                Balance::with_config(static_list(keyed(endpoints)), config).seed(BALANCER_SEED);
            // Hedges need a service they can call again: a buffer makes the balancer one.
            let shared = tower::buffer::Buffer::new(balance, 1024);
            let hedge = RetryConfig::builder("scenario")
                .max_attempts(2)
                .hedge(Hedge::at_percentile(0.97))
                .jitter_seed(BALANCER_SEED)
                .build()
                .expect("a valid configuration");
            let hedged = RetryLayer::with_config(hedge).layer(shared);
            drive(system, hedged, arrivals, &calls).await
        }
        _ => unreachable!("every system is listed"),
    }
}

/// Microseconds, from 1 µs to 1000 s, to 3 significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 3).expect("valid bounds")
}

/// The `q` quantile of the successes' latency, in ms.
pub(crate) fn latency_ms<'a>(records: impl Iterator<Item = &'a Record>, q: f64) -> f64 {
    let mut h = histogram();
    for r in records.filter(|r| r.ok()) {
        h.saturating_record(r.latency.as_micros().max(1) as u64);
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

fn share<'a>(records: impl Iterator<Item = &'a Record>, f: impl Fn(&Record) -> bool) -> f64 {
    let (mut n, mut yes) = (0u64, 0u64);
    for r in records {
        n += 1;
        yes += u64::from(f(r));
    }
    yes as f64 / n.max(1) as f64
}

pub(crate) fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn rows(runs: &[Run]) -> Vec<Map<String, serde_json::Value>> {
    runs.iter()
        .map(|r| {
            let records = || r.records.iter();
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert(
                "success_rate".into(),
                json!(round(share(records(), Record::ok), 6)),
            );
            for (key, q) in [("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)] {
                row.insert(key.into(), json!(round(latency_ms(records(), q), 3)));
            }
            row.insert(
                "bad_endpoint_share".into(),
                json!(round(share(records(), Record::to_bad), 6)),
            );
            let extra = r.calls as f64 / r.records.len().max(1) as f64 - 1.0;
            row.insert("extra_load".into(), json!(round(extra, 4)));
            row
        })
        .collect()
}

/// One point a second of `f` over the requests that arrived in it.
fn per_second(runs: &[Run], f: impl Fn(&mut dyn Iterator<Item = &Record>) -> f64) -> Vec<Series> {
    per_second_over(runs, DURATION, f)
}

/// One point a second, for `duration`, of `f` over the requests that arrived in it.
pub(crate) fn per_second_over(
    runs: &[Run],
    duration: Duration,
    f: impl Fn(&mut dyn Iterator<Item = &Record>) -> f64,
) -> Vec<Series> {
    runs.iter()
        .map(|r| Series {
            name: r.system.into(),
            points: (0..duration.as_secs())
                .map(|s| {
                    let second = Duration::from_secs(s)..Duration::from_secs(s + 1);
                    let mut records = r.records.iter().filter(|r| second.contains(&r.arrival));
                    ((s + 1) as f64, f(&mut records))
                })
                .collect(),
        })
        .collect()
}

async fn simulate_all(systems: &[(&'static str, Fault)], rate: f64) -> Vec<Run> {
    let arrivals = arrivals(rate);
    let mut runs = Vec::with_capacity(systems.len());
    for &(system, fault) in systems {
        runs.push(simulate(system, fault, &arrivals).await);
    }
    runs
}

/// `balance-slow`: one endpoint of ten is ten times slower.
pub(crate) async fn slow() -> Report {
    let rate = LOAD * capacity_rps(Fault::Slow);
    let runs = simulate_all(
        &[
            ("round-robin", Fault::Slow),
            ("tower-p2c-peak-ewma", Fault::Slow),
            ("palisade", Fault::Slow),
            ("palisade-hedged", Fault::Slow),
            ("palisade-all-healthy", Fault::None),
        ],
        rate,
    )
    .await;
    Report {
        scenario: "balance-slow",
        results: rows(&runs),
        charts: vec![
            Chart {
                file: "balance-slow.svg",
                title: format!(
                    "balance-slow: p99 latency ({rate:.0} req/s, 1 of 10 endpoints 10x slower)"
                ),
                y_label: "p99 latency (ms)",
                series: per_second(&runs, |records| latency_ms(records, 0.99)),
            },
            Chart {
                file: "balance-slow-share.svg",
                title: "balance-slow: the slow endpoint's share of requests".into(),
                y_label: "share (%)",
                series: per_second(&runs, |records| 100.0 * share(records, Record::to_bad)),
            },
        ],
    }
}

/// `balance-blackhole`: one endpoint of ten answers every request at once with an error.
pub(crate) async fn blackhole() -> Report {
    let rate = LOAD * capacity_rps(Fault::BlackHole);
    let runs = simulate_all(
        &[
            ("round-robin", Fault::BlackHole),
            ("tower-p2c-peak-ewma", Fault::BlackHole),
            ("palisade", Fault::BlackHole),
        ],
        rate,
    )
    .await;
    Report {
        scenario: "balance-blackhole",
        results: rows(&runs),
        charts: vec![
            Chart {
                file: "balance-blackhole.svg",
                title: format!(
                    "balance-blackhole: the black hole's share of requests ({rate:.0} req/s)"
                ),
                y_label: "share (%)",
                series: per_second(&runs, |records| 100.0 * share(records, Record::to_bad)),
            },
            Chart {
                file: "balance-blackhole-success.svg",
                title: "balance-blackhole: success rate".into(),
                y_label: "success (%)",
                series: per_second(&runs, |records| 100.0 * share(records, Record::ok)),
            },
        ],
    }
}
