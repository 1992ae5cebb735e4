//! The load of an endpoint: a peak-EWMA of its latency that charges failures a penalty.
//!
//! Least-loaded balancing has a blind spot: an endpoint that fails fast looks fast. Its
//! latency is a few microseconds, its queue empty, and P2C with a plain peak-EWMA (tower's)
//! sends it more traffic than anyone — a black hole. Here a failure counts as a sample of
//! `failure_penalty` (1 s) instead of its real, short latency, so a failing endpoint looks
//! as slow as it is useless; its estimate decays while it gets no traffic, so it is tried
//! again now and then, and comes back as soon as it answers well.
//!
//! A server that says when to come back (`Retry-After`, `grpc-retry-pushback-ms`) is taken
//! at its word: until then its cost is the highest there is, so it is chosen only when the
//! other choice is held off too.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::slow_start::SlowStart;

/// One endpoint's load, shared with its requests in flight.
#[derive(Debug)]
pub(crate) struct Load {
    ewma: Mutex<Ewma>,
    pending: AtomicUsize,
    decay_nanos: f64,
    penalty: Duration,
    metric: LoadMetric,
    /// The endpoint's weight from discovery: its cost is divided by it.
    weight: f64,
    /// The ramp of a new or returning endpoint's weight.
    slow_start: Option<SlowStart>,
}

/// What the balancer compares when it picks the less loaded of two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoadMetric {
    /// A peak-EWMA of the endpoint's latency, failures charged the penalty, times its
    /// requests in flight (plus one): Finagle's and Linkerd's load, made failure-aware.
    #[default]
    PeakEwma,
    /// Only the requests in flight: simple, with no notion of latency or failure — an
    /// endpoint that fails fast has few requests in flight, so it attracts traffic, and
    /// only ejection takes it out. For endpoints that are alike and rarely fail.
    PendingRequests,
}

#[derive(Debug)]
struct Ewma {
    estimate_nanos: f64,
    updated: Instant,
    /// Until when the endpoint asked to be left alone.
    held_until: Option<Instant>,
    /// When it joined the rotation, or came back to it: where its slow start counts from.
    joined: Instant,
}

impl Ewma {
    /// The estimate at `now`: it decays towards zero while there are no samples, so that an
    /// endpoint that was slow or failing once is tried again after a while.
    fn at(&self, now: Instant, decay_nanos: f64) -> f64 {
        let idle = now.saturating_duration_since(self.updated).as_nanos() as f64;
        self.estimate_nanos * (-idle / decay_nanos).exp()
    }
}

impl Load {
    pub(crate) fn new(default_rtt: Duration, decay: Duration, penalty: Duration) -> Self {
        Self {
            ewma: Mutex::new(Ewma {
                estimate_nanos: default_rtt.as_nanos() as f64,
                updated: Instant::now(),
                held_until: None,
                joined: Instant::now(),
            }),
            pending: AtomicUsize::new(0),
            decay_nanos: decay.as_nanos().max(1) as f64,
            penalty,
            metric: LoadMetric::PeakEwma,
            weight: 1.0,
            slow_start: None,
        }
    }

    /// Ramps the endpoint's weight up over `slow_start`'s window, from now.
    pub(crate) fn slow_start(mut self, slow_start: Option<SlowStart>) -> Self {
        self.slow_start = slow_start;
        self
    }

    /// The endpoint came back (from ejection): its slow start begins again.
    pub(crate) fn rejoin(&self) {
        if self.slow_start.is_some() {
            self.ewma
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .joined = Instant::now();
        }
    }

    /// The latency estimate at `now`, in nanoseconds.
    pub(crate) fn estimate_nanos(&self, now: Instant) -> f64 {
        let ewma = self.ewma.lock().unwrap_or_else(PoisonError::into_inner);
        ewma.at(now, self.decay_nanos)
    }

    /// Compares by `metric`, for an endpoint of `weight` (as [`Weighted`] gives it).
    ///
    /// [`Weighted`]: crate::discover::Weighted
    pub(crate) fn with(mut self, metric: LoadMetric, weight: u32) -> Self {
        self.metric = metric;
        // RFC 2782: weight 0 is chosen "with very small probability" when others are not.
        self.weight = if weight == 0 { 0.01 } else { f64::from(weight) };
        self
    }

    /// The cost of sending one more request here: the latency estimate times the requests
    /// that would be in flight, divided by the endpoint's weight.
    pub(crate) fn cost(&self, now: Instant) -> f64 {
        let ewma = self.ewma.lock().unwrap_or_else(PoisonError::into_inner);
        if ewma.held_until.is_some_and(|until| now < until) {
            return f64::MAX;
        }
        let in_flight = (self.pending.load(Relaxed) + 1) as f64;
        let cost = match self.metric {
            LoadMetric::PeakEwma => ewma.at(now, self.decay_nanos) * in_flight,
            LoadMetric::PendingRequests => in_flight,
        };
        let ramp = self.slow_start.map_or(1.0, |slow_start| {
            slow_start.factor(now.saturating_duration_since(ewma.joined))
        });
        cost / (self.weight * ramp)
    }

    /// The endpoint asked to be left alone for `wait`.
    pub(crate) fn hold(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut ewma = self.ewma.lock().unwrap_or_else(PoisonError::into_inner);
        ewma.held_until = Some(ewma.held_until.map_or(until, |held| held.max(until)));
    }

    pub(crate) fn start(&self) {
        self.pending.fetch_add(1, Relaxed);
    }

