//! palisade's demo: a small fleet of misbehaving backends, a gateway in front of them with
//! every palisade layer, and clients that hammer it — so you can watch each layer work.
//!
//! ```text
//! cargo run --release --example demo                     # about 30 s of load, then a summary
//! cargo run --release --example demo -- --serve --port 8080   # keep the gateway up
//! cargo run --release --example demo -- --redis redis://127.0.0.1:6379/   # records on Redis
//! cargo run --release --example demo -- --redis-cluster 127.0.0.1:7000,127.0.0.1:7001   # on a Redis Cluster, claims held by a replica
//! cargo run --release --example demo -- --postgres postgres://postgres@127.0.0.1/test   # orders and records in Postgres
//! cargo run --release --example demo -- --soak 600        # ten minutes, faults every minute
//! cargo run --release --example demo -- --config my.toml  # the layers' settings from a file
//! cargo run --release --example demo --features etcd -- --etcd http://127.0.0.1:2379   # members in etcd
//! ```
//!
//! In `--serve` mode the gateway offers `POST /orders` (JSON; needs an `Idempotency-Key`),
//! `GET /orders`, `GET /orders/{id}`, `GET /metrics` (Prometheus) and `GET /healthz`.
//!
//! Every layer's settings come from `demo/demo.toml` (or `--config FILE`, a file of the same
//! shape): change a limit, a budget or a breaker's threshold there and run again.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod config;
mod fleet;
mod gateway;
mod load;
mod members;
mod scrape;
mod soak;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use palisade::idempotency::store::{Durability, MemoryStore, PostgresStore, RedisStore, Store};
use palisade::ratelimit::store::RedisStore as RateLimitRedis;

use crate::load::Tally;
use crate::scrape::Scrape;

/// The names that metrics say: the fleet's backends by address, to show names where metrics
/// say addresses, and the `name` labels of the gateway's layers, as the configuration gives
/// them.
pub(crate) struct Names {
    backends: Vec<(String, &'static str)>,
    pub(crate) shed: String,
    pub(crate) idempotency: String,
    pub(crate) breaker: String,
    pub(crate) deadline: String,
    pub(crate) ratelimit: String,
}

impl Names {
    pub(crate) fn of(&self, addr: &str) -> String {
        self.backends
            .iter()
            .find(|(a, _)| a == addr)
            .map_or_else(|| addr.to_owned(), |(_, name)| (*name).to_owned())
    }
}

struct Args {
    serve: bool,
    port: u16,
    store: StoreChoice,
    duration: Duration,
    clients: usize,
    soak: bool,
    config: Option<String>,
    etcd: Option<String>,
}

const USAGE: &str = "usage: demo [--duration SECONDS | --soak SECONDS] [--clients N] [--redis URL | --redis-cluster HOST:PORT,... | --postgres URL] [--etcd URL] [--config FILE] [--serve [--port P]]";

/// Where the gateway keeps its idempotency records.
enum StoreChoice {
    Memory,
    Redis(String),
    /// The nodes of a Redis Cluster, `host:port` each.
    RedisCluster(Vec<String>),
    /// Orders and records both, in one database.
    Postgres(String),
}

impl StoreChoice {
    /// This choice, unless another store was chosen already.
    fn replace(&mut self, choice: Self) -> Result<(), String> {
        if !matches!(self, Self::Memory) {
            return Err("--redis, --redis-cluster and --postgres: one store at a time".into());
        }
        *self = choice;
        Ok(())
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::Memory => "in memory",
            Self::Redis(_) => "on Redis",
            Self::RedisCluster(_) => "on a Redis Cluster, each claim held by a replica",
            Self::Postgres(_) => "and orders in Postgres",
        }
    }
}

