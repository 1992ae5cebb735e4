//! The layer on real servers over loopback: axum behind hyper, and tonic with its gRPC
//! metadata and trailers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade_idempotency::store::MemoryStore;
use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, REPLAYED, RequestBody, Scope};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

fn layer() -> IdempotencyLayer {
    IdempotencyLayer::with_config(
        MemoryStore::new(),
        IdempotencyConfig::builder("test", Scope::global())
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn axum_over_hyper_replays_and_refuses_over_the_wire() {
    let created = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/orders",
            post({
                let created = created.clone();
                move |body: String| async move {
                    let id = created.fetch_add(1, SeqCst) + 1;
                    (
                        StatusCode::CREATED,
                        format!("{{\"id\":{id},\"order\":{body}}}"),
                    )
                }
            }),
        )
        .layer(layer());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let send = |key: &'static str| {
        let request = Request::post(format!("http://{addr}/orders"))
            .header("idempotency-key", key)
            .body(Full::new(Bytes::from_static(b"{\"qty\":2}")))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let (head, body) = response.into_parts();
            (head, body.collect().await.unwrap().to_bytes())
        }
    };

    let (first, first_body) = send("\"order-1\"").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(first_body, "{\"id\":1,\"order\":{\"qty\":2}}");
    let (second, second_body) = send("order-1").await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.headers[REPLAYED], "true");
    assert_eq!(second_body, first_body);
    assert_eq!(created.load(SeqCst), 1);

    let (bad, body) = send("\"unclosed").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.headers["content-type"], "application/problem+json");
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        problem["type"],
        "urn:palisade:problem:idempotency-key-malformed"
    );
}

#[tokio::test]
async fn tonic_reads_the_metadata_entry_and_replays_status_and_trailers() {
    use tonic::transport::{Endpoint, Server};
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let executed = Arc::new(AtomicUsize::new(0));
    let stack = ServiceBuilder::new()
        .layer(layer())
        // tonic's router takes its own body type; the layer hands on a buffered one.
        .map_request({
            let executed = executed.clone();
            move |request: Request<RequestBody<tonic::body::Body>>| {
                executed.fetch_add(1, SeqCst);
                request.map(tonic::body::Body::new)
            }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(stack)
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap()
    });
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let check = |key: &'static str, service: &'static str| {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: service.into(),
        });
        request
            .metadata_mut()
            .insert("idempotency-key", key.parse().unwrap());
        request
    };

    let first = client.check(check("\"probe-1\"", "orders")).await.unwrap();
    assert_eq!(first.get_ref().status, ServingStatus::Serving as i32);
    assert!(first.metadata().get(REPLAYED).is_none());
    let second = client.check(check("probe-1", "orders")).await.unwrap();
    assert_eq!(second.get_ref(), first.get_ref());
    assert_eq!(second.metadata().get(REPLAYED).unwrap(), "true");
    assert_eq!(
        executed.load(SeqCst),
        1,
        "the replay did not reach the service"
    );

    // A gRPC failure (NOT_FOUND is final, so stored; an unknown service answers it).
    let missing = client.check(check("probe-2", "nope")).await.unwrap_err();
    let again = client.check(check("probe-2", "nope")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(again.code(), tonic::Code::NotFound);
    assert_eq!(again.metadata().get(REPLAYED).unwrap(), "true");
    assert_eq!(executed.load(SeqCst), 2);

    // A key reused for another request, and a malformed one, in gRPC terms.
    let mismatch = client.check(check("probe-1", "other")).await.unwrap_err();
    assert_eq!(mismatch.code(), tonic::Code::FailedPrecondition);
    let malformed = client.check(check("\"open", "orders")).await.unwrap_err();
    assert_eq!(malformed.code(), tonic::Code::InvalidArgument);
}
