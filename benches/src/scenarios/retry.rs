//! `retry-outage` and `retry-transient`: a client offering 1000 requests a second for 30 s
//! to a dependency that fails every call (an outage) or 10 % of calls at random (transient
//! failures); palisade's retry layer with its default budget (20 % of recent requests,
//! throttled by gRPC's token bucket; `palisade-throttled` spells its settings out), with the
//! percentage alone (`palisade-percent`, the default before the throttle), with a 10 %
//! budget, and with gRPC's token bucket alone as A6's example sets it (`palisade-tokens`:
//! 10 tokens, 0.1 a success), beside tower's `Retry` with no budget (naive) and with
//! tower's `TpsBudget`.
//!
//! Every system makes at most 3 attempts per request. The figures: load amplification
//! (calls reaching the dependency ÷ requests offered) and the share of requests that
//! succeeded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use palisade_retry::budget::BudgetConfig;
use palisade_retry::{RetryConfig, RetryConfigBuilder, RetryLayer};
use palisade_test::{Backend, Behaviour, Reply, Script, TowerRetryPolicy};
use serde_json::{Map, json};
use tokio::time::{Instant, MissedTickBehavior};
use tower::retry::budget::TpsBudget;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceExt};

use crate::plot::Series;
use crate::report::{Chart, Report};

const RATE_PER_SEC: u32 = 1000;
const DURATION: Duration = Duration::from_secs(30);
/// Failures are fast, but not free: they come after the latency, as from a server that
/// answers 503 at once.
const LATENCY: Duration = Duration::from_millis(5);
const TRANSIENT_ERROR_RATE: f64 = 0.1;
/// The most attempts per request, the first included, for every system.
const MAX_ATTEMPTS: u32 = 3;
const SAMPLE: Duration = Duration::from_millis(100);
/// Seeds palisade's jitter and the backend's failures: the scenarios are simulations, and
/// should replay exactly.
const SEED: u64 = 2026;

const SYSTEMS: [&str; 7] = [
    "palisade",
    "palisade-throttled",
    "palisade-percent",
    "palisade-10pct",
    "palisade-tokens",
    "naive",
    "tower-tps-budget",
];

/// What the dependency does for the whole run.
#[derive(Clone, Copy)]
enum Failures {
    /// Every call fails.
    All,
    /// Each call fails independently with this probability.
    AtRandom(f64),
}

struct Run {
    system: &'static str,
    offered: u64,
    backend_calls: u64,
    successes: u64,
    /// (seconds, calls reaching the dependency in the 100 ms before).
    calls_per_sample: Vec<(f64, f64)>,
    /// (seconds, requests that failed in the second before, retries and all).
    failures_per_sec: Vec<(f64, f64)>,
}

impl Run {
    fn amplification(&self) -> f64 {
        self.backend_calls as f64 / self.offered as f64
    }

    fn success_rate(&self) -> f64 {
        self.successes as f64 / self.offered as f64
    }
}

/// `retry-outage`: every call fails for 30 s.
pub(crate) async fn outage() -> Report {
    let runs = simulate_all(Failures::All).await;
    Report {
        scenario: "retry-outage",
        results: rows(&runs),
        charts: vec![Chart {
            file: "retry-outage.svg",
            title: "retry-outage: calls reaching the dependency (100 requests offered per 100 ms)"
                .into(),
            y_label: "calls / 100 ms",
            series: series(&runs, |r| &r.calls_per_sample),
        }],
    }
}

/// `retry-transient`: 10 % of calls fail at random for 30 s.
pub(crate) async fn transient() -> Report {
    let runs = simulate_all(Failures::AtRandom(TRANSIENT_ERROR_RATE)).await;
    Report {
        scenario: "retry-transient",
        results: rows(&runs),
        charts: vec![
            Chart {
                file: "retry-transient.svg",
                title: "retry-transient: calls reaching the dependency (10 % of calls fail)".into(),
                y_label: "calls / 100 ms",
                series: series(&runs, |r| &r.calls_per_sample),
            },
            Chart {
                file: "retry-transient-failures.svg",
                title: "retry-transient: requests that failed after their retries".into(),
                y_label: "failed requests / s",
                series: series(&runs, |r| &r.failures_per_sec),
            },
        ],
    }
}

async fn simulate_all(failures: Failures) -> Vec<Run> {
    let mut runs = Vec::with_capacity(SYSTEMS.len());
    for system in SYSTEMS {
        runs.push(simulate(system, failures).await);
    }
    runs
}

fn rows(runs: &[Run]) -> Vec<Map<String, serde_json::Value>> {
    runs.iter()
        .map(|r| {
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert("offered".into(), json!(r.offered));
            row.insert("backend_calls".into(), json!(r.backend_calls));
            row.insert("amplification".into(), json!(r.amplification()));
            row.insert("success_rate".into(), json!(r.success_rate()));
            row
        })
        .collect()
}

