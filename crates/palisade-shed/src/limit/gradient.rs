use std::time::Duration;

use palisade_core::ConfigError;
use std::time::Instant;

use super::{Limit, Sample};

/// Scales the limit by how recent latency compares with the server's latency when it is not
/// queueing (Envoy's adaptive concurrency; Netflix's `Gradient2`).
///
/// Every `window` (100 ms, once it holds at least 10 samples) the median latency of the
/// window is compared with `min_rtt`, the latency measured at a low concurrency:
///
/// ```text
/// gradient  = clamp(min_rtt × (1 + tolerance) / window median, 0.5, 2)
/// new limit = gradient × limit + √limit
/// ```
///
/// Latency up to `1 + tolerance` times the minimum (2.5×: `tolerance` 1.5, Netflix
/// `Gradient2`'s default) keeps the limit growing by its square root; latency that rises — requests queueing inside the server — shrinks it, by half at
/// most per window. A limit less than half used does not grow: its latency says nothing
/// about concurrency it never reached. `min_rtt` is measured again every
/// `min_rtt_interval` (30 s, ±10 % jitter, seeded per instance): the limit is pinned to its
/// minimum until 20 requests *admitted at the minimum* have finished, and their median
/// becomes the new `min_rtt` — so that it follows the server as it changes (a deploy, a
/// smaller host) rather than the latency that sustained overload has inflated.
///
/// Unlike Envoy's adaptive concurrency, the measurement is skipped unless latency has stayed
/// above the target for three windows in a row since the last one: `min_rtt` can only be
/// stale on the high side until a window's median undercuts it, which lowers it at once, and
/// on the low side — the server became slower — only by latency that stays above the
/// target. Pinning the limit to its minimum costs a busy server the requests that arrive
/// meanwhile (in the demo, about fifty refusals each time with every backend healthy); a
/// healthy server, or one with a noisy window now and then, need not pay it.
#[derive(Debug, Clone)]
pub struct Gradient {
    min: usize,
    max: usize,
    initial: usize,
    window: Duration,
    tolerance: f64,
    min_rtt_interval: Duration,
    /// Seeds the jitter of the min-RTT measurements, so that a fleet started together does
    /// not measure together.
    seed: u64,
    /// Whether the seed was chosen ([`Gradient::jitter_seed`]) rather than drawn.
    seeded: bool,
    state: State,
}

#[derive(Debug, Clone, Default)]
struct State {
    window_start: Option<Instant>,
    samples: Vec<Duration>,
    min_rtt: Option<Duration>,
    next_probe: Option<Instant>,
    /// While measuring `min_rtt` again: the limit to go back to.
    probing: Option<usize>,
    /// Whether latency has stayed above the target for [`SUSTAINED`] windows in a row since
    /// the last measurement: only then may `min_rtt` be too low, and worth measuring again.
    above_target: bool,
    /// Windows in a row with latency above the target.
    windows_above: u32,
    probes: u64,
    /// The most requests in flight seen in this window.
    max_inflight: usize,
}

const MIN_SAMPLES_PER_WINDOW: usize = 10;
/// Windows in a row above the target that call for measuring `min_rtt` again: enough to
/// tell a server that became slower from a noisy window.
const SUSTAINED: u32 = 3;
const PROBE_SAMPLES: usize = 20;
const MAX_SAMPLES_KEPT: usize = 1024;

impl Default for Gradient {
    fn default() -> Self {
        Self {
            min: 4,
            max: 1000,
            initial: 40,
            window: Duration::from_millis(100),
            tolerance: 1.5,
            min_rtt_interval: Duration::from_secs(30),
            seed: rand_seed(),
            seeded: false,
            state: State::default(),
        }
    }
}

impl Gradient {
    /// From `initial`, between `min` and `max` (defaults 40, 4 and 1000).
    pub fn new(min: usize, initial: usize, max: usize) -> Result<Self, ConfigError> {
        super::check_bounds(min, initial, max)?;
        Ok(Self {
            min,
            max,
            initial,
            ..Self::default()
        })
    }

    /// How much latency above `min_rtt` counts as "not queueing" (a share; 1.5 by
    /// default, within 0..=2).
    pub fn tolerance(mut self, tolerance: f64) -> Result<Self, ConfigError> {
        if !(0.0..=2.0).contains(&tolerance) {
            return Err(ConfigError::new(
                "limit.tolerance",
                "must be within 0 and 2",
            ));
        }
        self.tolerance = tolerance;
        Ok(self)
    }

    /// How often `min_rtt` is measured again (30 s by default; at least 1 s).
    pub fn min_rtt_interval(mut self, interval: Duration) -> Result<Self, ConfigError> {
        if interval < Duration::from_secs(1) {
            return Err(ConfigError::new(
                "limit.min_rtt_interval",
                "must be at least 1 s",
            ));
        }
        self.min_rtt_interval = interval;
        Ok(self)
    }

