//! A tonic server with palisade's server stack: load shedding and a circuit breaker, whose
//! refusals are gRPC statuses every client understands (`RESOURCE_EXHAUSTED` from the
//! shedder, `UNAVAILABLE` from an open breaker, with `grpc-retry-pushback-ms` when they
//! know when to come back).
//! tonic-health's service stands in for yours.
//!
//! ```text
//! cargo run --example tonic_server    # serves gRPC on 127.0.0.1:50051
//! ```
#![allow(clippy::print_stdout)]

use palisade::prelude::*;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

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
    let shed = ShedConfig::builder()
        .name("grpc")
        .build()
        .expect("a valid shed configuration");
    Server::builder()
        // Outermost first: shed before anything else runs.
        .layer(HttpShedLayer::new(shed))
        .layer(breaker)
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}

pub(crate) fn breaker_config() -> BreakerConfig {
    BreakerConfig::builder()
        .name("grpc")
        .build()
        .expect("a valid breaker configuration")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:50051").await?;
    println!("serving gRPC on {}", listener.local_addr()?);
    serve(listener, HttpCircuitBreakerLayer::new(breaker_config())).await?;
    Ok(())
}
