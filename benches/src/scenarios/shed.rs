//! `shed-overload`, `shed-capacity-drop` and `shed-priority`: a server of 16 workers
//! ([`Server`]; service times lognormal, mean 10 ms, σ 0.5, rounded to
//! the millisecond), offered Poisson arrivals by clients that give up after 1 s, behind:
//!
//! - `none`: nothing; requests past the 16 workers wait in the server's FIFO queue;
//! - `tower-fixed-good`: tower's `ConcurrencyLimit` + `LoadShed` at 16, the number of workers;
//! - `tower-fixed-bad`: the same at 64, four times too high (the usual mistake: a limit
//!   picked "generously", or for a bigger host);
//! - `palisade`: palisade's `ShedLayer` with its defaults (the `Gradient` limit, the CoDel
//!   queue): no limit set by hand.
//!
//! A request succeeds if it is answered within the client's timeout; one not answered by
//! then is dropped (its future with it: the shedder gets its slot back, the server's queue
//! loses it, and a worker that had started it finishes it anyway). *Goodput* is the number of
//! successes per second among the requests offered in a period (in the goodput charts: the
//! successes answered in each second, what the server delivered). *Admitted latency* is from
//! the request entering the layer to its response, for the requests that were not refused;
//! those that timed out count at the timeout (1 s), so a percentile of 1000 ms means "1 s or
//! more". The *unloaded p99* is the p99 of the service time: the latency of a request that
//! finds a worker free. Capacity is 16 ÷ the mean service time (about 1600 requests a second).
//!
//! - `shed-overload`: the offered load steps through 0.5×, 1×, 2× and 4× the capacity, 10 s
//!   each; the figures are those of the 4× phase (and per phase, in arrays).
//! - `shed-capacity-drop`: 1× the capacity offered for 60 s; at 30 s the server loses half
//!   its workers (16 → 8, a host losing half its cores), so the same load is 2× the new
//!   capacity. `settle_ms` is the time from the drop until the limit enters, and then stays
//!   in until the end of the run, the band within ±20 % of its final value (the median of
//!   the limit over the last 10 s), the limit sampled every 10 ms. A run of samples at the
//!   limit's minimum (4) lasting at most 100 ms does not count as leaving the band: it is the
//!   `Gradient` measuring its minimum latency again (the limit pinned to its minimum for 20
//!   requests, every 30 s or so), not the limit moving.
//! - `shed-priority`: 5 s at 0.5× then 30 s at 3× the capacity, each request sheddable with
//!   probability ½, critical with probability ¼, default otherwise: the critical load alone
//!   is 0.75× the capacity. The figures are those of the 3× phase.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use palisade_core::random::uniform;
use palisade_shed::limit::Gradient;
use palisade_shed::priority::{Priority, priority_fn};
use palisade_shed::{ShedConfig, ShedHandle, ShedLayer};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tower::limit::ConcurrencyLimit;
use tower::load_shed::LoadShed;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer, ServiceExt};

use crate::plot::Series;
use crate::report::{Chart, Report};
use crate::server::{Server, ServiceTime};

const WORKERS: usize = 16;
const MEAN_SERVICE: Duration = Duration::from_millis(10);
const SIGMA: f64 = 0.5;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the limit is sampled for `settle_ms` and the plots.
const SAMPLE: Duration = Duration::from_millis(10);
/// Seeds the arrivals, the priorities and the service times: the scenarios are
/// simulations, and should replay exactly. Each draws from its own sequence.
const SEED: u64 = 2026;
const ARRIVAL_SEED: u64 = SEED;
const PRIORITY_SEED: u64 = SEED ^ 0x5eed_0001;
const SERVICE_SEED: u64 = SEED ^ 0x5eed_0002;

#[derive(Clone, Copy)]
enum System {
    None,
    TowerFixed(usize),
    Palisade,
}

/// palisade first, so that it has the same colour in every chart.
const SYSTEMS: [(&str, System); 4] = [
    ("palisade", System::Palisade),
    ("tower-fixed-good", System::TowerFixed(WORKERS)),
    ("tower-fixed-bad", System::TowerFixed(4 * WORKERS)),
    ("none", System::None),
];

