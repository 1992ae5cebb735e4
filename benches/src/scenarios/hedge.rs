//! `hedge-tail` and `hedge-overload`: a client calling a fleet of ten endpoints in turn
//! (a round robin, the same under every system), each a simulated server of 8 workers whose
//! calls take about 5 ms (lognormal, σ 0.1) — but 1 % of calls, at random, take 20 times
//! longer: a garbage collection, a cold cache, a noisy neighbour.
//!
//! - `hedge-tail`: Poisson arrivals for 30 s at 30 % of the fleet's capacity.
//! - `hedge-overload`: the same fleet offered 105 % of its capacity for 10 s: each server's
//!   queue, and so every call's latency, grows for the whole run, and every hedge adds to
//!   the queues.
//!
//! The systems, each allowed 2 attempts a request: `none`; `tower-hedge` (tower's `Hedge`
//! at the 95th percentile, 100 data points, a 1 s period); `tower-resilience-hedge` (its
//! fixed delay set to the 95th percentile `none` measures in `hedge-tail`); `palisade`
//! (palisade-retry with `Hedge::at_percentile(0.95)` and its default budget). The figures:
//! latency percentiles from arrival to answer, and the extra load (calls reaching the fleet
//! ÷ requests − 1). `hedge-tail` adds palisade after fixed delays of 7 to 4 ms with
//! nothing bounding its hedges: a request whose first call is slow is answered no sooner
//! than the delay plus a second call, so each earlier delay buys p99.9 with extra load, and
//! those rows show the price on this fleet for any hedge that waits before it sends.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hdrhistogram::Histogram;
use palisade_core::random::uniform;
use palisade_retry::budget::BudgetConfig;
use palisade_retry::hedge::Hedge;
use palisade_retry::{RetryConfig, RetryLayer};
use serde_json::{Map, json};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::plot::Series;
use crate::report::{Chart, Report};
use crate::server::{Server, ServiceTime};

const ENDPOINTS: usize = 10;
const WORKERS: usize = 8;
const MEAN: Duration = Duration::from_millis(5);
const SIGMA: f64 = 0.1;
const TAIL_SHARE: f64 = 0.01;
const TAIL_FACTOR: f64 = 20.0;
const PERCENTILE: f64 = 0.95;
const MAX_ATTEMPTS: u32 = 2;
const SERVICE_SEED: u64 = 0x4ed9_e000;
const ARRIVAL_SEED: u64 = 0x4ed9_e100;
const SEED: u64 = 2026;

const SYSTEMS: [&str; 4] = ["none", "tower-hedge", "tower-resilience-hedge", "palisade"];

/// `hedge-tail` also runs palisade with fixed delays and nothing bounding its hedges (no
/// share, a budget of every request): the frontier along which any delay-based hedge
/// trades extra load for p99.9 on this fleet, whatever chooses its delay.
const FRONTIER: [(&str, u64); 4] = [
    ("palisade-after-7ms", 7),
    ("palisade-after-6ms", 6),
    ("palisade-after-5ms", 5),
    ("palisade-after-4ms", 4),
];

/// The situation a run simulates.
#[derive(Clone, Copy)]
struct Situation {
    duration: Duration,
    /// Offered load, as a share of the fleet's capacity.
    load: f64,
}

const TAIL: Situation = Situation {
    duration: Duration::from_secs(30),
    load: 0.3,
};

const OVERLOAD: Situation = Situation {
    duration: Duration::from_secs(10),
    load: 1.05,
};

fn service_time(endpoint: usize) -> ServiceTime {
    ServiceTime::lognormal(MEAN, SIGMA, SERVICE_SEED + endpoint as u64)
        .with_tail(TAIL_SHARE, TAIL_FACTOR)
}

/// The fleet's capacity, in calls a second: every worker busy.
fn capacity_rps() -> f64 {
    let mean = service_time(0).mean().as_secs_f64();
    (ENDPOINTS * WORKERS) as f64 / mean
}

/// The fleet behind a round robin; every clone is the same fleet, and counts its calls.
#[derive(Clone)]
struct Fleet {
    servers: Arc<[Server]>,
    next: Arc<AtomicUsize>,
    calls: Arc<AtomicU64>,
    /// Calls by the second they were made in, from `start`.
    calls_per_sec: Arc<Mutex<Vec<u64>>>,
    start: Instant,
}

