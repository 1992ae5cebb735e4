//! A fleet on loopback: three backends, each serving behind its drain, and a client that
//! balances over them with active health checks and slow start. Mid-run one backend is shut
//! down the way a rolling restart does it, and a new one joins; the client keeps sending
//! all along, and no request fails.
//!
//! ```text
//!                      ┌─▶ backend a: drain layer ─▶ handler       /healthz: drain.readiness()
//! client ─▶ balance ───┼─▶ backend b: ...   (drained mid-run: unready, grace, refuse, finish)
//!   (P2C, health       └─▶ backend c: ...
//!    checks, slow start)   backend d joins later, and ramps up
//! ```
//!
//! ```text
//! cargo run --example fleet
//! ```
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use palisade::balance::discover::WatchDiscover;
use palisade::balance::health::{HealthCheck, HttpProbe};
use palisade::balance::http::http_endpoints;
use palisade::prelude::*;
use tokio::sync::watch;
use tower::{BoxError, Service, ServiceExt};

/// A backend: an axum server whose every route is inside its drain, and whose readiness
/// is the drain's.
struct Backend {
    addr: SocketAddr,
    drain: Drain,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Sent to shut the backend down (its SIGTERM).
    sigterm: tokio::sync::oneshot::Sender<()>,
}

async fn backend(name: &'static str) -> Result<Backend, BoxError> {
    let drain = Drain::new(
        DrainConfig::builder(name)
            // Longer than the health checks take to notice (below: 200 ms, one failure).
            .grace(Duration::from_secs(1))
            .timeout(Duration::from_secs(10))
            .build()?,
    );
    let app = Router::new()
        .route(
            "/",
            get(move || async move {
                // Some work, so that requests are in flight when the drain starts.
                tokio::time::sleep(Duration::from_millis(20)).await;
                name
            }),
        )
        .route_service("/healthz", drain.readiness())
        .layer(drain.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (sigterm, signal) = tokio::sync::oneshot::channel();
    let shutdown = drain.clone().shutdown_after(signal);
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok(Backend {
        addr,
        drain,
        server,
        sigterm,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut backends = BTreeMap::new();
    for name in ["a", "b", "c"] {
        backends.insert(name, backend(name).await?);
    }
    let addresses = |backends: &BTreeMap<&str, Backend>| -> BTreeSet<SocketAddr> {
        backends.values().map(|b| b.addr).collect()
    };
    // Where a registry would publish the fleet's members.
    let (publish, members) = watch::channel(addresses(&backends));

    let hyper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let config = BalanceConfig::builder("backends")
        .health_check(
            HealthCheck::new(Duration::from_millis(200))
                .unhealthy_interval(Duration::from_millis(200))
                .unhealthy_threshold(1),
        )
        .slow_start(SlowStart::new(Duration::from_secs(2)))
        .build()?;
    let balance = Balance::with_classifier(
        WatchDiscover::new("backends", members, http_endpoints(hyper)),
        config,
        HttpClassifier::default(),
    )
    .probe(HttpProbe::get("/healthz"));
    let client = tower::buffer::Buffer::new(balance, 64);

    // Eight callers, sending until told to stop; every answer counted by who gave it.
    let answers: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let (stop, stopped) = watch::channel(false);
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let (mut client, answers, stopped) = (client.clone(), answers.clone(), stopped.clone());
            tokio::spawn(async move {
                while !*stopped.borrow() {
                    let answer = call(&mut client).await;
                    let key = answer.unwrap_or_else(|error| format!("failed: {error}"));
                    *answers.lock().unwrap().entry(key).or_default() += 1;
                }
            })
        })
        .collect();
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let report = |phase: &str| {
        let mut answers = answers.lock().unwrap();
        println!("{phase:<44} {:?}", *answers);
        let failures: usize = (answers.iter())
            .filter(|(answer, _)| answer.starts_with("failed"))
            .map(|(_, n)| n)
            .sum();
        failed.fetch_add(failures, std::sync::atomic::Ordering::Relaxed);
        answers.clear();
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    report("a, b and c serve:");

    // A rolling restart takes b down: its readiness fails at once, the health checks take
    // it out, the requests it still has finish, then it deregisters and exits.
    let b = backends.remove("b").expect("b is in the fleet");
    let _ = b.sigterm.send(());
    let drained = b.drain.drained().await;
    b.server.await??;
    publish.send_replace(addresses(&backends));
    report("b drained, deregistered and stopped:");
    println!("  (b abandoned {} requests)", drained.abandoned());

    // Its replacement joins, and its share ramps up over the slow-start window.
    backends.insert("d", backend("d").await?);
    publish.send_replace(addresses(&backends));
    tokio::time::sleep(Duration::from_secs(1)).await;
    report("d joined (first second, ramping up):");
    tokio::time::sleep(Duration::from_secs(2)).await;
    report("d at its full share:");

    let _ = stop.send(true);
    for caller in callers {
        caller.await?;
    }
    // Run by scripts/test: a request failed anywhere in the restart is a failure.
    match failed.load(std::sync::atomic::Ordering::Relaxed) {
        0 => Ok(()),
        n => Err(format!("{n} requests failed").into()),
    }
}

/// A GET of `/` through the balancer: the name of the backend that answered.
async fn call<S, B>(client: &mut S) -> Result<String, BoxError>
where
    S: Service<http::Request<Empty<Bytes>>, Response = http::Response<B>, Error = BoxError>,
    B: http_body::Body<Error: Into<BoxError>>,
{
    let request = http::Request::get("http://backends/").body(Empty::new())?;
    let response = client.ready().await?.call(request).await?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(Into::into)?
        .to_bytes();
    match status.is_success() {
        true => Ok(String::from_utf8_lossy(&body).into_owned()),
        false => Err(format!("{status}").into()),
    }
}
