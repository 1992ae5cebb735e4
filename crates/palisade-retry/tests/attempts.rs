//! Attempts, backoff, timeouts, deadlines, hints and budgets, in paused time, through the
//! public API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Empty;
use palisade_retry::backoff::{Backoff, Jitter};
use palisade_retry::budget::{BudgetConfig, PercentBudget};
use palisade_retry::http::ReplayBody;
use palisade_retry::{
    AttemptTimedOut, DeadlineExceeded, HttpRetryLayer, RetryConfig, RetryConfigBuilder, RetryLayer,
};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// What the dependency does on each call, in order; the last repeats.
#[derive(Clone, Copy, Debug)]
enum Act {
    Fail,
    Hang,
    Succeed,
}

/// A dependency that follows `script`, and the instants it was called at.
#[allow(clippy::type_complexity)]
fn dependency(
    script: &'static [Act],
) -> (
    impl Service<u32, Response = u32, Error = BoxError, Future = impl Send> + Clone,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let svc = service_fn(move |req: u32| {
        let n = {
            let mut calls = log.lock().unwrap();
            calls.push(Instant::now());
            calls.len() - 1
        };
        let act = script[n.min(script.len() - 1)];
        async move {
            match act {
                Act::Fail => Err(BoxError::from("unavailable")),
                Act::Hang => std::future::pending().await,
                Act::Succeed => Ok(req),
            }
        }
    });
    (svc, calls)
}

fn config() -> RetryConfigBuilder {
    RetryConfig::builder("test")
        .backoff(Backoff::exponential(100 * MS, Duration::from_secs(1)).jitter(Jitter::None))
}

/// The gaps between consecutive calls.
fn gaps(calls: &Mutex<Vec<Instant>>) -> Vec<Duration> {
    let calls = calls.lock().unwrap();
    calls.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn retries_until_success_with_exponential_backoff() {
    let (dep, calls) = dependency(&[Act::Fail, Act::Fail, Act::Fail, Act::Succeed]);
    let svc = RetryLayer::with_config(config().max_attempts(4).build().unwrap()).layer(dep);
    assert_eq!(svc.oneshot(7).await.unwrap(), 7);
    assert_eq!(gaps(&calls), [100 * MS, 200 * MS, 400 * MS]);
}

#[tokio::test(start_paused = true)]
async fn max_attempts_counts_the_first_and_returns_the_last_error() {
    let (dep, calls) = dependency(&[Act::Fail]);
    let svc = RetryLayer::with_config(config().max_attempts(3).build().unwrap()).layer(dep);
    let error = svc.oneshot(1).await.unwrap_err();
    assert_eq!(error.to_string(), "unavailable");
    assert_eq!(calls.lock().unwrap().len(), 3);

    let (dep, calls) = dependency(&[Act::Fail]);
    let once = RetryLayer::with_config(config().max_attempts(1).build().unwrap()).layer(dep);
    once.oneshot(1).await.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 1, "one attempt is no retry");
}

