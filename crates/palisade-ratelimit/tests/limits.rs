//! The limits as a client meets them, in paused time: bursts, the sustained rate, the exact
//! `Retry-After` and RateLimit fields, policies in order, keys, and generic mode.

#![cfg(feature = "http")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use palisade_ratelimit::http::{KeySource, Scope};
use palisade_ratelimit::{
    HttpRateLimitLayer, Policy, Quota, RateLimitConfig, RateLimitLayer, RateLimited,
};
use tower::{Layer, Service, ServiceExt, service_fn};

type Body = http_body_util::Full<bytes::Bytes>;

/// A service behind the layer that answers "ok" and counts what reached it.
fn app(
    config: RateLimitConfig,
) -> (
    impl Service<
        Request<Body>,
        Response = Response<impl http_body::Body<Error = impl std::fmt::Debug>>,
        Error = Infallible,
    > + Clone,
    Arc<AtomicUsize>,
) {
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    let inner = service_fn(move |_: Request<Body>| {
        count.fetch_add(1, SeqCst);
        async { Ok::<_, Infallible>(Response::new(Body::from("ok"))) }
    });
    (
        HttpRateLimitLayer::with_config(config).layer(inner),
        reached,
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::default()).unwrap()
}

fn with_header(name: &str, value: &str) -> Request<Body> {
    Request::get("/")
        .header(name, value)
        .body(Body::default())
        .unwrap()
}

async fn status_and_headers<S, B>(svc: &S, request: Request<Body>) -> (StatusCode, HeaderMap)
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible> + Clone,
{
    let response = svc.clone().oneshot(request).await.unwrap();
    (response.status(), response.headers().clone())
}

