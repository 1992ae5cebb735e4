//! Admission: a lock-free counter against an adaptive limit, and a CoDel-bounded queue for
//! when the limit is reached.
//!
//! Under the limit, admitting a request is one compare-and-swap on the in-flight count and
//! allocates nothing. At the limit a request waits in the queue (a mutex around a short
//! `VecDeque`, touched only at the limit) or is refused at once.
//!
//! A slot freed while requests wait is handed straight to a waiter. The handover cannot miss
//! a waiter: a release lowers the in-flight count *then* looks at the queue's length, and a
//! request that joins the queue raises the length *then* tries the count again, both in
//! sequentially consistent order — so either the release sees the waiter, or the waiter
//! sees the free slot.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use palisade_core::clock::Clock;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::{Queue, ShedConfig};
use crate::error::{Overloaded, Reason};
use crate::limit::{Limit, Sample};
use crate::metrics::ShedMetrics;
use crate::priority::Priority;

pub(crate) struct Limiter {
    limit: AtomicUsize,
    inflight: AtomicUsize,
    queued: AtomicUsize,
    /// Only ever `try_lock`ed: a sample that finds it busy is skipped, never waited for.
    algorithm: Mutex<Box<dyn Limit + Sync>>,
    waiters: Mutex<VecDeque<Waiter>>,
    /// When the queue was last seen empty, in nanoseconds since `epoch`.
    last_empty: AtomicU64,
    /// Read twice by every request when the limit learns from latency: the CPU's
    /// time-stamp counter rather than `clock_gettime` (see [`palisade_core::clock`]).
    clock: Clock,
    /// The instant of the clock's zero.
    epoch: Instant,
    queue: Option<Queue>,
    /// The shares of the limit default and sheddable requests may use, in thousandths.
    default_share: usize,
    sheddable_share: usize,
    /// Whether the limit algorithm learns from latency (a fixed limit does not): if not,
    /// requests read no clock.
    sampling: bool,
    retry_after: Duration,
    name: Arc<str>,
    metrics: ShedMetrics,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("name", &self.name)
            .field("limit", &self.limit())
            .field("inflight", &self.inflight())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

struct Waiter {
    priority: Priority,
    slot: oneshot::Sender<Permit>,
}

/// A request waiting for a slot.
pub(crate) struct Queued {
    pub(crate) slot: oneshot::Receiver<Permit>,
    pub(crate) deadline: Instant,
}

impl Limiter {
    pub(crate) fn new(config: ShedConfig) -> Arc<Self> {
        let algorithm = config.limit.make();
        let initial = algorithm.initial();
        let sampling = algorithm.needs_samples();
        let metrics = ShedMetrics::new(&config.name);
        metrics.limit(initial);
        Arc::new(Self {
            limit: AtomicUsize::new(initial),
            inflight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            algorithm: Mutex::new(algorithm),
            waiters: Mutex::new(VecDeque::new()),
            last_empty: AtomicU64::new(0),
            clock: Clock::new(),
            epoch: Instant::now(),
            queue: config.queue,
            default_share: (config.default_share * 1000.0).round() as usize,
            sheddable_share: (config.sheddable_share * 1000.0).round() as usize,
            sampling,
            retry_after: config.retry_after,
            name: config.name,
            metrics,
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(SeqCst)
    }

    pub(crate) fn inflight(&self) -> usize {
        self.inflight.load(SeqCst)
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(SeqCst)
    }

    /// The most requests of `priority` that may run at once under `limit`.
    #[inline]
    fn cap(&self, priority: Priority, limit: usize) -> usize {
        let share = match priority {
            Priority::Critical => return limit,
            Priority::Default => self.default_share,
            Priority::Sheddable => self.sheddable_share,
        };
        // Rounded up, in integers: this runs for every request.
        (limit * share).div_ceil(1000).clamp(1, limit)
    }

    /// Admits a request of `priority` if it fits under its cap: one CAS, no allocation.
    #[inline]
    pub(crate) fn try_acquire(self: &Arc<Self>, priority: Priority) -> Option<Permit> {
        let cap = self.cap(priority, self.limit());
        let mut inflight = self.inflight.load(SeqCst);
        loop {
            if inflight >= cap {
                return None;
            }
            match self
                .inflight
                .compare_exchange_weak(inflight, inflight + 1, SeqCst, SeqCst)
            {
                Ok(_) => {
                    self.metrics.inflight(inflight + 1);
                    return Some(Permit::new(self.clone(), inflight + 1));
                }
                Err(actual) => inflight = actual,
            }
        }
    }

    /// A request that could not be admitted: queued if it may wait, refused otherwise.
    pub(crate) fn enqueue(self: &Arc<Self>, priority: Priority) -> Result<Queued, Overloaded> {
        let queue = match self.queue {
            Some(queue) if priority != Priority::Sheddable => queue,
            _ => return Err(self.refuse(priority, Reason::Limit)),
        };
        let now = Instant::now();
        let receiver = {
            let mut waiters = self.lock_waiters();
            self.purge(&mut waiters);
            if waiters.len() >= queue.max_len {
                // A critical request takes the place of the newest less important one,
                // which is refused as if the queue had been full when it came.
                let displaced = (priority == Priority::Critical)
                    .then(|| {
                        waiters
                            .iter()
                            .rposition(|w| w.priority != Priority::Critical)
                    })
                    .flatten();
                match displaced {
                    Some(index) => {
                        waiters.remove(index);
                        self.queued.fetch_sub(1, SeqCst);
                    }
                    None => return Err(self.refuse(priority, Reason::QueueFull)),
                }
            }
            if waiters.is_empty() {
                self.mark_empty(now);
            }
            let (slot, receiver) = oneshot::channel();
            waiters.push_back(Waiter { priority, slot });
            self.metrics.queued(self.queued.fetch_add(1, SeqCst) + 1);
            receiver
        };
        // A slot freed between the refusal and the push found no waiter: look again.
        self.hand_over();
        let wait = if self.backlogged(now, &queue) {
            queue.target
        } else {
            queue.interval
        };
        Ok(Queued {
            slot: receiver,
            deadline: now + wait,
        })
    }

    /// The refusal of a request that waited until its deadline.
    pub(crate) fn timed_out(&self, priority: Priority) -> Overloaded {
        self.refuse(priority, Reason::QueueTimeout)
    }

    /// The refusal of a waiting request whose place a critical one took.
    pub(crate) fn displaced(&self, priority: Priority) -> Overloaded {
        self.refuse(priority, Reason::QueueFull)
    }

    fn refuse(&self, priority: Priority, reason: Reason) -> Overloaded {
        self.metrics.rejected(priority, reason);
        tracing::debug!(shed = %self.name, priority = priority.as_str(), reason = reason.as_str(), "request refused");
        Overloaded {
            reason,
            priority,
            limit: self.limit(),
            retry_after: self.retry_after,
        }
    }

    fn lock_waiters(&self) -> MutexGuard<'_, VecDeque<Waiter>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn mark_empty(&self, now: Instant) {
        self.last_empty.fetch_max(self.nanos(now), SeqCst);
    }

    /// Whether the queue has not been empty for a whole interval: a standing queue.
    fn backlogged(&self, now: Instant, queue: &Queue) -> bool {
        let empty_for = self.nanos(now).saturating_sub(self.last_empty.load(SeqCst));
        Duration::from_nanos(empty_for) > queue.interval
    }

    /// Gives free slots to waiters, critical ones first, then the oldest (or, under a
    /// standing queue, the newest) — each within its own priority's share of the limit.
    fn hand_over(self: &Arc<Self>) {
        while self.queued.load(SeqCst) > 0 {
            let handed = {
                let mut waiters = self.lock_waiters();
                self.purge(&mut waiters);
                let lifo = self
                    .queue
                    .is_some_and(|q| q.lifo_under_backlog && self.backlogged(Instant::now(), &q));
                let index = waiters
                    .iter()
                    .position(|w| w.priority == Priority::Critical)
                    .or_else(|| waiters.len().checked_sub(1).filter(|_| lifo))
                    .or_else(|| (!waiters.is_empty()).then_some(0));
                let handed = index.and_then(|i| {
                    let permit = self.try_acquire(waiters[i].priority)?;
                    let waiter = waiters.remove(i)?;
                    self.metrics.queued(self.queued.fetch_sub(1, SeqCst) - 1);
                    Some((waiter, permit))
                });
                if waiters.is_empty() {
                    self.mark_empty(Instant::now());
                }
                handed
            };
            // Outside the lock: a permit that comes back (its waiter gave up just now) is
            // dropped here, which frees the slot and hands it over again.
            let Some((waiter, permit)) = handed else {
                return;
            };
            let _ = waiter.slot.send(permit);
        }
    }

    /// Removes the waiters that gave up (timed out, or their client went away).
    fn purge(&self, waiters: &mut VecDeque<Waiter>) {
        let before = waiters.len();
        waiters.retain(|w| !w.slot.is_closed());
        let gone = before - waiters.len();
        if gone > 0 {
            self.metrics
                .queued(self.queued.fetch_sub(gone, SeqCst) - gone);
        }
    }

    #[inline]
    fn release(self: &Arc<Self>) {
        let now = self.inflight.fetch_sub(1, SeqCst) - 1;
        self.metrics.inflight(now);
        if self.queued.load(SeqCst) > 0 {
            self.hand_over();
        }
    }

    fn sample(&self, sample: Sample) {
        self.metrics.latency(sample.latency);
        // Never wait for the algorithm: a busy one skips this sample.
        let Ok(mut algorithm) = self.algorithm.try_lock() else {
            return;
        };
        let limit = self.limit();
        let next = algorithm.update(limit, sample);
        drop(algorithm);
        if next != limit {
            self.limit.store(next, SeqCst);
            self.metrics.limit(next);
            tracing::debug!(shed = %self.name, from = limit, to = next, "concurrency limit changed");
        }
    }
}

/// A running request's slot: given back when dropped. [`record`](Self::record) reports its
/// latency to the limit algorithm once the response is ready.
///
/// Small, because every response body in flight holds one: times are nanoseconds on the
/// limiter's clock rather than instants.
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    /// When the request was admitted, on the limiter's clock; [`UNTIMED`] if the limit does
    /// not learn from latency.
    admitted: u64,
    inflight: u32,
    recorded: bool,
}

const UNTIMED: u64 = u64::MAX;

impl Permit {
    #[inline]
    fn new(limiter: Arc<Limiter>, inflight: usize) -> Self {
        let admitted = if limiter.sampling {
            limiter.clock.nanos()
        } else {
            UNTIMED
        };
        Self {
            limiter,
            admitted,
            inflight: u32::try_from(inflight).unwrap_or(u32::MAX),
            recorded: false,
        }
    }

    /// The request starts now (it may have waited in the queue: that is not its latency).
    pub(crate) fn start(&mut self) {
        if self.admitted != UNTIMED {
            self.admitted = self.limiter.clock.nanos();
        }
    }

    /// Reports the request's latency, once.
    #[inline]
    pub(crate) fn record(&mut self) {
        if self.admitted == UNTIMED || self.recorded {
            return;
        }
        self.recorded = true;
        let now = self.limiter.clock.nanos();
        self.limiter.sample(Sample {
            at: (self.limiter.epoch + Duration::from_nanos(now)).into_std(),
            latency: Duration::from_nanos(now.saturating_sub(self.admitted)),
            inflight: self.inflight as usize,
        });
    }
}

impl Permit {
    /// Takes no latency sample for this request: a palisade layer below refused it, so its
    /// time measures that layer, not the service's work ([`palisade_core::refusal`]).
    #[inline]
    pub(crate) fn skip_sample(&mut self) {
        self.recorded = true;
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.limiter.release();
    }
}
