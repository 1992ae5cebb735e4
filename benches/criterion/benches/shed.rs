//! Admission cost of a load shedder under its limit (every call admitted at once), beside a
//! bare service and tower's `ConcurrencyLimit` + `LoadShed`, on one and two threads.
//!
//! tower's `ConcurrencyLimit` takes its permit in `poll_ready`, so every call here is
//! `poll_ready` then `call` (see `support::call_once`).
//!
//! `cargo bench -p palisade-criterion --bench shed`

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use palisade_shed::limit::Fixed;
use palisade_shed::{ShedConfig, ShedConfigBuilder, ShedLayer};
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;
use tower::{Layer, Service};

use crate::support::{Bare, per_call};

/// A limit no bench comes near: every call is admitted.
const LIMIT: usize = 1000;

fn palisade(config: ShedConfigBuilder) -> impl Service<u64> + Clone + Send {
    ShedLayer::with_config(config.build().unwrap()).layer(Bare)
}

/// The defaults: the `Gradient` limit (fed a latency sample by every call) and the queue.
fn palisade_default() -> impl Service<u64> + Clone + Send {
    palisade(ShedConfig::builder("bench"))
}

/// A fixed limit, as tower's below: admission and release without the limit algorithm's
/// work.
fn palisade_fixed() -> impl Service<u64> + Clone + Send {
    palisade(ShedConfig::builder("bench").limit(Fixed(LIMIT)))
}

fn tower_limit() -> impl Service<u64> + Clone + Send {
    ConcurrencyLimit::new(Bare, LIMIT)
}

fn tower_limit_load_shed() -> impl Service<u64> + Clone + Send {
    LoadShed::new(ConcurrencyLimit::new(Bare, LIMIT))
}

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    let _guard = runtime.enter();

    for threads in [1u64, 2] {
        let mut group = c.benchmark_group(format!("shed/admitted/{threads}-thread"));
        // Each service is made once and cloned per thread, so every thread shares one
        // limit, as every request of a server does.
        let bare = Bare;
        let ours = palisade_default();
        let ours_fixed = palisade_fixed();
        let tower = tower_limit();
        let tower_shed = tower_limit_load_shed();
        group.bench_function("bare", |b| {
            b.iter_custom(|n| per_call(&|| bare, threads, n))
        });
        group.bench_function("palisade/default", |b| {
            b.iter_custom(|n| per_call(&|| ours.clone(), threads, n))
        });
        group.bench_function("palisade/fixed", |b| {
            b.iter_custom(|n| per_call(&|| ours_fixed.clone(), threads, n))
        });
        group.bench_function("tower/concurrency-limit", |b| {
            b.iter_custom(|n| per_call(&|| tower.clone(), threads, n))
        });
        group.bench_function("tower/concurrency-limit+load-shed", |b| {
            b.iter_custom(|n| per_call(&|| tower_shed.clone(), threads, n))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
