//! Per-call cost of a retry layer when the call succeeds (nothing is retried), beside a bare
//! service, tower's `Retry` and tower-resilience 0.13's retry, on one thread.
//!
//! `cargo bench -p palisade-benches --bench retry`

mod support;

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_retry::budget::Budget;
use palisade_retry::{RetryConfig, RetryLayer};
use palisade_test::TowerRetryPolicy;
use tower::retry::budget::TpsBudget;
use tower::{Layer, Service};

use crate::support::{Bare, call_once};

/// Makes `iters` calls to `svc` and returns the time they took.
fn per_call<S: Service<u64>>(mut svc: S, iters: u64) -> Duration {
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    for i in 0..iters {
        call_once(&mut svc, &mut cx, i);
    }
    start.elapsed()
}

/// palisade's defaults: 3 attempts, every error retried, 20 % + 10/s budget.
fn palisade_default() -> impl Service<u64> + Clone {
    let config = RetryConfig::builder("bench").build().unwrap();
    RetryLayer::with_config(config).layer(Bare)
}

/// A budget that allows every retry and counts nothing: what the layer costs without the
/// budget's bookkeeping.
struct Unlimited;

impl Budget for Unlimited {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        true
    }
}

fn palisade_unlimited() -> impl Service<u64> + Clone {
    RetryLayer::new("bench").with_budget(Unlimited).layer(Bare)
}

/// tower's `Retry` as its documentation sets it up: every error retried, 3 attempts; and
/// the same under tower's `TpsBudget`.
fn tower_retry() -> impl Service<u64> + Clone {
    let policy = TowerRetryPolicy::new(3, None);
    tower::retry::Retry::new(policy, Bare)
}

fn tower_retry_budget() -> impl Service<u64> + Clone {
    let budget = TpsBudget::new(Duration::from_secs(10), 10, 0.2);
    let policy = TowerRetryPolicy::new(3, Some(budget));
    tower::retry::Retry::new(policy, Bare)
}

/// tower-resilience's retry as its documentation sets it up: 3 attempts, exponential backoff
/// (its default has no budget).
fn tower_resilience() -> impl Service<u64> + Clone {
    tower_resilience::retry::RetryLayer::<u64, u64, std::io::Error>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(25))
        .build()
        .layer(Bare)
}

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    let _guard = runtime.enter();

    let mut group = c.benchmark_group("retry/success/1-thread");
    let ours = palisade_default();
    let ours_unlimited = palisade_unlimited();
    let tower = tower_retry();
    let tower_budget = tower_retry_budget();
    let theirs = tower_resilience();
    group.bench_function("bare", |b| b.iter_custom(|n| per_call(Bare, n)));
    group.bench_function("palisade/default", |b| {
        b.iter_custom(|n| per_call(ours.clone(), n))
    });
    group.bench_function("palisade/unlimited-budget", |b| {
        b.iter_custom(|n| per_call(ours_unlimited.clone(), n))
    });
    group.bench_function("tower/retry", |b| {
        b.iter_custom(|n| per_call(tower.clone(), n))
    });
    group.bench_function("tower/retry+tps-budget", |b| {
        b.iter_custom(|n| per_call(tower_budget.clone(), n))
    });
    group.bench_function("tower-resilience", |b| {
        b.iter_custom(|n| per_call(theirs.clone(), n))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
