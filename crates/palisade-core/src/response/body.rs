use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body of a response from a palisade layer in HTTP mode: the inner service's body,
    /// or the small body of a refusal.
    ///
    /// One enum instead of a boxed body keeps passes allocation-free. A refusal's bytes are
    /// boxed instead: the enum is then no larger than a boxed inner body (axum's, tonic's),
    /// so wrapping an admitted response is a move of the response as it was. With the
    /// bytes inline it grew by 24 bytes, past what the compiler moves in registers, and the
    /// rate limiter's HTTP path cost 1.22× tower_governor's instead of 1.03×
    /// (`cargo bench -p palisade-criterion --bench ratelimit -- http/1-thread`).
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { body: Option<Box<Bytes>> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of fixed bytes (an empty one is sent as no frame at all).
    pub fn rejection(bytes: Bytes) -> Self {
        let body = (!bytes.is_empty()).then(|| Box::new(bytes));
        Self {
            kind: Kind::Rejection { body },
        }
    }

    /// Whether this is a refusal's body rather than the inner service's.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }

    /// A refusal's bytes (empty for a gRPC refusal), for a layer that answers with a body of
    /// its own type; `None` for the inner service's body.
    pub fn into_rejection(self) -> Option<Bytes> {
        match self.kind {
            Kind::Rejection { body } => Some(body.map(|b| *b).unwrap_or_default()),
            Kind::Inner { .. } => None,
        }
    }
}

impl<B> Body for ResponseBody<B>
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
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { body } => Poll::Ready(body.take().map(|b| Ok(Frame::data(*b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { body } => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { body } => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn passes_the_inner_body_through() {
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"hello")));
        assert!(!body.is_rejection());
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"hello");
    }

    #[test]
    fn wraps_a_boxed_body_at_no_size() {
        type Boxed = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
        assert_eq!(
            std::mem::size_of::<ResponseBody<Boxed>>(),
            std::mem::size_of::<Boxed>()
        );
    }

    #[tokio::test]
    async fn sends_a_rejection_once() {
        let body: ResponseBody<Full<Bytes>> = ResponseBody::rejection(Bytes::from_static(b"{}"));
        assert!(body.is_rejection());
        assert_eq!(body.size_hint().exact(), Some(2));
        assert!(!body.is_end_stream());
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"{}");
        let empty: ResponseBody<Full<Bytes>> = ResponseBody::rejection(Bytes::new());
        assert!(empty.is_end_stream());
    }
}
