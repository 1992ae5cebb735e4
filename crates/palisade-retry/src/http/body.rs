//! A request body that can be sent again.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The body each attempt sends: the caller's body, recorded as it streams on the first
    /// attempt, then the recording on later ones.
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Empty,
        Passthrough { #[pin] body: B },
        Recording { #[pin] body: B, recording: Arc<Recording> },
        Replaying { recording: Arc<Recording>, next: usize, trailers_sent: bool },
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Empty => "empty",
            Kind::Passthrough { .. } => "passthrough",
            Kind::Recording { .. } => "recording",
            Kind::Replaying { .. } => "replaying",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

/// What the first attempt has recorded of a body.
#[derive(Debug)]
pub(crate) struct Recording {
    limit: usize,
    recorded: Mutex<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    chunks: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    status: Status,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The first attempt has not streamed the whole body (yet).
    #[default]
    InProgress,
    /// The whole body is recorded.
    Complete,
    /// Over the limit, or failed: never replayed.
    Unreplayable,
}

impl Recording {
    fn new(limit: usize, status: Status) -> Arc<Self> {
        Arc::new(Self {
            limit,
            recorded: Mutex::new(Recorded {
                status,
                ..Recorded::default()
            }),
        })
    }

    // The lock is held for a push or a read of one chunk, never across an await.
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, chunk: &Bytes) {
        let mut recorded = self.lock();
        if recorded.status != Status::InProgress {
            return;
        }
        if recorded.len + chunk.len() > self.limit {
            // Too big to keep: stop recording and free what was kept.
            *recorded = Recorded {
                status: Status::Unreplayable,
                ..Recorded::default()
            };
            return;
        }
        recorded.len += chunk.len();
        recorded.chunks.push(chunk.clone());
    }

    fn end(&self, trailers: Option<HeaderMap>) {
        let mut recorded = self.lock();
        if recorded.status == Status::InProgress {
            recorded.trailers = trailers;
            recorded.status = Status::Complete;
        }
    }

    fn fail(&self) {
        *self.lock() = Recorded {
            status: Status::Unreplayable,
            ..Recorded::default()
        };
    }
}

impl<B: Body> ReplayBody<B> {
    /// The first attempt's body, and the recording a retry will replay (`None`: the body is
    /// empty, and so is every retry's).
    pub(crate) fn recording(body: B, limit: usize) -> (Self, Option<Arc<Recording>>) {
        if body.is_end_stream() {
            return (Self::empty(), None);
        }
        let too_big = usize::try_from(body.size_hint().lower()).map_or(true, |n| n > limit);
        let recording = Recording::new(
            limit,
            if too_big {
                Status::Unreplayable
            } else {
                Status::InProgress
            },
        );
        let kind = if too_big {
            Kind::Passthrough { body }
        } else {
            Kind::Recording {
                body,
                recording: recording.clone(),
            }
        };
        (Self { kind }, Some(recording))
    }

    /// The body of a request that will not be retried, untouched.
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            kind: Kind::Passthrough { body },
        }
    }
}

impl<B> ReplayBody<B> {
    /// A body with nothing in it.
    pub(crate) fn empty() -> Self {
        Self { kind: Kind::Empty }
    }

    /// A replay of `recording`, if it holds a whole body.
    pub(crate) fn replaying(recording: &Arc<Recording>) -> Option<Self> {
        (recording.lock().status == Status::Complete).then(|| Self {
            kind: Kind::Replaying {
                recording: recording.clone(),
                next: 0,
                trailers_sent: false,
            },
        })
    }
}

fn into_bytes(mut data: impl Buf) -> Bytes {
    // Zero-copy when the data is already `Bytes`.
    data.copy_to_bytes(data.remaining())
}

impl<B: Body> Body for ReplayBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Empty => Poll::Ready(None),
            KindProj::Passthrough { body } => Poll::Ready(
                ready!(body.poll_frame(cx)).map(|frame| frame.map(|f| f.map_data(into_bytes))),
            ),
            KindProj::Recording {
                mut body,
                recording,
            } => {
                let frame = match ready!(body.as_mut().poll_frame(cx)) {
                    None => {
                        recording.end(None);
                        return Poll::Ready(None);
                    }
                    Some(Err(error)) => {
                        recording.fail();
                        return Poll::Ready(Some(Err(error)));
                    }
                    Some(Ok(frame)) => frame.map_data(into_bytes),
                };
                match frame.data_ref() {
                    Some(chunk) => {
                        recording.push(chunk);
                        if body.is_end_stream() {
                            recording.end(None);
                        }
                    }
                    None => recording.end(frame.trailers_ref().cloned()),
                }
                Poll::Ready(Some(Ok(frame)))
            }
            KindProj::Replaying {
                recording,
                next,
                trailers_sent,
            } => {
                let recorded = recording.lock();
                if let Some(chunk) = recorded.chunks.get(*next) {
                    *next += 1;
                    return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
                }
                if !*trailers_sent {
                    *trailers_sent = true;
                    if let Some(trailers) = &recorded.trailers {
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
                    }
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Passthrough { body } | Kind::Recording { body, .. } => body.is_end_stream(),
            Kind::Replaying {
                recording,
                next,
                trailers_sent,
            } => {
                let recorded = recording.lock();
                *next >= recorded.chunks.len() && (*trailers_sent || recorded.trailers.is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Passthrough { body } | Kind::Recording { body, .. } => body.size_hint(),
            Kind::Replaying {
                recording, next, ..
            } => {
                let recorded = recording.lock();
                let left: usize = recorded.chunks.iter().skip(*next).map(Bytes::len).sum();
                SizeHint::with_exact(left as u64)
            }
        }
    }
}
