//! The fleet: four real axum servers on 127.0.0.1, each misbehaving its own way.
//!
//! | backend | behaviour |
//! |---|---|
//! | `healthy` | answers in about 5 ms |
//! | `slow` | answers in about 150 ms |
//! | `flaky` | fails every request (503) from 5 s to 15 s after the start, then recovers (in a soak, again every minute) |
//! | `small` | has room for 4 requests at once; beyond that its own shedder refuses (503) |
//!
//! Every backend creates an order: it echoes the fields it was sent, with an id and its
//! name; and tells an item's stock (`GET /stock/{item}`), as fast or as slowly as it does
//! everything. Each runs under the deadline its caller sends: work for a caller that has
//! given up stops. The fleet shares one idempotency store (as several instances would share a
//! Redis), so the gateway's retries — which carry an `Idempotency-Key` — never create an
//! order twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use palisade::idempotency::store::Store;
use palisade::prelude::*;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// How a backend behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Healthy,
    Slow,
    Flaky,
    Small,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] = [Kind::Healthy, Kind::Slow, Kind::Flaky, Kind::Small];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Healthy => "healthy",
            Kind::Slow => "slow",
            Kind::Flaky => "flaky",
            Kind::Small => "small",
        }
    }
}

/// When the flaky backend fails, from the fleet's start.
pub(crate) const FLAKY_FROM: Duration = Duration::from_secs(5);
pub(crate) const FLAKY_UNTIL: Duration = Duration::from_secs(15);

/// How often the flaky backend fails.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Faults {
    /// Once, from [`FLAKY_FROM`] to [`FLAKY_UNTIL`].
    Once,
    /// The same stretch in every period of this length, for as long as the fleet runs.
    Every(Duration),
}

impl Faults {
    /// Whether the flaky backend is down `elapsed` after the fleet's start.
    fn flaky_down(self, elapsed: Duration) -> bool {
        let into_period = match self {
            Faults::Once => elapsed,
            Faults::Every(period) => {
                Duration::from_nanos((elapsed.as_nanos() % period.as_nanos().max(1)) as u64)
            }
        };
        (FLAKY_FROM..FLAKY_UNTIL).contains(&into_period)
    }
}

/// Starts the four backends; returns their addresses and names.
pub(crate) async fn start(
    store: Arc<dyn Store>,
    faults: Faults,
) -> std::io::Result<Vec<(SocketAddr, &'static str)>> {
    let started = Instant::now();
    let mut fleet = Vec::new();
    for kind in Kind::ALL {
        fleet.push((
            backend(kind, started, faults, store.clone()).await?,
            kind.name(),
        ));
    }
    Ok(fleet)
}

async fn backend(
    kind: Kind,
    started: Instant,
    faults: Faults,
    store: Arc<dyn Store>,
) -> std::io::Result<SocketAddr> {
    // How long this backend takes, and whether it fails, `elapsed` after the start.
    let behaviour = move |elapsed: Duration| match kind {
        Kind::Healthy => (Duration::from_millis(5), false),
        Kind::Slow => (Duration::from_millis(150), false),
        Kind::Flaky => (Duration::from_millis(5), faults.flaky_down(elapsed)),
        Kind::Small => (Duration::from_millis(20), false),
    };
    let create = move |Json(order): Json<Value>| async move {
        let (delay, fails) = behaviour(started.elapsed());
        tokio::time::sleep(delay).await;
        if fails {
            return (StatusCode::SERVICE_UNAVAILABLE, "flaky is down").into_response();
        }
        let mut order = match order {
            Value::Object(fields) => fields,
            other => [("value".to_owned(), other)].into_iter().collect(),
        };
        order.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
        order.insert("served_by".into(), json!(kind.name()));
        (StatusCode::CREATED, Json(Value::Object(order))).into_response()
    };
    let stock = move |Path(item): Path<String>| async move {
        let (delay, fails) = behaviour(started.elapsed());
        tokio::time::sleep(delay).await;
        if fails {
            return (StatusCode::SERVICE_UNAVAILABLE, "flaky is down").into_response();
        }
        let stock = json!({ "item": item, "in_stock": 7, "served_by": kind.name() });
        Json(stock).into_response()
    };

    let idempotency = IdempotencyLayer::with_shared_store(
        store,
        IdempotencyConfig::builder(kind.name(), Scope::global())
            // The gateway is the fleet's only caller.
            .build()
            .expect("a valid idempotency configuration"),
    );
    let mut app = Router::new()
        .route("/orders", post(create))
        .layer(idempotency)
        .route("/stock/{item}", get(stock));
    if kind == Kind::Small {
        let shed = ShedConfig::builder("small")
            .limit(Fixed(4))
            .no_queue()
            .build()
            .expect("a valid shed configuration");
        app = app.layer(HttpShedLayer::with_config(shed));
    }
    // Outermost: the gateway's deadline, sent on, ends work the gateway no longer waits for.
    let app = app.layer(EnforceDeadlineLayer::new(kind.name()));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("backend {} stopped: {error}", kind.name());
        }
    });
    Ok(addr)
}