    /// The length of the windows whose median is compared with `min_rtt` (100 ms by
    /// default; at least 1 ms).
    pub fn window(mut self, window: Duration) -> Result<Self, ConfigError> {
        if window < Duration::from_millis(1) {
            return Err(ConfigError::new("limit.window", "must be at least 1 ms"));
        }
        self.window = window;
        Ok(self)
    }

    /// Seeds the jitter of the min-RTT measurements (random by default), for simulations
    /// that must replay exactly.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self.seeded = true;
        self
    }

    fn schedule_probe(&mut self, now: Instant) {
        // ±10 % so that a fleet started together does not measure together.
        self.state.probes = self.state.probes.wrapping_add(1);
        let spread = palisade_core::random::uniform(self.seed, self.state.probes);
        let interval = self.min_rtt_interval.mul_f64(0.9 + 0.2 * spread);
        self.state.next_probe = Some(now + interval);
    }
}

impl Gradient {
    /// The same settings for another shedder, with no history, and a seed of its own unless
    /// one was chosen.
    pub(crate) fn fresh(&self) -> Self {
        Self {
            seed: if self.seeded { self.seed } else { rand_seed() },
            state: State::default(),
            ..self.clone()
        }
    }
}

fn rand_seed() -> u64 {
    // Per instance: the hasher's keys are random per process and per thread.
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0u8)
}

fn median(samples: &mut [Duration]) -> Duration {
    let middle = samples.len() / 2;
    *samples.select_nth_unstable(middle).1
}

impl Limit for Gradient {
    fn initial(&self) -> usize {
        self.initial
    }

    fn update(&mut self, limit: usize, sample: Sample) -> usize {
        let now = sample.at;

        if let Some(restore) = self.state.probing {
            // Only requests admitted at the minimum measure the unloaded latency: those
            // admitted before the limit dropped are still queueing behind each other.
            if sample.inflight <= self.min && self.state.samples.len() < MAX_SAMPLES_KEPT {
                self.state.samples.push(sample.latency);
            }
            if self.state.samples.len() < PROBE_SAMPLES {
                return self.min;
            }
            let min_rtt = median(&mut self.state.samples);
            tracing::debug!(min_rtt_ms = min_rtt.as_millis() as u64, "min RTT measured");
            self.state.min_rtt = Some(min_rtt);
            self.state.probing = None;
            self.state.above_target = false;
            self.state.windows_above = 0;
            self.state.samples.clear();
            self.state.max_inflight = 0;
            self.state.window_start = Some(now);
            self.schedule_probe(now);
            return restore;
        }

        if self.state.samples.len() < MAX_SAMPLES_KEPT {
            self.state.samples.push(sample.latency);
        }
        self.state.max_inflight = self.state.max_inflight.max(sample.inflight);
        let start = *self.state.window_start.get_or_insert(now);
        if now.duration_since(start) < self.window
            || self.state.samples.len() < MIN_SAMPLES_PER_WINDOW
        {
            return limit;
        }
        let recent = median(&mut self.state.samples);
        let busiest = std::mem::take(&mut self.state.max_inflight);
        self.state.samples.clear();
        self.state.window_start = Some(now);

        let Some(min_rtt) = self.state.min_rtt else {
            // The first window: the server has just started and is not yet loaded.
            self.state.min_rtt = Some(recent);
            self.schedule_probe(now);
            return limit;
        };
        if self.state.next_probe.is_some_and(|at| now >= at) {
            if self.state.above_target {
                self.state.probing = Some(limit);
                return self.min;
            }
            // Latency has stayed within the target: min_rtt is current, the limit stays.
            self.schedule_probe(now);
        }
        let min_rtt = min_rtt.min(recent);
        self.state.min_rtt = Some(min_rtt);
        let target = min_rtt.as_secs_f64() * (1.0 + self.tolerance);
        if recent.as_secs_f64() > target {
            self.state.windows_above += 1;
            self.state.above_target |= self.state.windows_above >= SUSTAINED;
        } else {
            self.state.windows_above = 0;
        }
        let mut gradient = (target / recent.as_secs_f64().max(1e-9)).clamp(0.5, 2.0);
        let mut headroom = (limit as f64).sqrt();
        if busiest * 2 < limit {
            // Less than half the limit in use: latency says nothing about a limit that is
            // not reached, so it may shrink but not grow (Netflix's rule for AIMD too).
            gradient = gradient.min(1.0);
            headroom = 0.0;
        }
        let next = gradient * limit as f64 + headroom;
        (next as usize).clamp(self.min, self.max)
    }

