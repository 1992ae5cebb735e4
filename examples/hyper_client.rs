//! A hyper-util HTTP client with palisade's client stack: endpoints found in DNS (SRV or
//! A/AAAA records, resolved again as their TTL runs out), failure-aware balancing that
//! ejects an endpoint while it fails, a circuit breaker over the whole dependency, and
//! retries under a budget.
//!
//! ```text
//! request ─▶ breaker ─▶ retry (budget) ─▶ balance (P2C, ejection) ─▶ hyper-util client
//!                                             ▲
//!                                    DNS discovery (hickory)
//! ```
//!
//! ```text
//! cargo run --example axum_server &                  # something to call, on 127.0.0.1:3000
//! cargo run --example hyper_client -- localhost 3000 # A/AAAA records, and a port
//! cargo run --example hyper_client -- _http._tcp.orders.internal   # SRV: ports and weights
//! ```
#![allow(clippy::print_stdout)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::balance::discover::dns::hickory_resolver::TokioResolver;
use palisade::balance::discover::{DnsConfig, DnsDiscover, DnsEndpoint, DnsQuery};
use palisade::balance::http::HttpEndpoint;
use palisade::client::BoxClient;
use palisade::core::ConfigError;
use palisade::prelude::*;
use palisade::retry::http::ReplayBody;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// The client stack over the endpoints `resolver` finds for `query`, boxed into one type
/// that a struct or axum's state can hold.
pub(crate) fn client(resolver: TokioResolver, query: DnsQuery) -> Result<BoxClient, ConfigError> {
    // One hyper-util client, one connection pool; each endpoint points it at its address.
    // The retry layer hands it bodies it can replay.
    let hyper = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let discover = DnsDiscover::new(
        "orders",
        resolver,
        query,
        DnsConfig::default(),
        move |e: &DnsEndpoint| HttpEndpoint::new(hyper.clone(), e.addr),
    );
    // P2C over a peak-EWMA that charges failures a penalty; an endpoint that keeps failing
    // is ejected for a while, never more than half of them at once.
    let balance = Balance::with_classifier(
        discover,
        BalanceConfig::from("orders"),
        // 5xx and connection errors are failures; 4xx are the caller's and are not.
        HttpClassifier::default(),
    );
    let stack = ServiceBuilder::new()
        .layer(BoxClient::layer())
        // Outermost, the breaker judges each request after its retries: one replica that
        // fails fast cannot open it while the balancer routes the retries to a healthy one.
        .http_circuit_breaker("orders")
        // Retries go to another endpoint, at most 20 % more requests than recent traffic.
        .http_retry("orders")
        // The balancer is one shared state; a buffer lets every clone of the client reach it.
        .buffer(1024)
        .service(balance);
    Ok(stack)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "localhost".into());
    // A name like `_http._tcp.orders.internal` is a service: SRV records give the ports.
    let query = if name.starts_with('_') {
        DnsQuery::srv(&name)?
    } else {
        let port = args.next().map_or(Ok(3000), |port| port.parse())?;
        DnsQuery::host(&name, port)?
    };
    // The system's resolver, as /etc/resolv.conf describes it.
    let resolver = TokioResolver::builder_tokio()?.build()?;
    let orders = client(resolver, query)?;

    for n in 1..=10 {
        let request = http::Request::get("/report").body(Full::default())?;
        match orders.clone().oneshot(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                println!("{n}: {status} {body:?}");
            }
            // An open breaker, an exhausted budget or no endpoint at all: typed errors.
            Err(error) => println!("{n}: failed: {error}"),
        }
    }
    Ok(())
}
