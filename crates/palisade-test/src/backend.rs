//! The scripted backend service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::behaviour::{Readiness, Script};
use crate::stats::Stats;
use palisade_core::random::uniform;

/// A service that behaves as its [`Script`] says; clones share the script, the clock and
/// the [`Stats`].
pub struct Backend {
    script: Arc<Script>,
    start: Instant,
    stats: Arc<Stats>,
    /// The timer that ends a phase of `Readiness::Pending`.
    wake_at_phase_end: Option<Pin<Box<Sleep>>>,
}

impl Clone for Backend {
    fn clone(&self) -> Self {
        Self {
            script: Arc::clone(&self.script),
            start: self.start,
            stats: Arc::clone(&self.stats),
            wake_at_phase_end: None,
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("stats", &self.stats)
            .finish()
    }
}

/// A successful call: its number, counting from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The call's number at the backend.
    pub call: u64,
}

/// A failed call, or a failed `poll_ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendError {
    /// The call failed (the script's error rate).
    Failed {
        /// The call's number at the backend.
        call: u64,
    },
    /// `poll_ready` failed (the script's `Readiness::Err`).
    NotReady,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Failed { call } => write!(f, "backend call {call} failed"),
            BackendError::NotReady => f.write_str("backend is not ready"),
        }
    }
}

impl std::error::Error for BackendError {}

impl Backend {
    /// A backend that starts its script now.
    pub fn new(script: Script) -> Self {
        Self {
            script: Arc::new(script),
            start: Instant::now(),
            stats: Arc::new(Stats::default()),
            wake_at_phase_end: None,
        }
    }

    /// What reached the backend.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// An HTTP face for this backend: 200 for a success, 503 for a failure.
    pub fn http(self) -> crate::http::HttpBackend {
        crate::http::HttpBackend::new(self)
    }
}

impl<Req> Service<Req> for Backend {
    type Response = Reply;
    type Error = BackendError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BackendError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BackendError>> {
        let (behaviour, phase_end) = self.script.at(self.start.elapsed());
        match behaviour.readiness {
            Readiness::Ready => Poll::Ready(Ok(())),
            Readiness::Err => {
                self.stats.ready_errors.fetch_add(1, Relaxed);
                Poll::Ready(Err(BackendError::NotReady))
            }
            Readiness::Pending => {
                if let Some(end) = phase_end {
                    let deadline = self.start + end;
                    let sleep = self
                        .wake_at_phase_end
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    sleep.as_mut().reset(deadline);
                    if sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Pending
            }
        }
    }

    fn call(&mut self, _: Req) -> Self::Future {
        let call = self.stats.calls.fetch_add(1, Relaxed);
        let (behaviour, _) = self.script.at(self.start.elapsed());
        let seed = self.script.seed_value();
        let fails = uniform(seed, 2 * call) < behaviour.error_rate;
        let latency = behaviour.latency.sample(uniform(seed, 2 * call + 1));
        let in_flight = InFlight::new(Arc::clone(&self.stats));
        Box::pin(async move {
            if behaviour.hang {
                std::future::pending::<()>().await;
            }
            let answers_at_once = latency.is_zero() || (fails && behaviour.fail_fast);
            if !answers_at_once {
                tokio::time::sleep(latency).await;
            }
            in_flight.finish(fails);
            if fails {
                Err(BackendError::Failed { call })
            } else {
                Ok(Reply { call })
            }
        })
    }
}

/// Counts a call in flight until it finishes or is dropped.
struct InFlight(Arc<Stats>);

impl InFlight {
    fn new(stats: Arc<Stats>) -> Self {
        stats.in_flight.fetch_add(1, Relaxed);
        Self(stats)
    }

    fn finish(&self, failed: bool) {
        let counter = if failed {
            &self.0.failures
        } else {
            &self.0.successes
        };
        counter.fetch_add(1, Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behaviour::{Behaviour, Latency};
    use std::time::Duration;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn latency_and_error_rate_follow_the_script() {
        let backend = Backend::new(Script::always(
            Behaviour::healthy(Duration::from_millis(10)).error_rate(0.25),
        ));
        let start = Instant::now();
        let mut failures = 0;
        for _ in 0..400 {
            if backend.clone().oneshot(()).await.is_err() {
                failures += 1;
            }
        }
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(4000),
            "failures take the latency too"
        );
        assert!((70..130).contains(&failures), "{failures} of 400 failed");
        assert_eq!(backend.stats().failures(), failures);
        assert_eq!(backend.stats().in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn fast_failures_take_no_time() {
        let backend = Backend::new(Script::always(
            Behaviour::failing().latency(Latency::Fixed(Duration::from_secs(1))),
        ));
        let start = Instant::now();
        assert!(backend.clone().oneshot(()).await.is_err());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_follows_the_script() {
        let backend = Backend::new(
            Script::new()
                .then(
                    Duration::from_secs(1),
                    Behaviour::healthy(Duration::ZERO).readiness(Readiness::Err),
                )
                .then(
                    Duration::from_secs(1),
                    Behaviour::healthy(Duration::ZERO).readiness(Readiness::Pending),
                )
                .forever(Behaviour::healthy(Duration::ZERO)),
        );
        let mut svc = backend.clone();
        assert_eq!(
            ServiceExt::<()>::ready(&mut svc).await.err(),
            Some(BackendError::NotReady)
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let start = Instant::now();
        ServiceExt::<()>::ready(&mut svc).await.unwrap();
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "pending until the phase ends"
        );
        assert_eq!(backend.stats().ready_errors(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn hanging_calls_stay_in_flight_until_dropped() {
        let backend = Backend::new(Script::always(Behaviour::hanging()));
        let call = backend.clone().oneshot(());
        let timed_out = tokio::time::timeout(Duration::from_secs(5), call).await;
        assert!(timed_out.is_err());
        assert_eq!(backend.stats().calls(), 1);
        assert_eq!(
            backend.stats().in_flight(),
            0,
            "the dropped call is no longer in flight"
        );
    }
}