fn series(runs: &[Run], points: impl Fn(&Run) -> &Vec<(f64, f64)>) -> Vec<Series> {
    runs.iter()
        .map(|r| Series {
            name: r.system.into(),
            points: points(r).clone(),
        })
        .collect()
}

/// palisade's retry layer: 3 attempts, the default backoff (25 ms doubling, full jitter,
/// seeded), and `config`'s budget.
fn palisade(config: RetryConfigBuilder, backend: &Backend) -> BoxCloneService<(), Reply, BoxError> {
    let config = config
        .max_attempts(MAX_ATTEMPTS)
        .jitter_seed(SEED)
        .build()
        .expect("a valid configuration");
    BoxCloneService::new(RetryLayer::with_config(config).layer(backend.clone()))
}

fn tower_retry(
    policy: TowerRetryPolicy,
    backend: &Backend,
) -> BoxCloneService<(), Reply, BoxError> {
    let retry = tower::retry::Retry::new(policy, backend.clone());
    BoxCloneService::new(ServiceExt::<()>::map_err(retry, BoxError::from))
}

async fn simulate(system: &'static str, failures: Failures) -> Run {
    let behaviour = Behaviour::healthy(LATENCY).error_rate(match failures {
        Failures::All => 1.0,
        Failures::AtRandom(rate) => rate,
    });
    let backend = Backend::new(Script::always(behaviour).seed(SEED));
    let svc = match system {
        "palisade" => palisade(RetryConfig::builder("dependency"), &backend),
        "palisade-10pct" => palisade(
            RetryConfig::builder("dependency").budget(BudgetConfig::Percent {
                ttl: Duration::from_secs(10),
                min_per_sec: 10,
                percent: 0.1,
            }),
            &backend,
        ),
        // gRPC's retry throttling alone, as A6's example configures it.
        "palisade-tokens" => palisade(
            RetryConfig::builder("dependency").budget(BudgetConfig::Tokens {
                max_tokens: 10.0,
                token_ratio: 0.1,
            }),
            &backend,
        ),
        // The default's settings, spelled out.
        "palisade-throttled" => palisade(
            RetryConfig::builder("dependency").budget(BudgetConfig::Throttled {
                ttl: Duration::from_secs(10),
                min_per_sec: 10,
                percent: 0.2,
                max_tokens: 100.0,
                token_ratio: 0.5,
            }),
            &backend,
        ),
        // The default before the throttle: the percentage alone.
        "palisade-percent" => palisade(
            RetryConfig::builder("dependency").budget(BudgetConfig::percent(0.2)),
            &backend,
        ),
        "naive" => tower_retry(TowerRetryPolicy::new(MAX_ATTEMPTS, None), &backend),
        "tower-tps-budget" => tower_retry(
            TowerRetryPolicy::new(
                MAX_ATTEMPTS,
                Some(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
            ),
            &backend,
        ),
        _ => unreachable!("SYSTEMS lists every system"),
    };

    let start = Instant::now();
    let successes = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let unfinished = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE_PER_SEC);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);

    let mut offered = 0u64;
    let (mut calls_per_sample, mut failures_per_sec) = (Vec::new(), Vec::new());
    let (mut next_sample, mut calls_at_last_sample) = (SAMPLE, 0);
    let (mut next_second, mut failed_at_last_second) = (Duration::from_secs(1), 0);

    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= DURATION {
            break;
        }
        let t = elapsed.as_secs_f64();
        if elapsed >= next_sample {
            let calls = backend.stats().calls();
            calls_per_sample.push((t, (calls - calls_at_last_sample) as f64));
            calls_at_last_sample = calls;
            next_sample += SAMPLE;
        }
        if elapsed >= next_second {
            let failed = failed.load(Relaxed);
            failures_per_sec.push((t, (failed - failed_at_last_second) as f64));
            failed_at_last_second = failed;
            next_second += Duration::from_secs(1);
        }

        offered += 1;
        let svc = svc.clone();
        let (successes, failed, unfinished) = (
            Arc::clone(&successes),
            Arc::clone(&failed),
            Arc::clone(&unfinished),
        );
        unfinished.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let outcome = if svc.oneshot(()).await.is_ok() {
                &successes
            } else {
                &failed
            };
            outcome.fetch_add(1, Relaxed);
            unfinished.fetch_sub(1, Relaxed);
        });
    }
    // Let the last requests finish, retries and backoffs included.
    while unfinished.load(Relaxed) > 0 {
        tokio::time::sleep(LATENCY).await;
    }

    Run {
        system,
        offered,
        backend_calls: backend.stats().calls(),
        successes: successes.load(Relaxed),
        calls_per_sample,
        failures_per_sec,
    }
}
