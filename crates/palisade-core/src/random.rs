//! Random numbers for jitter, shared by every clone of a layer and seedable.
//!
//! Jitter needs numbers that are cheap, spread, and — in a simulation or a test — the same
//! on every run. [`SharedRandom`] is SplitMix64 over one atomic: a draw is one `fetch_add`,
//! so concurrent callers never lock and never draw the same number, and a seed replays the
//! whole sequence.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A sequence of random numbers that many threads draw from.
#[derive(Debug)]
pub struct SharedRandom {
    state: AtomicU64,
}

impl SharedRandom {
    /// A sequence from `seed` mixed with `name`, so that layers made from one seeded
    /// configuration (one per key, one per endpoint) still draw different numbers; or a
    /// random sequence when `seed` is `None`.
    pub fn new(seed: Option<u64>, name: &str) -> Self {
        let state = match seed {
            // `DefaultHasher::default()` has fixed keys: a name mixes the same way every run.
            Some(seed) => seed ^ BuildHasherDefault::<DefaultHasher>::default().hash_one(name),
            None => rand::random(),
        };
        Self {
            state: AtomicU64::new(state),
        }
    }

    /// A number drawn uniformly from `0..1`.
    pub fn next_f64(&self) -> f64 {
        let mut z = self
            .state
            .fetch_add(GOLDEN_GAMMA, Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top 53 bits, as the mantissa of a double in 0..1.
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_names_separate() {
        let draw = |seed, name| {
            let r = SharedRandom::new(seed, name);
            [r.next_f64(), r.next_f64(), r.next_f64()]
        };
        assert_eq!(draw(Some(7), "a"), draw(Some(7), "a"));
        assert_ne!(draw(Some(7), "a"), draw(Some(7), "b"));
        assert_ne!(draw(None, "a"), draw(None, "a"));
    }

    #[test]
    fn draws_are_in_range_and_spread() {
        let r = SharedRandom::new(Some(1), "spread");
        let draws: Vec<f64> = (0..10_000).map(|_| r.next_f64()).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let low = draws.iter().filter(|x| **x < 0.1).count();
        assert!((800..1200).contains(&low), "{low} of 10000 below 0.1");
    }
}
