//! `breaker-outage`: a dependency healthy for 10 s, failing every call for 30 s, then
//! healthy again; 1000 requests a second offered; the default palisade breaker beside no
//! breaker at all, and `palisade-stack`: the documented client stack (breaker → retry →
//! buffer → balance, defaults), whose retries must not undo what the breaker saves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use palisade_balance::discover::static_list;
use palisade_balance::{Balance, BalanceConfig};
use palisade_breaker::{BreakerConfig, BreakerHandle, CircuitBreakerLayer, State};
use palisade_retry::{RetryConfig, RetryLayer};
use palisade_test::{Backend, Behaviour, Script};
use serde_json::{Map, json};
use tokio::time::{Instant, MissedTickBehavior};
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceBuilder, ServiceExt};

use crate::plot::Series;
use crate::report::{Chart, Report};

const RATE_PER_SEC: u32 = 1000;
const HEALTHY_BEFORE: Duration = Duration::from_secs(10);
const OUTAGE: Duration = Duration::from_secs(30);
const HEALTHY_AFTER: Duration = Duration::from_secs(20);
const LATENCY: Duration = Duration::from_millis(5);
const SAMPLE: Duration = Duration::from_millis(100);
/// Seeds the breaker's jitter: the scenario is a simulation, and should replay exactly.
const SEED: u64 = 2026;

struct Run {
    system: &'static str,
    offered: u64,
    offered_during_outage: u64,
    backend_calls_during_outage: u64,
    recovery_to_closed: Option<Duration>,
    successes: u64,
    calls_per_sec: Vec<(f64, f64)>,
    state: Vec<(f64, f64)>,
}

pub(crate) async fn run() -> Report {
    let runs = [
        simulate("palisade").await,
        simulate("palisade-stack").await,
        simulate("none").await,
    ];
    let results = runs
        .iter()
        .map(|r| {
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert("offered".into(), json!(r.offered));
            row.insert(
                "offered_during_outage".into(),
                json!(r.offered_during_outage),
            );
            row.insert(
                "backend_calls_during_outage".into(),
                json!(r.backend_calls_during_outage),
            );
            row.insert(
                "recovery_to_closed_ms".into(),
                json!(r.recovery_to_closed.map(|d| d.as_millis() as u64)),
            );
            row.insert(
                "success_rate".into(),
                json!(r.successes as f64 / r.offered as f64),
            );
            row
        })
        .collect();
    Report {
        scenario: "breaker-outage",
        results,
        charts: vec![
            Chart {
                file: "breaker-outage-calls.svg",
                title: "breaker-outage: calls reaching the dependency (outage from 10 s to 40 s)"
                    .into(),
                y_label: "calls / s",
                series: runs
                    .iter()
                    .map(|r| Series {
                        name: r.system.into(),
                        points: r.calls_per_sec.clone(),
                    })
                    .collect(),
            },
            Chart {
                file: "breaker-outage-state.svg",
                title: "breaker-outage: palisade breaker state (0 closed, 1 half-open, 2 open)"
                    .into(),
                y_label: "state",
                series: runs[..2]
                    .iter()
                    .map(|r| Series {
                        name: r.system.into(),
                        points: r.state.clone(),
                    })
                    .collect(),
            },
        ],
    }
}

async fn simulate(system: &'static str) -> Run {
    let backend = Backend::new(
        Script::new()
            .then(HEALTHY_BEFORE, Behaviour::healthy(LATENCY))
            .then(OUTAGE, Behaviour::healthy(LATENCY).error_rate(1.0))
            .forever(Behaviour::healthy(LATENCY)),
    );
    let config = BreakerConfig::builder("dependency")
        // A fixed seed makes the jitter, and so the figures, the same on every run.
        .jitter_seed(SEED)
        .build()
        .expect("the default configuration is valid");
    let (svc, handle): (BoxCloneService<(), _, BoxError>, Option<BreakerHandle>) = match system {
        "palisade" => {
            let layer = CircuitBreakerLayer::with_config(config);
            let handle = layer.handle();
            (
                BoxCloneService::new(layer.layer(backend.clone())),
                Some(handle),
            )
        }
        "palisade-stack" => {
            let layer = CircuitBreakerLayer::with_config(config);
            let handle = layer.handle();
            let retry = RetryConfig::builder("dependency")
                .jitter_seed(SEED)
                .build()
                .expect("the default configuration is valid");
            let balance = Balance::with_config(
                static_list([("dependency", backend.clone())]),
                BalanceConfig::builder("dependency")
                    .build()
                    .expect("the default configuration is valid"),
            );
            let stack = ServiceBuilder::new()
                .layer(layer)
                .layer(RetryLayer::with_config(retry))
                .buffer(1024)
                .service(balance);
            (BoxCloneService::new(stack), Some(handle))
        }
        _ => (
            BoxCloneService::new(ServiceExt::<()>::map_err(backend.clone(), BoxError::from)),
            None,
        ),
    };

    let start = Instant::now();
    let total = HEALTHY_BEFORE + OUTAGE + HEALTHY_AFTER;
    let outage_end = HEALTHY_BEFORE + OUTAGE;
    let successes = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE_PER_SEC);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);

    let (mut offered, mut offered_during_outage) = (0u64, 0u64);
    let (mut calls_at_outage_start, mut calls_at_outage_end) = (0, 0);
    let mut recovery_to_closed = None;
    let (mut calls_per_sec, mut state) = (Vec::new(), Vec::new());
    let (mut next_sample, mut calls_at_last_sample) = (SAMPLE, 0);

    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if elapsed >= total {
            break;
        }
        if elapsed >= HEALTHY_BEFORE && calls_at_outage_start == 0 {
            calls_at_outage_start = backend.stats().calls();
        }
        if elapsed >= outage_end && calls_at_outage_end == 0 {
            calls_at_outage_end = backend.stats().calls();
        }
        let breaker_state = handle.as_ref().map_or(State::Closed, BreakerHandle::state);
        if elapsed >= outage_end && recovery_to_closed.is_none() && breaker_state == State::Closed {
            recovery_to_closed = Some(elapsed - outage_end);
        }
        if elapsed >= next_sample {
            let calls = backend.stats().calls();
            let t = elapsed.as_secs_f64();
            calls_per_sec.push((
                t,
                (calls - calls_at_last_sample) as f64 / SAMPLE.as_secs_f64(),
            ));
            let level = match breaker_state {
                State::Open | State::ForcedOpen => 2.0,
                State::HalfOpen => 1.0,
                _ => 0.0,
            };
            state.push((t, level));
            calls_at_last_sample = calls;
            next_sample += SAMPLE;
        }

        offered += 1;
        if (HEALTHY_BEFORE..outage_end).contains(&elapsed) {
            offered_during_outage += 1;
        }
        let svc = svc.clone();
        let successes = Arc::clone(&successes);
        tokio::spawn(async move {
            if svc.oneshot(()).await.is_ok() {
                successes.fetch_add(1, Relaxed);
            }
        });
    }
    // Let the last calls finish.
    tokio::time::sleep(LATENCY * 2).await;

    Run {
        system,
        offered,
        offered_during_outage,
        backend_calls_during_outage: calls_at_outage_end - calls_at_outage_start,
        recovery_to_closed: if handle.is_some() {
            recovery_to_closed
        } else {
            Some(Duration::ZERO)
        },
        successes: successes.load(Relaxed),
        calls_per_sec,
        state,
    }
}