/// How many orders the gateway keeps in a soak: the most recent, so that memory measures
/// palisade rather than an order book that grows by design.
const SOAK_KEEP_ORDERS: usize = 10_000;

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        serve: false,
        port: 8080,
        store: StoreChoice::Memory,
        duration: Duration::from_secs(30),
        clients: 32,
        soak: false,
        config: None,
        etcd: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--serve" => args.serve = true,
            "--port" => {
                args.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port takes a port number")?
            }
            "--redis" => args.store.replace(StoreChoice::Redis(value("--redis")?))?,
            "--redis-cluster" => {
                let nodes = value("--redis-cluster")?
                    .split(',')
                    .map(str::trim)
                    .filter(|node| !node.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>();
                if nodes.is_empty() {
                    return Err("--redis-cluster takes host:port,host:port,...".into());
                }
                args.store.replace(StoreChoice::RedisCluster(nodes))?
            }
            "--postgres" => args
                .store
                .replace(StoreChoice::Postgres(value("--postgres")?))?,
            "--config" => args.config = Some(value("--config")?),
            "--etcd" => args.etcd = Some(value("--etcd")?),
            "--duration" | "--soak" => {
                let secs: f64 = value(&arg)?
                    .parse()
                    .map_err(|_| format!("{arg} takes seconds"))?;
                args.duration = Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or(format!("{arg} takes a positive number of seconds"))?;
                args.soak = arg == "--soak";
            }
            "--clients" => {
                args.clients = value("--clients")?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--clients takes a positive number")?
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument `{other}`")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let stack = config::Stack::read(args.config.as_deref())?;
    let metrics = PrometheusBuilder::new().install_recorder()?;
    // The fleet's instances share one store, as they would share a Redis.
    let fleet_memory = Arc::new(MemoryStore::new());
    let mut in_memory = vec![fleet_memory.clone()];
    let fleet_store: Arc<dyn Store> = fleet_memory;
    let mut db = None;
    let gateway_store: Arc<dyn Store> = match &args.store {
        StoreChoice::Redis(url) => Arc::new(RedisStore::connect(url).await?),
        // Durable claims: a failover of the primary that holds a claim cannot let a
        // duplicate order through.
        StoreChoice::RedisCluster(nodes) => Arc::new(
            RedisStore::cluster(nodes)
                .await?
                .durable(Durability::replicas(1)),
        ),
        StoreChoice::Postgres(url) => {
            // Orders and idempotency records in one database: each order commits with the
            // record of its answer.
            let store = PostgresStore::connect(url).await?;
            store.ensure_schema().await?;
            sqlx::query(gateway::ORDERS_TABLE)
                .execute(store.pool())
                .await?;
            db = Some(store.pool().clone());
            Arc::new(store)
        }
        StoreChoice::Memory => {
            let store = Arc::new(MemoryStore::new());
            in_memory.push(store.clone());
            store
        }
    };
    // With Redis, the rate limit's counts live there too: one quota for every gateway.
    let limits: Option<Arc<dyn palisade::ratelimit::store::Store>> = match &args.store {
        StoreChoice::Redis(url) => Some(Arc::new(RateLimitRedis::connect(url).await?)),
        StoreChoice::RedisCluster(nodes) => Some(Arc::new(RateLimitRedis::cluster(nodes).await?)),
        StoreChoice::Postgres(_) | StoreChoice::Memory => None,
    };
    let limits_where = if limits.is_some() {
        "fleet-wide on Redis"
    } else {
        "in this process"
    };
    let faults = if args.soak {
        fleet::Faults::Every(Duration::from_secs(60))
    } else {
        fleet::Faults::Once
    };
    let members = members::Members::new(args.etcd.as_deref()).await?;
    let fleet = fleet::start(fleet_store, faults, members.clone()).await?;
    let backends = fleet.names();
    let port = if args.serve { args.port } else { 0 };
    let keep_orders = if args.soak {
        SOAK_KEEP_ORDERS
    } else {
        usize::MAX
    };
    let gateway = gateway::start(
        &members,
        &stack,
        gateway_store,
        limits,
        db,
        metrics.clone(),
        port,
        keep_orders,
    )
    .await?;

    println!("palisade demo");
    // A rolling update replaces the healthy backend a little past the middle of the run.
    let replace_at = args.duration.mul_f64(0.55);
    for (addr, name) in &backends {
        let when = if *name == fleet::REPLACEMENT {
            format!(
                "  (joins at {:.0} s; healthy drains and leaves)",
                replace_at.as_secs_f64()
            )
        } else {
            String::new()
        };
        println!("  backend {name:<9} http://{addr}{when}");
    }
    println!(
        "  members          {}; health-checked at /healthz, slow start",
        members.describe()
    );
    println!(
        "  gateway          http://{gateway}  (deadline → rate limit → shed → idempotency; client: breaker → retry → deadline → balance, reads hedged), records {}, rate limits {limits_where}",
        args.store.describe()
    );
    println!(
        "  the flaky backend fails from {} s to {} s{}\n",
        fleet::FLAKY_FROM.as_secs(),
        fleet::FLAKY_UNTIL.as_secs(),
        if args.soak { " of every minute" } else { "" }
    );

    if args.serve {
        println!("try:");
        println!(
            "  curl -i -X POST http://{gateway}/orders -H 'content-type: application/json' -H 'idempotency-key: \"order-1\"' -d '{{\"item\":\"book\",\"qty\":1}}'"
        );
        println!("  curl http://{gateway}/orders");
        println!("  curl http://{gateway}/metrics");
        println!("\nCtrl-C to stop.");
        tokio::signal::ctrl_c().await?;
        return Ok(());
    }

    let _replacing = fleet.replace_healthy(replace_at);
    let names = Names {
        backends: backends.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
        shed: stack.server.shed.name().to_owned(),
        idempotency: stack.server.idempotency.name().to_owned(),
        breaker: stack.client.breaker.name().to_owned(),
        deadline: stack.server.deadline.name().to_owned(),
        ratelimit: stack.server.ratelimit.name().to_owned(),
    };
    let soak = args
        .soak
        .then(|| soak::Soak::start(args.duration, in_memory));
    let tally = load::run(
        gateway,
        &names,
        args.clients,
        args.duration,
        metrics.clone(),
    )
    .await;
    summary(
        &tally,
        &Scrape::new(&metrics.render()),
        args.duration,
        &names,
        soak,
    );
    Ok(())
}

fn summary(tally: &Tally, m: &Scrape, duration: Duration, names: &Names, soak: Option<soak::Soak>) {
    let sent = tally.sent.load(Relaxed);
    let created = tally.created.load(Relaxed);
    let replayed = tally.replayed.load(Relaxed);
    let refused = tally.refused.load(Relaxed);
    let failed = tally.failed.load(Relaxed);
    let latency = tally
        .latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ms = |q: f64| {
        if latency.is_empty() {
            0.0
        } else {
            latency.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let (reads, reads_ok) = (tally.reads.load(Relaxed), tally.reads_ok.load(Relaxed));
    let read_latency = tally
        .read_latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let read_ms = |q: f64| {
        if read_latency.is_empty() {
            0.0
        } else {
            read_latency.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let fleet_created = m.sum(
        palisade::idempotency::metrics::REQUESTS_TOTAL,
        &[("result", "executed")],
    ) - m.sum(
        palisade::idempotency::metrics::REQUESTS_TOTAL,
        &[("name", names.idempotency.as_str()), ("result", "executed")],
    );
    let mut rows = vec![
        (
            "requests sent",
            format!(
                "{sent} in {} s ({:.0}/s)",
                duration.as_secs(),
                sent as f64 / duration.as_secs_f64()
            ),
        ),
        (
            "succeeded",
            format!(
                "{:.2} % ({created} new orders, {replayed} replays of a retried order)",
                100.0 * (created + replayed) as f64 / sent.max(1) as f64
            ),
        ),
        (
            "refused, come back later",
            format!(
                "{refused} (503 from the shedder or the fleet being down; 409 while a duplicate ran)"
            ),
        ),
        (
            "failed",
            if failed + refused == 0 {
                "0 — none, whatever the flaky and slow backends did: the healthy one was up"
                    .to_owned()
            } else {
                format!("{failed}")
            },
        ),
        (
            "latency of successes",
            format!(
                "p50 {:.1} ms · p99 {:.1} ms · p99.9 {:.1} ms",
                ms(0.5),
                ms(0.99),
                ms(0.999)
            ),
        ),
        (
            "reads (hedged, 250 ms deadline)",
            format!(
                "{reads}, {:.2} % answered · p50 {:.1} ms · p95 {:.1} ms · p99 {:.1} ms",
                100.0 * reads_ok as f64 / reads.max(1) as f64,
                read_ms(0.5),
                read_ms(0.95),
                read_ms(0.99)
            ),
        ),
        (
            "retry: hedges",
            format!(
                "sent {} · won {} (a slow answer raced and beaten) · refused {} (the budget)",
                m.sum(
                    palisade::retry::metrics::HEDGES_TOTAL,
                    &[("result", "sent")]
                ),
                m.sum(palisade::retry::metrics::HEDGES_TOTAL, &[("result", "won")]),
                m.sum(
                    palisade::retry::metrics::HEDGES_TOTAL,
                    &[("result", "refused")]
                ),
            ),
        ),
        (
            "deadlines",
            format!(
                "{} requests answered 504 · handlers cancelled: gateway {}, fleet {} · calls cut {}",
                tally.cut.load(Relaxed),
                m.sum(
                    palisade::deadline::metrics::REQUESTS_TOTAL,
                    &[("name", names.deadline.as_str()), ("result", "exceeded")]
                ),
                m.sum_except(
                    palisade::deadline::metrics::REQUESTS_TOTAL,
                    ("name", names.deadline.as_str()),
                    &[("result", "exceeded")]
                ),
                m.sum(
                    palisade::deadline::metrics::CALLS_TOTAL,
                    &[("result", "exceeded")]
                ),
            ),
        ),
        (
            "balance: requests per backend",
            m.by_label(
                palisade::balance::metrics::REQUESTS_TOTAL,
                "endpoint",
                |a| names.of(a),
            ),
        ),
        (
            "balance: ejections",
            format!(
                "{} (the flaky backend out — its health checks failed before its requests did — and back)",
                m.sum(palisade::balance::metrics::EJECTIONS_TOTAL, &[])
            ),
        ),
        (
            "membership",
            format!(
                "healthy replaced midway by {}: drained, {} requests refused while draining · health checks {} passed, {} failed",
                fleet::REPLACEMENT,
                m.sum(palisade::registry::metrics::DRAIN_REFUSED_TOTAL, &[]),
                m.sum(
                    palisade::balance::metrics::HEALTH_CHECKS_TOTAL,
                    &[("result", "pass")]
                ),
                m.sum(
                    palisade::balance::metrics::HEALTH_CHECKS_TOTAL,
                    &[("result", "fail")]
                ),
            ),
        ),
        (
            "retry: retries made",
            format!(
                "{} (refused by the budget: {})",
                m.sum(
                    palisade::retry::metrics::ATTEMPTS_TOTAL,
                    &[("outcome", "retried")]
                ),
                m.sum(palisade::retry::metrics::BUDGET_EXHAUSTED_TOTAL, &[])
            ),
        ),
        (
            "breaker: the fleet's breaker",
            format!(
                "{} now; opened {} times",
                m.state(
                    palisade::breaker::metrics::STATE,
                    &[("name", names.breaker.as_str())]
                ),
                m.sum(
                    palisade::breaker::metrics::TRANSITIONS_TOTAL,
                    &[("name", names.breaker.as_str()), ("to", "open")]
                )
            ),
        ),
        (
            "shed: refused",
            format!(
                "gateway {} · small backend {}",
                m.sum(
                    palisade::shed::metrics::REJECTED_TOTAL,
                    &[("name", names.shed.as_str())]
                ),
                m.sum(
                    palisade::shed::metrics::REJECTED_TOTAL,
                    &[("name", "small")]
                )
            ),
        ),
        (
            "idempotency: replays",
            format!(
                "gateway {} (client retries) · fleet {} (gateway retries)",
                m.sum(
                    palisade::idempotency::metrics::REQUESTS_TOTAL,
                    &[("name", names.idempotency.as_str()), ("result", "replayed")]
                ),
                m.sum_except(
                    palisade::idempotency::metrics::REQUESTS_TOTAL,
                    ("name", names.idempotency.as_str()),
                    &[("result", "replayed")]
                )
            ),
        ),
        (
            "orders created by the fleet",
            format!(
                "{fleet_created} for {created} new orders asked: {}",
                if fleet_created as u64 == created {
                    "no duplicates"
                } else {
                    "see the replays and releases above"
                }
            ),
        ),
    ];
    rows.push((
        "rate limited (429)",
        format!(
            "greedy client: {} of its {} requests · the other clients: {} ({} refusals counted at the gateway)",
            tally.greedy_limited.load(Relaxed),
            tally.greedy_sent.load(Relaxed),
            tally.limited.load(Relaxed),
            m.sum(
                palisade::ratelimit::metrics::REQUESTS_TOTAL,
                &[("name", names.ratelimit.as_str()), ("outcome", "refused")]
            ),
        ),
    ));
    if let Some(soak) = soak {
        rows.extend(soak.rows(sent, refused + failed));
    }
    println!("\n## Summary\n");
    println!("| | |\n|---|---|");
    for (what, value) in rows {
        println!("| {what} | {value} |");
    }
    println!(
        "\nEvery figure above is also at the gateway's /metrics (run with --serve to browse it)."
    );
}