impl Fleet {
    fn new() -> Self {
        let servers = (0..ENDPOINTS)
            .map(|i| Server::new(WORKERS, service_time(i)))
            .collect();
        Self {
            servers,
            next: Arc::default(),
            calls: Arc::default(),
            calls_per_sec: Arc::default(),
            start: Instant::now(),
        }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

impl Service<()> for Fleet {
    type Response = ();
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> Answer {
        self.calls.fetch_add(1, Relaxed);
        let second = self.start.elapsed().as_secs() as usize;
        let mut per_sec = self.calls_per_sec.lock().expect("not poisoned");
        if per_sec.len() <= second {
            per_sec.resize(second + 1, 0);
        }
        per_sec[second] += 1;
        drop(per_sec);
        let endpoint = self.next.fetch_add(1, Relaxed) % ENDPOINTS;
        self.servers[endpoint].clone().call(())
    }
}

/// tower's `Hedge` policy: every request may be hedged.
#[derive(Clone)]
struct HedgeAll;

impl tower::hedge::Policy<()> for HedgeAll {
    fn clone_request(&self, (): &()) -> Option<()> {
        Some(())
    }

    fn can_retry(&self, (): &()) -> bool {
        true
    }
}

/// tower-resilience's hedge needs an error that is `Clone`.
#[derive(Debug, Clone)]
struct Failed(Arc<str>);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// Poisson arrivals at `rate` a second for `duration`.
fn arrivals(rate: f64, duration: Duration) -> Vec<Duration> {
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

struct Run {
    system: &'static str,
    /// Each answered request's latency, from arrival to answer.
    latencies: Vec<Duration>,
    /// Requests slower than [`SLOW`], by the second they arrived in.
    slow_per_sec: Vec<f64>,
    /// Calls beyond one a request, by the second.
    extra_per_sec: Vec<f64>,
    failures: u64,
    calls: u64,
}

/// What the charts count as a slow request: four times the typical call.
const SLOW: Duration = Duration::from_millis(20);

/// Sends each arrival through `svc` at its time, each answer awaited in a task of its own.
async fn drive<S>(system: &'static str, mut svc: S, fleet: &Fleet, arrivals: &[Duration]) -> Run
where
    S: Service<(), Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    let start = Instant::now();
    let mut answers = Vec::with_capacity(arrivals.len());
    for &arrival in arrivals {
        tokio::time::sleep_until(start + arrival).await;
        let answer = match svc.ready().await {
            Ok(svc) => svc.call(()),
            Err(error) => panic!("{system}: not ready: {error}"),
        };
        answers.push(tokio::spawn(async move {
            let result = answer.await;
            (result.is_ok(), start.elapsed() - arrival)
        }));
    }
    let seconds = arrivals.last().map_or(0, |a| a.as_secs() as usize + 1);
    let mut run = Run {
        system,
        latencies: Vec::with_capacity(answers.len()),
        slow_per_sec: vec![0.0; seconds],
        extra_per_sec: vec![0.0; seconds],
        failures: 0,
        calls: 0,
    };
    for (answer, arrival) in answers.into_iter().zip(arrivals) {
        let second = arrival.as_secs() as usize;
        match answer.await.expect("a request task does not panic") {
            (true, latency) => {
                run.latencies.push(latency);
                if latency > SLOW {
                    run.slow_per_sec[second] += 1.0;
                }
            }
            (false, _) => run.failures += 1,
        }
        run.extra_per_sec[second] -= 1.0;
    }
    let per_sec = fleet.calls_per_sec.lock().expect("not poisoned");
    for (second, calls) in per_sec.iter().enumerate().take(seconds) {
        run.extra_per_sec[second] += *calls as f64;
    }
    drop(per_sec);
    run.calls = fleet.calls.load(Relaxed);
    run
}

async fn simulate(system: &'static str, fixed_delay: Duration, arrivals: &[Duration]) -> Run {
    let fleet = Fleet::new();
    match system {
        "none" => drive(system, fleet.clone(), &fleet, arrivals).await,
        "tower-hedge" => {
            let hedge = tower::hedge::Hedge::new::<()>(
                fleet.clone(),
                HedgeAll,
                100,
                PERCENTILE as f32,
                Duration::from_secs(1),
            );
            drive(system, hedge, &fleet, arrivals).await
        }
        "tower-resilience-hedge" => {
            let layer = tower_resilience::hedge::HedgeLayer::builder()
                .delay(fixed_delay)
                .max_hedged_attempts(MAX_ATTEMPTS as usize)
                .build();
            let cloneable = fleet
                .clone()
                .map_err(|e: BoxError| Failed(Arc::from(e.to_string())));
            let hedge = layer.layer(cloneable).map_err(BoxError::from);
            drive(system, hedge, &fleet, arrivals).await
        }
        "palisade" => {
            let hedge = Hedge::at_percentile(PERCENTILE);
            simulate_palisade(system, hedge, None, fleet, arrivals).await
        }
        _ => unreachable!("every system is listed"),
    }
}

/// palisade with `hedge`, and `budget` or the default one, in front of `fleet`.
async fn simulate_palisade(
    system: &'static str,
    hedge: Hedge,
    budget: Option<BudgetConfig>,
    fleet: Fleet,
    arrivals: &[Duration],
) -> Run {
    let mut config = RetryConfig::builder("hedge-scenario")
        .max_attempts(MAX_ATTEMPTS)
        .hedge(hedge)
        .jitter_seed(SEED);
    if let Some(budget) = budget {
        config = config.budget(budget);
    }
    let config = config.build().expect("a valid configuration");
    let hedged = RetryLayer::with_config(config).layer(fleet.clone());
    drive(system, hedged, &fleet, arrivals).await
}

/// The `q` quantile of `latencies`, in ms.
pub(crate) fn quantile_ms(latencies: &[Duration], q: f64) -> f64 {
    let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).expect("valid bounds");
    for latency in latencies {
        h.saturating_record(latency.as_micros().max(1) as u64);
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

fn row(run: &Run, requests: usize) -> Map<String, serde_json::Value> {
    let mut row = Map::new();
    row.insert("system".into(), json!(run.system));
    for (key, q) in [("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)] {
        row.insert(key.into(), json!(round(quantile_ms(&run.latencies, q), 3)));
    }
    let extra = run.calls as f64 / requests as f64 - 1.0;
    row.insert("extra_load".into(), json!(round(extra, 4)));
    let success = 1.0 - run.failures as f64 / requests as f64;
    row.insert("success_rate".into(), json!(round(success, 6)));
    row
}

/// Every system in `situation`; the fixed delay is the 95th percentile of `none` in calm
/// times (hedge-tail's), as a user would measure it before choosing one.
async fn run_all(scenario: &'static str, situation: Situation) -> Report {
    let calm = arrivals(TAIL.load * capacity_rps(), TAIL.duration);
    let calm_none = simulate("none", Duration::ZERO, &calm).await;
    let fixed_delay = Duration::from_secs_f64(quantile_ms(&calm_none.latencies, PERCENTILE) / 1e3);
    let arrivals = arrivals(situation.load * capacity_rps(), situation.duration);
    let mut results = Vec::with_capacity(SYSTEMS.len());
    let mut runs = Vec::with_capacity(SYSTEMS.len());
    for system in SYSTEMS {
        let run = simulate(system, fixed_delay, &arrivals).await;
        results.push(row(&run, arrivals.len()));
        runs.push(run);
    }
    if scenario == "hedge-tail" {
        // What an earlier delay buys, and what it costs (rows only, not charted).
        for (system, delay_ms) in FRONTIER {
            let hedge = Hedge::after(Duration::from_millis(delay_ms)).max_extra_load(1.0);
            let budget = BudgetConfig::percent(10.0);
            let run = simulate_palisade(system, hedge, Some(budget), Fleet::new(), &arrivals).await;
            results.push(row(&run, arrivals.len()));
        }
    }
    let series = |of: fn(&Run) -> &Vec<f64>| {
        runs.iter()
            .map(|run| Series {
                name: run.system.to_owned(),
                points: of(run)
                    .iter()
                    .enumerate()
                    .map(|(second, value)| (second as f64 + 0.5, *value))
                    .collect(),
            })
            .collect()
    };
    let charts = match scenario {
        "hedge-tail" => vec![Chart {
            file: "hedge-tail.svg",
            title: "hedge-tail: requests slower than 20 ms (4× the typical call), per second"
                .into(),
            y_label: "slow requests / s",
            series: series(|run| &run.slow_per_sec),
        }],
        _ => vec![Chart {
            file: "hedge-overload.svg",
            title: format!("{scenario}: calls beyond one a request, per second"),
            y_label: "extra calls / s",
            series: series(|run| &run.extra_per_sec),
        }],
    };
    Report {
        scenario,
        results,
        charts,
    }
}

/// `hedge-tail`: 1 % of calls 20 times slower, at 30 % of capacity.
pub(crate) async fn tail() -> Report {
    run_all("hedge-tail", TAIL).await
}

/// `hedge-overload`: the same fleet, offered 105 % of its capacity.
pub(crate) async fn overload() -> Report {
    run_all("hedge-overload", OVERLOAD).await
}
