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
        Whole { data: Option<Bytes>, trailers: Option<HeaderMap> },
        Rest { data: Option<Bytes>, rest: Pin<Box<B>> },
        Failed { data: Option<Bytes>, error: Option<BoxError> },
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn pass(body: B) -> Self {
        Self {
            kind: ResponseKind::Pass { body },
        }
    }

    pub(crate) fn whole(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            kind: ResponseKind::Whole {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    pub(crate) fn then_rest(data: Bytes, rest: Pin<Box<B>>) -> Self {
        Self {
            kind: ResponseKind::Rest {
                data: (!data.is_empty()).then_some(data),
                rest,
            },
        }
    }

    pub(crate) fn failed(data: Bytes, error: BoxError) -> Self {
        Self {
            kind: ResponseKind::Failed {
                data: (!data.is_empty()).then_some(data),
                error: Some(error),
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
        match self.project().kind.project() {
            ResponseKindProj::Pass { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Whole { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(Frame::trailers))
                    .map(Ok),
            ),
            ResponseKindProj::Rest { data, rest } => match data.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => rest.as_mut().poll_frame(cx).map_err(Into::into),
            },
            ResponseKindProj::Failed { data, error } => Poll::Ready(
                data.take()
                    .map(|d| Ok(Frame::data(d)))
                    .or_else(|| error.take().map(Err)),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Pass { body } => body.is_end_stream(),
            ResponseKind::Whole { data, trailers } => data.is_none() && trailers.is_none(),
            ResponseKind::Rest { data, rest } => data.is_none() && rest.is_end_stream(),
            ResponseKind::Failed { data, error } => data.is_none() && error.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let buffered = |data: &Option<Bytes>| data.as_ref().map_or(0, |d| d.len() as u64);
        match &self.kind {
            ResponseKind::Pass { body } => body.size_hint(),
            ResponseKind::Whole { data, .. } => SizeHint::with_exact(buffered(data)),
            ResponseKind::Rest { data, rest } => {
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + buffered(data));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + buffered(data));
                }
                hint
            }
            ResponseKind::Failed { data, .. } => {
                let mut hint = SizeHint::new();
                hint.set_lower(buffered(data));
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
