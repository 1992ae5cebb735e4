//! Fleet mode: instances that share one limit through a store — in memory in paused time,
//! then on a real redis-server (killed mid-run) and a real Redis Cluster in real time, with
//! quotas per hour so that nothing refills while a test runs.

#![cfg(feature = "http")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use palisade_ratelimit::fleet::{Fleet, FleetRateLimitLayer, OnStoreError};
use palisade_ratelimit::http::KeySource;
use palisade_ratelimit::store::{
    Grant, MemoryStore, RedisStore, Store, StoreError, StoreFuture, Take,
};
use palisade_ratelimit::{Policy, Quota, RateLimitConfig};
use tower::{Layer, Service, ServiceExt, service_fn};

type Body = http_body_util::Full<bytes::Bytes>;

/// One instance of the service: the fleet layer over a handler that answers "ok".
fn instance(
    layer: FleetRateLimitLayer,
) -> impl Service<Request<Body>, Response = Response<impl http_body::Body>, Error = Infallible> + Clone
{
    layer.layer(service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    }))
}

fn config(quota: Quota) -> RateLimitConfig {
    RateLimitConfig::builder("fleet")
        .policy(Policy::new("per-client", quota).key(KeySource::header("x-client")))
        .build()
        .unwrap()
}

fn from(client: &str) -> Request<Body> {
    Request::get("/")
        .header("x-client", client)
        .body(Body::default())
        .unwrap()
}

async fn status<S, B>(svc: &S, client: &str) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
{
    svc.clone().oneshot(from(client)).await.unwrap().status()
}

/// A store that counts its round trips, over another.
#[derive(Clone)]
struct Counting<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S: Store> Store for Counting<S> {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a> {
        self.calls.fetch_add(1, SeqCst);
        self.inner.take(take)
    }
}

/// A store that is down: every take fails, or never answers.
struct Down {
    hangs: bool,
}

impl Store for Down {
    fn take<'a>(&'a self, _: Take<'a>) -> StoreFuture<'a> {
        if self.hangs {
            return Box::pin(std::future::pending::<Result<Grant, StoreError>>());
        }
        Box::pin(async { Err(StoreError::new("connection refused")) })
    }
}

#[tokio::test(start_paused = true)]
async fn instances_sharing_a_store_admit_one_quota_between_them() {
    let store = MemoryStore::new();
    let layer = |store: &MemoryStore| {
        FleetRateLimitLayer::new(config(Quota::per_hour(6)), Fleet::exact(), store.clone()).unwrap()
    };
    let (a, b, c) = (
        instance(layer(&store)),
        instance(layer(&store)),
        instance(layer(&store)),
    );
    let mut admitted = 0;
    for i in 0..30 {
        let svc = [&a, &b, &c][i % 3];
        if status(svc, "greedy").await == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 6, "one quota for the fleet, not one an instance");
    let response = a.clone().oneshot(from("greedy")).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "600");
    assert_eq!(response.headers()["ratelimit"], "\"per-client\";r=0;t=3600");
    assert_eq!(status(&b, "polite").await, StatusCode::OK, "another key");
}

#[tokio::test(start_paused = true)]
async fn batched_leases_touch_the_store_once_a_lease_and_never_exceed_the_quota() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Counting {
        inner: MemoryStore::new(),
        calls: calls.clone(),
    };
    let fleet = Fleet::batched(10).lease_ttl(Duration::from_secs(3600));
    let layer =
        |store| FleetRateLimitLayer::new(config(Quota::per_hour(25)), fleet, store).unwrap();
    let (a, b) = (instance(layer(store.clone())), instance(layer(store)));
    let mut admitted = 0;
    for i in 0..60 {
        if status([&a, &b][i % 2], "k").await == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 25, "leases only hold what the store granted");
    // Leases granted: a 10, b 10, a the last 5 (a lease cut short: a waits for a whole one
    // before it asks again); b asks once more, is refused, and remembers it: no cell can be
    // free before the store said.
    assert_eq!(calls.load(SeqCst), 3 + 1);
}