fn one(policy: Policy) -> RateLimitConfig {
    RateLimitConfig::builder("test")
        .policy(policy)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_burst_then_one_per_interval_with_exact_fields() {
    // 10 a second, 5 at once.
    let (svc, reached) = app(one(Policy::new("api", Quota::per_second(10).burst(5))));
    for remaining in (0..5).rev() {
        let (status, headers) = status_and_headers(&svc, get("/")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["ratelimit-policy"], "\"api\";q=10;w=1");
        let t = 1; // 0.1 s to 0.5 s until whole again: rounded up to 1
        assert_eq!(headers["ratelimit"], format!("\"api\";r={remaining};t={t}"));
    }
    let response = svc.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = response.headers().clone();
    assert_eq!(
        headers["retry-after"], "1",
        "100 ms, in whole seconds rounded up"
    );
    assert_eq!(headers["ratelimit"], "\"api\";r=0;t=1");
    assert_eq!(headers["ratelimit-policy"], "\"api\";q=10;w=1");
    assert_eq!(headers["content-type"], "application/problem+json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 429);
    assert_eq!(problem["type"], "urn:palisade:problem:rate-limited");
    assert_eq!(problem["retry_after_ms"], 100, "the exact wait");
    assert_eq!(
        reached.load(SeqCst),
        5,
        "a refused request never reaches the service"
    );

    // 99 ms later: still 1 ms early.
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_eq!(
        status_and_headers(&svc, get("/")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status_and_headers(&svc, get("/")).await.0, StatusCode::OK);
    assert_eq!(
        status_and_headers(&svc, get("/")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Over ten seconds at the sustained rate, exactly one an interval gets through.
    let mut admitted = 0;
    for _ in 0..1000 {
        tokio::time::advance(Duration::from_millis(10)).await;
        if status_and_headers(&svc, get("/")).await.0 == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 100);
    // At rest for a second: the whole burst is back.
    tokio::time::advance(Duration::from_secs(1)).await;
    let (_, headers) = status_and_headers(&svc, get("/")).await;
    assert_eq!(headers["ratelimit"], "\"api\";r=4;t=1");
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_quota_and_a_missing_key_shares_one() {
    let (svc, _) = app(one(
        Policy::new("per-client", Quota::per_minute(2)).key(KeySource::header("x-client"))
    ));
    for _ in 0..2 {
        assert_eq!(
            status_and_headers(&svc, with_header("x-client", "greedy"))
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, headers) = status_and_headers(&svc, with_header("x-client", "greedy")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "30", "one every 30 s");
    assert_eq!(headers["ratelimit"], "\"per-client\";r=0;t=60");
    assert_eq!(
        status_and_headers(&svc, with_header("x-client", "polite"))
            .await
            .0,
        StatusCode::OK
    );
    // No header: one quota for all such requests.
    assert_eq!(status_and_headers(&svc, get("/")).await.0, StatusCode::OK);
    assert_eq!(status_and_headers(&svc, get("/")).await.0, StatusCode::OK);
    assert_eq!(
        status_and_headers(&svc, get("/")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn the_first_policy_that_refuses_wins_and_the_others_give_back() {
    let config = RateLimitConfig::builder("test")
        .policy(Policy::new("server", Quota::per_minute(3)))
        .policy(Policy::new("writes", Quota::per_minute(1)).scope(Scope::methods(["POST"])))
        .build()
        .unwrap();
    let (svc, _) = app(config);
    let post = || Request::post("/").body(Body::default()).unwrap();
    let (status, headers) = status_and_headers(&svc, post()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["ratelimit-policy"],
        "\"server\";q=3;w=60, \"writes\";q=1;w=60"
    );
    assert_eq!(
        headers["ratelimit"],
        "\"server\";r=2;t=20, \"writes\";r=0;t=60"
    );
    // Refused by `writes`: `server` gives its share back.
    let (status, headers) = status_and_headers(&svc, post()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["ratelimit-policy"], "\"writes\";q=1;w=60");
    assert_eq!(
        headers["ratelimit"], "\"writes\";r=0;t=60",
        "the refusing policy speaks"
    );
    // GETs are not writes: only `server` applies, and it still has two.
    let (status, headers) = status_and_headers(&svc, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["ratelimit-policy"], "\"server\";q=3;w=60");
    assert_eq!(status_and_headers(&svc, get("/")).await.0, StatusCode::OK);
    assert_eq!(
        status_and_headers(&svc, get("/")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(start_paused = true)]
async fn tiers_by_a_header_and_routes_by_a_prefix() {
    let config = RateLimitConfig::builder("test")
        .policy(
            Policy::new("free", Quota::per_minute(1))
                .key(KeySource::header("x-client"))
                .scope(Scope::ALL.header_is("x-tier", "free")),
        )
        .policy(
            Policy::new("search", Quota::per_minute(2)).scope(Scope::ALL.path_prefix("/search")),
        )
        .headers_on_success(false)
        .build()
        .unwrap();
    let (svc, _) = app(config);
    let free = || {
        Request::get("/orders")
            .header("x-tier", "free")
            .header("x-client", "a")
            .body(Body::default())
            .unwrap()
    };
    let (status, headers) = status_and_headers(&svc, free()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get("ratelimit").is_none(),
        "no fields on success when turned off"
    );
    assert_eq!(
        status_and_headers(&svc, free()).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    for _ in 0..5 {
        assert_eq!(
            status_and_headers(&svc, get("/orders")).await.0,
            StatusCode::OK,
            "paid"
        );
    }
    assert_eq!(
        status_and_headers(&svc, get("/search?q=a")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        status_and_headers(&svc, get("/search?q=b")).await.0,
        StatusCode::OK
    );
    let (status, headers) = status_and_headers(&svc, get("/search?q=c")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        headers["ratelimit"], "\"search\";r=0;t=60",
        "refusals always carry the fields"
    );
}

#[tokio::test(start_paused = true)]
async fn a_grpc_request_is_refused_with_resource_exhausted_and_pushback() {
    let (svc, _) = app(one(Policy::new("api", Quota::per_second(2).burst(1))));
    let grpc = || {
        Request::post("/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(Body::default())
            .unwrap()
    };
    assert_eq!(status_and_headers(&svc, grpc()).await.0, StatusCode::OK);
    let (status, headers) = status_and_headers(&svc, grpc()).await;
    assert_eq!(status, StatusCode::OK, "a trailers-only gRPC answer");
    assert_eq!(headers["grpc-status"], "8");
    assert_eq!(headers["grpc-retry-pushback-ms"], "500");
}

#[tokio::test(start_paused = true)]
async fn generic_mode_refuses_with_a_typed_error_per_key() {
    let config = one(Policy::new("per-tenant", Quota::per_hour(2)));
    let inner = service_fn(|_: (u64, &'static str)| async { Ok::<_, Infallible>("row") });
    let svc = RateLimitLayer::with_config(config)
        .key_fn(|(tenant, _): &(u64, &'static str)| *tenant)
        .layer(inner);
    for _ in 0..2 {
        assert_eq!(svc.clone().oneshot((1, "select")).await.unwrap(), "row");
    }
    let err = svc.clone().oneshot((1, "select")).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("a RateLimited");
    assert_eq!(limited.policy(), "per-tenant");
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(1800)));
    assert!(
        palisade_core::refusal::is_refusal(&*err),
        "marked as palisade's refusal"
    );
    assert_eq!(
        svc.clone().oneshot((2, "select")).await.unwrap(),
        "row",
        "another tenant"
    );
}

/// Many threads on one key at one instant: exactly the burst is admitted, never more.
#[test]
fn concurrent_callers_on_one_key_never_get_more_than_the_quota() {
    for global in [true, false] {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let policy = Policy::new("p", Quota::per_hour(1000));
        let policy = if global {
            policy
        } else {
            policy.key(KeySource::header("x-client"))
        };
        let svc = runtime.block_on(async { app(one(policy)).0 });
        let admitted = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let (svc, admitted) = (svc.clone(), admitted.clone());
                let handle = runtime.handle().clone();
                scope.spawn(move || {
                    for _ in 0..600 {
                        let request = with_header("x-client", "one");
                        let response = handle.block_on(svc.clone().oneshot(request)).unwrap();
                        if response.status() == StatusCode::OK {
                            admitted.fetch_add(1, SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(admitted.load(SeqCst), 1000, "global: {global}");
    }
}
