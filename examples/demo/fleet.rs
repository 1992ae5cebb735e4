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
//!
//! Each backend joins the fleet's membership ([`Members`]) and leaves it through its drain;
//! its `/healthz` is the drain's readiness — and the flaky one's also fails while the
//! dependency it checks is down, from 2 s before its requests start failing. Midway through
//! the run the healthy backend is replaced, as a rolling update does it: `healthy-2` joins,
//! then `healthy` drains (unready, a grace, refusals, the requests in flight finished) and
//! leaves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::members::Members;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use palisade::idempotency::store::Store;
use palisade::prelude::*;
use palisade::registry::Phase;
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
/// How long before its requests fail the flaky backend's readiness does.
const UNREADY_EARLY: Duration = Duration::from_secs(2);

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

    /// Whether the flaky backend's readiness fails: its dependency check sees the trouble
    /// coming before its requests fail.
    fn flaky_unready(self, elapsed: Duration) -> bool {
        self.flaky_down(elapsed) || self.flaky_down(elapsed + UNREADY_EARLY)
    }
}

/// A running backend: its name, address, drain, and its SIGTERM.
pub(crate) struct Backend {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) drain: Drain,
    sigterm: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Backend {
    /// Shuts the backend down through its drain.
    fn terminate(&mut self) {
        if let Some(sigterm) = self.sigterm.take() {
            let _ = sigterm.send(());
        }
    }
}

/// The fleet: its backends, the replacement that joins midway, and the membership.
pub(crate) struct Fleet {
    pub(crate) backends: Vec<Backend>,
    members: Members,
}

impl Fleet {
    /// Every backend's address and name, the replacement's too.
    pub(crate) fn names(&self) -> Vec<(SocketAddr, &'static str)> {
        self.backends.iter().map(|b| (b.addr, b.name)).collect()
    }

    /// Replaces `healthy` with `healthy-2` at `at` after the start, as a rolling update
    /// does: the new one joins, and a second later the old one is sent its SIGTERM.
    pub(crate) fn replace_healthy(mut self, at: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            tokio::time::sleep(at).await;
            let Some(new) = self.backends.iter().find(|b| b.name == REPLACEMENT) else {
                return;
            };
            if let Err(error) = self.members.join(new.name, new.addr, &new.drain).await {
                eprintln!("{REPLACEMENT} could not join: {error}");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Some(old) = self.backends.iter_mut().find(|b| b.name == "healthy") {
                old.terminate();
                old.drain.drained().await;
            }
            // The others live as long as the demo.
            std::future::pending::<()>().await;
        })
    }
}

/// The healthy backend's replacement.
pub(crate) const REPLACEMENT: &str = "healthy-2";

/// Starts the four backends, each a member of `members`, and the healthy one's replacement
/// (serving, but not a member until [`Fleet::replace_healthy`]).
pub(crate) async fn start(
    store: Arc<dyn Store>,
    faults: Faults,
    members: Members,
) -> Result<Fleet, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut backends = Vec::new();
    for (kind, name) in Kind::ALL
        .into_iter()
        .map(|kind| (kind, kind.name()))
        .chain([(Kind::Healthy, REPLACEMENT)])
    {
        let backend = backend(kind, name, started, faults, store.clone()).await?;
        if name != REPLACEMENT {
            members.join(name, backend.addr, &backend.drain).await?;
        }
        backends.push(backend);
    }
    Ok(Fleet { backends, members })
}

async fn backend(
    kind: Kind,
    name: &'static str,
    started: Instant,
    faults: Faults,
    store: Arc<dyn Store>,
) -> std::io::Result<Backend> {
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
        order.insert("served_by".into(), json!(name));
        (StatusCode::CREATED, Json(Value::Object(order))).into_response()
    };
    let stock = move |Path(item): Path<String>| async move {
        let (delay, fails) = behaviour(started.elapsed());
        tokio::time::sleep(delay).await;
        if fails {
            return (StatusCode::SERVICE_UNAVAILABLE, "flaky is down").into_response();
        }
        let stock = json!({ "item": item, "in_stock": 7, "served_by": name });
        Json(stock).into_response()
    };

    let idempotency = IdempotencyLayer::with_shared_store(
        store,
        IdempotencyConfig::builder(name, Scope::global())
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
    // The gateway's deadline, sent on, ends work the gateway no longer waits for.
    let app = app.layer(EnforceDeadlineLayer::new(name));
    // Outermost, the drain: on SIGTERM, unready first, then refusals, then the end.
    let drain = Drain::new(
        DrainConfig::builder(name)
            .grace(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a valid drain configuration"),
    );
    // Readiness: the drain's, and for the flaky backend its dependency's too.
    let leaving = drain.clone();
    let healthz = move || {
        let draining = leaving.phase() != Phase::Serving;
        let unready = kind == Kind::Flaky && faults.flaky_unready(started.elapsed());
        async move {
            match (draining, unready) {
                (true, _) => (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response(),
                (_, true) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "its dependency is down").into_response()
                }
                _ => "ok".into_response(),
            }
        }
    };
    let app = app.route("/healthz", get(healthz)).layer(drain.layer());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (sigterm, signal) = tokio::sync::oneshot::channel::<()>();
    let shutdown = drain.clone().shutdown_after(signal);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            eprintln!("backend {name} stopped: {error}");
        }
    });
    Ok(Backend {
        name,
        addr,
        drain,
        sigterm: Some(sigterm),
    })
}
