//! `deadline-chain`: a client calls service A, which calls B, which calls the leaf. The
//! client gives up after 100 ms. Each hop does 5 ms of its own work before calling the next;
//! the leaf's work takes 20 ms — but 10 % of its calls, at random, take 300 ms (a slow query,
//! a lock). Poisson arrivals, 200 a second for 20 s; no queueing (every call gets a worker),
//! so what is measured is the work done, not its effect on latency.
//!
//! The systems:
//! - `no-propagation`: the client's 100 ms timeout alone; nothing below knows of it.
//! - `timeout-per-hop`: every hop's client has the same 100 ms timeout (tower's `Timeout`),
//!   as a team would configure by hand: each starts when its hop is reached, later than the
//!   client's.
//! - `palisade`: the client sends its deadline (`PropagateDeadlineLayer`, 100 ms); every
//!   hop runs under `EnforceDeadlineLayer` and calls the next through
//!   `PropagateDeadlineLayer` (5 ms margin).
//!
//! Every call crosses a process boundary (1 ms each way): the callee's work runs on its own, and a caller
//! that gives up (its future dropped, a connection closed) does not stop it — the callee
//! learns nothing until it writes its answer. What stops work is what the callee knows: a
//! deadline it was sent.
//!
//! The figures: the share of the leaf's work done after the client had given up (the aim:
//! ≤ 5 % with propagation), the share done for requests whose client got no answer in
//! time, and the client's success rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use palisade_core::random::uniform;
use palisade_deadline::{EnforceDeadlineLayer, PropagateConfig, PropagateDeadlineLayer};
use serde_json::{Map, json};
use tokio::time::{Instant, sleep};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, ServiceExt, service_fn};

use crate::report::Report;

const CLIENT_TIMEOUT: Duration = Duration::from_millis(100);
const HOP_WORK: Duration = Duration::from_millis(5);
/// The network's delay, each way: a request's timeout header arrives this much later than
/// it was written.
const ONE_WAY: Duration = Duration::from_millis(1);
const LEAF_WORK: Duration = Duration::from_millis(20);
const SLOW_SHARE: f64 = 0.1;
const SLOW_WORK: Duration = Duration::from_millis(300);
/// The leaf works in steps of this: its future can be dropped between two.
const STEP: Duration = Duration::from_millis(1);
const RATE: f64 = 200.0;
const DURATION: Duration = Duration::from_secs(20);
const ARRIVAL_SEED: u64 = 0xdead_1000;
const SLOW_SEED: u64 = 0xdead_2000;

const SYSTEMS: [&str; 3] = ["no-propagation", "timeout-per-hop", "palisade"];

type Body = Empty<Bytes>;
type Hop = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// When the request's client gives up: the scenario's own bookkeeping, carried in the
/// request's extensions from hop to hop (it is not how any system learns its deadline).
#[derive(Clone, Copy)]
struct GivesUpAt(Instant);

/// The leaf's work, in steps.
#[derive(Default)]
struct Work {
    total: AtomicU64,
    after_deadline: AtomicU64,
    /// Per request (by its number): the steps done for it.
    per_request: std::sync::Mutex<Vec<u64>>,
}

/// The request's number, also carried along.
#[derive(Clone, Copy)]
struct Number(usize);

fn leaf(work: Arc<Work>) -> Hop {
    BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
        let work = work.clone();
        async move {
            let GivesUpAt(gives_up) = *request.extensions().get().expect("set by the client");
            let Number(n) = *request.extensions().get().expect("set by the client");
            let slow = uniform(SLOW_SEED, n as u64) < SLOW_SHARE;
            let steps = if slow { SLOW_WORK } else { LEAF_WORK }.as_millis() as u64;
            for _ in 0..steps {
                sleep(STEP).await;
                work.total.fetch_add(1, Relaxed);
                if Instant::now() > gives_up {
                    work.after_deadline.fetch_add(1, Relaxed);
                }
                work.per_request.lock().unwrap()[n] += 1;
            }
            Ok::<_, BoxError>(Response::new(Body::new()))
        }
    }))
}

/// A hop: its own work, then a call to `next`, answered with the next's status.
fn hop(next: Hop) -> Hop {
    BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
        let next = next.clone();
        async move {
            sleep(HOP_WORK).await;
            let mut onward = Request::get("http://next/").body(Body::new()).unwrap();
            for_each_extension(&request, &mut onward);
            let status = match next.oneshot(onward).await {
                Ok(response) => response.status(),
                Err(_) => StatusCode::GATEWAY_TIMEOUT,
            };
            let mut response = Response::new(Body::new());
            *response.status_mut() = status;
            Ok::<_, BoxError>(response)
        }
    }))
}

/// A call to another process: the callee's work runs on its own (a task), so that a caller
/// that gives up — its future dropped — does not stop it, as a server does not learn that a
/// client has gone until it next writes. Only what the callee knows (a deadline) stops it.
async fn across_the_network(
    next: &Hop,
    request: Request<Body>,
) -> Result<Response<Body>, BoxError> {
    let next = next.clone();
    let work = tokio::spawn(async move {
        sleep(ONE_WAY).await;
        next.oneshot(request).await
    });
    let answer = work.await?;
    sleep(ONE_WAY).await;
    answer
}

