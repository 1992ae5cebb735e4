//! A tonic server with palisade's server stack: load shedding, idempotency keys and a
//! circuit breaker, whose refusals are gRPC statuses every client understands
//! (`RESOURCE_EXHAUSTED` from the shedder, `UNAVAILABLE` from an open breaker or for a key
//! still in flight, with `grpc-retry-pushback-ms` when they know when to come back).
//! tonic-health's service stands in for yours.
//!
//! ```text
//! cargo run --example tonic_server    # serves gRPC on 127.0.0.1:50051
//! ```
#![allow(clippy::print_stdout)]

use palisade::idempotency::RequestBody;
use palisade::prelude::*;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tower::ServiceBuilder;

/// Serves tonic-health's service on `listener` behind shed and `breaker` (whose handle lets
/// an operator, or a test, open and close it by hand).
pub(crate) async fn serve(
    listener: TcpListener,
    breaker: HttpCircuitBreakerLayer,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    // Outermost first: shed before anything runs; idempotency next (keys scoped by the
    // caller with `Scope::from_fn` over what auth put in the extensions), so that a replay
    // or a key in flight is answered before the breaker, which has nothing to learn from
    // them; the breaker over the handlers.
    let stack = ServiceBuilder::new()
        .layer(HttpShedLayer::new("grpc"))
        .layer(IdempotencyLayer::new(
            "grpc",
            MemoryStore::new(),
            Scope::global(),
        ))
        .layer(breaker)
        // tonic's router takes its own body type; idempotency hands on a buffered one.
        .map_request(|r: http::Request<RequestBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        });
    Server::builder()
        .layer(stack)
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

pub(crate) fn breaker_config() -> BreakerConfig {
    BreakerConfig::builder("grpc")
        .build()
        .expect("a valid breaker configuration")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:50051").await?;
    println!("serving gRPC on {}", listener.local_addr()?);
    serve(
        listener,
        HttpCircuitBreakerLayer::with_config(breaker_config()),
    )
    .await?;
    Ok(())
}
