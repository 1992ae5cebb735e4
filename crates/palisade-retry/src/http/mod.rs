//! HTTP requests made replayable, and safe to retry when they are not idempotent.
//!
//! [`ReplayBodies`] gives each attempt a [`ReplayBody`]: the first streams the caller's body
//! through and records it, up to a limit; later attempts replay the recording, byte for byte,
//! trailers included, and carry on with whatever of the body an earlier attempt left unread. A body that goes over the limit streams through untouched and its
//! request is simply not retried; a body that fails is not retried either, and its error
//! reaches the caller through the inner service.
//!
//! With [`idempotency_keys`](crate::RetryConfigBuilder::idempotency_keys) on, a request whose method is
//! not idempotent gets an `Idempotency-Key` (a random UUID v4, as an sf-string) before its
//! first attempt unless it has one, so that every attempt reaches a server that honours the
//! key (palisade-idempotency, or a Stripe-like API) as the same operation — and so may be
//! retried.
//!
//! A retried gRPC call carries `grpc-previous-rpc-attempts` (gRFC A6): the number of attempts
//! sent before it, so that the server can tell a retry from a first call.

mod body;
mod layer;

use std::sync::Arc;

use http::{HeaderValue, Request};

use self::body::Recording;
pub use self::body::ReplayBody;
pub use self::layer::HttpRetryLayer;
use crate::policy::http::is_idempotent;
use crate::replay::Replay;
use palisade_core::IDEMPOTENCY_KEY;
use palisade_core::grpc::is_grpc;

/// gRFC A6's header on a gRPC retry: how many attempts of the call were sent before it.
const GRPC_PREVIOUS_RPC_ATTEMPTS: http::HeaderName =
    http::HeaderName::from_static("grpc-previous-rpc-attempts");

/// Replays `http::Request<B>` for any body `B`; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct ReplayBodies {
    limit: usize,
    idempotency_keys: bool,
}

impl ReplayBodies {
    /// Records bodies of up to `limit` bytes.
    pub(crate) fn new(limit: usize, idempotency_keys: bool) -> Self {
        Self {
            limit,
            idempotency_keys,
        }
    }
}

/// A request's head, and its body's recording.
pub struct SavedRequest<B> {
    head: Request<()>,
    body: Option<Arc<Recording<B>>>,
}

impl<B> std::fmt::Debug for SavedRequest<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedRequest")
            .field("head", &self.head)
            .field("body", &self.body)
            .finish()
    }
}

/// The head of `request`, cloned (extensions included).
fn clone_head<B>(request: &Request<B>) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = request.method().clone();
    *head.uri_mut() = request.uri().clone();
    *head.version_mut() = request.version();
    *head.headers_mut() = request.headers().clone();
    *head.extensions_mut() = request.extensions().clone();
    head
}

impl<B> Replay<Request<B>> for ReplayBodies
where
    B: http_body::Body,
{
    type Attempt = Request<ReplayBody<B>>;
    type Saved = SavedRequest<B>;

    fn prepare(&self, request: &mut Request<B>) {
        if self.idempotency_keys
            && !is_idempotent(request.method())
            && !request.headers().contains_key(IDEMPOTENCY_KEY)
        {
            // An sf-string: a UUID's hex digits and dashes need no escaping.
            let key = format!("\"{}\"", uuid::Uuid::new_v4());
            let value = HeaderValue::try_from(key).expect("a quoted UUID is a valid header value");
            request.headers_mut().insert(IDEMPOTENCY_KEY, value);
        }
    }

    fn first(&self, request: Request<B>) -> (Self::Attempt, SavedRequest<B>) {
        let head = clone_head(&request);
        let (parts, body) = request.into_parts();
        let (body, recording) = ReplayBody::recording(body, self.limit);
        (
            Request::from_parts(parts, body),
            SavedRequest {
                head,
                body: recording,
            },
        )
    }

    fn only(&self, request: Request<B>) -> Self::Attempt {
        request.map(ReplayBody::passthrough)
    }

    fn again(&self, saved: &SavedRequest<B>, previous: u32) -> Option<Self::Attempt> {
        let body = match &saved.body {
            None => ReplayBody::empty(),
            Some(recording) => ReplayBody::replaying(recording)?,
        };
        let mut head = clone_head(&saved.head);
        if is_grpc(head.headers()) {
            // gRFC A6: a retry tells the server how many attempts came before it.
            head.headers_mut()
                .insert(GRPC_PREVIOUS_RPC_ATTEMPTS, HeaderValue::from(previous));
        }
        Some(head.map(|()| body))
    }
}
