//! The part of a call before the inner service runs: admitted at once, waiting in the
//! queue, or refused. Shared by the generic and the HTTP services.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::error::Overloaded;
use crate::limiter::{Limiter, Permit};
use crate::priority::Priority;

/// Where a call stands before its inner future may run.
pub(crate) enum Admission {
    Admitted(Permit),
    Waiting {
        limiter: Arc<Limiter>,
        priority: Priority,
        slot: oneshot::Receiver<Permit>,
        // Boxed: only requests that wait pay for a timer.
        timeout: Pin<Box<Sleep>>,
    },
    Refused(Overloaded),
    /// The permit or the refusal has been handed out.
    Taken,
}

impl Admission {
    #[inline]
    pub(crate) fn new(limiter: &Arc<Limiter>, priority: Priority) -> Self {
        if let Some(permit) = limiter.try_acquire(priority) {
            return Admission::Admitted(permit);
        }
        match limiter.enqueue(priority) {
            Ok(queued) => Admission::Waiting {
                limiter: limiter.clone(),
                priority,
                slot: queued.slot,
                timeout: Box::pin(tokio::time::sleep_until(queued.deadline)),
            },
            Err(refused) => Admission::Refused(refused),
        }
    }

    /// Waits for a slot: the permit, or the refusal.
    #[inline]
    pub(crate) fn poll_admitted(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Permit, Overloaded>> {
        let next = match self {
            Admission::Admitted(_) | Admission::Refused(_) | Admission::Taken => None,
            Admission::Waiting {
                limiter,
                priority,
                slot,
                timeout,
            } => match Pin::new(&mut *slot).poll(cx) {
                Poll::Ready(Ok(mut permit)) => {
                    permit.start();
                    Some(Ok(permit))
                }
                // The limiter drops a waiter's sender unsent only when a critical request
                // takes its place in a full queue.
                Poll::Ready(Err(_)) => Some(Err(limiter.displaced(*priority))),
                Poll::Pending => {
                    if timeout.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Closing the slot first means a permit sent from now on comes back to
                    // the limiter; one already sent is taken here rather than leaked.
                    slot.close();
                    match slot.try_recv() {
                        Ok(mut permit) => {
                            permit.start();
                            Some(Ok(permit))
                        }
                        Err(_) => Some(Err(limiter.timed_out(*priority))),
                    }
                }
            },
        };
        let result = match next {
            Some(result) => result,
            None => match std::mem::replace(self, Admission::Taken) {
                Admission::Admitted(permit) => Ok(permit),
                Admission::Refused(refused) => Err(refused),
                Admission::Waiting { .. } | Admission::Taken => {
                    unreachable!("an admission is polled until it is taken, and not after")
                }
            },
        };
        *self = Admission::Taken;
        Poll::Ready(result)
    }
}