/// What the clients offer.
struct Load {
    /// (length, offered load as a multiple of the capacity), in order.
    phases: Vec<(Duration, f64)>,
    /// The shares of critical and of sheddable requests; the rest are default.
    critical: f64,
    sheddable: f64,
    /// When the server loses workers, and how many.
    capacity_drop: Option<(Duration, usize)>,
    /// The noisy server of `shed-noisy-healthy` instead of the 16 workers, the phases'
    /// loads in requests a second rather than multiples of the capacity.
    noisy: bool,
}

impl Load {
    fn phase_bounds(&self, index: usize) -> (Duration, Duration) {
        let start = self.phases[..index].iter().map(|p| p.0).sum::<Duration>();
        (start, start + self.phases[index].0)
    }

    fn end(&self) -> Duration {
        self.phases.iter().map(|p| p.0).sum()
    }

    /// Poisson arrivals at each phase's rate, with their priorities.
    fn arrivals(&self, capacity_rps: f64) -> Vec<(Duration, Priority)> {
        let mut out = Vec::new();
        let (mut t, mut start, mut n) = (0.0, 0.0, 0u64);
        for &(length, load) in &self.phases {
            let rate = load * capacity_rps;
            let end = start + length.as_secs_f64();
            loop {
                n += 1;
                t += -(1.0 - uniform(ARRIVAL_SEED, n)).ln() / rate;
                if t >= end {
                    // Memoryless: the next phase draws afresh from its start.
                    t = end;
                    break;
                }
                let u = uniform(PRIORITY_SEED, n);
                let priority = if u < self.critical {
                    Priority::Critical
                } else if u < self.critical + self.sheddable {
                    Priority::Sheddable
                } else {
                    Priority::Default
                };
                out.push((Duration::from_secs_f64(t), priority));
            }
            start = end;
        }
        out
    }
}

/// A client's request.
#[derive(Clone, Copy)]
struct Job {
    priority: Priority,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Refused,
    TimedOut,
}

struct Record {
    arrival: Duration,
    finished: Duration,
    priority: Priority,
    outcome: Outcome,
    latency: Duration,
}

struct Run {
    system: &'static str,
    records: Vec<Record>,
    /// (seconds, the concurrency limit), every `SAMPLE`; empty without a limit.
    limit: Vec<(f64, f64)>,
}

/// The requests of a period, counted.
struct Stats {
    seconds: f64,
    offered: u64,
    successes: u64,
    refused: u64,
    timed_out: u64,
    /// Admitted latency in µs: successes, and timeouts at the timeout.
    latency: Histogram<u64>,
}

impl Stats {
    fn of<'a>(records: impl Iterator<Item = &'a Record>, seconds: f64) -> Self {
        let mut stats = Stats {
            seconds,
            offered: 0,
            successes: 0,
            refused: 0,
            timed_out: 0,
            latency: histogram(),
        };
        for r in records {
            stats.offered += 1;
            match r.outcome {
                Outcome::Success => stats.successes += 1,
                Outcome::Refused => stats.refused += 1,
                Outcome::TimedOut => stats.timed_out += 1,
            }
            if r.outcome != Outcome::Refused {
                stats
                    .latency
                    .saturating_record(r.latency.as_micros() as u64);
            }
        }
        stats
    }

    fn goodput(&self) -> f64 {
        self.successes as f64 / self.seconds
    }

    fn share(&self, n: u64) -> f64 {
        n as f64 / self.offered.max(1) as f64
    }

    /// The `q` quantile of admitted latency, in ms (0 if none was admitted).
    fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

impl Run {
    /// The requests offered within `from..to`, of the priorities `keep` accepts.
    fn stats(&self, (from, to): (Duration, Duration), keep: impl Fn(Priority) -> bool) -> Stats {
        let records = self
            .records
            .iter()
            .filter(|r| (from..to).contains(&r.arrival) && keep(r.priority));
        Stats::of(records, (to - from).as_secs_f64())
    }