    /// A request ended after `rtt`; a failure is charged the penalty instead.
    pub(crate) fn finish(&self, rtt: Duration, failed: bool) {
        self.pending.fetch_sub(1, Relaxed);
        let sample = if failed { rtt.max(self.penalty) } else { rtt }.as_nanos() as f64;
        let now = Instant::now();
        let mut ewma = self.ewma.lock().unwrap_or_else(PoisonError::into_inner);
        let current = ewma.at(now, self.decay_nanos);
        // Peak: a worse sample is believed at once; better ones bring it down gradually.
        ewma.estimate_nanos = if sample > current {
            sample
        } else {
            // `current` is already the estimate decayed by `weight`: adding the sample's
            // share blends them once, with time constant `decay`.
            let elapsed = now.saturating_duration_since(ewma.updated).as_nanos() as f64;
            let weight = (-elapsed / self.decay_nanos).exp();
            current + sample * (1.0 - weight)
        };
        ewma.updated = now;
    }

    /// A request ended without an answer after `elapsed`: a timeout cut it (`timed_out`:
    /// a failure, charged the penalty), or its caller went away — then its latency was at
    /// least `elapsed`, which counts as a peak (a worse estimate is believed at once, a
    /// better one is not: the answer might have been slower still).
    ///
    /// Without this an endpoint that answers nothing within its callers' timeout would
    /// never be charged for it: its estimate would decay towards zero while every request
    /// sent to it was cut, and P2C would prefer it — the black hole of a slow endpoint.
    pub(crate) fn cancel(&self, elapsed: Duration, timed_out: bool) {
        if timed_out {
            return self.finish(elapsed, true);
        }
        self.pending.fetch_sub(1, Relaxed);
        let sample = elapsed.as_nanos() as f64;
        let now = Instant::now();
        let mut ewma = self.ewma.lock().unwrap_or_else(PoisonError::into_inner);
        if sample > ewma.at(now, self.decay_nanos) {
            ewma.estimate_nanos = sample;
            ewma.updated = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn a_slow_start_divides_the_weight_until_its_window_ends() {
        let ramping = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1))
            .slow_start(Some(SlowStart::new(Duration::from_secs(10))));
        let steady = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1));
        let ratio = |at: Instant| ramping.cost(at) / steady.cost(at);
        assert!(
            (ratio(Instant::now()) - 10.0).abs() < 1e-6,
            "a tenth of its weight"
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!((ratio(Instant::now()) - 2.0).abs() < 1e-6, "half, half-way");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(
            (ratio(Instant::now()) - 1.0).abs() < 1e-6,
            "whole at the window's end"
        );
        ramping.rejoin();
        assert!(
            (ratio(Instant::now()) - 10.0).abs() < 1e-6,
            "back from ejection: again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_cost_the_penalty_and_the_estimate_decays() {
        let load = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1));
        let fresh = load.cost(Instant::now());
        load.start();
        assert!(
            load.cost(Instant::now()) > fresh,
            "a request in flight costs"
        );
        load.finish(MS, true);
        let failed = load.cost(Instant::now());
        assert!(failed >= 1e9, "a fast failure costs the penalty, {failed}");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(
            load.cost(Instant::now()) < failed / 10.0,
            "and decays when idle"
        );

        let healthy = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1));
        healthy.start();
        healthy.finish(5 * MS, false);
        assert!(healthy.cost(Instant::now()) < failed / 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn weights_divide_the_cost_and_pending_requests_ignore_latency() {
        let light = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1));
        let heavy = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1))
            .with(LoadMetric::PeakEwma, 3);
        assert!((light.cost(Instant::now()) / heavy.cost(Instant::now()) - 3.0).abs() < 1e-9);

        let counting = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1))
            .with(LoadMetric::PendingRequests, 1);
        counting.start();
        counting.finish(MS, true);
        counting.start();
        assert_eq!(
            counting.cost(Instant::now()),
            2.0,
            "one in flight, plus this one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_request_is_charged_its_time_and_a_timeout_the_penalty() {
        let fresh = || Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1));
        let dropped = fresh();
        dropped.start();
        dropped.cancel(500 * MS, false);
        let cost = dropped.cost(Instant::now());
        assert!(
            (cost / 1e6 - 500.0).abs() < 1.0,
            "its time as a peak: {cost}"
        );
        dropped.start();
        dropped.cancel(MS, false);
        assert_eq!(
            dropped.cost(Instant::now()),
            cost,
            "a shorter wait says nothing: the answer might have been slower still"
        );

        let timed_out = fresh();
        timed_out.start();
        timed_out.cancel(500 * MS, true);
        assert!(
            timed_out.cost(Instant::now()) >= 1e9,
            "a failure: the penalty"
        );
        assert_eq!(timed_out.pending.load(Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hint_holds_the_endpoint_off_until_it_passes() {
        let load = Load::new(30 * MS, Duration::from_secs(10), Duration::from_secs(1));
        load.hold(Duration::from_secs(2));
        assert_eq!(load.cost(Instant::now()), f64::MAX);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(load.cost(Instant::now()) < 1e9);
    }

    #[tokio::test(start_paused = true)]
    async fn better_samples_bring_the_estimate_down_with_the_decay_time_constant() {
        // From a 100 ms peak, 10 ms answers every 10 ms for one time constant (10 s): the
        // estimate covers 1 - 1/e of the way, to 10 + 90/e ≈ 43 ms.
        let load = Load::new(100 * MS, Duration::from_secs(10), Duration::from_secs(1));
        for _ in 0..1000 {
            tokio::time::advance(10 * MS).await;
            load.start();
            load.finish(10 * MS, false);
        }
        let estimate = load.cost(Instant::now()) / 1e6;
        assert!((40.0..46.0).contains(&estimate), "{estimate} ms");
    }
}
