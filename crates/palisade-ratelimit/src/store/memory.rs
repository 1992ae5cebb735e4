//! [`MemoryStore`]: a fleet's quotas in this process.

use std::sync::Arc;

use palisade_core::clock::Clock;

use super::{Grant, Store, StoreFuture, Take};
use crate::gcra::Gcra;
use crate::keyed::Keyed;

/// The quotas of a fleet whose members are in this process: several layers (one per
/// listener, say) that share one count, and tests and simulations of a fleet. Bounded like
/// a local policy (idle keys dropped first). Clones share the counts.
///
/// ```
/// # tokio_test_block_on(async {
/// use std::time::Duration;
/// use palisade_ratelimit::store::{MemoryStore, Store, Take};
///
/// let store = MemoryStore::new();
/// // 10 a second, bursts of 2: three cells wanted, two granted.
/// let grant = store.take(Take::new(b"api:tenant-1", Duration::from_millis(100), 2, 3)).await.unwrap();
/// assert_eq!(grant.granted, 2);
/// let grant = store.take(Take::new(b"api:tenant-1", Duration::from_millis(100), 2, 1)).await.unwrap();
/// assert_eq!((grant.granted, grant.retry_after), (0, Some(Duration::from_millis(100))));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    keys: Arc<Keyed<Box<[u8]>>>,
    clock: Clock,
}

impl MemoryStore {
    /// A store of at most [`DEFAULT_MAX_KEYS`](crate::DEFAULT_MAX_KEYS) keys.
    pub fn new() -> Self {
        Self::with_max_keys(crate::DEFAULT_MAX_KEYS)
    }

    /// A store of at most `max_keys` keys.
    pub fn with_max_keys(max_keys: usize) -> Self {
        Self {
            keys: Arc::new(Keyed::new(max_keys.max(1))),
            clock: Clock::new(),
        }
    }

    /// Decides a take now: what [`Store::take`] answers, without a future.
    pub(crate) fn take_now(&self, take: Take<'_>) -> Grant {
        let now = self.clock.nanos();
        let interval = u64::try_from(take.interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let gcra = Gcra {
            interval,
            tolerance: interval.saturating_mul(u64::from(take.burst)),
        };
        let ((granted, verdict), _) = self.keys.update(&Box::<[u8]>::from(take.key), now, |tat| {
            let (granted, verdict) = gcra.take_up_to(tat, now, u64::from(take.cells));
            ((granted > 0).then_some(verdict.tat), (granted, verdict))
        });
        Grant {
            granted: u32::try_from(granted).unwrap_or(u32::MAX),
            ahead: verdict.reset(),
            retry_after: (granted == 0).then(|| verdict.retry_after()),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Store for MemoryStore {
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a> {
        let grant = self.take_now(take);
        Box::pin(async move { Ok(grant) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn members_share_one_quota() {
        let store = MemoryStore::new();
        let other = store.clone();
        let take = |s: &MemoryStore| s.take_now(Take::new(b"p:k", Duration::from_secs(1), 3, 1));
        assert_eq!(take(&store).granted, 1);
        assert_eq!(take(&other).granted, 1);
        assert_eq!(take(&store).granted, 1);
        let refused = take(&other);
        assert_eq!(refused.granted, 0);
        assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
        assert_eq!(refused.ahead, Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(take(&store).granted, 1);
    }
}
