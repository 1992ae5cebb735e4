//! When to probe, and what the results mean: [`HealthCheck`].

use std::time::Duration;

use palisade_core::ConfigError;

/// When an endpoint is probed and how many results in a row change its state; see the
/// [module docs](super).
///
/// | setting | default | from |
/// |---|---|---|
/// | interval | (given; 5 s when a probe comes with no settings) | Envoy's `interval`; Kubernetes' `periodSeconds` is 10 s |
/// | [`unhealthy_interval`](Self::unhealthy_interval) | 1 s | Envoy's `unhealthy_interval` (which defaults to `interval`): back sooner |
/// | [`jitter`](Self::jitter) | 10 % of the interval | Envoy's `interval_jitter_percent` |
/// | [`timeout`](Self::timeout) | 1 s | Kubernetes' `timeoutSeconds` |
/// | [`unhealthy_threshold`](Self::unhealthy_threshold) | 3 | Kubernetes' `failureThreshold` |
/// | [`healthy_threshold`](Self::healthy_threshold) | 2 (1 for a new endpoint) | Envoy's `healthy_threshold`, one pass at start as Envoy |
/// | [`start_ready`](Self::start_ready) | no: a new endpoint waits for its first pass | Envoy |
/// | [`max_concurrent`](Self::max_concurrent) | 16 probes per balancer | Envoy has none |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthCheck {
    pub(crate) interval: Duration,
    pub(crate) unhealthy_interval: Duration,
    pub(crate) jitter: f64,
    pub(crate) timeout: Duration,
    pub(crate) unhealthy_threshold: u32,
    pub(crate) healthy_threshold: u32,
    pub(crate) start_ready: bool,
    pub(crate) max_concurrent: usize,
}

