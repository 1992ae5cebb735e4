//! The drain over a real axum server on loopback (real time, handlers gated so that
//! requests are in flight when it starts), and its phases and timeout in paused time.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_registry::drain::{Drain, DrainConfig, Phase};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::{Layer, ServiceExt, service_fn};

/// Polls `done` every 5 ms for up to 10 s; whether it came true.
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_server_drains_without_failing_a_request_in_flight() {
    let drain = Drain::new(
        DrainConfig::builder("orders")
            .grace(Duration::from_millis(300))
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
    );
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    "slow"
                }
            }),
        )
        .route("/fast", get(|| async { "fast" }))
        .route_service("/healthz", drain.readiness())
        .layer(drain.layer());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The server keeps accepting until the drain is over, so that a late request is
    // answered (refused) rather than left to a refused connection.
    let until_drained = {
        let drain = drain.clone();
        async move {
            drain.drained().await;
        }
    };
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(until_drained)
            .await
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |path: &str| {
        let client = client.clone();
        let uri = format!("http://{addr}{path}");
        async move {
            let response = client
                .request(Request::get(uri).body(Empty::new()).unwrap())
                .await
                .expect("the server answers");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            (parts, String::from_utf8_lossy(&body).into_owned())
        }
    };

    assert_eq!(get("/healthz").await.0.status, StatusCode::OK);
    let in_flight: Vec<_> = (0..5).map(|_| tokio::spawn(get("/slow"))).collect();
    assert!(
        eventually(|| drain.in_flight() == 5).await,
        "five in flight"
    );

    drain.start();
    assert_eq!(drain.phase(), Phase::Draining);
    let (healthz, _) = get("/healthz").await;
    assert_eq!(
        healthz.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "unready first"
    );
    let (served, body) = get("/fast").await;
    assert_eq!(
        (served.status, body.as_str()),
        (StatusCode::OK, "fast"),
        "still served"
    );
    assert_eq!(served.headers["connection"], "close");

    assert!(eventually(|| drain.phase() == Phase::Refusing).await);
    let (refused, body) = get("/fast").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert!(body.contains("draining"), "{body}");

    // The requests in flight all along finish, and the server with them.
    release.notify_waiters();
    for request in in_flight {
        let (parts, body) = request.await.unwrap();
        assert_eq!((parts.status, body.as_str()), (StatusCode::OK, "slow"));
    }
    let drained = drain.drained().await;
    assert_eq!(drained.abandoned(), 0);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once drained")
        .unwrap()
        .unwrap();
}

fn config() -> DrainConfig {
    DrainConfig::builder("test")
        .grace(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_request_that_never_finishes_is_abandoned_at_the_timeout() {
    let drain = Drain::new(config());
    let stuck = drain.layer().layer(service_fn(|_: Request<()>| async {
        std::future::pending::<Result<Response<()>, Infallible>>().await
    }));
    let request = tokio::spawn(stuck.oneshot(Request::new(())));
    tokio::task::yield_now().await;
    assert_eq!(drain.in_flight(), 1);

    let start = tokio::time::Instant::now();
    drain.start();
    let drained = drain.drained().await;
    assert_eq!(drained.abandoned(), 1);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(30),
        "bounded by the timeout"
    );
    request.abort();
}

#[tokio::test(start_paused = true)]
async fn the_phases_follow_the_clock_and_grpc_is_refused_with_unavailable() {
    let drain = Drain::new(config());
    let app = drain.layer().layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let grpc = || {
        Request::post("/orders.Orders/Get")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap()
    };
    assert_eq!(drain.phase(), Phase::Serving);
    let served = app.clone().oneshot(grpc()).await.unwrap();
    assert!(served.headers().get("connection").is_none());

    let started = drain.started();
    drain.start();
    started.await;
    drain.start(); // again: nothing changes
    tokio::time::sleep(Duration::from_millis(4_999)).await;
    assert_eq!(drain.phase(), Phase::Draining);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(drain.phase(), Phase::Refusing);

    let refused = app.oneshot(grpc()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::OK, "trailers-only");
    assert_eq!(refused.headers()["grpc-status"], "14");
    assert_eq!(refused.headers()["grpc-retry-pushback-ms"], "1000");
    assert_eq!(drain.drained().await.abandoned(), 0);
}
