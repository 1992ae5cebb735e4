//! `rolling-restart`: ten instances (4 workers each, lognormal service times around 10 ms)
//! behind a client's balancer, at 60 % of their capacity, replaced one by one as a rolling
//! update does: from 10 s, every 5 s a new instance starts (on a new address, as a new pod
//! does, and cold: one worker growing to four over its first 2 000 requests), and 2 s later
//! an old one is shut down. No retries anywhere: every failure shows.
//!
//! The systems differ in how the client learns of members and how an instance leaves:
//!
//! - `dns-ttl`: the client resolves the service's name every 30 s (a 30 s TTL); an instance
//!   shut down exits at once (its requests in flight fail) and its address lingers in the
//!   client's answer until the next resolution, as the new ones are missing from it.
//! - `registry-no-drain`: instances register and deregister in a registry the client
//!   watches (a change reaches it in 50 ms); one shut down deregisters and exits at once.
//! - `palisade`: the registry, and the drain: shut down, an instance marks itself draining
//!   (out of the client's set 50 ms later), serves through a 1 s grace, refuses what still
//!   comes, and exits once its requests in flight are done; the client health-checks every
//!   instance (every 1 s) and ramps new ones up over a 10 s slow start.
//!
//! The figures: the share of requests that failed during the restart (10 s to 65 s), their
//! p99 then, and the p99 before it (steady state, from 2 s to 10 s).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use palisade_balance::discover::WatchDiscover;
use palisade_balance::health::{HealthCheck, probe_fn};
use palisade_balance::{Balance, BalanceConfig, SlowStart};
use serde_json::{Map, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::{BoxError, Service};

use crate::balance::{
    BALANCER_SEED, DECAY, DEFAULT_RTT, MEAN_SERVICE, Run, SERVICE_SEED, SIGMA, WORKERS, drive,
    latency_ms, per_second_over, poisson_arrivals, round,
};
use crate::report::{Chart, Report};
use crate::server::{Server, ServiceTime};

const INSTANCES: usize = 10;
const LOAD: f64 = 0.6;
const FIRST_RESTART: Duration = Duration::from_secs(10);
const EVERY: Duration = Duration::from_secs(5);
/// From a replacement's start to its predecessor's shutdown.
const OVERLAP: Duration = Duration::from_secs(2);
const DURATION: Duration = Duration::from_secs(75);
/// The restart: from the first replacement to a little after the last shutdown.
const RESTART_END: Duration = Duration::from_secs(65);
/// Steady state: after the fleet's own start (the first probes, the first estimates).
const STEADY_FROM: Duration = Duration::from_secs(2);
const DNS_TTL: Duration = Duration::from_secs(30);
/// When in its 30 s cycle the client resolves the name.
const DNS_PHASE: Duration = Duration::from_secs(7);
const PROPAGATION: Duration = Duration::from_millis(50);
const GRACE: Duration = Duration::from_secs(1);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const WARMUP_REQUESTS: u64 = 2_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    DnsTtl,
    RegistryNoDrain,
    Palisade,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::DnsTtl => "dns-ttl",
            System::RegistryNoDrain => "registry-no-drain",
            System::Palisade => "palisade",
        }
    }
}

/// Where an instance is in its life.
const UP: u8 = 0;
/// Unready, still serving (draining, within its grace).
const DRAINING: u8 = 1;
/// Refusing new requests, finishing the ones it has.
const REFUSING: u8 = 2;
const DOWN: u8 = 3;

/// The failures a client sees.
#[derive(Debug)]
enum Failure {
    /// Nothing listens at the address any more.
    Refused,
    /// The process went away with the request.
    Reset,
    /// The drain's 503: nothing ran.
    Draining,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Failure::Refused => "connection refused",
            Failure::Reset => "connection reset",
            Failure::Draining => "503: draining",
        })
    }
}

impl std::error::Error for Failure {}

type InstanceFuture = Pin<Box<dyn Future<Output = Result<usize, BoxError>> + Send>>;

/// One instance: its server, where it is in its life, and the signal that kills what it
/// has in flight.
#[derive(Clone)]
struct Instance {
    id: usize,
    server: Server,
    phase: Arc<AtomicU8>,
    killed: watch::Sender<bool>,
    calls: Arc<AtomicU64>,
}

