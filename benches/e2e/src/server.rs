//! The three servers under test, each in its own process (so that a stack's metrics
//! recorder, which is global, stays out of the others), and their handles.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use palisade_breaker::{BreakerConfig, HttpCircuitBreakerLayer};
use palisade_idempotency::store::{MemoryStore, Store};
use palisade_idempotency::{IdempotencyConfig, IdempotencyLayer, Scope};
use palisade_ratelimit::http::KeySource;
use palisade_ratelimit::{HttpRateLimitLayer, Policy, Quota, RateLimitConfig};
use palisade_shed::{HttpShedLayer, ShedConfig};
use tower::ServiceBuilder;

use crate::postgres;
use crate::tower_stack::tower_stack;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// axum alone.
    Bare,
    /// axum behind rate limit → shed → idempotency → breaker, with a Prometheus recorder.
    Full,
    /// axum behind the same stack assembled from tower and tower-resilience (which has no
    /// idempotency), with a Prometheus recorder: see [`tower_stack`](crate::tower_stack).
    Tower,
}

impl Variant {
    /// Every variant, in the order of the report.
    pub(crate) const ALL: [Variant; 3] = [Self::Bare, Self::Full, Self::Tower];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Full => "full",
            Self::Tower => "tower",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|variant| variant.name() == name)
    }

    /// The app this variant serves, with its metrics recorder installed if it has one.
    fn app(self) -> Result<Router, String> {
        match self {
            Self::Bare => routes(false),
            Self::Full => {
                install_recorder()?;
                full_stack()
            }
            Self::Tower => {
                install_recorder()?;
                tower_stack()
            }
        }
    }
}

/// The app every server runs: hello world, an order echoed back as created, and the same
/// after 5 ms of I/O (a call to another service).
pub(crate) fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route(
            "/orders",
            post(|body: String| async move { (StatusCode::CREATED, body) }),
        )
        .route(
            "/orders-io",
            post(|body: String| async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                (StatusCode::CREATED, body)
            }),
        )
}

/// The app's routes, and in a `POST-postgres` run (`E2E_SCHEMA` set) `/orders-pg`: its
/// order inserted in the request's keyed transaction if `keyed`, else in a transaction of
/// the handler's own.
pub(crate) fn routes(keyed: bool) -> Result<Router, String> {
    let Ok(schema) = std::env::var("E2E_SCHEMA") else {
        return Ok(app());
    };
    let orders = if keyed {
        Router::new().route("/orders-pg", post(postgres::keyed_transaction))
    } else {
        Router::new()
            .route("/orders-pg", post(postgres::own_transaction))
            .with_state(postgres::pool(&schema)?)
    };
    Ok(app().merge(orders))
}

/// The app behind palisade's server stack, each layer with its defaults; idempotency
/// records in memory, or in PostgreSQL in a `POST-postgres` run; a rate limit for each
/// peer address that this healthy load never reaches (wrk's connections all come from one
/// address: one key, every request counted), with the `RateLimit` fields on every answer
/// (no limit with `E2E_FULL_WITHOUT_LIMIT`).
fn full_stack() -> Result<Router, String> {
    let shed = ShedConfig::builder("e2e")
        .build()
        .map_err(|e| e.to_string())?;
    let idempotency = IdempotencyConfig::builder("e2e", Scope::global())
        .build()
        .map_err(|e| e.to_string())?;
    let breaker = BreakerConfig::builder("e2e")
        .build()
        .map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = match std::env::var("E2E_SCHEMA") {
        Ok(schema) => Arc::new(postgres::store(&postgres::pool(&schema)?, &schema)?),
        Err(_) => Arc::new(MemoryStore::new()),
    };
    let stack = ServiceBuilder::new()
        .layer(HttpShedLayer::with_config(shed))
        .layer(IdempotencyLayer::with_shared_store(store, idempotency))
        .layer(HttpCircuitBreakerLayer::with_config(breaker));
    if !limited() {
        return Ok(routes(true)?.layer(stack));
    }
    let ratelimit = RateLimitConfig::builder("e2e")
        .policy(
            Policy::new("per-client", Quota::per_second(1_000_000).burst(1_000_000))
                .key(KeySource::peer()),
        )
        .build()
        .map_err(|e| e.to_string())?;
    // The outermost layer, in the same `Router::layer` as the rest, as the README stacks
    // it: a second `Router::layer` call would box every route once more, and axum clones
    // each route's boxed service for every request (about 60 ns a request, under perf).
    Ok(routes(true)?.layer(
        ServiceBuilder::new()
            .layer(HttpRateLimitLayer::with_config(ratelimit))
            .layer(stack),
    ))
}

