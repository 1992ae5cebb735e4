//! The load generator and what it shows: clients posting orders to the gateway for a while,
//! a live view refreshed every second, and a summary at the end.
//!
//! Every request carries a fresh `Idempotency-Key`, except that one in twenty is a client
//! retrying its previous order with the same key — which the gateway answers from its
//! records without running it again. After each order a client reads the item's stock.
//! Every request says how long its client will wait (`x-request-timeout-ms`): 2 s for an
//! order, 250 ms for a read, and who the client is (`x-client`), which the gateway's rate
//! limit keys by. One more client is greedy: it reads stock as fast as four connections go,
//! far past its quota, and is refused with 429 while the others are not.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::time::Instant;

use crate::scrape::Scrape;

/// What the clients saw.
pub(crate) struct Tally {
    pub(crate) sent: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Answered 504: the request's deadline passed first.
    pub(crate) cut: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) reads_ok: AtomicU64,
    /// 429s to the well-behaved clients (none, unless the quota is set too low).
    pub(crate) limited: AtomicU64,
    /// The greedy client's requests, and its 429s.
    pub(crate) greedy_sent: AtomicU64,
    pub(crate) greedy_limited: AtomicU64,
    /// Latencies of the successful reads, in microseconds.
    pub(crate) read_latency: Mutex<Histogram<u64>>,
    /// Latencies of the successful requests, in microseconds: the whole run, and the last
    /// second (for the live view).
    pub(crate) latency: Mutex<Histogram<u64>>,
    pub(crate) recent: Mutex<Histogram<u64>>,
}

impl Tally {
    fn new() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        Self {
            sent: AtomicU64::new(0),
            created: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            reads_ok: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            greedy_sent: AtomicU64::new(0),
            greedy_limited: AtomicU64::new(0),
            read_latency: Mutex::new(histogram()),
            latency: Mutex::new(histogram()),
            recent: Mutex::new(histogram()),
        }
    }

    fn record(&self, micros: u64) {
        for h in [&self.latency, &self.recent] {
            let _ = h
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(micros.max(1));
        }
    }

    pub(crate) fn p99_ms(histogram: &Mutex<Histogram<u64>>) -> f64 {
        let h = histogram.lock().unwrap_or_else(PoisonError::into_inner);
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(0.99) as f64 / 1000.0
        }
    }
}

