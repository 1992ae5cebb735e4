//! The balancer in paused time: where requests go, what happens with no endpoint, and
//! endpoints coming and going.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_balance::discover::{WatchDiscover, static_list};
use palisade_balance::{Balance, BalanceConfig, NoReadyEndpoints};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tower::{BoxError, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

/// How each endpoint answers.
#[derive(Clone)]
enum Answer {
    After(Duration),
    FailAtOnce,
    /// Fail at once while the flag is set, answer in 10 ms otherwise.
    FailWhile(Arc<std::sync::atomic::AtomicBool>),
}

type Counts = Arc<Mutex<BTreeMap<&'static str, usize>>>;

/// An endpoint that answers as told and counts the requests it gets.
fn endpoint(
    name: &'static str,
    answer: Answer,
    counts: Counts,
) -> impl Service<
    (),
    Response = &'static str,
    Error = BoxError,
    Future = impl Future<Output = Result<&'static str, BoxError>> + Send,
> + Send {
    service_fn(move |()| {
        *counts.lock().unwrap().entry(name).or_default() += 1;
        let answer = match &answer {
            Answer::FailWhile(broken) if broken.load(std::sync::atomic::Ordering::SeqCst) => {
                Answer::FailAtOnce
            }
            Answer::FailWhile(_) => Answer::After(10 * MS),
            other => other.clone(),
        };
        async move {
            match answer {
                Answer::After(latency) => {
                    sleep(latency).await;
                    Ok(name)
                }
                _ => Err(BoxError::from("503")),
            }
        }
    })
}

fn config() -> BalanceConfig {
    BalanceConfig::builder("test").build().unwrap()
}

async fn send<S: Service<(), Error = BoxError>>(svc: &mut S) -> Result<S::Response, BoxError> {
    svc.ready().await?.call(()).await
}

/// Ten clients sending requests back to back for ten seconds through one balancer; returns
/// the answers (ok, failed).
async fn load<S>(balance: S) -> (usize, usize)
where
    S: Service<(), Response = &'static str, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    let balance = Arc::new(tokio::sync::Mutex::new(balance));
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let balance = balance.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                let end = Instant::now() + Duration::from_secs(10);
                while Instant::now() < end {
                    // Lock only to choose and call; the answer is awaited outside.
                    let call = {
                        let mut balance = balance.lock().await;
                        balance.ready().await.unwrap().call(())
                    };
                    match call.await {
                        Ok(_) => ok += 1,
                        Err(_) => {
                            failed += 1;
                            sleep(MS).await;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failed += f;
    }
    (ok, failed)
}

#[tokio::test(start_paused = true)]
async fn a_slow_endpoint_gets_little_traffic() {
    let counts = Counts::default();
    let endpoints = [
        ("a", Answer::After(10 * MS)),
        ("b", Answer::After(10 * MS)),
        ("c", Answer::After(10 * MS)),
        ("slow", Answer::After(100 * MS)),
    ]
    .map(|(name, answer)| (name, endpoint(name, answer, counts.clone())));
    let (ok, _) = load(Balance::with_config(static_list(endpoints), config())).await;
    let slow = counts.lock().unwrap().get("slow").copied().unwrap_or(0);
    assert!(slow > 0, "tried");
    assert!(slow * 100 < ok * 3, "the slow endpoint got {slow} of {ok}");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_fails_at_once_is_not_a_black_hole() {
    let counts = Counts::default();
    let endpoints = [
        ("a", Answer::After(10 * MS)),
        ("b", Answer::After(10 * MS)),
        ("c", Answer::After(10 * MS)),
        ("hole", Answer::FailAtOnce),
    ]
    .map(|(name, answer)| (name, endpoint(name, answer, counts.clone())));
    let (ok, failed) = load(Balance::with_config(static_list(endpoints), config())).await;
    // A plain peak-EWMA sees the fastest endpoint of all in it, and sends it the most.
    assert!(failed > 0, "tried");
    assert!(failed * 100 < ok, "{failed} failed for {ok} answered");
    assert_eq!(counts.lock().unwrap()["hole"], failed);
}

#[tokio::test(start_paused = true)]
async fn with_no_endpoint_a_call_fails_after_the_wait_instead_of_hanging() {
    let counts = Counts::default();
    let (_publish, sets) = watch::channel(BTreeSet::<&'static str>::new());
    let discover = WatchDiscover::new("test", sets, move |name: &&'static str| {
        endpoint(name, Answer::After(MS), counts.clone())
    });
    let config = BalanceConfig::builder("test")
        .no_ready_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut balance = Balance::with_config(discover, config);
    let start = Instant::now();
    let error = send(&mut balance).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    assert_eq!(
        error
            .downcast_ref::<NoReadyEndpoints>()
            .unwrap()
            .endpoints(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn endpoints_follow_discovery_and_requests_in_flight_finish() {
    let counts = Counts::default();
    let (publish, sets) = watch::channel(BTreeSet::from(["a", "b"]));
    let made = counts.clone();
    let discover = WatchDiscover::new("test", sets, move |name: &&'static str| {
        endpoint(name, Answer::After(50 * MS), made.clone())
    });
    let mut balance = Balance::with_config(discover, config());

    // A request in flight on each endpoint.
    let first = balance.ready().await.unwrap().call(());
    let second = balance.ready().await.unwrap().call(());
    let in_flight = tokio::spawn(async move { (first.await, second.await) });

    publish.send(BTreeSet::from(["b", "c"])).unwrap();
    for _ in 0..200 {
        send(&mut balance).await.unwrap();
    }
    let (first, second) = in_flight.await.unwrap();
    assert!(
        first.is_ok() && second.is_ok(),
        "removal does not cut requests in flight"
    );
    let counts = counts.lock().unwrap();
    assert!(counts["a"] <= 2, "a removed endpoint gets no new request");
    assert!(
        counts["c"] > 50,
        "an added one takes its share: {}",
        counts["c"]
    );
    assert_eq!(balance.endpoints(), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn the_chosen_endpoint_survives_a_discovery_change_before_the_call() {
    // tower #856: a change between poll_ready and call made tower's balancer call a
    // different endpoint (or panic on a stale index). Here the choice is a key.
    let counts = Counts::default();
    let (publish, sets) = watch::channel(BTreeSet::from(["a", "b", "c"]));
    let made = counts.clone();
    let discover = WatchDiscover::new("test", sets, move |name: &&'static str| {
        endpoint(name, Answer::After(MS), made.clone())
    });
    let mut balance = Balance::with_config(discover, config());
    for _ in 0..30 {
        balance.ready().await.unwrap();
        // Every endpoint but one goes away between poll_ready and call.
        publish.send(BTreeSet::from(["c"])).unwrap();
        let answer = balance.call(()).await;
        assert!(answer.is_ok(), "the call went to a live endpoint");
        publish.send(BTreeSet::from(["a", "b", "c"])).unwrap();
    }
}

/// A balancer whose ejection trips on `failures` in a row for `out`, with failures costing
/// nothing in the load, so that only ejection keeps traffic off a failing endpoint.
fn ejecting(failures: u32, out: Duration) -> BalanceConfig {
    let ejection = palisade_breaker::BreakerConfig::builder("test")
        .consecutive_failures(failures)
        .no_failure_rate()
        .open_duration(palisade_breaker::OpenDuration::fixed(out))
        .half_open_probes(1)
        .successes_to_close(1)
        .build()
        .unwrap();
    BalanceConfig::builder("test")
        .failure_penalty(Duration::ZERO)
        .ejection(ejection)
        .build()
        .unwrap()
}

fn calls_to(counts: &Counts, name: &str) -> usize {
    counts.lock().unwrap().get(name).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_ejected_then_probed_and_restored() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let counts = Counts::default();
    let broken = Arc::new(AtomicBool::new(true));
    let healthy = Arc::new(AtomicBool::new(false));
    let endpoints = [
        ("a", healthy.clone()),
        ("b", healthy.clone()),
        ("flaky", broken.clone()),
    ]
    .map(|(name, flag)| {
        (
            name,
            endpoint(name, Answer::FailWhile(flag), counts.clone()),
        )
    });
    let mut balance =
        Balance::with_config(static_list(endpoints), ejecting(3, Duration::from_secs(5)));

    // Failing at once, the endpoint looks fastest and is chosen until it is ejected.
    for _ in 0..50 {
        let _ = send(&mut balance).await;
    }
    assert_eq!(
        calls_to(&counts, "flaky"),
        3,
        "three failures in a row, then out"
    );
    assert_eq!(balance.ejected(), 1);

    // While it is out it gets nothing, whatever its load says.
    broken.store(false, SeqCst);
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        send(&mut balance).await.unwrap();
    }
    assert_eq!(calls_to(&counts, "flaky"), 3);

    // Once the ejection is over, a probe finds it healthy, and it is back in rotation.
    sleep(Duration::from_secs(2)).await;
    for _ in 0..100 {
        send(&mut balance).await.unwrap();
    }
    assert_eq!(balance.ejected(), 0);
    assert!(calls_to(&counts, "flaky") > 10, "restored");
}

#[tokio::test(start_paused = true)]
async fn the_ejection_cap_keeps_half_of_the_endpoints_in_rotation() {
    use std::sync::atomic::AtomicBool;
    let counts = Counts::default();
    let broken = Arc::new(AtomicBool::new(true));
    let endpoints = ["a", "b", "c", "d"].map(|name| {
        (
            name,
            endpoint(name, Answer::FailWhile(broken.clone()), counts.clone()),
        )
    });
    let mut balance =
        Balance::with_config(static_list(endpoints), ejecting(1, Duration::from_secs(60)));
    for _ in 0..100 {
        let error = send(&mut balance).await.unwrap_err();
        assert!(
            error.downcast_ref::<NoReadyEndpoints>().is_none(),
            "never out of endpoints: {error}"
        );
    }
    assert_eq!(balance.ejected(), 2, "at most half ejected");
    let in_rotation = ["a", "b", "c", "d"]
        .iter()
        .filter(|n| calls_to(&counts, n) > 10)
        .count();
    assert_eq!(
        in_rotation, 2,
        "the other half keeps taking the traffic (panic mode)"
    );
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_that_says_retry_after_is_left_alone_that_long() {
    use palisade_core::HttpClassifier;
    let counts = Counts::default();
    // "busy" answers its first request with 429 + Retry-After: 3, then like the others.
    let endpoint = |name: &'static str| {
        let counts = counts.clone();
        service_fn(move |()| {
            let n = {
                let mut counts = counts.lock().unwrap();
                let n = counts.entry(name).or_default();
                *n += 1;
                *n
            };
            async move {
                sleep(10 * MS).await;
                let mut response = http::Response::new(());
                if name == "busy" && n == 1 {
                    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
                    response.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static("3"),
                    );
                }
                Ok::<_, BoxError>(response)
            }
        })
    };
    // 429 is not a failure, and failures cost nothing extra here: only the hint counts.
    let config = BalanceConfig::builder("test")
        .failure_penalty(Duration::ZERO)
        .build()
        .unwrap();
    let endpoints = ["a", "busy"].map(|name| (name, endpoint(name)));
    let mut balance =
        Balance::with_classifier(static_list(endpoints), config, HttpClassifier::default());
    let start = Instant::now();
    while calls_to(&counts, "busy") == 0 {
        send_http(&mut balance).await;
    }
    while Instant::now() < start + Duration::from_millis(2900) {
        send_http(&mut balance).await;
    }
    assert_eq!(
        calls_to(&counts, "busy"),
        1,
        "left alone for the 3 s it asked for"
    );
    sleep(Duration::from_millis(200)).await;
    for _ in 0..20 {
        send_http(&mut balance).await;
    }
    assert!(calls_to(&counts, "busy") > 1, "then back in the draw");
}

async fn send_http<S>(svc: &mut S)
where
    S: Service<(), Response = http::Response<()>, Error = BoxError>,
{
    svc.ready().await.unwrap().call(()).await.unwrap();
}

/// The requests each endpoint took, from `palisade_balance_requests_total`, after ten sent.
async fn counted_per_endpoint(config: BalanceConfig) -> (BTreeMap<String, u64>, Counts) {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // Local to this thread, which runs the whole (current-thread) test.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let counts = Counts::default();
    let endpoints =
        ["a", "b"].map(|name| (name, endpoint(name, Answer::After(MS), counts.clone())));
    let mut balance = Balance::with_config(static_list(endpoints), config);
    for _ in 0..10 {
        send(&mut balance).await.unwrap();
    }
    let mut per_endpoint = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() == palisade_balance::metrics::REQUESTS_TOTAL {
            let endpoint = key
                .key()
                .labels()
                .find(|l| l.key() == "endpoint")
                .map(|l| l.value().to_owned())
                .unwrap();
            if let DebugValue::Counter(n) = value {
                per_endpoint.insert(endpoint, n);
            }
        }
    }
    (per_endpoint, counts)
}

#[tokio::test(start_paused = true)]
async fn requests_are_counted_per_endpoint_when_asked() {
    let config = BalanceConfig::builder("counted")
        .endpoint_metrics(true)
        .build()
        .unwrap();
    let (per_endpoint, counts) = counted_per_endpoint(config).await;
    assert_eq!(per_endpoint.values().sum::<u64>(), 10, "{per_endpoint:?}");
    let counts = counts.lock().unwrap();
    assert_eq!(
        per_endpoint.get("\"a\"").copied(),
        counts.get("a").map(|n| *n as u64)
    );
}

#[tokio::test(start_paused = true)]
async fn no_series_per_endpoint_by_default() {
    // A fleet's endpoints come and go; the metrics facade cannot delete a series, so one per
    // endpoint would grow without bound. Opt in where the endpoints are few and fixed.
    let config = BalanceConfig::builder("counted").build().unwrap();
    let (per_endpoint, counts) = counted_per_endpoint(config).await;
    assert!(per_endpoint.is_empty(), "{per_endpoint:?}");
    assert_eq!(counts.lock().unwrap().values().sum::<usize>(), 10);
}

/// Ten clients sending requests back to back through `balance` for `span`: the share of
/// them that `name` answered.
async fn share_over<S>(
    balance: &SharedBalance<S>,
    counts: &Counts,
    name: &'static str,
    span: Duration,
) -> f64
where
    S: Service<(), Response = &'static str, Error = BoxError> + Send + 'static,
    S::Future: Send,
{
    let before = counts.lock().unwrap().clone();
    let until = Instant::now() + span;
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let balance = balance.clone();
            tokio::spawn(async move {
                let mut sent = 0;
                while Instant::now() < until {
                    let call = {
                        let mut balance = balance.lock().await;
                        balance.ready().await.unwrap().call(())
                    };
                    call.await.unwrap();
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    let after = counts.lock().unwrap();
    let got = after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0);
    got as f64 / sent as f64
}

type SharedBalance<S> = Arc<tokio::sync::Mutex<S>>;

#[tokio::test(start_paused = true)]
async fn with_slow_start_a_joining_endpoint_ramps_up_to_its_share() {
    let window = Duration::from_secs(20);
    for slow_start in [true, false] {
        let counts = Counts::default();
        let (publish, sets) = watch::channel(BTreeSet::from(["a", "b"]));
        let made = counts.clone();
        // Every endpoint answers in 5 ms: a fair share is a third once "c" joins.
        let discover = WatchDiscover::new("test", sets, move |name: &&'static str| {
            endpoint(name, Answer::After(5 * MS), made.clone())
        });
        let config = BalanceConfig::builder("test");
        let config = if slow_start {
            config.slow_start(palisade_balance::SlowStart::new(window))
        } else {
            config
        };
        let balance = Arc::new(tokio::sync::Mutex::new(Balance::with_config(
            discover,
            config.build().unwrap(),
        )));
        // Warm: two endpoints, their estimates down to their 5 ms.
        share_over(&balance, &counts, "a", Duration::from_secs(30)).await;
        publish.send(BTreeSet::from(["a", "b", "c"])).unwrap();
        let first = share_over(&balance, &counts, "c", Duration::from_secs(2)).await;
        let middle = share_over(&balance, &counts, "c", Duration::from_secs(8)).await;
        let _ = share_over(&balance, &counts, "c", Duration::from_secs(10)).await;
        let after = share_over(&balance, &counts, "c", Duration::from_secs(10)).await;
        // The figures docs/balance.md gives (`-- --nocapture` shows them).
        eprintln!(
            "slow start {slow_start}: the new endpoint's share {first:.4} in its first 2 s, \
             {middle:.4} in the next 8, {after:.4} at 20-30 s"
        );
        assert!(
            after > 0.25,
            "a fair share once the window is over: {after} (slow start: {slow_start})"
        );
        if slow_start {
            // A tenth of its weight at first: it is sent requests only when the others are
            // far busier; its share grows as its weight does.
            assert!(first < 0.1, "a small share at first: {first}");
            assert!(middle > first, "its share grows: {first} then {middle}");
        }
    }
}
