//! `BoxClient`: a whole client stack in one nameable, shareable type.
#![cfg(all(feature = "client", feature = "breaker", feature = "retry"))]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use palisade::client::BoxClient;
use palisade::prelude::*;
use palisade_core::BoxError;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

fn assert_shareable<T: Clone + Send + Sync + 'static>() {}

/// A network that answers 503 `failures` times, then 200 with the request's path.
fn network<B: Send + 'static>(
    failures: usize,
) -> (
    impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
    + Clone
    + Send
    + Sync
    + 'static,
    Arc<AtomicUsize>,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let svc = service_fn(move |request: Request<B>| {
        let n = seen.fetch_add(1, Relaxed);
        async move {
            let status = if n < failures {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            let mut response =
                Response::new(Full::new(Bytes::from(request.uri().path().to_owned())));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    });
    (svc, calls)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

#[test]
fn a_boxed_client_fits_in_axum_state() {
    assert_shareable::<BoxClient>();
    assert_shareable::<BoxClient<String>>();
}

#[tokio::test(start_paused = true)]
async fn the_boxed_stack_is_the_stack() {
    let (network, calls) = network(1);
    let client = BoxClient::new(
        ServiceBuilder::new()
            .http_circuit_breaker("inventory")
            .http_retry("inventory")
            .service(network),
    );
    // The retry layer inside still works: the first 503 is retried, the body streams through.
    let response = client.clone().oneshot(get("/stock/7")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "/stock/7");
    assert_eq!(calls.load(Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn the_layer_form_boxes_what_the_builder_makes() {
    let (network, _) = network(0);
    let client: BoxClient = ServiceBuilder::new()
        .layer(BoxClient::layer())
        .http_circuit_breaker("inventory")
        .service(network);
    let response = client.oneshot(get("/a")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_found_in_the_boxed_error() {
    // A plain stack whose inner service fails: the generic breaker opens and refuses with a
    // typed error, which survives the boxing.
    let failing = service_fn(|_: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, BoxError>("connection refused".into())
    });
    let config = BreakerConfig::builder("db")
        .consecutive_failures(1)
        .build()
        .unwrap();
    let mut client = BoxClient::new(
        ServiceBuilder::new()
            .layer(CircuitBreakerLayer::with_config(config))
            .service(failing),
    );
    let first = client
        .ready()
        .await
        .unwrap()
        .call(get("/"))
        .await
        .unwrap_err();
    assert_eq!(first.to_string(), "connection refused");
    let second = client
        .ready()
        .await
        .unwrap()
        .call(get("/"))
        .await
        .unwrap_err();
    assert!(second.downcast_ref::<BreakerOpen>().is_some(), "{second}");
}

#[tokio::test(start_paused = true)]
async fn a_body_error_is_a_box_error() {
    // A response whose body fails mid-stream: the boxed body reports it as a BoxError.
    let broken = service_fn(|_: Request<Full<Bytes>>| async {
        let body = http_body_util::StreamBody::new(tokio_stream_once());
        Ok::<_, Infallible>(Response::new(body))
    });
    let response = BoxClient::new(broken).oneshot(get("/")).await.unwrap();
    let error = response.into_body().collect().await.unwrap_err();
    assert_eq!(error.to_string(), "reset mid-body");
}

/// One frame, then an error: a connection reset while the body streams.
fn tokio_stream_once()
-> impl futures_core::Stream<Item = Result<http_body::Frame<Bytes>, std::io::Error>> + Send + Sync {
    futures_util::stream::iter([
        Ok(http_body::Frame::data(Bytes::from("half"))),
        Err(std::io::Error::other("reset mid-body")),
    ])
}
