//! What a backend does, and when.

use std::time::Duration;

/// How long a call takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniform between two bounds.
    Uniform(Duration, Duration),
    /// Exponentially distributed with this mean (a memoryless server).
    Exponential(Duration),
    /// Usually `base`, but a share `tail_share` of calls take `tail` instead.
    Bimodal {
        /// The common latency.
        base: Duration,
        /// The latency of the tail.
        tail: Duration,
        /// The share of calls in the tail (0..=1).
        tail_share: f64,
    },
}

impl Latency {
    /// The latency for a uniform draw `u` in `0..1`.
    pub(crate) fn sample(&self, u: f64) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => lo + (hi.saturating_sub(lo)).mul_f64(u),
            Latency::Exponential(mean) => mean.mul_f64(-(1.0 - u).ln()),
            Latency::Bimodal {
                base,
                tail,
                tail_share,
            } => {
                if u < tail_share {
                    tail
                } else {
                    base
                }
            }
        }
    }
}

/// What `poll_ready` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Ready.
    Ready,
    /// Pending until the phase ends (the backend wakes the caller then).
    Pending,
    /// An error, as a service whose connection is gone would return.
    Err,
}

/// How a backend behaves during one phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    /// How long a call takes.
    pub latency: Latency,
    /// The share of calls that fail (0..=1).
    pub error_rate: f64,
    /// Whether failures come at once, without the latency (a connection refused, an
    /// instant 503): the black hole that least-loaded balancers love.
    pub fail_fast: bool,
    /// Whether calls never answer.
    pub hang: bool,
    /// What `poll_ready` says.
    pub readiness: Readiness,
}

impl Behaviour {
    /// Every call succeeds after `latency`.
    pub fn healthy(latency: Duration) -> Self {
        Self {
            latency: Latency::Fixed(latency),
            error_rate: 0.0,
            fail_fast: false,
            hang: false,
            readiness: Readiness::Ready,
        }
    }

    /// Every call fails at once.
    pub fn failing() -> Self {
        Self {
            error_rate: 1.0,
            fail_fast: true,
            ..Self::healthy(Duration::ZERO)
        }
    }

    /// Every call hangs.
    pub fn hanging() -> Self {
        Self {
            hang: true,
            ..Self::healthy(Duration::ZERO)
        }
    }

    /// With another latency.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// With another error rate; failures take the latency unless [`fail_fast`](Self::fail_fast).
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = rate;
        self
    }

    /// Failures come at once.
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }

    /// With another readiness.
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }
}

/// Phases of behaviour over time, from the moment the backend is made.
#[derive(Debug, Clone)]
pub struct Script {
    phases: Vec<(Duration, Behaviour)>,
    last: Behaviour,
    seed: u64,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// A script that is healthy with no latency until told otherwise.
    pub fn new() -> Self {
        Self {
            phases: Vec::new(),
            last: Behaviour::healthy(Duration::ZERO),
            seed: 0x5EED,
        }
    }

    /// One behaviour for ever.
    pub fn always(behaviour: Behaviour) -> Self {
        Self::new().forever(behaviour)
    }

    /// Behaves as `behaviour` for `duration`, after the phases before.
    pub fn then(mut self, duration: Duration, behaviour: Behaviour) -> Self {
        self.phases.push((duration, behaviour));
        self
    }

    /// Behaves as `behaviour` once every phase has passed.
    pub fn forever(mut self, behaviour: Behaviour) -> Self {
        self.last = behaviour;
        self
    }

    /// Seeds the random draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub(crate) fn seed_value(&self) -> u64 {
        self.seed
    }

    /// The behaviour at `elapsed` since the start, and when that phase ends.
    pub(crate) fn at(&self, elapsed: Duration) -> (Behaviour, Option<Duration>) {
        let mut end = Duration::ZERO;
        for (duration, behaviour) in &self.phases {
            end += *duration;
            if elapsed < end {
                return (*behaviour, Some(end));
            }
        }
        (self.last, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_each_other() {
        let s = Script::new()
            .then(
                Duration::from_secs(10),
                Behaviour::healthy(Duration::from_millis(1)),
            )
            .then(Duration::from_secs(30), Behaviour::failing())
            .forever(Behaviour::hanging());
        assert_eq!(s.at(Duration::from_secs(9)).0.error_rate, 0.0);
        assert_eq!(
            s.at(Duration::from_secs(10)),
            (Behaviour::failing(), Some(Duration::from_secs(40)))
        );
        assert_eq!(s.at(Duration::from_secs(40)), (Behaviour::hanging(), None));
    }

    #[test]
    fn latencies_follow_their_distribution() {
        let ms = Duration::from_millis;
        assert_eq!(Latency::Fixed(ms(5)).sample(0.9), ms(5));
        assert_eq!(Latency::Uniform(ms(10), ms(20)).sample(0.5), ms(15));
        assert_eq!(Latency::Exponential(ms(10)).sample(0.0), Duration::ZERO);
        let bimodal = Latency::Bimodal {
            base: ms(1),
            tail: ms(100),
            tail_share: 0.1,
        };
        assert_eq!(bimodal.sample(0.05), ms(100));
        assert_eq!(bimodal.sample(0.5), ms(1));
    }
}