#[tokio::test(start_paused = true)]
async fn full_jitter_waits_within_the_exponential_bound_and_a_seed_replays() {
    let run = |seed| async move {
        let (dep, calls) = dependency(&[Act::Fail]);
        let backoff = Backoff::exponential(100 * MS, 300 * MS);
        let config = config()
            .backoff(backoff)
            .max_attempts(5)
            .jitter_seed(seed)
            .build()
            .unwrap();
        RetryLayer::with_config(config)
            .layer(dep)
            .oneshot(1)
            .await
            .unwrap_err();
        gaps(&calls)
    };
    let gaps_1 = run(1).await;
    for (retry, gap) in gaps_1.iter().enumerate() {
        let bound = (100 * MS * (1 << retry)).min(300 * MS);
        assert!(
            *gap <= bound,
            "retry {retry}: waited {gap:?}, bound {bound:?}"
        );
    }
    assert_eq!(gaps_1, run(1).await, "the same seed waits the same");
    assert_ne!(gaps_1, run(2).await, "another seed waits otherwise");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_hangs_times_out_and_is_retried() {
    let (dep, calls) = dependency(&[Act::Hang, Act::Succeed]);
    let config = config()
        .attempt_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        RetryLayer::with_config(config)
            .layer(dep)
            .oneshot(5)
            .await
            .unwrap(),
        5
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2) + 100 * MS);
    assert_eq!(calls.lock().unwrap().len(), 2);

    let (dep, _) = dependency(&[Act::Hang]);
    let config = RetryConfig::builder("test")
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let error = RetryLayer::with_config(config)
        .layer(dep)
        .oneshot(5)
        .await
        .unwrap_err();
    let timed_out = error.downcast_ref::<AttemptTimedOut>().unwrap();
    assert_eq!(timed_out.timeout(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_an_attempt_in_flight() {
    let (dep, _) = dependency(&[Act::Fail, Act::Hang]);
    let config = config().deadline(Duration::from_secs(3)).build().unwrap();
    let start = Instant::now();
    let error = RetryLayer::with_config(config)
        .layer(dep)
        .oneshot(1)
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    let exceeded = error.downcast_ref::<DeadlineExceeded>().unwrap();
    assert_eq!(exceeded.attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_whose_backoff_would_end_past_the_deadline() {
    let (dep, calls) = dependency(&[Act::Fail]);
    let backoff = Backoff::exponential(Duration::from_secs(1), Duration::from_secs(8));
    let config = config()
        .backoff(backoff.jitter(Jitter::None))
        .max_attempts(10)
        .deadline(Duration::from_millis(2500))
        .build()
        .unwrap();
    let error = RetryLayer::with_config(config)
        .layer(dep)
        .oneshot(1)
        .await
        .unwrap_err();
    // Calls at 0 s and 1 s; the next would start at 3 s, past the deadline: the caller gets
    // the last failure at once rather than a wait that cannot end well.
    assert_eq!(error.to_string(), "unavailable");
    assert_eq!(gaps(&calls), [Duration::from_secs(1)]);
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_returns_the_failure_as_it_was() {
    let (dep, calls) = dependency(&[Act::Fail]);
    let budget = BudgetConfig::Percent {
        ttl: Duration::from_secs(10),
        min_per_sec: 0,
        percent: 0.0,
    };
    let config = config().budget(budget).build().unwrap();
    let error = RetryLayer::with_config(config)
        .layer(dep)
        .oneshot(1)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "unavailable");
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_of_a_layer_share_one_budget() {
    // 50 % of requests and no floor: two requests earn one retry between them.
    let budget = BudgetConfig::Percent {
        ttl: Duration::from_secs(10),
        min_per_sec: 0,
        percent: 0.5,
    };
    let layer = RetryLayer::with_config(config().budget(budget).build().unwrap());
    let (dep, calls) = dependency(&[Act::Fail]);
    let (a, b) = (layer.clone().layer(dep.clone()), layer.layer(dep));
    let (ra, rb) = tokio::join!(a.oneshot(1), b.oneshot(2));
    ra.unwrap_err();
    rb.unwrap_err();
    assert_eq!(calls.lock().unwrap().len(), 3, "two requests, one retry");
}

/// Two requests at 50 % earn one retry. The same two requests through two layers each with
/// a budget of its own earn none (one request each is half a retry); through two layers
/// handed one budget, they earn it.
async fn retries_for_two_layers(config: RetryConfig, shared: bool) -> usize {
    let (mut a, mut b) = (
        RetryLayer::with_config(config.clone()),
        RetryLayer::with_config(config),
    );
    if shared {
        let budget = Arc::new(PercentBudget::new(Duration::from_secs(10), 0, 0.5).unwrap());
        a = a.with_budget(budget.clone());
        b = b.with_budget(budget);
    }
    let (dep, calls) = dependency(&[Act::Fail]);
    let (ra, rb) = tokio::join!(a.layer(dep.clone()).oneshot(1), b.layer(dep).oneshot(2));
    ra.unwrap_err();
    rb.unwrap_err();
    let n = calls.lock().unwrap().len();
    n - 2
}

#[tokio::test(start_paused = true)]
async fn a_config_is_a_value_and_sharing_a_budget_is_explicit() {
    let half = BudgetConfig::Percent {
        ttl: Duration::from_secs(10),
        min_per_sec: 0,
        percent: 0.5,
    };
    let config = config().budget(half).build().unwrap();
    assert_eq!(retries_for_two_layers(config.clone(), false).await, 0);
    assert_eq!(retries_for_two_layers(config, true).await, 1);
}

// --- HTTP: hints and idempotency ---------------------------------------------------------

type Seen = Arc<Mutex<Vec<(Instant, Request<()>)>>>;

/// An HTTP dependency answering with `responses` in order (the last repeats), recording the
/// head of every request it gets.
#[allow(clippy::type_complexity)]
fn http_dependency(
    responses: Vec<Response<()>>,
) -> (
    impl Service<
        Request<ReplayBody<Empty<Bytes>>>,
        Response = Response<()>,
        Error = BoxError,
        Future = impl Send,
    > + Clone,
    Seen,
) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let responses = Arc::new(responses);
    let svc = service_fn(move |req: Request<ReplayBody<Empty<Bytes>>>| {
        let n = {
            let mut seen = log.lock().unwrap();
            seen.push((Instant::now(), req.map(drop)));
            seen.len() - 1
        };
        let template = &responses[n.min(responses.len() - 1)];
        let mut response = Response::new(());
        *response.status_mut() = template.status();
        *response.headers_mut() = template.headers().clone();
        async move { Ok::<_, BoxError>(response) }
    });
    (svc, seen)
}

fn status(code: u16, headers: &[(&str, &str)]) -> Response<()> {
    let mut builder = Response::builder().status(code);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap()
}

fn get() -> Request<Empty<Bytes>> {
    Request::get("http://dependency/items")
        .body(Empty::new())
        .unwrap()
}

fn seen_gaps(seen: &Seen) -> Vec<Duration> {
    let seen = seen.lock().unwrap();
    seen.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

#[tokio::test(start_paused = true)]
async fn retry_after_replaces_the_backoff_and_is_capped() {
    let (dep, seen) = http_dependency(vec![
        status(503, &[("retry-after", "3")]),
        status(429, &[("retry-after", "3600")]),
        status(200, &[]),
    ]);
    let config = config().max_hint(Duration::from_secs(20)).build().unwrap();
    let response = HttpRetryLayer::with_config(config)
        .layer(dep)
        .oneshot(get())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        seen_gaps(&seen),
        [Duration::from_secs(3), Duration::from_secs(20)]
    );
}

#[tokio::test(start_paused = true)]
async fn an_unparseable_retry_after_falls_back_to_the_backoff() {
    let (dep, seen) = http_dependency(vec![
        status(503, &[("retry-after", "in a while")]),
        status(200, &[]),
    ]);
    let svc = HttpRetryLayer::with_config(config().build().unwrap()).layer(dep);
    assert_eq!(svc.oneshot(get()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(seen_gaps(&seen), [100 * MS]);
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_is_honoured_and_a_negative_one_stops_retries() {
    let grpc = |pushback: &str| {
        status(
            200,
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
                ("grpc-retry-pushback-ms", pushback),
            ],
        )
    };
    let (dep, seen) = http_dependency(vec![grpc("750"), status(200, &[])]);
    let svc = HttpRetryLayer::with_config(config().build().unwrap()).layer(dep);
    svc.oneshot(get()).await.unwrap();
    assert_eq!(seen_gaps(&seen), [750 * MS]);

    let (dep, seen) = http_dependency(vec![grpc("-1"), status(200, &[])]);
    let svc = HttpRetryLayer::with_config(config().build().unwrap()).layer(dep);
    let response = svc.oneshot(get()).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the server said not to retry"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_retry_says_how_many_attempts_came_before_it() {
    let unavailable = || {
        status(
            200,
            &[("content-type", "application/grpc"), ("grpc-status", "14")],
        )
    };
    let (dep, seen) = http_dependency(vec![unavailable(), unavailable(), status(200, &[])]);
    let keyed = config().idempotency_keys(true).build().unwrap();
    let svc = HttpRetryLayer::with_config(keyed).layer(dep);
    let call = Request::post("http://dependency/inventory.Stock/Reserve")
        .header("content-type", "application/grpc")
        .body(Empty::<Bytes>::new())
        .unwrap();
    svc.oneshot(call).await.unwrap();
    let previous: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, req)| {
            req.headers()
                .get("grpc-previous-rpc-attempts")
                .map(|v| v.to_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        previous,
        [None, Some("1".to_owned()), Some("2".to_owned())],
        "none on the first attempt, then the attempts before each retry"
    );
    // A plain HTTP retry carries no gRPC header.
    let (dep, seen) = http_dependency(vec![status(503, &[]), status(200, &[])]);
    let svc = HttpRetryLayer::with_config(config().build().unwrap()).layer(dep);
    svc.oneshot(get()).await.unwrap();
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|(_, req)| { !req.headers().contains_key("grpc-previous-rpc-attempts") })
    );
}

#[tokio::test(start_paused = true)]
async fn a_post_is_retried_only_with_an_idempotency_key_and_keeps_it() {
    let post = || {
        Request::post("http://dependency/orders")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let (dep, seen) = http_dependency(vec![status(503, &[]), status(201, &[])]);
    let svc = HttpRetryLayer::with_config(config().build().unwrap()).layer(dep);
    assert_eq!(svc.oneshot(post()).await.unwrap().status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1, "a bare POST is not retried");

    let (dep, seen) = http_dependency(vec![status(503, &[]), status(201, &[])]);
    let keyed_config = config().idempotency_keys(true).build().unwrap();
    let svc = HttpRetryLayer::with_config(keyed_config).layer(dep);
    assert_eq!(svc.oneshot(post()).await.unwrap().status(), 201);
    let keys: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, req)| {
            req.headers()["idempotency-key"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1], "every attempt is the same operation");
    // An sf-string holding a UUID v4.
    let uuid = keys[0]
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap();
    assert_eq!(uuid.len(), 36);
    assert_eq!(uuid.as_bytes()[14], b'4', "version 4");

    // A key the caller set is kept, and GETs get none.
    let (dep, seen) = http_dependency(vec![status(200, &[])]);
    let config = config().idempotency_keys(true).build().unwrap();
    let svc = HttpRetryLayer::with_config(config).layer(dep);
    let mut keyed = post();
    keyed
        .headers_mut()
        .insert("idempotency-key", "\"mine\"".parse().unwrap());
    svc.clone().oneshot(keyed).await.unwrap();
    svc.oneshot(get()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].1.headers()["idempotency-key"], "\"mine\"");
    assert_eq!(seen[1].1.method(), Method::GET);
    assert!(!seen[1].1.headers().contains_key("idempotency-key"));
}