    /// One point a second, at the end of each second, of `f` over the requests offered in it.
    fn per_second(&self, end: Duration, f: impl Fn(&Stats) -> f64) -> Vec<(f64, f64)> {
        (0..end.as_secs())
            .map(|s| {
                let second = (Duration::from_secs(s), Duration::from_secs(s + 1));
                ((s + 1) as f64, f(&self.stats(second, |_| true)))
            })
            .collect()
    }

    /// Successes answered in each second (not offered: what the server delivered), of the
    /// priorities `keep` accepts.
    fn goodput_per_second(
        &self,
        end: Duration,
        keep: impl Fn(Priority) -> bool,
    ) -> Vec<(f64, f64)> {
        let mut counts = vec![0u64; end.as_secs() as usize];
        for r in &self.records {
            if r.outcome == Outcome::Success
                && keep(r.priority)
                && let Some(count) = counts.get_mut(r.finished.as_secs() as usize)
            {
                *count += 1;
            }
        }
        (1..)
            .zip(counts)
            .map(|(s, n)| (f64::from(s), n as f64))
            .collect()
    }

    /// The median limit sampled within `from..to`.
    fn median_limit(&self, (from, to): (Duration, Duration)) -> Option<f64> {
        let (from, to) = (from.as_secs_f64(), to.as_secs_f64());
        let mut limits: Vec<f64> = (self.limit.iter())
            .filter(|(t, _)| (from..to).contains(t))
            .map(|p| p.1)
            .collect();
        limits.sort_by(f64::total_cmp);
        limits.get(limits.len() / 2).copied()
    }
}

/// Microseconds, from 1 µs to 100 s, to 3 significant figures.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid bounds")
}

/// A fixed-seed server, and what it can serve.
fn service_time() -> ServiceTime {
    ServiceTime::lognormal(MEAN_SERVICE, SIGMA, SERVICE_SEED)
}

fn capacity_rps(workers: usize) -> f64 {
    workers as f64 / service_time().mean().as_secs_f64()
}

/// The p99 of the service time, in ms: the latency of a request that finds a worker free.
fn unloaded_p99_ms() -> f64 {
    let mut h = histogram();
    for s in service_time().samples(1_000_000) {
        h.saturating_record(s.as_micros() as u64);
    }
    h.value_at_quantile(0.99) as f64 / 1000.0
}

fn build(
    system: System,
    server: &Server,
) -> (BoxCloneService<Job, (), BoxError>, Option<ShedHandle>) {
    match system {
        System::None => (BoxCloneService::new(server.clone()), None),
        System::TowerFixed(limit) => (
            BoxCloneService::new(LoadShed::new(ConcurrencyLimit::new(server.clone(), limit))),
            None,
        ),
        System::Palisade => {
            let config = ShedConfig::builder("server")
                // The defaults, with the min-RTT jitter seeded so that every run is the same.
                .limit(Gradient::default().jitter_seed(SEED))
                .build()
                .expect("the default configuration is valid");
            let layer =
                ShedLayer::with_config(config).priority(priority_fn(|job: &Job| job.priority));
            let handle = layer.handle();
            (
                BoxCloneService::new(layer.layer(server.clone())),
                Some(handle),
            )
        }
    }
}

fn is_refusal(e: &BoxError) -> bool {
    e.is::<palisade_shed::Overloaded>() || e.is::<tower::load_shed::error::Overloaded>()
}