impl Instance {
    fn new(id: usize, calls: &Arc<AtomicU64>) -> Self {
        let service = ServiceTime::lognormal(MEAN_SERVICE, SIGMA, SERVICE_SEED + id as u64);
        let server = match id {
            // The replacements start cold.
            id if id >= INSTANCES => Server::growing(WORKERS, service, WARMUP_REQUESTS),
            _ => Server::new(WORKERS, service),
        };
        Self {
            id,
            server,
            phase: Arc::new(AtomicU8::new(UP)),
            killed: watch::Sender::new(false),
            calls: calls.clone(),
        }
    }

    fn phase(&self) -> u8 {
        self.phase.load(SeqCst)
    }

    /// The process exits: nothing listens any more, and what was in flight is lost.
    fn kill(&self) {
        self.phase.store(DOWN, SeqCst);
        self.killed.send_replace(true);
    }
}

impl Service<()> for Instance {
    type Response = usize;
    type Error = BoxError;
    type Future = InstanceFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (): ()) -> InstanceFuture {
        self.calls.fetch_add(1, SeqCst);
        match self.phase() {
            DOWN => return Box::pin(std::future::ready(Err(Failure::Refused.into()))),
            REFUSING => return Box::pin(std::future::ready(Err(Failure::Draining.into()))),
            _ => {}
        }
        let (id, answer, mut killed) = (self.id, self.server.call(()), self.killed.subscribe());
        Box::pin(async move {
            tokio::select! {
                answer = answer => answer.map(|()| id),
                _ = killed.wait_for(|killed| *killed) => Err(Failure::Reset.into()),
            }
        })
    }
}

/// Every instance of the run, by id (old ones `0..10`, their replacements `10..20`), and
/// the registry's view: the ids registered and not draining.
#[derive(Clone)]
struct Fleet {
    instances: Arc<Mutex<Vec<Instance>>>,
    registered: watch::Sender<BTreeSet<usize>>,
}

impl Fleet {
    fn instance(&self, id: usize) -> Instance {
        self.instances.lock().unwrap()[id].clone()
    }

    /// The registry changes, and the change reaches the client `PROPAGATION` later.
    fn register(&self, id: usize, on: bool) {
        let registered = self.registered.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PROPAGATION).await;
            registered.send_modify(|set| {
                if on {
                    set.insert(id);
                } else {
                    set.remove(&id);
                }
            });
        });
    }

    /// Shuts instance `id` down as `system` does.
    async fn shut_down(&self, system: System, id: usize) {
        let instance = self.instance(id);
        match system {
            // The orchestrator updates the record; clients see it at their next resolution.
            System::DnsTtl | System::RegistryNoDrain => {
                self.register(id, false);
                instance.kill();
            }
            System::Palisade => {
                // Draining: readiness fails and the registry says so; still serving.
                instance.phase.store(DRAINING, SeqCst);
                self.register(id, false);
                tokio::time::sleep(GRACE).await;
                instance.phase.store(REFUSING, SeqCst);
                let deadline = Instant::now() + DRAIN_TIMEOUT - GRACE;
                while instance.server.in_server() > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                instance.kill();
            }
        }
    }
}

