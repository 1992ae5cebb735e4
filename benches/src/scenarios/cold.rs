//! `cold-endpoint`: a new endpoint joins a warm fleet. Ten endpoints (4 workers each,
//! lognormal service times around 10 ms) serve Poisson arrivals at 60 % of what eleven can;
//! at 10 s an eleventh joins through discovery, cold, in one of two ways, each warming over
//! its first 2 000 requests:
//!
//! - `slower`: its requests are three times slower at first (caches empty), and speed up
//!   linearly;
//! - `growing`: its requests are as fast as anyone's, but it has one worker at first and
//!   grows to four (thread and connection pools filling): idle, it looks as fast as the
//!   others, and a full share swamps it.
//!
//! The systems: palisade's balancer with slow start (a 20 s linear window, from a tenth of
//! its weight) and without (the new endpoint starts at the 30 ms cold estimate and is sent
//! whatever P2C finds it can take). The figures: how long after joining the new endpoint
//! first carries 80 % of its fair share (a second in which it served at least 80 % of
//! 1/11 of the requests), and the p99 of the requests that arrived in the 30 s after it
//! joined, beside the p99 of the 10 s before.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use palisade_balance::discover::WatchDiscover;
use palisade_balance::{Balance, BalanceConfig, SlowStart};
use serde_json::{Map, json};

use crate::balance::{
    BALANCER_SEED, DECAY, DEFAULT_RTT, Endpoint, MEAN_SERVICE, Record, Run, SERVICE_SEED, SIGMA,
    WORKERS, drive, latency_ms, poisson_arrivals, round,
};
use crate::plot::Series;
use crate::report::{Chart, Report};
use crate::server::{Server, ServiceTime};

const WARM: usize = 10;
/// The index of the endpoint that joins.
const NEW: usize = WARM;
const JOIN: Duration = Duration::from_secs(10);
const DURATION: Duration = Duration::from_secs(60);
const LOAD: f64 = 0.6;
const COLD_FACTOR: f64 = 3.0;

/// How the new endpoint is cold.
#[derive(Clone, Copy)]
enum Cold {
    Slower,
    Growing,
}

impl Cold {
    fn name(self) -> &'static str {
        match self {
            Cold::Slower => "slower",
            Cold::Growing => "growing",
        }
    }
}
const WARMUP_REQUESTS: u64 = 2_000;
const WINDOW: Duration = Duration::from_secs(20);
/// The share of its fair share that counts as carrying it.
const CARRYING: f64 = 0.8;

fn endpoint(index: usize, cold: Cold, calls: &Arc<AtomicU64>) -> Endpoint {
    let service = ServiceTime::lognormal(MEAN_SERVICE, SIGMA, SERVICE_SEED + index as u64);
    let server = match (index, cold) {
        (NEW, Cold::Slower) => Server::cold(WORKERS, service, COLD_FACTOR, WARMUP_REQUESTS),
        (NEW, Cold::Growing) => Server::growing(WORKERS, service, WARMUP_REQUESTS),
        _ => Server::new(WORKERS, service),
    };
    Endpoint {
        index,
        server: Some(server),
        calls: calls.clone(),
    }
}

async fn simulate(system: &'static str, cold: Cold, arrivals: &[Duration]) -> Run {
    let calls = Arc::new(AtomicU64::new(0));
    let (publish, sets) = tokio::sync::watch::channel((0..WARM).collect::<BTreeSet<_>>());
    let made = calls.clone();
    let discover = WatchDiscover::new("scenario", sets, move |&index: &usize| {
        endpoint(index, cold, &made)
    });
    let config = BalanceConfig::builder("scenario")
        .default_rtt(DEFAULT_RTT)
        .decay(DECAY);
    let config = match system {
        "palisade" => config.slow_start(SlowStart::new(WINDOW)),
        _ => config,
    };
    let balance = Balance::with_config(discover, config.build().expect("a valid configuration"))
        .seed(BALANCER_SEED);
    let join = tokio::spawn(async move {
        tokio::time::sleep(JOIN).await;
        let _ = publish.send((0..=NEW).collect());
        // Kept until the run is over: a dropped sender ends the discovery.
        std::future::pending::<()>().await;
    });
    let run = drive(system, balance, arrivals, &calls).await;
    join.abort();
    run
}