async fn simulate((name, system): (&'static str, System), load: &Load) -> Run {
    let (server, rate_unit) = if load.noisy {
        (noisy_server(), 1.0)
    } else {
        (Server::new(WORKERS, service_time()), capacity_rps(WORKERS))
    };
    let (svc, handle) = build(system, &server);
    let arrivals = load.arrivals(rate_unit);
    let start = Instant::now();
    let records = Arc::new(Mutex::new(Vec::with_capacity(arrivals.len())));
    let unfinished = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let sampler = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let mut limit = Vec::new();
            let mut tick = tokio::time::interval_at(start + SAMPLE, SAMPLE);
            while !done.load(SeqCst) {
                tick.tick().await;
                let value = match (&handle, system) {
                    (Some(handle), _) => handle.limit(),
                    (None, System::TowerFixed(fixed)) => fixed,
                    (None, _) => continue,
                };
                limit.push((start.elapsed().as_secs_f64(), value as f64));
            }
            limit
        }
    });
    if let Some((at, workers)) = load.capacity_drop {
        let server = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            server.retire(workers);
        });
    }

    for (arrival, priority) in arrivals {
        let when = start + arrival;
        if when > Instant::now() {
            tokio::time::sleep_until(when).await;
        }
        let (svc, records, unfinished) =
            (svc.clone(), Arc::clone(&records), Arc::clone(&unfinished));
        unfinished.fetch_add(1, SeqCst);
        tokio::spawn(async move {
            let entered = Instant::now();
            let outcome =
                match tokio::time::timeout(CLIENT_TIMEOUT, svc.oneshot(Job { priority })).await {
                    Ok(Ok(())) => Outcome::Success,
                    Ok(Err(e)) if is_refusal(&e) => Outcome::Refused,
                    Ok(Err(e)) => panic!("the simulated server does not fail: {e}"),
                    Err(_) => Outcome::TimedOut,
                };
            let record = Record {
                arrival,
                finished: start.elapsed(),
                priority,
                outcome,
                latency: entered.elapsed(),
            };
            records
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(record);
            unfinished.fetch_sub(1, SeqCst);
        });
    }
    // Let the last requests finish, and the server's workers with them.
    while unfinished.load(SeqCst) > 0 || server.in_server() > 0 {
        tokio::time::sleep(MEAN_SERVICE).await;
    }
    done.store(true, SeqCst);
    let limit = sampler.await.expect("the sampler does not panic");
    let mut records = std::mem::take(&mut *records.lock().unwrap_or_else(PoisonError::into_inner));
    records.sort_by_key(|r| r.arrival);
    Run {
        system: name,
        records,
        limit,
    }
}