async fn simulate(system: System, arrivals: &[Duration]) -> Run {
    let calls = Arc::new(AtomicU64::new(0));
    let instances: Vec<Instance> = (0..2 * INSTANCES)
        .map(|id| Instance::new(id, &calls))
        .collect();
    let first: BTreeSet<usize> = (0..INSTANCES).collect();
    let fleet = Fleet {
        instances: Arc::new(Mutex::new(instances)),
        registered: watch::Sender::new(first.clone()),
    };
    // What the client's discovery sees: the registry as it changes, or a DNS answer
    // refreshed every TTL.
    let (client_view, sets) = watch::channel(first);
    let follow = {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let mut registry = fleet.registered.subscribe();
            match system {
                System::DnsTtl => {
                    tokio::time::sleep(DNS_PHASE).await;
                    loop {
                        client_view.send_replace(registry.borrow_and_update().clone());
                        tokio::time::sleep(DNS_TTL).await;
                    }
                }
                _ => {
                    while registry.changed().await.is_ok() {
                        client_view.send_replace(registry.borrow_and_update().clone());
                    }
                }
            }
        })
    };
    let made = fleet.clone();
    let discover = WatchDiscover::new("scenario", sets, move |&id: &usize| made.instance(id));
    let config = BalanceConfig::builder("scenario")
        .default_rtt(DEFAULT_RTT)
        .decay(DECAY);
    let config = match system {
        System::Palisade => config
            .health_check(
                HealthCheck::new(Duration::from_secs(1))
                    .unhealthy_interval(Duration::from_secs(1))
                    .unhealthy_threshold(1),
            )
            .slow_start(SlowStart::new(Duration::from_secs(10))),
        _ => config,
    };
    let balance = Balance::with_config(discover, config.build().expect("a valid configuration"))
        .seed(BALANCER_SEED);
    let balance = match system {
        System::Palisade => {
            let probed = fleet.clone();
            // The readiness endpoint: ready while up, failing from the drain's start.
            balance.probe(probe_fn(move |&id: &usize| {
                let up = probed.instance(id).phase() == UP;
                std::future::ready(if up {
                    Ok(())
                } else {
                    Err(BoxError::from("503"))
                })
            }))
        }
        _ => balance,
    };
    let restarts = {
        let fleet = fleet.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FIRST_RESTART).await;
            for old in 0..INSTANCES {
                // In a DNS answer, the new address is there from its start; in a registry,
                // it registers once it serves.
                let new = INSTANCES + old;
                fleet.register(new, true);
                tokio::time::sleep(OVERLAP).await;
                let shutting = fleet.clone();
                tokio::spawn(async move { shutting.shut_down(system, old).await });
                tokio::time::sleep(EVERY - OVERLAP).await;
            }
        })
    };
    let run = drive(system.name(), balance, arrivals, &calls).await;
    follow.abort();
    restarts.abort();
    run
}

fn row(run: &Run) -> Map<String, serde_json::Value> {
    let during = || {
        run.records
            .iter()
            .filter(|r| (FIRST_RESTART..RESTART_END).contains(&r.arrival))
    };
    let (all, failed) = during().fold((0u64, 0u64), |(all, failed), r| {
        (all + 1, failed + u64::from(!r.ok()))
    });
    let steady = (run.records.iter()).filter(|r| (STEADY_FROM..FIRST_RESTART).contains(&r.arrival));
    let mut row = Map::new();
    row.insert("system".into(), json!(run.system));
    row.insert(
        "success_rate".into(),
        json!(round(1.0 - failed as f64 / all.max(1) as f64, 6)),
    );
    row.insert("failed".into(), json!(failed));
    row.insert("p99_ms".into(), json!(round(latency_ms(during(), 0.99), 3)));
    row.insert(
        "steady_p99_ms".into(),
        json!(round(latency_ms(steady, 0.99), 3)),
    );
    row
}

/// `rolling-restart`: ten instances replaced one by one under load.
pub(crate) async fn rolling_restart() -> Report {
    let per_instance = WORKERS as f64
        / ServiceTime::lognormal(MEAN_SERVICE, SIGMA, 0)
            .mean()
            .as_secs_f64();
    let rate = LOAD * INSTANCES as f64 * per_instance;
    let arrivals = poisson_arrivals(rate, DURATION);
    let mut runs = Vec::new();
    for system in [System::DnsTtl, System::RegistryNoDrain, System::Palisade] {
        runs.push(simulate(system, &arrivals).await);
    }
    Report {
        scenario: "rolling-restart",
        results: runs.iter().map(row).collect(),
        charts: vec![
            Chart {
                file: "rolling-restart-success.svg",
                title: format!(
                    "rolling-restart: success rate ({rate:.0} req/s; an instance replaced every 5 s from 10 s)"
                ),
                y_label: "success (%)",
                series: per_second_over(&runs, DURATION, |records| {
                    let (all, ok) =
                        records.fold((0, 0), |(all, ok), r| (all + 1, ok + usize::from(r.ok())));
                    100.0 * ok as f64 / f64::from(all.max(1) as u32)
                }),
            },
            Chart {
                file: "rolling-restart-p99.svg",
                title: "rolling-restart: p99 latency".into(),
                y_label: "p99 latency (ms)",
                series: per_second_over(&runs, DURATION, |records| latency_ms(records, 0.99)),
            },
        ],
    }
}