    fn bounds(&self) -> (usize, usize) {
        (self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `n` samples of `latency_ms` with `inflight` in flight, one every `every`;
    /// returns the limit after them.
    fn feed(
        g: &mut Gradient,
        limit: &mut usize,
        at: &mut Instant,
        n: usize,
        latency_ms: u64,
        inflight: usize,
    ) -> usize {
        for _ in 0..n {
            *at += MS;
            *limit = g.update(
                *limit,
                Sample {
                    at: *at,
                    latency: Duration::from_millis(latency_ms),
                    inflight,
                },
            );
        }
        *limit
    }

    #[test]
    fn an_unused_limit_does_not_grow() {
        let mut g = Gradient::default().jitter_seed(1);
        let (mut limit, mut at) = (20, Instant::now());
        assert_eq!(feed(&mut g, &mut limit, &mut at, 3000, 10, 1), 20);
        assert!(
            feed(&mut g, &mut limit, &mut at, 3000, 10, 20) > 20,
            "a used one does"
        );
    }

    #[test]
    fn the_min_rtt_probe_ignores_requests_admitted_before_it() {
        let mut g = Gradient::default()
            .jitter_seed(1)
            .min_rtt_interval(Duration::from_secs(5))
            .unwrap();
        let (mut limit, mut at) = (20, Instant::now());
        // Unloaded at 10 ms, then queueing at 30 ms (past the 2.5× target) until a probe
        // starts.
        feed(&mut g, &mut limit, &mut at, 200, 10, 20);
        while g.state.probing.is_none() {
            feed(&mut g, &mut limit, &mut at, 1, 30, 30);
        }
        assert_eq!(limit, 4, "pinned to the minimum while measuring");
        // Requests from before the probe, still slow, do not count...
        assert_eq!(feed(&mut g, &mut limit, &mut at, 50, 30, 30), 4);
        // ...those admitted at the minimum do, and they find the server fast again.
        let restored = feed(&mut g, &mut limit, &mut at, 20, 10, 4);
        assert!(restored > 4, "back to the limit before the probe");
        assert_eq!(g.state.min_rtt, Some(10 * MS));
    }

    #[test]
    fn latency_within_the_target_but_for_a_noisy_window_needs_no_new_measurement() {
        let mut g = Gradient::default().jitter_seed(1);
        let (mut limit, mut at) = (20, Instant::now());
        // Five minutes at the same latency, the limit in use, with a slow window every
        // second: never pinned to the minimum.
        for _ in 0..300 {
            let inflight = limit;
            feed(&mut g, &mut limit, &mut at, 900, 10, inflight);
            feed(&mut g, &mut limit, &mut at, 100, 30, inflight);
            assert!(
                g.state.probing.is_none(),
                "no measurement while latency is steady"
            );
            assert!(limit > 4);
        }
        // The server becomes slower: latency above the target calls for a measurement.
        let mut measured = false;
        for _ in 0..60_000 {
            let inflight = limit;
            feed(&mut g, &mut limit, &mut at, 1, 30, inflight);
            measured |= g.state.probing.is_some();
        }
        assert!(measured, "a slower server is measured again");
    }

    #[test]
    fn latency_doubled_by_contention_is_not_queueing() {
        // A healthy server whose latency doubles under load (its requests share the cores),
        // after a light warm-up taught it the unloaded latency: the limit holds.
        let mut g = Gradient::default().jitter_seed(1);
        let (mut limit, mut at) = (g.initial(), Instant::now());
        feed(&mut g, &mut limit, &mut at, 500, 5, 1);
        for _ in 0..100 {
            feed(&mut g, &mut limit, &mut at, 100, 10, 32);
        }
        assert!(limit >= 32, "32 in flight need a limit of 32: {limit}");
        assert!(g.state.probing.is_none());
        // Latency three times the unloaded is queueing, and the limit comes down (to where
        // its √limit of headroom balances the gradient: 36 here).
        let before = limit;
        for _ in 0..100 {
            let inflight = limit;
            feed(&mut g, &mut limit, &mut at, 100, 15, inflight);
        }
        assert!(limit < before / 2 && limit <= 40, "{before} → {limit}");
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(Gradient::new(0, 1, 2).unwrap_err().field(), "limit.min");
        assert_eq!(Gradient::new(4, 2, 8).unwrap_err().field(), "limit.initial");
        let g = Gradient::default();
        assert_eq!(
            g.clone().tolerance(-1.0).unwrap_err().field(),
            "limit.tolerance"
        );
        assert_eq!(
            g.clone()
                .min_rtt_interval(Duration::ZERO)
                .unwrap_err()
                .field(),
            "limit.min_rtt_interval"
        );
        assert_eq!(
            g.window(Duration::ZERO).unwrap_err().field(),
            "limit.window"
        );
    }
}
