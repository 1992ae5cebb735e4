//! examples/stack.toml, the stack an operator tunes from a file, reads into every layer's
//! configuration, and the layers made from it serve requests.

use palisade::balance::BalanceConfig;
use palisade::breaker::BreakerConfig;
use palisade::idempotency::IdempotencyConfig;
use palisade::prelude::*;
use palisade::retry::RetryConfig;
use palisade::shed::{HttpShedLayer, ShedConfig};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stack {
    server: Server,
    client: Client,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    ratelimit: RateLimitConfig,
    shed: ShedConfig,
    idempotency: IdempotencyConfig,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Client {
    breaker: BreakerConfig,
    retry: RetryConfig,
    balance: BalanceConfig,
}

const STACK: &str = include_str!("../stack.toml");

#[tokio::test]
async fn the_example_file_makes_a_working_stack() {
    let stack: Stack = palisade::config::from_toml(STACK).unwrap();
    assert_eq!(stack.client.retry.max_attempts(), 3);
    assert_eq!(stack.client.breaker.name(), "inventory");
    let idempotency = format!("{:?}", stack.server.idempotency);
    assert!(
        idempotency.contains("Scope::header(\"x-api-key\")"),
        "{idempotency}"
    );
    let balance = format!("{:?}", stack.client.balance);
    assert!(balance.contains("max_ejected_share: 0.5"), "{balance}");

    assert_eq!(stack.server.ratelimit.policies().len(), 2);

    let svc = ServiceBuilder::new()
        .layer(HttpRateLimitLayer::with_config(stack.server.ratelimit))
        .layer(HttpShedLayer::with_config(stack.server.shed))
        .layer(HttpCircuitBreakerLayer::with_config(stack.client.breaker))
        .service(service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new("ok"))
        }));
    let response = svc.oneshot(http::Request::new(())).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
}

#[test]
fn a_mistake_in_the_file_names_its_path() {
    let typo = STACK.replace("percent = 0.2", "percent = 20");
    let error = palisade::config::from_toml::<Stack>(&typo).unwrap_err();
    assert_eq!(error.field(), "client.retry.budget.percent");
    let proxy = STACK.replace("10.0.0.0/8", "10.0.0.0/88");
    let error = palisade::config::from_toml::<Stack>(&proxy).unwrap_err();
    assert_eq!(
        error.field(),
        "server.ratelimit.policies[0].key.client_ip.trusted_proxies[0]"
    );
    let unknown = STACK.replace("max_attempts = 3", "max_attempt = 3");
    let error = palisade::config::from_toml::<Stack>(&unknown).unwrap_err();
    assert!(error.field().starts_with("client.retry"), "{error}");
    assert!(error.reason().contains("max_attempt"), "{error}");
}
