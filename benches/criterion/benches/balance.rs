//! The cost of a pick — `poll_ready` (two draws, two loads compared), `call`, and the
//! answer's completion (the load updated) — over 10, 100 and 1000 endpoints that answer at
//! once, beside tower's P2C `Balance` over `PeakEwmaDiscover`.
//!
//! Every endpoint is discovered and ready before the measurement starts.
//!
//! `cargo bench -p palisade-criterion --bench balance`

mod support;

use std::task::Context;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use palisade_balance::discover::static_list;
use palisade_balance::{Balance, BalanceConfig};
use tower::Service;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};

use crate::support::{Bare, call_once};

const DEFAULT_RTT: Duration = Duration::from_millis(30);
const DECAY: Duration = Duration::from_secs(10);

fn endpoints(n: usize) -> impl Iterator<Item = (usize, Bare)> {
    (0..n).map(|i| (i, Bare))
}

fn palisade(n: usize) -> impl Service<u64> {
    let config = BalanceConfig::builder("bench")
        .default_rtt(DEFAULT_RTT)
        .decay(DECAY)
        .build()
        .unwrap();
    Balance::with_config(static_list(endpoints(n)), config)
}

fn tower_p2c(n: usize) -> impl Service<u64> {
    let discover = PeakEwmaDiscover::new::<u64>(
        static_list(endpoints(n)),
        DEFAULT_RTT,
        DECAY,
        CompleteOnResponse::default(),
    );
    tower::balance::p2c::Balance::new(discover)
}

/// Times picks through `svc`, once every endpoint is discovered and ready.
fn bench_picks<S: Service<u64>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    n: usize,
    mut svc: S,
) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    call_once(&mut svc, &mut cx, 0);
    let mut i = 0;
    group.bench_function(BenchmarkId::new(name, n), |b| {
        b.iter(|| {
            i += 1;
            call_once(&mut svc, &mut cx, i);
        })
    });
}

fn bench(c: &mut Criterion) {
    let runtime = support::runtime();
    let _guard = runtime.enter();

    let mut group = c.benchmark_group("balance/pick");
    for n in [10, 100, 1000] {
        bench_picks(&mut group, "palisade", n, palisade(n));
        bench_picks(&mut group, "tower-p2c-peak-ewma", n, tower_p2c(n));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
