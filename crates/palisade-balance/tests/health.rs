//! Active health checks in paused time: thresholds, intervals and their jitter, a new
//! endpoint held out until it passes, the cap on ejections, the bound on probes in flight,
//! and probing that stops with its endpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_balance::discover::{WatchDiscover, static_list};
use palisade_balance::health::{HealthCheck, Probe, probe_fn};
use palisade_balance::{Balance, BalanceConfig, LoadMetric};
use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tower::{BoxError, Service, ServiceExt, service_fn};

const SECOND: Duration = Duration::from_secs(1);

/// An endpoint that answers its name at once.
fn endpoint(
    name: &'static str,
) -> impl Service<(), Response = &'static str, Error = BoxError, Future: Send> + Send {
    service_fn(move |()| async move { Ok::<_, BoxError>(name) })
}

/// Which endpoints fail their checks, and when each was probed.
#[derive(Clone, Default)]
struct Health {
    failing: Arc<Mutex<BTreeSet<&'static str>>>,
    probes: Arc<Mutex<BTreeMap<&'static str, Vec<Instant>>>>,
}

impl Health {
    fn fail(&self, name: &'static str, failing: bool) {
        let mut set = self.failing.lock().unwrap();
        if failing {
            set.insert(name);
        } else {
            set.remove(name);
        }
    }

    fn probes(&self, name: &str) -> Vec<Instant> {
        self.probes
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn probe(&self) -> impl Probe<&'static str> + use<> {
        let health = self.clone();
        probe_fn(move |name: &&'static str| {
            health
                .probes
                .lock()
                .unwrap()
                .entry(name)
                .or_default()
                .push(Instant::now());
            let failing = health.failing.lock().unwrap().contains(name);
            std::future::ready(if failing {
                Err(BoxError::from("503"))
            } else {
                Ok(())
            })
        })
    }
}

fn check() -> HealthCheck {
    HealthCheck::new(5 * SECOND)
        .unhealthy_interval(SECOND)
        .jitter(0.1)
        .unhealthy_threshold(3)
        .healthy_threshold(2)
}

/// The endpoints answer at once and the requests go one at a time: by requests in flight,
/// every ready endpoint ties, and the draws spread the requests over all of them (a
/// latency estimate would keep a late joiner's cold 30 ms out of the way).
fn config(check: HealthCheck) -> BalanceConfig {
    builder(check).build().unwrap()
}

fn builder(check: HealthCheck) -> palisade_balance::BalanceConfigBuilder {
    BalanceConfig::builder("health")
        .health_check(check)
        .load(LoadMetric::PendingRequests)
}

/// Sends `n` requests; the answers by endpoint.
async fn send<S>(balance: &mut S, n: usize) -> BTreeMap<&'static str, usize>
where
    S: Service<(), Response = &'static str, Error = BoxError>,
{
    let mut answers = BTreeMap::new();
    for _ in 0..n {
        let name = balance.ready().await.unwrap().call(()).await.unwrap();
        *answers.entry(name).or_default() += 1;
    }
    answers
}

/// The gaps between probes made between `from` and `to`.
fn gaps(probes: &[Instant], from: Instant, to: Instant) -> Vec<Duration> {
    let probes: Vec<_> = probes.iter().filter(|t| **t >= from && **t <= to).collect();
    probes.windows(2).map(|w| *w[1] - *w[0]).collect()
}

