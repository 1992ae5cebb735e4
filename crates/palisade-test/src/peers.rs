//! The peers palisade is measured against, set up once for the benches and scenarios.

use std::future::{Ready, ready};
use std::sync::Arc;

use tower::retry::budget::{Budget as _, TpsBudget};

/// A policy for tower's `Retry`: every error retried, up to `max_attempts` attempts in all
/// (the first included), optionally under tower's `TpsBudget`, deposited once per request
/// and withdrawn per retry.
///
/// tower's own example deposits only on success, which in an outage leaves nothing but the
/// reserve; depositing per request is what palisade and Finagle do, so the two compare like
/// for like. tower clones the policy per request, so `retries_left` is per request and the
/// budget is shared.
#[derive(Clone, Debug)]
pub struct TowerRetryPolicy {
    budget: Option<Arc<TpsBudget>>,
    max_attempts: u32,
    retries_left: u32,
}

impl TowerRetryPolicy {
    /// Up to `max_attempts` attempts, under `budget` if there is one.
    pub fn new(max_attempts: u32, budget: Option<TpsBudget>) -> Self {
        Self {
            budget: budget.map(Arc::new),
            max_attempts,
            retries_left: max_attempts.saturating_sub(1),
        }
    }
}

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for TowerRetryPolicy {
    type Future = Ready<()>;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Self::Future> {
        // The first attempt's result: the request is deposited once, whatever it became.
        if self.retries_left == self.max_attempts.saturating_sub(1)
            && let Some(budget) = &self.budget
        {
            budget.deposit();
        }
        if result.is_ok() || self.retries_left == 0 {
            return None;
        }
        if self.budget.as_ref().is_some_and(|b| !b.withdraw()) {
            return None;
        }
        self.retries_left -= 1;
        Some(ready(()))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}
