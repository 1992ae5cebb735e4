//! Random numbers for jitter and simulations: seedable, shared, lock-free.
//!
//! Jitter needs numbers that are cheap, spread, and — in a simulation or a test — the same
//! on every run. Both come from SplitMix64: [`uniform`] is the `n`-th number of a seed's
//! sequence, a pure function; [`SharedRandom`] draws a sequence from many threads with one
//! `fetch_add` per draw, so concurrent callers never lock and never draw the same number.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The `n`-th number of `seed`'s sequence (SplitMix64 of `seed + n × γ`), uniform in `0..1`.
pub fn uniform(seed: u64, n: u64) -> f64 {
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // The top 53 bits, as the mantissa of a double in 0..1.
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A sequence of random numbers that many threads draw from.
#[derive(Debug)]
pub struct SharedRandom {
    seed: u64,
    draws: AtomicU64,
}

impl SharedRandom {
    /// A sequence from `seed` mixed with `name`, so that layers made from one seeded
    /// configuration (one per key, one per endpoint) still draw different numbers; or a
    /// random sequence when `seed` is `None`.
    pub fn new(seed: Option<u64>, name: &str) -> Self {
        let seed = match seed {
            // `DefaultHasher::default()` has fixed keys: a name mixes the same way every run.
            Some(seed) => seed ^ BuildHasherDefault::<DefaultHasher>::default().hash_one(name),
            None => rand::random(),
        };
        Self {
            seed,
            draws: AtomicU64::new(0),
        }
    }

    /// The next number, uniform in `0..1`.
    pub fn next_f64(&self) -> f64 {
        uniform(self.seed, self.draws.fetch_add(1, Relaxed) + 1)
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
        let draws: Vec<f64> = (0..10_000).map(|n| uniform(1, n)).collect();
        assert!(draws.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let low = draws.iter().filter(|x| **x < 0.1).count();
        assert!((800..1200).contains(&low), "{low} of 10000 below 0.1");
        assert_eq!(uniform(1, 42), draws[42], "a pure function of seed and n");
    }
}