/// Whether the full stack has its rate limit: unless `E2E_FULL_WITHOUT_LIMIT` is set,
/// which measures what the limit adds to the rest of the stack (the variable reaches the
/// servers from the run's environment).
pub(crate) fn limited() -> bool {
    std::env::var_os("E2E_FULL_WITHOUT_LIMIT").is_none()
}

/// A Prometheus recorder taking every metric, as a service that exports them would have —
/// scraped every 10 s, as Prometheus would: a histogram keeps every value it is given until
/// a scrape drains it, so a recorder never scraped would grow (and allocate) without end.
fn install_recorder() -> Result<(), String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| format!("the metrics recorder: {error}"))?;
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(10));
            drop(handle.render());
        }
    });
    Ok(())
}

/// `e2e serve bare|full|tower`: serves on a free port of 127.0.0.1, printing the address.
pub(crate) fn serve(variant: Option<&str>) -> ExitCode {
    let Some(variant) = variant.and_then(Variant::from_name) else {
        eprintln!("usage: e2e serve bare|full|tower");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: a tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // In the runtime: a database pool starts its tasks when it is made.
    let app = match runtime.block_on(async { variant.app() }) {
        Ok(app) => app,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        if variant == Variant::Full && limited() {
            // The peer's address in each request, for the rate limit's key: what an app that
            // limits by address pays (an extension a request).
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app).await
        } else {
            axum::serve(listener, app).await
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: serving: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `taskset` can pin the servers and wrk to a CPU each.
pub(crate) fn pinned() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// A command, on `cpu` when the machine lets us pin it.
pub(crate) fn on_cpu(cpu: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
    if pinned() {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpu.to_string()).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A server process; killed when dropped.
pub(crate) struct Server {
    variant: Variant,
    addr: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `variant` in a child process (on CPU 0 if `pin`, with `env` set) and waits
    /// for its address.
    pub(crate) fn start(
        variant: Variant,
        pin: bool,
        env: &[(&str, String)],
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
        let mut command = if pin {
            on_cpu(0, exe)
        } else {
            Command::new(exe)
        };
        let mut child = command
            .args(["serve", variant.name()])
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the {} server: {e}", variant.name()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("the server's stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading the {} server's address: {e}", variant.name()))?;
        let addr = line.trim().parse().map_err(|_| {
            format!(
                "the {} server did not start (it said {line:?})",
                variant.name()
            )
        })?;
        Ok(Self {
            variant,
            addr,
            child,
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CPU time, user and system, the server process has used so far, from
    /// `/proc/PID/stat` (`None` where there is no `/proc`). `taskset` execs the server, so
    /// the child's pid is the server's.
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // After the command name (in parentheses), utime and stime are the 12th and 13th
        // fields, in clock ticks.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_secs_f64(
            ticks as f64 / clock_ticks()? as f64,
        ))
    }

    pub(crate) fn variant(&self) -> Variant {
        self.variant
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel's clock ticks a second (`getconf CLK_TCK`), asked once.
fn clock_ticks() -> Option<u64> {
    static TICKS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let output = Command::new("getconf").arg("CLK_TCK").output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    })
}
