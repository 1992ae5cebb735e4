//! The bodies the layer passes on: the request's (as it came, or buffered) and the
//! response's (as the service made it, buffered, or replayed); and reading a response's
//! body whole, to store it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use palisade_core::BoxError;

pin_project! {
    /// A request body as the inner service sees it: untouched for a request the layer does
    /// not handle, or the buffered bytes of a keyed one (read whole to fingerprint it).
    pub struct RequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    enum RequestKind<B> {
        Pass { #[pin] body: B },
        Buffered { data: Option<Bytes> },
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn pass(body: B) -> Self {
        Self {
            kind: RequestKind::Pass { body },
        }
    }

    pub(crate) fn buffered(data: Bytes) -> Self {
        Self {
            kind: RequestKind::Buffered {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            RequestKindProj::Pass { body } => body.poll_frame(cx),
            RequestKindProj::Buffered { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Pass { body } => body.is_end_stream(),
            RequestKind::Buffered { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Pass { body } => body.size_hint(),
            RequestKind::Buffered { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

pin_project! {
    /// A response body from the layer: the inner service's, passed through; a whole body
    /// read to be stored (or replayed from the store), with its trailers; or, for a body
    /// over the storage limit, what was read and then the rest of the stream.
    pub struct ResponseBody<B> {
        #[pin]
        kind: ResponseKind<B>,
    }
}

pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind<B> {
        Pass { #[pin] body: B },
        // Boxed: every response through the layer has this type, and a pass-through one (a
        // GET, a request without a key) should move no more bytes than its own body. Inline,
        // the buffered `Bytes` and trailer `HeaderMap` (128 bytes) made the body of every
        // response at least that large, where axum's is 16.
        Buffered { buffered: Box<Buffered<B>> },
    }
}

/// A keyed response's body: the bytes read (or replayed), then how it ends.
struct Buffered<B> {
    data: Option<Bytes>,
    end: End<B>,
}

/// What follows the bytes read.
enum End<B> {
    /// The trailers, if any: the body was read whole.
    Trailers(Option<HeaderMap>),
    /// The rest of a body over the storage limit, still to come.
    Rest(Pin<Box<B>>),
    /// The error the body failed with.
    Failed(Option<BoxError>),
}

impl<B> ResponseBody<B> {
    pub(crate) fn pass(body: B) -> Self {
        Self {
            kind: ResponseKind::Pass { body },
        }
    }

    pub(crate) fn whole(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self::buffered(data, End::Trailers(trailers))
    }

    pub(crate) fn then_rest(data: Bytes, rest: Pin<Box<B>>) -> Self {
        Self::buffered(data, End::Rest(rest))
    }

    pub(crate) fn failed(data: Bytes, error: BoxError) -> Self {
        Self::buffered(data, End::Failed(Some(error)))
    }

    fn buffered(data: Bytes, end: End<B>) -> Self {
        Self {
            kind: ResponseKind::Buffered {
                buffered: Box::new(Buffered {
                    data: (!data.is_empty()).then_some(data),
                    end,
                }),
            },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let buffered = match self.project().kind.project() {
            ResponseKindProj::Pass { body } => return body.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Buffered { buffered } => &mut **buffered,
        };
        if let Some(data) = buffered.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match &mut buffered.end {
            End::Trailers(trailers) => Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t)))),
            End::Rest(rest) => rest.as_mut().poll_frame(cx).map_err(Into::into),
            End::Failed(error) => Poll::Ready(error.take().map(Err)),
        }
    }

    fn is_end_stream(&self) -> bool {
        let buffered = match &self.kind {
            ResponseKind::Pass { body } => return body.is_end_stream(),
            ResponseKind::Buffered { buffered } => buffered,
        };
        buffered.data.is_none()
            && match &buffered.end {
                End::Trailers(trailers) => trailers.is_none(),
                End::Rest(rest) => rest.is_end_stream(),
                End::Failed(error) => error.is_none(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = match &self.kind {
            ResponseKind::Pass { body } => return body.size_hint(),
            ResponseKind::Buffered { buffered } => buffered,
        };
        let read = buffered.data.as_ref().map_or(0, |d| d.len() as u64);
        match &buffered.end {
            End::Trailers(_) => SizeHint::with_exact(read),
            End::Rest(rest) => {
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + read);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + read);
                }
                hint
            }
            End::Failed(_) => {
                let mut hint = SizeHint::new();
                hint.set_lower(read);
                hint
            }
        }
    }
}

/// A response body read whole, or as far as it could be.
pub(crate) enum Whole<B> {
    /// All of it: the data and the trailers.
    Read(Bytes, Option<HeaderMap>),
    /// Over the limit: what was read, and the rest of the stream still to come.
    TooLarge(Bytes, Pin<Box<B>>),
    /// The body failed after what was read.
    Failed(Bytes, BoxError),
}

/// Reads `body` to its end, unless it grows past `limit` bytes or fails.
pub(crate) async fn read_whole<B>(mut body: Pin<Box<B>>, limit: usize) -> Whole<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(chunk) => {
                    data.extend_from_slice(&chunk);
                    if data.len() > limit {
                        return Whole::TooLarge(data.freeze(), body);
                    }
                }
                Err(frame) => {
                    if let Ok(more) = frame.into_trailers() {
                        trailers.get_or_insert_with(HeaderMap::new).extend(more);
                    }
                }
            },
            Err(error) => return Whole::Failed(data.freeze(), error.into()),
        }
    }
    Whole::Read(data.freeze(), trailers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_body_moves_at_its_own_size() {
        type Boxed = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
        assert_eq!(
            std::mem::size_of::<ResponseBody<Boxed>>(),
            std::mem::size_of::<Boxed>()
        );
    }
}
