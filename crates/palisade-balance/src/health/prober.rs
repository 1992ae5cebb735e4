//! The probing itself: a task per endpoint that probes on its timer and moves the
//! endpoint's breaker — forced open when the endpoint turns unhealthy, closed when it
//! recovers — so that the balancer sees one state for both signals.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use palisade_breaker::{BreakerHandle, State};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::probe::{Check, Probe};
use super::settings::{HealthCheck, Verdicts};

/// A balancer's prober: its settings, its probe, and the permits that bound its probes in
/// flight.
pub(crate) struct Prober<K> {
    shared: Arc<Shared>,
    probe: Arc<dyn Probe<K>>,
    /// Draws for the next endpoint's jitter.
    seeds: AtomicU64,
}

/// What every endpoint's task reads.
struct Shared {
    check: HealthCheck,
    permits: Semaphore,
    balancer: Arc<str>,
    passed: metrics::Counter,
    failed: metrics::Counter,
}

impl<K> Prober<K> {
    pub(crate) fn new(balancer: Arc<str>, check: HealthCheck, probe: Arc<dyn Probe<K>>) -> Self {
        let (passed, failed) = crate::metrics::health_checks(&balancer);
        Self {
            shared: Arc::new(Shared {
                permits: Semaphore::new(check.max_concurrent),
                check,
                balancer,
                passed,
                failed,
            }),
            probe,
            seeds: AtomicU64::new(0x6865_616c_7468),
        }
    }
}

impl<K: Debug> Prober<K> {
    /// Starts probing the endpoint under `key`, whose breaker is `breaker` (one that never
    /// trips by itself when `ejects` is false); the probing stops when the returned
    /// [`Watch`] is dropped. A new endpoint that must pass its first probe is held out from
    /// now.
    pub(crate) fn watch(&self, key: &K, breaker: BreakerHandle, ejects: bool) -> Watch {
        let verdicts = Verdicts::new(&self.shared.check);
        if !verdicts.healthy() {
            breaker.force_open();
        }
        let endpoint = Endpoint {
            name: format!("{key:?}"),
            check: self.probe.check(key),
            verdicts,
            breaker,
            ejects,
            seed: self.seeds.fetch_add(1, Ordering::Relaxed),
            draws: 0,
        };
        Watch(tokio::spawn(endpoint.run(self.shared.clone())))
    }
}

/// An endpoint's probing; stops when dropped.
pub(crate) struct Watch(JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What an endpoint's task keeps.
struct Endpoint {
    name: String,
    check: Check,
    verdicts: Verdicts,
    breaker: BreakerHandle,
    ejects: bool,
    seed: u64,
    draws: u64,
}

impl Endpoint {
    async fn run(mut self, shared: Arc<Shared>) {
        let check = shared.check;
        let mut wait = check.first_wait(self.draw());
        loop {
            tokio::time::sleep(wait).await;
            let passed = {
                // Never closed, so never an error; bounds the probes in flight.
                let _permit = shared.permits.acquire().await;
                matches!(
                    tokio::time::timeout(check.timeout, self.check.run()).await,
                    Ok(Ok(()))
                )
            };
            match passed {
                true => shared.passed.increment(1),
                false => shared.failed.increment(1),
            }
            match self.verdicts.record(passed, &check) {
                Some(true) => {
                    tracing::info!(balancer = %shared.balancer, endpoint = %self.name, "endpoint passed its health checks");
                    self.restore();
                }
                Some(false) => {
                    tracing::warn!(balancer = %shared.balancer, endpoint = %self.name, "endpoint failed its health checks");
                    self.breaker.force_open();
                }
                // Still failing, yet let back in: the balancer's panic mode undid the
                // ejection. Eject again, and let the balancer decide again.
                None if !self.verdicts.healthy() && self.breaker.state() != State::ForcedOpen => {
                    self.breaker.force_open();
                }
                None => {}
            }
            wait = check.wait(!self.verdicts.healthy(), self.draw());
        }
    }

    /// Closes the breaker; one that never trips by itself goes back to never tripping.
    fn restore(&self) {
        self.breaker.reset();
        if !self.ejects {
            self.breaker.force_closed();
        }
    }

    fn draw(&mut self) -> f64 {
        self.draws += 1;
        palisade_core::random::uniform(self.seed, self.draws)
    }
}
