//! How a request is sent again: [`Replay`] keeps what another attempt needs.
//!
//! tower's `Retry` needs `Req: Clone`, which an `http::Request` with a streaming body is not
//! (tower #790, grpc-rust #733): that is why tonic and hyper users could not use it. Here the
//! strategy is a type parameter: [`CloneRequests`] for requests that are `Clone`, and
//! [`ReplayBodies`](crate::http::ReplayBodies) for `http::Request<B>` with any body, which
//! records the body as the first attempt streams it.

/// Makes the attempts of a request.
pub trait Replay<Req> {
    /// What the inner service receives for each attempt.
    type Attempt;
    /// What is kept to make another attempt.
    type Saved;

    /// Readies a request before anything else looks at it (the HTTP strategy attaches an
    /// `Idempotency-Key` here when asked to).
    fn prepare(&self, request: &mut Req) {
        let _ = request;
    }

    /// The first attempt of a request that may be retried, and what to keep for the next.
    fn first(&self, request: Req) -> (Self::Attempt, Self::Saved);

    /// The only attempt of a request that will not be retried.
    fn only(&self, request: Req) -> Self::Attempt;

    /// Another attempt, after `previous` attempts were sent, or `None` when the request
    /// turned out not to be replayable (its body went over the limit, or failed).
    fn again(&self, saved: &Self::Saved, previous: u32) -> Option<Self::Attempt>;
}

/// Replays requests that are `Clone` by cloning them: once before the first attempt, and
/// once per retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneRequests;

impl<Req: Clone> Replay<Req> for CloneRequests {
    type Attempt = Req;
    type Saved = Req;

    fn first(&self, request: Req) -> (Req, Req) {
        (request.clone(), request)
    }

    fn only(&self, request: Req) -> Req {
        request
    }

    fn again(&self, saved: &Req, _previous: u32) -> Option<Req> {
        Some(saved.clone())
    }
}