fn for_each_extension(from: &Request<Body>, to: &mut Request<Body>) {
    if let Some(gives_up) = from.extensions().get::<GivesUpAt>() {
        to.extensions_mut().insert(*gives_up);
    }
    if let Some(number) = from.extensions().get::<Number>() {
        to.extensions_mut().insert(*number);
    }
}

/// The server side of a hop under `system`.
fn serve(system: &str, name: &str, service: Hop) -> Hop {
    match system {
        "palisade" => BoxCloneSyncService::new(
            EnforceDeadlineLayer::new(name)
                .layer(service)
                .map_response(|response| response.map(|_| Body::new())),
        ),
        _ => service,
    }
}

/// A hop's client: its calls go across the network.
fn remote(next: Hop) -> Hop {
    BoxCloneSyncService::new(service_fn(move |request: Request<Body>| {
        let next = next.clone();
        async move { across_the_network(&next, request).await }
    }))
}

/// The client side of a call to `next` under `system`.
fn client(system: &str, name: &str, next: Hop, first: bool) -> Hop {
    let next = remote(next);
    match (system, first) {
        ("palisade", _) => {
            let mut config = PropagateConfig::builder(name.to_owned());
            if first {
                config = config.timeout(CLIENT_TIMEOUT);
            }
            let config = config.build().expect("a valid configuration");
            BoxCloneSyncService::new(PropagateDeadlineLayer::with_config(config).layer(next))
        }
        ("timeout-per-hop", _) | ("no-propagation", true) => {
            BoxCloneSyncService::new(tower::timeout::TimeoutLayer::new(CLIENT_TIMEOUT).layer(next))
        }
        _ => next,
    }
}

/// The chain under `system`, as the client sees it.
fn chain(system: &str, work: Arc<Work>) -> Hop {
    let leaf = serve(system, "leaf", leaf(work));
    let b = serve(system, "b", hop(client(system, "leaf", leaf, false)));
    let a = serve(system, "a", hop(client(system, "b", b, false)));
    client(system, "a", a, true)
}

/// Poisson arrivals at `RATE` a second for `DURATION`.
fn arrivals() -> Vec<Duration> {
    let mut t = 0.0;
    (1..)
        .map(|n| {
            t += -(1.0 - uniform(ARRIVAL_SEED, n)).ln() / RATE;
            t
        })
        .take_while(|&t| t < DURATION.as_secs_f64())
        .map(Duration::from_secs_f64)
        .collect()
}

async fn simulate(system: &'static str, arrivals: &[Duration]) -> Map<String, serde_json::Value> {
    let work = Arc::new(Work::default());
    *work.per_request.lock().unwrap() = vec![0; arrivals.len()];
    let svc = chain(system, work.clone());
    let start = Instant::now();
    let mut answers = Vec::with_capacity(arrivals.len());
    for (n, &arrival) in arrivals.iter().enumerate() {
        tokio::time::sleep_until(start + arrival).await;
        let mut request = Request::get("http://a/").body(Body::new()).unwrap();
        request
            .extensions_mut()
            .insert(GivesUpAt(start + arrival + CLIENT_TIMEOUT));
        request.extensions_mut().insert(Number(n));
        let call = svc.clone().oneshot(request);
        answers.push(tokio::spawn(async move {
            // The client gives up at its deadline, whatever the system does below.
            match tokio::time::timeout(CLIENT_TIMEOUT, call).await {
                Ok(Ok(response)) => response.status() == StatusCode::OK,
                _ => false,
            }
        }));
    }
    let mut succeeded = vec![false; arrivals.len()];
    for (n, answer) in answers.into_iter().enumerate() {
        succeeded[n] = answer.await.expect("a request task does not panic");
    }
    // Let work that outlives its request finish, and be counted.
    sleep(SLOW_WORK * 2).await;
    let total = work.total.load(Relaxed) as f64;
    let after = work.after_deadline.load(Relaxed) as f64;
    let per_request = work.per_request.lock().unwrap();
    let for_failed: u64 = per_request
        .iter()
        .zip(&succeeded)
        .filter(|(_, ok)| !**ok)
        .map(|(steps, _)| steps)
        .sum();
    let successes = succeeded.iter().filter(|ok| **ok).count();
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let mut row = Map::new();
    row.insert("system".into(), json!(system));
    row.insert(
        "success_rate".into(),
        json!(round(successes as f64 / arrivals.len() as f64)),
    );
    row.insert(
        "leaf_work_s".into(),
        json!(round(total * STEP.as_secs_f64())),
    );
    row.insert("wasted_work_share".into(), json!(round(after / total)));
    row.insert(
        "work_for_failed_share".into(),
        json!(round(for_failed as f64 / total)),
    );
    row
}

/// `deadline-chain`: every system over the same arrivals.
pub(crate) async fn chain_scenario() -> Report {
    let arrivals = arrivals();
    let mut results = Vec::with_capacity(SYSTEMS.len());
    for system in SYSTEMS {
        results.push(simulate(system, &arrivals).await);
    }
    Report {
        scenario: "deadline-chain",
        results,
        charts: Vec::new(),
    }
}