/// Drives `clients` concurrent clients against the gateway for `duration`, showing progress.
pub(crate) async fn run(
    gateway: SocketAddr,
    names: &crate::Names,
    clients: usize,
    duration: Duration,
    metrics: PrometheusHandle,
) -> Arc<Tally> {
    let tally = Arc::new(Tally::new());
    let stop = Arc::new(AtomicBool::new(false));
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut workers: Vec<_> = (0..clients)
        .map(|worker| {
            let (tally, stop, http) = (tally.clone(), stop.clone(), http.clone());
            tokio::spawn(async move { client(worker, gateway, http, &tally, &stop).await })
        })
        .collect();
    for _ in 0..GREEDY_CONNECTIONS {
        let (tally, stop, http) = (tally.clone(), stop.clone(), http.clone());
        workers.push(tokio::spawn(async move {
            greedy(gateway, http, &tally, &stop).await
        }));
    }

    let started = Instant::now();
    let mut view = View::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    while started.elapsed() < duration {
        ticks.tick().await;
        view.show(
            started.elapsed(),
            duration,
            &tally,
            &Scrape::new(&metrics.render()),
            names,
        );
    }
    stop.store(true, Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    tally
}

async fn client(
    worker: usize,
    gateway: SocketAddr,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    tally: &Tally,
    stop: &AtomicBool,
) {
    let mut n: u64 = 0;
    let mut last: Option<(String, String)> = None;
    while !stop.load(Relaxed) {
        n += 1;
        // One request in twenty is a retry of the previous one: same key, same body.
        let (key, body) = match last.take() {
            Some(previous) if n.is_multiple_of(20) => previous,
            _ => (
                uuid::Uuid::new_v4().to_string(),
                format!("{{\"item\":\"book-{worker}-{n}\",\"qty\":{}}}", 1 + n % 3),
            ),
        };
        let request_body = Bytes::from(body.clone());
        let quoted_key = format!("\"{key}\"");
        last = Some((key, body));
        let request = http::Request::post(format!("http://{gateway}/orders"))
            .header("content-type", "application/json")
            .header("idempotency-key", quoted_key)
            .header(TIMEOUT, ORDER_TIMEOUT_MS)
            .header(CLIENT, format!("client-{worker}"))
            .body(Full::new(request_body))
            .expect("a valid request");
        let started = Instant::now();
        tally.sent.fetch_add(1, Relaxed);
        match http.request(request).await {
            Ok(response) => {
                let status = response.status();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let _ = response.into_body().collect().await;
                if status == http::StatusCode::CREATED {
                    tally.record(started.elapsed().as_micros() as u64);
                    let counter = if replayed {
                        &tally.replayed
                    } else {
                        &tally.created
                    };
                    counter.fetch_add(1, Relaxed);
                } else if status == http::StatusCode::SERVICE_UNAVAILABLE
                    || status == http::StatusCode::CONFLICT
                {
                    tally.refused.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else if status == http::StatusCode::GATEWAY_TIMEOUT {
                    tally.cut.fetch_add(1, Relaxed);
                } else if status == http::StatusCode::TOO_MANY_REQUESTS {
                    tally.limited.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                } else {
                    tally.failed.fetch_add(1, Relaxed);
                }
            }
            Err(_) => {
                tally.failed.fetch_add(1, Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let client = format!("client-{worker}");
        read(
            gateway,
            &http,
            &format!("book-{worker}-{n}"),
            &client,
            tally,
        )
        .await;
    }
}

/// The greedy client's connections: reads as fast as they go, each a moment apart after a
/// refusal (it ignores `Retry-After`, as a greedy client does).
const GREEDY_CONNECTIONS: usize = 4;

/// One connection of the greedy client.
async fn greedy(
    gateway: SocketAddr,
    http: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    tally: &Tally,
    stop: &AtomicBool,
) {
    let mut n: u64 = 0;
    while !stop.load(Relaxed) {
        n += 1;
        let request = http::Request::get(format!("http://{gateway}/stock/greedy-{n}"))
            .header(TIMEOUT, READ_TIMEOUT_MS)
            .header(CLIENT, "greedy")
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        tally.greedy_sent.fetch_add(1, Relaxed);
        match http.request(request).await {
            Ok(response) => {
                let status = response.status();
                let _ = response.into_body().collect().await;
                if status == http::StatusCode::TOO_MANY_REQUESTS {
                    tally.greedy_limited.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The header a client's timeout goes in, as the gateway's deadline layer reads it.
const TIMEOUT: &str = "x-request-timeout-ms";
/// The header that names a client, which the gateway's rate limit keys by.
const CLIENT: &str = "x-client";
const ORDER_TIMEOUT_MS: &str = "2000";
const READ_TIMEOUT_MS: &str = "250";

/// Reads `item`'s stock.
async fn read(
    gateway: SocketAddr,
    http: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    item: &str,
    client: &str,
    tally: &Tally,
) {
    let request = http::Request::get(format!("http://{gateway}/stock/{item}"))
        .header(TIMEOUT, READ_TIMEOUT_MS)
        .header(CLIENT, client)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let started = Instant::now();
    tally.reads.fetch_add(1, Relaxed);
    let Ok(response) = http.request(request).await else {
        return;
    };
    let status = response.status();
    let _ = response.into_body().collect().await;
    if status == http::StatusCode::OK {
        tally.reads_ok.fetch_add(1, Relaxed);
        let micros = started.elapsed().as_micros() as u64;
        let _ = tally
            .read_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(micros.max(1));
    } else if status == http::StatusCode::GATEWAY_TIMEOUT {
        tally.cut.fetch_add(1, Relaxed);
    } else if status == http::StatusCode::TOO_MANY_REQUESTS {
        tally.limited.fetch_add(1, Relaxed);
    }
}

/// The live view: a progress bar and a table, redrawn in place on a terminal, printed as
/// plain lines otherwise (CI logs, pipes).
struct View {
    terminal: bool,
    lines: usize,
}

impl View {
    fn new() -> Self {
        Self {
            terminal: std::io::stdout().is_terminal(),
            lines: 0,
        }
    }

    fn show(
        &mut self,
        elapsed: Duration,
        total: Duration,
        tally: &Tally,
        m: &Scrape,
        names: &crate::Names,
    ) {
        let done = (elapsed.as_secs_f64() / total.as_secs_f64()).min(1.0);
        let bar = format!(
            "[{}{}] {:>3.0}%  {:>4.1}s / {:.0}s",
            "█".repeat((done * 30.0) as usize),
            " ".repeat(30 - (done * 30.0) as usize),
            done * 100.0,
            elapsed.as_secs_f64(),
            total.as_secs_f64()
        );
        let sent = tally.sent.load(Relaxed);
        let ok = tally.created.load(Relaxed) + tally.replayed.load(Relaxed);
        let lines = [
            bar,
            format!(
                "requests {sent:>7}   succeeded {:>6.2}%   p99 (last second) {:>7.1} ms",
                100.0 * ok as f64 / sent.max(1) as f64,
                Tally::p99_ms(&tally.recent)
            ),
            format!(
                "members   ready {:>2} of {:>2}   health checks {:>5} passed, {:>4} failed   draining: {}   refused while draining {:>3}",
                m.sum(palisade::balance::metrics::ENDPOINTS, &[("state", "ready")]),
                m.sum(palisade::balance::metrics::ENDPOINTS, &[]),
                m.sum(
                    palisade::balance::metrics::HEALTH_CHECKS_TOTAL,
                    &[("result", "pass")]
                ),
                m.sum(
                    palisade::balance::metrics::HEALTH_CHECKS_TOTAL,
                    &[("result", "fail")]
                ),
                m.where_value(
                    palisade::registry::metrics::DRAINING,
                    "name",
                    1.0,
                    str::to_owned
                ),
                m.sum(palisade::registry::metrics::DRAIN_REFUSED_TOTAL, &[]),
            ),
            format!(
                "balance   ejections {:>3}   requests by backend: {}",
                m.sum(palisade::balance::metrics::EJECTIONS_TOTAL, &[]),
                m.by_label(
                    palisade::balance::metrics::REQUESTS_TOTAL,
                    "endpoint",
                    |a| names.of(a)
                ),
            ),
            format!(
                "retry     retries {:>5}   refused by the budget {:>4}     breaker (fleet) {}",
                m.sum(
                    palisade::retry::metrics::ATTEMPTS_TOTAL,
                    &[("outcome", "retried")]
                ),
                m.sum(palisade::retry::metrics::BUDGET_EXHAUSTED_TOTAL, &[]),
                m.state(
                    palisade::breaker::metrics::STATE,
                    &[("name", names.breaker.as_str())]
                ),
            ),
            format!(
                "tail      reads {:>6} ({:>6.2}% ok)   hedges sent {:>4}, won {:>4}, refused {:>3}   cut at the deadline {:>3}",
                tally.reads.load(Relaxed),
                100.0 * tally.reads_ok.load(Relaxed) as f64
                    / tally.reads.load(Relaxed).max(1) as f64,
                m.sum(
                    palisade::retry::metrics::HEDGES_TOTAL,
                    &[("result", "sent")]
                ),
                m.sum(palisade::retry::metrics::HEDGES_TOTAL, &[("result", "won")]),
                m.sum(
                    palisade::retry::metrics::HEDGES_TOTAL,
                    &[("result", "refused")]
                ),
                tally.cut.load(Relaxed),
            ),
            format!(
                "ratelimit greedy client {:>6} sent, {:>6} refused (429)   other clients refused {:>3}",
                tally.greedy_sent.load(Relaxed),
                tally.greedy_limited.load(Relaxed),
                tally.limited.load(Relaxed),
            ),
            format!(
                "shed      gateway limit {:>4}   refused: gateway {:>4}, small backend {:>4}",
                m.sum(
                    palisade::shed::metrics::LIMIT,
                    &[("name", names.shed.as_str())]
                ),
                m.sum(
                    palisade::shed::metrics::REJECTED_TOTAL,
                    &[("name", names.shed.as_str())]
                ),
                m.sum(
                    palisade::shed::metrics::REJECTED_TOTAL,
                    &[("name", "small")]
                ),
            ),
            format!(
                "keys      replayed at the gateway {:>4}   at the fleet {:>4}   conflicts {:>3}",
                m.sum(
                    palisade::idempotency::metrics::REQUESTS_TOTAL,
                    &[("name", names.idempotency.as_str()), ("result", "replayed")]
                ),
                m.sum_except(
                    palisade::idempotency::metrics::REQUESTS_TOTAL,
                    ("name", names.idempotency.as_str()),
                    &[("result", "replayed")]
                ),
                m.sum(
                    palisade::idempotency::metrics::REQUESTS_TOTAL,
                    &[("result", "conflict")]
                ),
            ),
        ];
        tally
            .recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset();
        let mut out = std::io::stdout().lock();
        if self.terminal && self.lines > 0 {
            // Up to the first line of the last view, and clear to the end.
            let _ = write!(out, "\x1b[{}A\x1b[J", self.lines);
        }
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        if !self.terminal {
            let _ = writeln!(out);
        }
        self.lines = lines.len();
        let _ = out.flush();
    }
}
