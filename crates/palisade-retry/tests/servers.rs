//! The retry layer around real clients talking to real servers on loopback: a hyper-util
//! client and an axum server that fails by script, and a tonic `Channel` and a tonic server
//! that answers UNAVAILABLE before it answers OK. Real time: the paused clock would jump
//! while frames are in flight; the backoffs here are a few tens of milliseconds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_retry::{HttpRetryLayer, RetryConfig};
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};

async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn config() -> RetryConfig {
    RetryConfig::builder("client")
        .max_attempts(3)
        .idempotency_keys(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_hyper_client_retries_a_post_through_a_failing_axum_server() {
    // The server fails its first two requests with 503, then creates the order; it records
    // every body and Idempotency-Key it receives.
    let received: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let log = received.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let key = headers["idempotency-key"].to_str().unwrap().to_owned();
            let n = {
                let mut log = log.lock().unwrap();
                log.push((key, body));
                log.len()
            };
            if n <= 2 {
                (StatusCode::SERVICE_UNAVAILABLE, "warming up")
            } else {
                (StatusCode::CREATED, "created")
            }
        }
    };
    let addr = serve(Router::new().route("/orders", post(handler))).await;

    let client = Client::builder(TokioExecutor::new()).build_http();
    let retrying = HttpRetryLayer::with_config(config()).layer(client);
    let order = Bytes::from_static(br#"{"sku":"kettle","quantity":2}"#);
    let request = Request::post(format!("http://{addr}/orders"))
        .header("content-type", "application/json")
        .body(Full::new(order.clone()))
        .unwrap();
    let response = retrying.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "created"
    );

    let received = received.lock().unwrap();
    assert_eq!(received.len(), 3);
    for (key, body) in received.iter() {
        assert_eq!(key, &received[0].0, "one operation, one key");
        assert_eq!(body, &order, "the body, replayed byte for byte");
    }
}

mod grpc {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tonic::Code;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tower::Service;

    use super::*;

    /// Answers the first `n` calls with UNAVAILABLE itself, then lets calls through.
    #[derive(Clone)]
    struct Unavailable<S> {
        inner: S,
        left: Arc<AtomicUsize>,
    }

    impl<S, B> Service<Request<B>> for Unavailable<S>
    where
        S: Service<Request<B>, Response = http::Response<tonic::body::Body>>,
        S::Future: Send + 'static,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, request: Request<B>) -> Self::Future {
            let refuse = self
                .left
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if refuse {
                let answer = tonic::Status::unavailable("warming up").into_http();
                Box::pin(async move { Ok(answer) })
            } else {
                Box::pin(self.inner.call(request))
            }
        }
    }

    #[tokio::test]
    async fn a_tonic_channel_retries_unavailable_until_ok() {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("orders", tonic_health::ServingStatus::Serving)
            .await;
        let left = Arc::new(AtomicUsize::new(2));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusals = left.clone();
        tokio::spawn(
            Server::builder()
                .layer(tower::layer::layer_fn(move |inner| Unavailable {
                    inner,
                    left: refusals.clone(),
                }))
                .add_service(health)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );

        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        // The Channel takes tonic's body; the retry layer hands it a replayable one.
        let retrying = tower::ServiceBuilder::new()
            .layer(HttpRetryLayer::with_config(config()))
            .map_request(|r: Request<_>| r.map(tonic::body::Body::new))
            .service(channel);
        let mut client = HealthClient::new(retrying);

        let response = client
            .check(HealthCheckRequest {
                service: "orders".to_owned(),
            })
            .await
            .expect("retried past UNAVAILABLE");
        assert_eq!(response.into_inner().status(), ServingStatus::Serving);
        assert_eq!(
            left.load(SeqCst),
            0,
            "both refusals were met, then the call passed"
        );

        // Without retries the first refusal would have been the answer.
        left.store(1, SeqCst);
        let no_retry = tower::ServiceBuilder::new()
            .layer(HttpRetryLayer::with_config(
                RetryConfig::builder("test")
                    .max_attempts(1)
                    .build()
                    .unwrap(),
            ))
            .map_request(|r: Request<_>| r.map(tonic::body::Body::new))
            .service(
                Endpoint::from_shared(format!("http://{addr}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        let status = HealthClient::new(no_retry)
            .check(HealthCheckRequest {
                service: "orders".to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
}
