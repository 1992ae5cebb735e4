//! The last `n` calls, in a ring of one-byte slots.

use super::WindowCounts;
use crate::sync::{AtomicU8, AtomicU64, Ordering::Relaxed};

const CALL: u8 = 0b001;
const FAILURE: u8 = 0b010;
const SLOW: u8 = 0b100;

/// A ring of the last `n` calls with running totals.
///
/// Each slot is replaced with an atomic swap, and the totals are adjusted by the difference
/// between the old and the new slot, so at rest they always equal the sum of the slots. While
/// calls race with a reset a total can be briefly "negative"; the counters are kept as wrapped
/// `u64`s and read as signed, clamped at zero, so a race can never fake a failure rate.
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    next: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
    slow: AtomicU64,
}

impl CountWindow {
    pub(crate) fn new(n: u32) -> Self {
        Self {
            slots: (0..n.max(1)).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            slow: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, failure: bool, slow: bool) {
        let code = CALL | if failure { FAILURE } else { 0 } | if slow { SLOW } else { 0 };
        let index = self.next.fetch_add(1, Relaxed) % self.slots.len() as u64;
        let old = self.slots[index as usize].swap(code, Relaxed);
        self.adjust(old, code);
    }

    pub(crate) fn reset(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(0, Relaxed);
            self.adjust(old, 0);
        }
    }

    fn adjust(&self, old: u8, new: u8) {
        for (counter, flag) in [
            (&self.calls, CALL),
            (&self.failures, FAILURE),
            (&self.slow, SLOW),
        ] {
            match (old & flag != 0, new & flag != 0) {
                (false, true) => {
                    counter.fetch_add(1, Relaxed);
                }
                (true, false) => {
                    counter.fetch_sub(1, Relaxed);
                }
                _ => {}
            }
        }
    }

    pub(crate) fn counts(&self) -> WindowCounts {
        let read =
            |c: &AtomicU64| u32::try_from((c.load(Relaxed) as i64).max(0)).unwrap_or(u32::MAX);
        let calls = read(&self.calls);
        WindowCounts {
            calls,
            failures: read(&self.failures).min(calls),
            slow: read(&self.slow).min(calls),
        }
    }
}

#[cfg(all(test, not(palisade_loom)))]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_n_calls() {
        let w = CountWindow::new(3);
        w.record(true, false);
        w.record(true, true);
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 2,
                failures: 2,
                slow: 1
            }
        );
        w.record(false, false);
        w.record(false, false);
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(false, false);
        assert_eq!(
            w.counts(),
            WindowCounts {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.reset();
        assert_eq!(w.counts(), WindowCounts::default());
    }
}
