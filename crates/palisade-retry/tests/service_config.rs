//! A tonic client whose `Channel` is wrapped by the layer a gRPC service config makes,
//! against a tonic server (grpc.health.v1) scripted to refuse, to hang, and to answer.
#![cfg(feature = "service-config")]

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use palisade_retry::service_config::ServiceConfig;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::Service;

/// What the server does with a call, in the order calls arrive; past the script, it answers.
#[derive(Clone, Copy, Debug)]
enum Act {
    Unavailable,
    Hang,
    Answer,
}

#[derive(Clone, Default)]
struct Script {
    acts: Arc<Mutex<VecDeque<Act>>>,
    /// Each call's `grpc-previous-rpc-attempts`, if it had one.
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Script {
    fn new(acts: &[Act]) -> Self {
        let script = Self::default();
        script.acts.lock().unwrap().extend(acts);
        script
    }

    fn previous_attempts(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }
}

#[derive(Clone)]
struct Scripted<S> {
    inner: S,
    script: Script,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<Request<B>> for Scripted<S>
where
    S: Service<Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let previous = request
            .headers()
            .get("grpc-previous-rpc-attempts")
            .map(|v| v.to_str().unwrap().to_owned());
        self.script.seen.lock().unwrap().push(previous);
        let act = self.script.acts.lock().unwrap().pop_front();
        match act.unwrap_or(Act::Answer) {
            Act::Unavailable => {
                let answer = tonic::Status::unavailable("warming up").into_http();
                Box::pin(async move { Ok(answer) })
            }
            Act::Hang => Box::pin(std::future::pending()),
            Act::Answer => Box::pin(self.inner.call(request)),
        }
    }
}

async fn server(script: Script) -> SocketAddr {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .layer(tower::layer::layer_fn(move |inner| Scripted {
                inner,
                script: script.clone(),
            }))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

/// `Health/Check` through a channel wrapped by the layer `json` makes.
async fn check(addr: SocketAddr, json: &str) -> Result<ServingStatus, tonic::Status> {
    let config = ServiceConfig::from_json(json).expect("a valid service config");
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(config.layer("health"))
        .map_request(|r: Request<_>| r.map(tonic::body::Body::new))
        .service(channel);
    let mut client = HealthClient::new(client);
    let call = client.check(HealthCheckRequest {
        service: "orders".to_owned(),
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("answered, not left hanging");
    answer.map(|response| response.into_inner().status())
}

const RETRY_HEALTH: &str = r#"{
  "methodConfig": [{
    "name": [{"service": "grpc.health.v1.Health"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.01s",
      "maxBackoff": "0.05s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}"#;

#[tokio::test]
async fn a_retry_policy_retries_its_codes_and_counts_previous_attempts() {
    let script = Script::new(&[Act::Unavailable, Act::Unavailable]);
    let addr = server(script.clone()).await;
    assert_eq!(
        check(addr, RETRY_HEALTH).await.unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        script.previous_attempts(),
        [None, Some("1".to_owned()), Some("2".to_owned())]
    );
}

#[tokio::test]
async fn a_method_no_entry_names_is_sent_once() {
    let other = RETRY_HEALTH.replace("grpc.health.v1.Health", "shop.Orders");
    let script = Script::new(&[Act::Unavailable]);
    let addr = server(script.clone()).await;
    let status = check(addr, &other).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(script.previous_attempts().len(), 1);
}

#[tokio::test]
async fn a_hedging_policy_races_a_call_that_hangs() {
    let json = r#"{
      "methodConfig": [{
        "name": [{"service": "grpc.health.v1.Health", "method": "Check"}],
        "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.05s"}
      }]
    }"#;
    let script = Script::new(&[Act::Hang]);
    let addr = server(script.clone()).await;
    assert_eq!(check(addr, json).await.unwrap(), ServingStatus::Serving);
    assert_eq!(
        script.previous_attempts(),
        [None, Some("1".to_owned())],
        "the hedge tells the server an attempt came before it"
    );
}

#[tokio::test]
async fn the_timeout_bounds_a_call_that_hangs() {
    let json = r#"{
      "methodConfig": [{"name": [{}], "timeout": "0.2s"}]
    }"#;
    let script = Script::new(&[Act::Hang]);
    let addr = server(script.clone()).await;
    let status = check(addr, json).await.unwrap_err();
    assert!(
        status.message().contains("deadline"),
        "the call ended at its timeout: {status:?}"
    );
    assert_eq!(script.previous_attempts().len(), 1);
}
