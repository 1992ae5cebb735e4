//! What is retried: a [`Policy`] looks at a request before it is sent and at each attempt's
//! result, and decides.

#[cfg(feature = "http")]
pub(crate) mod http;

use std::time::Duration;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use self::http::HttpPolicy;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use palisade_core::hint::{parse_grpc_pushback, parse_retry_after};

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The result is final: return it (a success, or a failure retrying cannot help).
    Done,
    /// Retry, for this reason (it labels the tracing event), after the server's hint when it
    /// gave one (`Retry-After`, `grpc-retry-pushback-ms`) instead of the backoff.
    Retry {
        /// Why, in a word or two: `"503"`, `"transport error"`, `"UNAVAILABLE"`.
        reason: &'static str,
        /// How long the server asked the client to wait.
        after: Option<Duration>,
    },
    /// The server asked not to be retried (a negative `grpc-retry-pushback-ms`): return the
    /// result as it is.
    Refused,
}

/// Decides which requests may be retried, and which results should be.
///
/// The layer clones its policy for each request, so a policy may keep what it learns of the
/// request in [`may_retry`](Self::may_retry) for its decisions on that request's attempts
/// (the HTTP policy notes whether the request carries an `Idempotency-Key`); as tower's
/// `Policy`, it takes `&mut self` there. Keep it cheap to clone.
///
/// `Req` is the request as the layer receives it; errors reach the policy as
/// [`tower::BoxError`](https://docs.rs/tower/latest/tower/type.BoxError.html), so a policy can
/// downcast them, including the layer's own [`AttemptTimedOut`](crate::AttemptTimedOut).
pub trait Policy<Req, Res> {
    /// Whether `request` may be retried at all, decided before its first attempt.
    fn may_retry(&mut self, request: &Req) -> bool;

    /// What to do with one attempt's result.
    fn decide(&self, result: Result<&Res, &BoxError>) -> Decision;
}

use palisade_core::BoxError;

/// The policy for plain services: every request may be retried, every error is retried,
/// every response is final.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryErrors;

impl<Req, Res> Policy<Req, Res> for RetryErrors {
    fn may_retry(&mut self, _: &Req) -> bool {
        true
    }

    fn decide(&self, result: Result<&Res, &BoxError>) -> Decision {
        match result {
            Ok(_) => Decision::Done,
            Err(_) => Decision::Retry {
                reason: "error",
                after: None,
            },
        }
    }
}

/// A policy from a closure over each result; every request may be retried.
///
/// ```
/// use palisade_retry::policy::{Decision, Policy, policy_fn};
///
/// // Retry responses that say "busy", never errors.
/// let policy = policy_fn(|result: Result<&&str, &tower::BoxError>| match result {
///     Ok(&"busy") => Decision::Retry { reason: "busy", after: None },
///     _ => Decision::Done,
/// });
/// assert_eq!(Policy::<(), &str>::decide(&policy, Ok(&"ok")), Decision::Done);
/// ```
pub fn policy_fn<F>(f: F) -> PolicyFn<F> {
    PolicyFn(f)
}

/// See [`policy_fn`].
#[derive(Debug, Clone, Copy)]
pub struct PolicyFn<F>(F);

impl<F, Req, Res> Policy<Req, Res> for PolicyFn<F>
where
    F: Fn(Result<&Res, &BoxError>) -> Decision,
{
    fn may_retry(&mut self, _: &Req) -> bool {
        true
    }

    fn decide(&self, result: Result<&Res, &BoxError>) -> Decision {
        (self.0)(result)
    }
}