impl HealthCheck {
    /// Probes every `interval` while an endpoint is healthy.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            unhealthy_interval: Duration::from_secs(1),
            jitter: 0.1,
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
            start_ready: false,
            max_concurrent: 16,
        }
    }

    /// How often an endpoint that is out (or not yet in) is probed.
    pub fn unhealthy_interval(mut self, interval: Duration) -> Self {
        self.unhealthy_interval = interval;
        self
    }

    /// Each wait is the interval plus a random share of it up to `share` (0 to 1).
    pub fn jitter(mut self, share: f64) -> Self {
        self.jitter = share;
        self
    }

    /// A probe unanswered after `timeout` failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Failures in a row that take a healthy endpoint out.
    pub fn unhealthy_threshold(mut self, n: u32) -> Self {
        self.unhealthy_threshold = n;
        self
    }

    /// Passes in a row that bring an unhealthy endpoint back (a new endpoint needs one).
    pub fn healthy_threshold(mut self, n: u32) -> Self {
        self.healthy_threshold = n;
        self
    }

    /// Whether a new endpoint takes traffic before its first probe has passed.
    pub fn start_ready(mut self, ready: bool) -> Self {
        self.start_ready = ready;
        self
    }

    /// The most probes in flight at once across a balancer's endpoints.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let field = |name: &str| format!("health_check.{name}");
        for (name, value) in [
            ("interval", self.interval),
            ("unhealthy_interval", self.unhealthy_interval),
            ("timeout", self.timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(field(name), "must be longer than zero"));
            }
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                field("jitter"),
                "must be a share within 0 and 1",
            ));
        }
        for (name, value) in [
            ("unhealthy_threshold", self.unhealthy_threshold as usize),
            ("healthy_threshold", self.healthy_threshold as usize),
            ("max_concurrent", self.max_concurrent),
        ] {
            if value == 0 {
                return Err(ConfigError::new(field(name), "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The wait before the next probe: the interval in use, plus `draw` (uniform in 0..1)
    /// times the jitter share of it.
    pub(crate) fn wait(&self, unhealthy: bool, draw: f64) -> Duration {
        let base = if unhealthy {
            self.unhealthy_interval
        } else {
            self.interval
        };
        base + base.mul_f64(self.jitter * draw)
    }

    /// The wait before an endpoint's first probe: within the jitter share of the interval
    /// in use, so that endpoints that join together are not probed together.
    pub(crate) fn first_wait(&self, draw: f64) -> Duration {
        let base = if self.start_ready {
            self.interval
        } else {
            self.unhealthy_interval
        };
        base.mul_f64(self.jitter * draw)
    }
}

/// An endpoint's health as its probes tell it: a state and the run of results against it.
#[derive(Debug)]
pub(crate) struct Verdicts {
    healthy: bool,
    /// Whether any probe has passed; until one has, one pass is enough.
    passed_once: bool,
    /// Results in a row that disagree with `healthy`.
    against: u32,
}

impl Verdicts {
    pub(crate) fn new(check: &HealthCheck) -> Self {
        Self {
            healthy: check.start_ready,
            passed_once: false,
            against: 0,
        }
    }

    pub(crate) fn healthy(&self) -> bool {
        self.healthy
    }

    /// Takes a probe's result; returns the new state when it changes.
    pub(crate) fn record(&mut self, passed: bool, check: &HealthCheck) -> Option<bool> {
        let first_pass = passed && !self.passed_once;
        self.passed_once |= passed;
        if passed == self.healthy {
            self.against = 0;
            return None;
        }
        self.against += 1;
        let needed = match passed {
            true if first_pass => 1,
            true => check.healthy_threshold,
            false => check.unhealthy_threshold,
        };
        if self.against < needed {
            return None;
        }
        self.healthy = passed;
        self.against = 0;
        Some(passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> HealthCheck {
        HealthCheck::new(Duration::from_secs(5))
            .unhealthy_threshold(3)
            .healthy_threshold(2)
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let check = check();
        let mut v = Verdicts::new(&check);
        assert!(!v.healthy(), "a new endpoint waits for its first pass");
        assert_eq!(v.record(false, &check), None);
        assert_eq!(
            v.record(true, &check),
            Some(true),
            "one pass is enough at first"
        );
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(true, &check), None, "a pass breaks the run");
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), Some(false), "three in a row");
        assert_eq!(v.record(true, &check), None);
        assert_eq!(
            v.record(true, &check),
            Some(true),
            "two in a row to come back"
        );
    }

    #[test]
    fn an_endpoint_ready_at_start_needs_its_failures_in_a_row() {
        let check = check().start_ready(true);
        let mut v = Verdicts::new(&check);
        assert!(v.healthy());
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), Some(false));
        assert_eq!(
            v.record(true, &check),
            Some(true),
            "its first pass ever: one is enough"
        );
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), None);
        assert_eq!(v.record(false, &check), Some(false));
        assert_eq!(v.record(true, &check), None, "now it needs two");
        assert_eq!(v.record(true, &check), Some(true));
    }

    #[test]
    fn waits_stay_within_the_jitter() {
        let check = check().jitter(0.2);
        assert_eq!(check.wait(false, 0.0), Duration::from_secs(5));
        assert_eq!(check.wait(false, 1.0), Duration::from_secs(6));
        assert_eq!(check.wait(true, 0.5), Duration::from_millis(1_100));
        assert_eq!(check.first_wait(1.0), Duration::from_millis(200));
        assert_eq!(
            check.start_ready(true).first_wait(1.0),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_settings_name_their_field() {
        let field = |c: HealthCheck| c.validate().unwrap_err().field().to_owned();
        let c = check();
        assert_eq!(
            field(HealthCheck::new(Duration::ZERO)),
            "health_check.interval"
        );
        assert_eq!(field(c.timeout(Duration::ZERO)), "health_check.timeout");
        assert_eq!(field(c.jitter(1.5)), "health_check.jitter");
        assert_eq!(
            field(c.unhealthy_threshold(0)),
            "health_check.unhealthy_threshold"
        );
        assert_eq!(field(c.max_concurrent(0)), "health_check.max_concurrent");
        c.validate().unwrap();
    }
}