/// The new endpoint's share of the requests that arrived in each second after it joined.
fn shares(run: &Run) -> Vec<f64> {
    let seconds = (DURATION - JOIN).as_secs() as usize;
    let mut counts = vec![(0u64, 0u64); seconds];
    for r in run.records.iter().filter(|r| r.arrival >= JOIN) {
        let second = ((r.arrival - JOIN).as_secs() as usize).min(seconds - 1);
        counts[second].0 += 1;
        counts[second].1 += u64::from(matches!(r.served_by, Ok(NEW)));
    }
    counts
        .into_iter()
        .map(|(all, new)| new as f64 / all.max(1) as f64)
        .collect()
}

fn seconds_to_share(run: &Run) -> Option<usize> {
    let fair = 1.0 / (WARM + 1) as f64;
    shares(run)
        .iter()
        .position(|share| *share >= CARRYING * fair)
        .map(|s| s + 1)
}

fn row((cold, run): &(Cold, Run)) -> Map<String, serde_json::Value> {
    let in_window =
        |from: Duration, to: Duration| move |r: &&Record| r.arrival >= from && r.arrival < to;
    let mut row = Map::new();
    row.insert("system".into(), json!(run.system));
    row.insert("cold".into(), json!(cold.name()));
    row.insert("seconds_to_share".into(), json!(seconds_to_share(run)));
    let after = run
        .records
        .iter()
        .filter(in_window(JOIN, JOIN + Duration::from_secs(30)));
    row.insert("p99_ms".into(), json!(round(latency_ms(after, 0.99), 3)));
    let before = run.records.iter().filter(in_window(Duration::ZERO, JOIN));
    row.insert(
        "steady_p99_ms".into(),
        json!(round(latency_ms(before, 0.99), 3)),
    );
    let new = run
        .records
        .iter()
        .filter(|r| matches!(r.served_by, Ok(NEW)));
    row.insert(
        "new_endpoint_p99_ms".into(),
        json!(round(latency_ms(new, 0.99), 3)),
    );
    let ok = run.records.iter().filter(|r| r.ok()).count();
    row.insert(
        "success_rate".into(),
        json!(round(ok as f64 / run.records.len().max(1) as f64, 6)),
    );
    row
}

/// `cold-endpoint`: an eleventh endpoint joins ten warm ones, cold.
pub(crate) async fn cold_endpoint() -> Report {
    let per_endpoint = WORKERS as f64
        / ServiceTime::lognormal(MEAN_SERVICE, SIGMA, 0)
            .mean()
            .as_secs_f64();
    let rate = LOAD * (WARM + 1) as f64 * per_endpoint;
    let arrivals = poisson_arrivals(rate, DURATION);
    let mut runs = Vec::new();
    for cold in [Cold::Slower, Cold::Growing] {
        for system in ["palisade", "no-slow-start"] {
            runs.push((cold, simulate(system, cold, &arrivals).await));
        }
    }
    let series = |f: &dyn Fn(&Run) -> Vec<f64>| -> Vec<Series> {
        runs.iter()
            .map(|(cold, run)| Series {
                name: format!("{} ({})", run.system, cold.name()),
                points: f(run)
                    .into_iter()
                    .enumerate()
                    .map(|(s, y)| ((s + 1) as f64, y))
                    .collect(),
            })
            .collect()
    };
    let p99 = |run: &Run| -> Vec<f64> {
        (0..(DURATION - JOIN).as_secs())
            .map(|s| {
                let from = JOIN + Duration::from_secs(s);
                let second = run
                    .records
                    .iter()
                    .filter(|r| r.arrival >= from && r.arrival < from + Duration::from_secs(1));
                latency_ms(second, 0.99)
            })
            .collect()
    };
    Report {
        scenario: "cold-endpoint",
        results: runs.iter().map(row).collect(),
        charts: vec![
            Chart {
                file: "cold-endpoint-share.svg",
                title: format!(
                    "cold-endpoint: the new endpoint's share, seconds after it joined ({rate:.0} req/s; fair share 9.1 %)"
                ),
                y_label: "share (%)",
                series: series(&|run| shares(run).into_iter().map(|s| 100.0 * s).collect()),
            },
            Chart {
                file: "cold-endpoint-p99.svg",
                title: "cold-endpoint: p99 latency, seconds after the new endpoint joined".into(),
                y_label: "p99 latency (ms)",
                series: series(&p99),
            },
        ],
    }
}