#[tokio::test(start_paused = true)]
async fn a_lease_expires_unused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Counting {
        inner: MemoryStore::new(),
        calls: calls.clone(),
    };
    let fleet = Fleet::batched(5).lease_ttl(Duration::from_millis(100));
    let svc =
        instance(FleetRateLimitLayer::new(config(Quota::per_hour(10)), fleet, store).unwrap());
    assert_eq!(status(&svc, "k").await, StatusCode::OK);
    assert_eq!(calls.load(SeqCst), 1);
    tokio::time::advance(Duration::from_millis(150)).await;
    // The four cells left are gone: the next request asks again, and gets the other five.
    assert_eq!(status(&svc, "k").await, StatusCode::OK);
    assert_eq!(calls.load(SeqCst), 2);
    let mut admitted = 0;
    for _ in 0..10 {
        if status(&svc, "k").await == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 4,
        "10 in all, 4 of them lost with the expired lease"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_is_handled_as_configured() {
    for hangs in [false, true] {
        let layer = |action| {
            let fleet = Fleet::exact().on_store_error(action);
            FleetRateLimitLayer::new(config(Quota::per_hour(4)), fleet, Down { hangs }).unwrap()
        };
        let open = instance(layer(OnStoreError::Admit));
        let closed = instance(layer(OnStoreError::Refuse));
        let floor = instance(layer(OnStoreError::Local { share: 0.5 }));
        let (mut opened, mut floored) = (0, 0);
        for _ in 0..10 {
            opened += usize::from(status(&open, "k").await == StatusCode::OK);
            floored += usize::from(status(&floor, "k").await == StatusCode::OK);
            assert_eq!(status(&closed, "k").await, StatusCode::TOO_MANY_REQUESTS);
        }
        assert_eq!(opened, 10, "fail open (hangs: {hangs})");
        assert_eq!(
            floored, 2,
            "half of the quota kept locally (hangs: {hangs})"
        );
    }
}

#[test]
fn bad_fleet_settings_are_named() {
    let err = |fleet: Fleet| {
        FleetRateLimitLayer::new(config(Quota::per_hour(4)), fleet, MemoryStore::new())
            .unwrap_err()
            .field()
            .to_owned()
    };
    assert_eq!(err(Fleet::batched(0)), "fleet.cells");
    assert_eq!(
        err(Fleet::exact().on_store_error(OnStoreError::Local { share: 1.5 })),
        "fleet.on_store_error.share"
    );
    assert_eq!(
        err(Fleet::exact().store_timeout(Duration::ZERO)),
        "fleet.store_timeout"
    );
    let fast = FleetRateLimitLayer::new(
        config(Quota::per_second(2_000_000)),
        Fleet::exact(),
        MemoryStore::new(),
    );
    assert_eq!(fast.unwrap_err().field(), "policies[0].quota");
}

mod redis {
    use palisade_test::redis::RedisServer;
    use palisade_test::redis_cluster::RedisCluster;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_on_one_redis_share_the_quota_and_survive_its_death() {
        let mut server = RedisServer::start();
        let fleet = Fleet::exact()
            .on_store_error(OnStoreError::Local { share: 0.5 })
            .store_timeout(Duration::from_millis(500));
        let mut instances = Vec::new();
        for _ in 0..2 {
            let store = RedisStore::connect(&server.url()).await.unwrap();
            instances.push(instance(
                FleetRateLimitLayer::new(config(Quota::per_hour(5)), fleet, store).unwrap(),
            ));
        }
        let mut admitted = 0;
        for i in 0..20 {
            admitted += usize::from(status(&instances[i % 2], "greedy").await == StatusCode::OK);
        }
        assert_eq!(admitted, 5, "the fleet's quota, counted on Redis's clock");
        let response = instances[0].clone().oneshot(from("greedy")).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((719..=720).contains(&retry_after), "{retry_after}");

        // Redis dies: each instance keeps half the quota on its own.
        server.kill();
        let mut floored = 0;
        for _ in 0..6 {
            floored += usize::from(status(&instances[0], "other").await == StatusCode::OK);
        }
        assert_eq!(floored, 3, "the local floor: ceil(5 × 0.5)");

        // Back, empty: once the instance's connection is back (a new key's first request
        // told its remaining quota by Redis: 4 of 5, not the floor's 2 of 3), the fleet's
        // counts hold again.
        server.restart();
        let mut reconnected = false;
        for i in 0..100 {
            let response = instances[1]
                .clone()
                .oneshot(from(&format!("probe-{i}")))
                .await
                .unwrap();
            if response
                .headers()
                .get("ratelimit")
                .is_some_and(|v| v == "\"per-client\";r=4;t=720")
            {
                reconnected = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(reconnected, "the store reconnected within 5 s");
        let mut back = 0;
        for _ in 0..10 {
            back += usize::from(status(&instances[1], "new").await == StatusCode::OK);
        }
        assert_eq!(back, 5, "Redis keeps the quota again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_on_redis_takes_a_fraction_of_the_round_trips() {
        let server = RedisServer::start();
        let calls = Arc::new(AtomicUsize::new(0));
        let store = Counting {
            inner: RedisStore::connect(&server.url()).await.unwrap(),
            calls: calls.clone(),
        };
        let fleet = Fleet::batched(20).lease_ttl(Duration::from_secs(60));
        let svc =
            instance(FleetRateLimitLayer::new(config(Quota::per_hour(100)), fleet, store).unwrap());
        let mut admitted = 0;
        for _ in 0..100 {
            admitted += usize::from(status(&svc, "k").await == StatusCode::OK);
        }
        assert_eq!(admitted, 100);
        assert_eq!(calls.load(SeqCst), 5, "one round trip a lease of 20");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_redis_cluster_each_key_is_limited_on_its_own_primary() {
        let cluster = RedisCluster::start();
        let store = RedisStore::cluster(cluster.nodes()).await.unwrap();
        let layer =
            FleetRateLimitLayer::new(config(Quota::per_hour(3)), Fleet::exact(), store).unwrap();
        let (a, b) = (instance(layer.clone()), instance(layer));
        // Twenty clients, spread over the cluster's slots: each gets exactly its quota.
        for client in 0..20 {
            let name = format!("client-{client}");
            let mut admitted = 0;
            for i in 0..6 {
                admitted += usize::from(status([&a, &b][i % 2], &name).await == StatusCode::OK);
            }
            assert_eq!(admitted, 3, "{name}");
        }
    }
}