fn within(gaps: &[Duration], base: Duration, jitter: f64) -> bool {
    // The timer's resolution is a millisecond.
    let slack = Duration::from_millis(2);
    gaps.iter()
        .all(|gap| *gap + slack >= base && *gap <= base.mul_f64(1.0 + jitter) + slack)
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_its_checks_is_ejected_and_comes_back() {
    let health = Health::default();
    let endpoints = static_list([("a", endpoint("a")), ("b", endpoint("b"))]);
    let mut balance = Balance::with_config(endpoints, config(check())).probe(health.probe());

    // Each is in after its first passing probe, within a tenth of a second.
    send(&mut balance, 1).await;
    sleep(SECOND).await;
    let answers = send(&mut balance, 50).await;
    assert!(answers["b"] > 0, "both serve: {answers:?}");
    sleep(30 * SECOND).await;

    let failing_since = Instant::now();
    health.fail("b", true);
    // Three failures, at most 5.5 s apart: out within 16.5 s.
    sleep(25 * SECOND).await;
    let answers = send(&mut balance, 50).await;
    assert_eq!(answers.get("b"), None, "b is out: {answers:?}");
    assert_eq!(balance.ejected(), 1);

    // While out, b is probed every second (plus at most a tenth).
    let recovering_since = Instant::now();
    health.fail("b", false);
    // Two passes, at most 1.1 s apart.
    sleep(3 * SECOND).await;
    let answers = send(&mut balance, 50).await;
    assert!(
        answers.get("b").is_some_and(|n| *n > 0),
        "b is back: {answers:?}"
    );
    assert_eq!(balance.ejected(), 0);

    let probes = health.probes("b");
    let healthy = gaps(&probes, failing_since - 30 * SECOND, failing_since);
    assert!(
        healthy.len() >= 4 && within(&healthy, 5 * SECOND, 0.1),
        "{healthy:?}"
    );
    let out = gaps(
        &probes,
        failing_since + 17 * SECOND,
        recovering_since + SECOND,
    );
    assert!(out.len() >= 7 && within(&out, SECOND, 0.1), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn a_new_endpoint_waits_for_its_first_passing_check() {
    let health = Health::default();
    health.fail("new", true);
    let (publish, sets) = watch::channel(BTreeSet::from(["old"]));
    let discover = WatchDiscover::new("health", sets, |name: &&'static str| endpoint(name));
    let mut balance = Balance::with_config(discover, config(check())).probe(health.probe());
    send(&mut balance, 10).await;

    publish.send(BTreeSet::from(["old", "new"])).unwrap();
    let answers = send(&mut balance, 50).await;
    sleep(10 * SECOND).await;
    let later = send(&mut balance, 50).await;
    assert_eq!(
        (answers.get("new"), later.get("new")),
        (None, None),
        "held out"
    );
    assert!(
        health.probes("new").len() >= 5,
        "probed every second meanwhile"
    );

    // One pass is enough for a new endpoint.
    health.fail("new", false);
    sleep(2 * SECOND).await;
    let answers = send(&mut balance, 50).await;
    assert!(answers.get("new").is_some_and(|n| *n > 0), "{answers:?}");
}

#[tokio::test(start_paused = true)]
async fn the_ejection_cap_holds_when_most_endpoints_fail_their_checks() {
    let health = Health::default();
    let names = ["a", "b", "c", "d"];
    let endpoints = static_list(names.map(|name| (name, endpoint(name))));
    let config = builder(check().start_ready(true))
        .max_ejected_share(0.5)
        .build()
        .unwrap();
    let mut balance = Balance::with_config(endpoints, config).probe(health.probe());
    send(&mut balance, 20).await;
    for name in ["b", "c", "d"] {
        health.fail(name, true);
    }
    let mut served = BTreeSet::new();
    for _ in 0..30 {
        sleep(SECOND).await;
        served.extend(send(&mut balance, 20).await.into_keys());
        assert!(balance.ejected() <= 2, "never more than half out");
    }
    assert_eq!(balance.ejected(), 2);
    assert!(served.len() >= 2, "kept in panic mode: {served:?}");
}

#[tokio::test(start_paused = true)]
async fn probes_in_flight_are_bounded_and_stop_with_their_endpoint() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(Mutex::new(BTreeMap::<u32, usize>::new()));
    let probe = {
        let (in_flight, most, probes) = (in_flight.clone(), most.clone(), probes.clone());
        probe_fn(move |key: &u32| {
            *probes.lock().unwrap().entry(*key).or_default() += 1;
            let (in_flight, most) = (in_flight.clone(), most.clone());
            async move {
                let now = in_flight.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                sleep(Duration::from_millis(200)).await;
                in_flight.fetch_sub(1, SeqCst);
                Ok::<_, BoxError>(())
            }
        })
    };
    let keys: BTreeSet<u32> = (0..200).collect();
    let (publish, sets) = watch::channel(keys.clone());
    let discover = WatchDiscover::new("health", sets, |_: &u32| {
        service_fn(|()| async { Ok::<_, BoxError>("served") })
    });
    let check = check().max_concurrent(8);
    let mut balance = Balance::with_config(discover, config(check)).probe(probe);
    send(&mut balance, 1).await;
    sleep(10 * SECOND).await;
    assert!(most.load(SeqCst) <= 8, "{} in flight", most.load(SeqCst));
    assert_eq!(probes.lock().unwrap().len(), 200, "every endpoint probed");
    send(&mut balance, 10).await;
    assert_eq!(balance.endpoints(), (200, 0), "every one passed");

    publish.send((0..100).collect()).unwrap();
    send(&mut balance, 1).await;
    let before = probes.lock().unwrap().clone();
    sleep(30 * SECOND).await;
    let after = probes.lock().unwrap().clone();
    for key in 100..200 {
        assert_eq!(
            before[&key], after[&key],
            "endpoint {key} is gone, its probes too"
        );
    }
    assert!((0..100).all(|key| after[&key] > before[&key]));
    assert!(in_flight.load(SeqCst) <= 8);
}
