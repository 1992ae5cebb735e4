//! Replaying: what of a response is kept for the duplicates to come, and how a stored
//! response is given back — as it was, marked with [`REPLAYED`] so that a client (or a
//! test) can tell a replay from a fresh run.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, response};

use crate::body::ResponseBody;
use crate::record::{StoredResponse, is_replayable};

/// The header a replayed response carries.
pub const REPLAYED: &str = "idempotent-replayed";

/// The response to store for the duplicates to come: its status, the headers worth
/// replaying, its whole body and its trailers.
pub(crate) fn to_store(
    head: &response::Parts,
    body: Bytes,
    trailers: Option<HeaderMap>,
) -> StoredResponse {
    StoredResponse {
        status: head.status,
        headers: replayable(&head.headers),
        body,
        trailers,
    }
}

/// The headers of a response worth storing.
fn replayable(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if is_replayable(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The stored response, as it was, marked as a replay.
pub(crate) fn replay<B>(stored: StoredResponse) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::whole(stored.body, stored.trailers));
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.headers;
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
