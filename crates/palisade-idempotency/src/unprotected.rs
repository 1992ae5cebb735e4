//! Failing open: a keyed request run without a record, because the store failed and the
//! layer is configured to run requests rather than refuse them.
//!
//! Most stores lend nothing, and the request simply passes through. A store that lends the
//! handler a place to do its work (Postgres: the keyed transaction) lends one here too —
//! else a handler written for it could not run at all while its store is down — settled
//! without a record: committed when the response is final by the layer's policy, rolled
//! back otherwise, as a claimed request's would be.

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use palisade_core::BoxError;
use tower_service::Service;

use crate::body::{RequestBody, ResponseBody, Whole, read_whole};
use crate::error::Refusal;
use crate::replay::to_store;
use crate::shared::Shared;
use crate::store::{Attachment, Settled};

/// Runs `request` through `inner` with `attachment` lent, and settles it by the response.
pub(crate) async fn run_with<S, B, RB>(
    mut inner: S,
    shared: &Shared,
    request: Request<RequestBody<B>>,
    attachment: Attachment,
    grpc: bool,
) -> Result<Response<ResponseBody<RB>>, S::Error>
where
    S: Service<Request<RequestBody<B>>, Response = Response<RB>>,
    RB: Body<Data = Bytes>,
    RB::Error: Into<BoxError>,
{
    let config = &shared.config;
    let attached = attachment.attached();
    let uncommitted = || {
        Ok(Refusal::Uncommitted {
            retry_after: config.retry_after,
        }
        .response(&shared.metrics, grpc))
    };
    let response = match inner.call(request).await {
        Ok(response) => response,
        Err(error) => {
            attached.abandon();
            return Err(error);
        }
    };
    let (head, body) = response.into_parts();
    // Read whole, as a claimed request's: gRPC's outcome is in the trailers.
    let (data, trailers) = match read_whole(Box::pin(body), config.max_response).await {
        Whole::Read(data, trailers) => (data, trailers),
        Whole::TooLarge(read, rest) => {
            if attached.abandon() {
                return uncommitted();
            }
            return Ok(Response::from_parts(
                head,
                ResponseBody::then_rest(read, rest),
            ));
        }
        Whole::Failed(read, error) => {
            if attached.abandon() {
                return uncommitted();
            }
            return Ok(Response::from_parts(
                head,
                ResponseBody::failed(read, error),
            ));
        }
    };
    if config
        .policy
        .should_store(head.status, &head.headers, trailers.as_ref())
    {
        let stored = to_store(&head, data.clone(), trailers.clone());
        match attached.complete(&stored, config.ttl).await {
            Ok(Settled::Committed | Settled::NotUsed | Settled::Aborted) => {}
            Ok(_) | Err(_) => return uncommitted(),
        }
    } else {
        attached.abandon();
    }
    Ok(Response::from_parts(
        head,
        ResponseBody::whole(data, trailers),
    ))
}