async fn simulate_all(systems: &[(&'static str, System)], load: &Load) -> Vec<Run> {
    let mut runs = Vec::with_capacity(systems.len());
    for &system in systems {
        runs.push(simulate(system, load).await);
    }
    runs
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn series(runs: &[Run], points: impl Fn(&Run) -> Vec<(f64, f64)>) -> Vec<Series> {
    runs.iter()
        .map(|r| Series {
            name: r.system.into(),
            points: points(r),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn flat(name: &str, value: f64, end: Duration) -> Series {
    Series {
        name: name.into(),
        points: vec![(0.0, value), (end.as_secs_f64(), value)],
    }
}

/// The charts every shedding scenario draws: limit, p99 admitted latency and goodput over
/// time, the capacity for reference.
fn charts(
    scenario: &str,
    files: [&'static str; 3],
    runs: &[Run],
    end: Duration,
    capacity: Series,
) -> Vec<Chart> {
    vec![
        Chart {
            file: files[0],
            title: format!("{scenario}: concurrency limit"),
            y_label: "limit",
            series: series(runs, |r| r.limit.clone()),
        },
        Chart {
            file: files[1],
            title: format!("{scenario}: p99 admitted latency (timeouts at 1 s)"),
            y_label: "ms",
            series: series(runs, |r| r.per_second(end, |s| s.latency_ms(0.99))),
        },
        Chart {
            file: files[2],
            title: format!("{scenario}: goodput (successes answered per second)"),
            y_label: "requests / s",
            series: {
                let mut s = series(runs, |r| r.goodput_per_second(end, |_| true));
                s.push(capacity);
                s
            },
        },
    ]
}

/// `shed-overload`: 0.5×, 1×, 2×, 4× the capacity, 10 s each.
pub(crate) async fn overload() -> Report {
    let capacity = capacity_rps(WORKERS);
    let step = Duration::from_secs(10);
    let load = Load {
        phases: [0.5, 1.0, 2.0, 4.0].map(|x| (step, x)).to_vec(),
        critical: 0.0,
        sheddable: 0.0,
        capacity_drop: None,
        noisy: false,
    };
    let runs = simulate_all(&SYSTEMS, &load).await;
    let unloaded_p99 = unloaded_p99_ms();
    let phases: Vec<_> = (0..load.phases.len())
        .map(|i| load.phase_bounds(i))
        .collect();
    let results = runs
        .iter()
        .map(|r| {
            let by_phase: Vec<Stats> = phases.iter().map(|&p| r.stats(p, |_| true)).collect();
            let last = &by_phase[by_phase.len() - 1];
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert("capacity_rps".into(), json!(round1(capacity)));
            row.insert("unloaded_p99_ms".into(), json!(unloaded_p99));
            row.insert("goodput_rps".into(), json!(round1(last.goodput())));
            row.insert("p50_ms".into(), json!(last.latency_ms(0.5)));
            row.insert("p99_ms".into(), json!(last.latency_ms(0.99)));
            row.insert("success_rate".into(), json!(last.share(last.successes)));
            row.insert("refused_rate".into(), json!(last.share(last.refused)));
            row.insert("timeout_rate".into(), json!(last.share(last.timed_out)));
            row.insert(
                "median_limit".into(),
                json!(r.median_limit(phases[phases.len() - 1])),
            );
            let each = |f: &dyn Fn(&Stats) -> f64| -> Value {
                by_phase.iter().map(|s| round1(f(s))).collect()
            };
            row.insert("goodput_by_phase_rps".into(), each(&Stats::goodput));
            row.insert("p99_by_phase_ms".into(), each(&|s| s.latency_ms(0.99)));
            row
        })
        .collect();
    Report {
        scenario: "shed-overload",
        results,
        charts: charts(
            "shed-overload (0.5×, 1×, 2×, 4× capacity, 10 s each)",
            [
                "shed-overload-limit.svg",
                "shed-overload-latency.svg",
                "shed-overload-goodput.svg",
            ],
            &runs,
            load.end(),
            flat("capacity", capacity, load.end()),
        ),
    }
}

/// `settle_ms`, as the module documentation defines it: the time from `drop` until the limit
/// enters and stays within ±20 % of its median over the last 10 s; a stretch of at most
/// 100 ms pinned at `floor` (the `Gradient` measuring its minimum latency) does not count as
/// leaving. `None` if it never settles.
fn settle(limit: &[(f64, f64)], drop: f64, end: f64, floor: f64) -> Option<f64> {
    let final_limit = {
        let mut last: Vec<f64> = (limit.iter())
            .filter(|p| p.0 >= end - 10.0)
            .map(|p| p.1)
            .collect();
        last.sort_by(f64::total_cmp);
        *last.get(last.len() / 2)?
    };
    let within = |l: f64| (l - final_limit).abs() <= 0.2 * final_limit;
    let after: Vec<(f64, f64)> = limit.iter().copied().filter(|p| p.0 >= drop).collect();
    // Whether each sample is a probe's: part of a run at the floor no longer than 100 ms.
    let mut probe = vec![false; after.len()];
    let mut i = 0;
    while i < after.len() {
        let mut j = i;
        while j < after.len() && after[j].1 <= floor {
            j += 1;
        }
        if j > i {
            let (from, to) = (after[i].0, after.get(j).map_or(end, |p| p.0));
            if to - from <= 0.1 + 1e-9 {
                probe[i..j].iter_mut().for_each(|p| *p = true);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    // The last sample outside the band; the limit settled at the sample after it.
    let last_out = (0..after.len())
        .rev()
        .find(|&k| !probe[k] && !within(after[k].1));
    let settled_at = match last_out {
        None => drop,
        Some(k) => after.get(k + 1)?.0,
    };
    Some((settled_at - drop) * 1000.0)
}

/// `shed-capacity-drop`: 1× the capacity offered for 60 s; half the workers gone at 30 s.
pub(crate) async fn capacity_drop() -> Report {
    let (before, after) = (capacity_rps(WORKERS), capacity_rps(WORKERS / 2));
    let at = Duration::from_secs(30);
    let load = Load {
        phases: vec![(at, 1.0), (Duration::from_secs(30), 1.0)],
        critical: 0.0,
        sheddable: 0.0,
        capacity_drop: Some((at, WORKERS / 2)),
        noisy: false,
    };
    let runs = simulate_all(&SYSTEMS, &load).await;
    let end = load.end();
    let floor = palisade_shed::limit::Limit::bounds(&Gradient::default()).0 as f64;
    let results = runs
        .iter()
        .map(|r| {
            let drop_to_end = load.phase_bounds(1);
            let after_drop = r.stats(drop_to_end, |_| true);
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert("capacity_before_drop_rps".into(), json!(round1(before)));
            row.insert("capacity_after_drop_rps".into(), json!(round1(after)));
            row.insert(
                "goodput_after_drop_rps".into(),
                json!(round1(after_drop.goodput())),
            );
            row.insert(
                "goodput_after_drop_share".into(),
                json!(after_drop.goodput() / after),
            );
            let settle_ms = match r.system {
                "palisade" => settle(&r.limit, at.as_secs_f64(), end.as_secs_f64(), floor),
                _ => None,
            };
            row.insert("settle_ms".into(), json!(settle_ms));
            row.insert(
                "limit_before_drop".into(),
                json!(r.median_limit((at - Duration::from_secs(10), at))),
            );
            row.insert(
                "limit_final".into(),
                json!(r.median_limit((end - Duration::from_secs(10), end))),
            );
            row.insert(
                "p50_after_drop_ms".into(),
                json!(after_drop.latency_ms(0.5)),
            );
            row.insert(
                "p99_after_drop_ms".into(),
                json!(after_drop.latency_ms(0.99)),
            );
            row.insert(
                "success_rate_after_drop".into(),
                json!(after_drop.share(after_drop.successes)),
            );
            row
        })
        .collect();
    let t = at.as_secs_f64();
    Report {
        scenario: "shed-capacity-drop",
        results,
        charts: charts(
            "shed-capacity-drop (16 → 8 workers at 30 s)",
            [
                "shed-capacity-drop-limit.svg",
                "shed-capacity-drop-latency.svg",
                "shed-capacity-drop-goodput.svg",
            ],
            &runs,
            end,
            Series {
                name: "capacity".into(),
                points: vec![
                    (0.0, before),
                    (t, before),
                    (t, after),
                    (end.as_secs_f64(), after),
                ],
            },
        ),
    }
}

/// `shed-priority`: 5 s at 0.5× the capacity, then 30 s at 3×; half the requests
/// sheddable, a quarter critical.
pub(crate) async fn priority() -> Report {
    let capacity = capacity_rps(WORKERS);
    let load = Load {
        phases: vec![
            (Duration::from_secs(5), 0.5),
            (Duration::from_secs(30), 3.0),
        ],
        critical: 0.25,
        sheddable: 0.5,
        capacity_drop: None,
        noisy: false,
    };
    let runs = simulate_all(&SYSTEMS, &load).await;
    let end = load.end();
    let overload = load.phase_bounds(1);
    let results = runs
        .iter()
        .map(|r| {
            let class = |p: Priority| r.stats(overload, move |q| q == p);
            let rate = |s: Stats| s.share(s.successes);
            let all = r.stats(overload, |_| true);
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert("capacity_rps".into(), json!(round1(capacity)));
            row.insert(
                "offered_rps".into(),
                json!(round1(all.offered as f64 / all.seconds)),
            );
            row.insert(
                "critical_success_rate".into(),
                json!(rate(class(Priority::Critical))),
            );
            row.insert(
                "default_success_rate".into(),
                json!(rate(class(Priority::Default))),
            );
            row.insert(
                "sheddable_success_rate".into(),
                json!(rate(class(Priority::Sheddable))),
            );
            row.insert("goodput_rps".into(), json!(round1(all.goodput())));
            row.insert(
                "critical_p99_ms".into(),
                json!(class(Priority::Critical).latency_ms(0.99)),
            );
            row.insert("p99_ms".into(), json!(all.latency_ms(0.99)));
            row
        })
        .collect();
    let mut charts = charts(
        "shed-priority (3× capacity from 5 s; ½ sheddable, ¼ critical)",
        [
            "shed-priority-limit.svg",
            "shed-priority-latency.svg",
            "shed-priority-goodput.svg",
        ],
        &runs,
        end,
        flat("capacity", capacity, end),
    );
    let palisade = &runs[0];
    charts.push(Chart {
        file: "shed-priority-classes.svg",
        title: "shed-priority: palisade's goodput by priority".into(),
        y_label: "requests / s",
        series: [Priority::Critical, Priority::Default, Priority::Sheddable]
            .into_iter()
            .map(|p| Series {
                name: p.as_str().into(),
                points: palisade.goodput_per_second(end, |q| q == p),
            })
            .collect(),
    });
    Report {
        scenario: "shed-priority",
        results,
        charts,
    }
}

/// The noisy server of `shed-noisy-healthy`: I/O-bound handlers (lognormal, mean 5 ms, σ 0.5)
/// on a host whose cores they share, so that service times double with 32 requests in the
/// server ([`Server::contended`]); 1024 workers, so never out of them.
fn noisy_server() -> Server {
    Server::contended(
        1024,
        ServiceTime::lognormal(NOISY_SERVICE, SIGMA, SERVICE_SEED),
        NOISY_CONTENTION,
    )
}

const NOISY_SERVICE: Duration = Duration::from_millis(5);
const NOISY_CONTENTION: usize = 32;
/// The warm-up's load, and the load after it (requests a second).
const NOISY_WARM_UP: (Duration, f64) = (Duration::from_secs(10), 50.0);
const NOISY_LOAD: (Duration, f64) = (Duration::from_secs(30), 3200.0);

/// `shed-noisy-healthy`: light traffic that teaches the limit the unloaded latency, then a
/// load the server carries with its latency doubled and jittering.
pub(crate) async fn noisy_healthy() -> Report {
    let load = Load {
        phases: vec![NOISY_WARM_UP, NOISY_LOAD],
        critical: 0.0,
        sheddable: 0.0,
        capacity_drop: None,
        noisy: true,
    };
    let systems = [("palisade", System::Palisade), ("none", System::None)];
    let runs = simulate_all(&systems, &load).await;
    let loaded = load.phase_bounds(1);
    let none_p99 = runs
        .iter()
        .find(|r| r.system == "none")
        .map(|r| r.stats(loaded, |_| true).latency_ms(0.99))
        .unwrap_or_default();
    let results = runs
        .iter()
        .map(|r| {
            let stats = r.stats(loaded, |_| true);
            let mut row = Map::new();
            row.insert("system".into(), json!(r.system));
            row.insert("offered_rps".into(), json!(NOISY_LOAD.1));
            row.insert("goodput_rps".into(), json!(round1(stats.goodput())));
            row.insert("refused_share".into(), json!(stats.share(stats.refused)));
            row.insert("p50_ms".into(), json!(stats.latency_ms(0.5)));
            row.insert("p99_ms".into(), json!(stats.latency_ms(0.99)));
            row.insert(
                "p99_ratio".into(),
                json!((stats.latency_ms(0.99) / none_p99 * 100.0).round() / 100.0),
            );
            row.insert("median_limit".into(), json!(r.median_limit(loaded)));
            row
        })
        .collect();
    Report {
        scenario: "shed-noisy-healthy",
        results,
        charts: charts(
            "shed-noisy-healthy (10 s at 50/s, then 30 s at 3200/s, latency ×2 under load)",
            [
                "shed-noisy-healthy-limit.svg",
                "shed-noisy-healthy-latency.svg",
                "shed-noisy-healthy-goodput.svg",
            ],
            &runs,
            load.end(),
            flat("offered", NOISY_LOAD.1, load.end()),
        ),
    }
}
