//! The breaker in HTTP mode in front of real servers on loopback: an axum `Router` called by
//! a hyper client, and a tonic server called by a tonic client. Real time (the paused clock
//! would jump while frames are in flight): the breaker opens for one second, the checks made
//! while it is open take milliseconds, and the tests sleep past it with a margin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_breaker::{BreakerConfig, HttpCircuitBreakerLayer, OpenDuration, State};
use palisade_core::{GrpcClassifier, GrpcCode, HttpClassifier};
use tokio::net::TcpListener;

const OPEN_FOR: Duration = Duration::from_secs(1);
/// Past the open duration, with room for a slow machine.
const AFTER_OPEN: Duration = Duration::from_millis(1300);

/// A remaining time in milliseconds, as a refusal states it: at most the open duration,
/// and not much less, since the refusal comes right after the breaker opened.
fn assert_remaining_ms(ms: u64) {
    assert!(
        (500..=1000).contains(&ms),
        "{ms} ms left of a 1 s open duration"
    );
}

fn config() -> BreakerConfig {
    BreakerConfig::builder("server")
        .consecutive_failures(3)
        .no_failure_rate()
        .open_duration(OpenDuration::fixed(OPEN_FOR))
        .half_open_probes(1)
        .successes_to_close(1)
        .build()
        .unwrap()
}

/// Serves `router` on a free loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

async fn get_root(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
) -> Answer {
    let response = client
        .get(format!("http://{addr}/").parse().unwrap())
        .await
        .expect("the server answers");
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

#[tokio::test]
async fn axum_answers_503_with_retry_after_and_problem_json_while_open_then_recovers() {
    let healthy = Arc::new(AtomicBool::new(true));
    let handled = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (healthy, handled) = (healthy.clone(), handled.clone());
        move || async move {
            handled.fetch_add(1, SeqCst);
            if healthy.load(SeqCst) {
                (StatusCode::OK, "hello")
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "broken")
            }
        }
    };
    let layer = HttpCircuitBreakerLayer::with_config(config());
    let breaker = layer.handle();
    // No HandleErrorLayer: a refusal is a response, so the layer drops into a Router as is.
    let addr = serve(Router::new().route("/", get(handler)).layer(layer)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    assert_eq!(get_root(&client, addr).await.status, StatusCode::OK);

    healthy.store(false, SeqCst);
    for _ in 0..3 {
        let answer = get_root(&client, addr).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(breaker.state(), State::Open);
    let before = handled.load(SeqCst);

    let refused = get_root(&client, addr).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        handled.load(SeqCst),
        before,
        "a refused request never reaches the handler"
    );
    assert_eq!(
        refused.headers[http::header::RETRY_AFTER],
        OPEN_FOR.as_secs().to_string()
    );
    assert_eq!(
        refused.headers[http::header::CONTENT_TYPE],
        "application/problem+json"
    );
    let problem: serde_json::Value =
        serde_json::from_slice(&refused.body).expect("the body is JSON");
    assert_eq!(problem["type"], "urn:palisade:problem:breaker-open");
    assert_eq!(problem["status"], 503);
    assert!(problem["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("server"))
    );
    assert_remaining_ms(problem["retry_after_ms"].as_u64().unwrap());

    // The dependency recovers; once the open duration is over, a probe gets through, and
    // its success closes the breaker.
    healthy.store(true, SeqCst);
    tokio::time::sleep(AFTER_OPEN).await;
    for _ in 0..5 {
        assert_eq!(get_root(&client, addr).await.status, StatusCode::OK);
    }
    assert_eq!(breaker.state(), State::Closed);
}

mod grpc {
    use super::*;
    use tonic::Code;
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    async fn check(client: &mut HealthClient<tonic::transport::Channel>) -> tonic::Status {
        client
            .check(HealthCheckRequest {
                service: "not.Registered".to_owned(),
            })
            .await
            .expect_err("the service is unknown, or the breaker is open")
    }

    #[tokio::test]
    async fn tonic_answers_unavailable_with_pushback_while_open() {
        let (_reporter, health) = tonic_health::server::health_reporter();
        // tonic-health answers NOT_FOUND for a service it does not know; count that as a
        // failure so that the test can trip the breaker through the wire.
        let classifier = HttpClassifier::default()
            .grpc(GrpcClassifier::default().failure(GrpcCode::NotFound, true));
        let layer = HttpCircuitBreakerLayer::with_config(config()).classifier(classifier);
        let breaker = layer.handle();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            Server::builder()
                .layer(layer)
                .add_service(health)
                .serve_with_incoming(tokio_stream_of(listener)),
        );
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);

        for _ in 0..3 {
            assert_eq!(check(&mut client).await.code(), Code::NotFound);
        }
        assert_eq!(breaker.state(), State::Open);

        let refused = check(&mut client).await;
        assert_eq!(refused.code(), Code::Unavailable);
        let pushback = refused.metadata().get("grpc-retry-pushback-ms").unwrap();
        assert_remaining_ms(pushback.to_str().unwrap().parse().unwrap());

        // After the open duration the probe reaches the server again.
        tokio::time::sleep(AFTER_OPEN).await;
        assert_eq!(check(&mut client).await.code(), Code::NotFound);
    }

    /// The listener as the stream of connections tonic serves.
    fn tokio_stream_of(
        listener: TcpListener,
    ) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
        tokio_stream::wrappers::TcpListenerStream::new(listener)
    }
}
