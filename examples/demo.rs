//! The breaker demo: a backend that fails for a while and recovers, and a circuit breaker
//! that opens, probes and closes in front of it.
//!
//! `cargo run --release --example demo`
//!
//! A client sends 200 requests a second for 9 seconds. The backend is healthy for 2 s,
//! fails every call for 4 s, then is healthy again. Each half-second the demo prints what
//! was offered, what reached the backend, what succeeded and what the breaker refused, and
//! it prints every change of the breaker's state as it happens.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use palisade::prelude::*;
use palisade_test::{Backend, Behaviour, Script};
use tokio::time::{Instant, MissedTickBehavior};
use tower::{ServiceBuilder, ServiceExt};

const RATE_PER_SEC: u64 = 200;
const RUN_FOR: Duration = Duration::from_secs(9);

#[derive(Default)]
struct Tally {
    offered: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

#[tokio::main]
async fn main() {
    let backend = Backend::new(
        Script::new()
            .then(
                Duration::from_secs(2),
                Behaviour::healthy(Duration::from_millis(5)),
            )
            .then(Duration::from_secs(4), Behaviour::failing())
            .forever(Behaviour::healthy(Duration::from_millis(5))),
    );
    let breaker = CircuitBreakerLayer::new(
        BreakerConfig::builder()
            .name("backend")
            .consecutive_failures(5)
            .open_duration(OpenDuration::fixed(Duration::from_secs(1)))
            .half_open_probes(3)
            .successes_to_close(3)
            .build()
            .expect("the demo's breaker configuration is valid"),
    );
    let handle = breaker.handle();
    let svc = ServiceBuilder::new()
        .layer(breaker)
        .service(backend.clone());

    println!("palisade breaker demo");
    println!("  backend: healthy for 2 s, failing every call for 4 s, then healthy again");
    println!(
        "  breaker: opens after 5 failures in a row, stays open 1 s, then lets 3 probes through;"
    );
    println!("           3 successful probes close it, one failed probe opens it again\n");

    let start = Instant::now();
    let mut transitions = handle.subscribe();
    tokio::spawn(async move {
        let mut last = State::Closed;
        while transitions.changed().await.is_ok() {
            let state = *transitions.borrow_and_update();
            let why = match (last, state) {
                (State::Open, State::Open) => "a probe failed: open again",
                (_, State::Open) => "calls are refused without reaching the backend",
                (_, State::HalfOpen) => "letting probes through to test the backend",
                (_, State::Closed) => "probes succeeded: traffic flows again",
                _ => "",
            };
            println!(
                "  {:>5.2}s  ** breaker is now {state:<9} {why}",
                start.elapsed().as_secs_f64()
            );
            last = state;
        }
    });

    let tally = Arc::new(Tally::default());
    let stats = Arc::clone(backend.stats());
    let reporter = {
        let tally = Arc::clone(&tally);
        let handle = handle.clone();
        tokio::spawn(async move {
            println!(
                "  {:>6}  {:<10} {:>8} {:>11} {:>10} {:>8} {:>8}",
                "time", "state", "offered", "at backend", "succeeded", "failed", "refused"
            );
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.tick().await;
            let mut last = [0u64; 5];
            loop {
                tick.tick().await;
                let now = [
                    tally.offered.load(Relaxed),
                    stats.calls(),
                    tally.succeeded.load(Relaxed),
                    tally.failed.load(Relaxed),
                    tally.refused.load(Relaxed),
                ];
                let d: Vec<u64> = now.iter().zip(last).map(|(n, l)| n - l).collect();
                println!(
                    "  {:>5.1}s  {:<10} {:>8} {:>11} {:>10} {:>8} {:>8}",
                    start.elapsed().as_secs_f64(),
                    handle.state().as_str(),
                    d[0],
                    d[1],
                    d[2],
                    d[3],
                    d[4]
                );
                last = now;
            }
        })
    };

    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE_PER_SEC as u32);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    while start.elapsed() < RUN_FOR {
        tick.tick().await;
        tally.offered.fetch_add(1, Relaxed);
        let svc = svc.clone();
        let tally = Arc::clone(&tally);
        tokio::spawn(async move {
            let result = svc.oneshot(()).await;
            let counter = match result {
                Ok(_) => &tally.succeeded,
                Err(e) if e.is::<BreakerOpen>() => &tally.refused,
                Err(_) => &tally.failed,
            };
            counter.fetch_add(1, Relaxed);
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    reporter.abort();

    let offered = tally.offered.load(Relaxed);
    let reached = backend.stats().calls();
    println!("\nsummary");
    println!("  requests offered            {offered}");
    println!("  reached the backend         {reached}");
    println!(
        "  succeeded                   {}",
        tally.succeeded.load(Relaxed)
    );
    println!(
        "  failed at the backend       {}",
        tally.failed.load(Relaxed)
    );
    println!(
        "  refused by the breaker      {} (answered at once, the backend never saw them)",
        tally.refused.load(Relaxed)
    );
    println!("  final breaker state         {}", handle.state());
    println!("\nDuring the 4 s outage the backend was spared almost every call: the breaker");
    println!("tripped after 5 failures, then only a handful of probes tested it each second.");
}
