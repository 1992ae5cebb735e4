//! The `tonic_server` example, briefly, on loopback: it serves, and an open breaker answers
//! `UNAVAILABLE`.

#[path = "../tonic_server.rs"]
#[allow(dead_code, reason = "the example's main is not run here")]
mod tonic_server;

use palisade::prelude::*;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn the_tonic_server_example_serves_and_refuses_in_grpc_terms() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let breaker = HttpCircuitBreakerLayer::with_config(tonic_server::breaker_config());
    let handle = breaker.handle();
    tokio::spawn(tonic_server::serve(listener, breaker));

    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: "orders".into(),
    };
    client.check(check()).await.expect("served");

    handle.force_open();
    let refused = client.check(check()).await.unwrap_err();
    // Forced open, the breaker has no probe scheduled, so it gives no pushback; opened by
    // failures it would say when to come back.
    assert_eq!(refused.code(), tonic::Code::Unavailable);
}
