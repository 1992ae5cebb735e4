//! A request body that can be sent again.
//!
//! The first attempt streams the caller's body and records it as it goes. A later attempt
//! replays the recording, and where the recording stops short it carries on with the rest
//! of the caller's body: a server that answers before reading the whole request (a shedder
//! or an open breaker refusing at once, a gRPC server answering `UNAVAILABLE`) drops the
//! first attempt's body half-read, and the body hands what it had not read to the next
//! attempt instead of taking it to the grave. Only one attempt reads the caller's body at a
//! time; a replay that catches up with an attempt still reading it waits for its chunks.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The body's error: the caller's body's own, or [`NotReplayable`].
use palisade_core::BoxError;

pin_project! {
    /// The body each attempt sends: the caller's body, recorded as it streams on the first
    /// attempt, then the recording — followed by whatever of the caller's body no attempt
    /// had read yet — on later ones.
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }

    impl<B> PinnedDrop for ReplayBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // An attempt that stops reading before the end leaves the rest to the next one.
            if let KindProj::Streaming { body, recording } = this.project().kind.project()
                && let Some(body) = body.take()
            {
                recording.hand_over(body);
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Empty,
        Passthrough { #[pin] body: B },
        // Reads the caller's body (boxed, so that it can move to another attempt), recording.
        Streaming { body: Option<Pin<Box<B>>>, recording: Arc<Recording<B>> },
        Replaying { recording: Arc<Recording<B>>, next: usize, trailers_sent: bool },
    }
}

impl<B> std::fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Empty => "empty",
            Kind::Passthrough { .. } => "passthrough",
            Kind::Streaming { .. } => "streaming",
            Kind::Replaying { .. } => "replaying",
        };
        f.debug_struct("ReplayBody").field("kind", &kind).finish()
    }
}

/// The body's recording, shared by every attempt, and the part of the caller's body no
/// attempt is reading.
pub(crate) struct Recording<B> {
    limit: usize,
    recorded: Mutex<Recorded<B>>,
}

impl<B> std::fmt::Debug for Recording<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let recorded = self.lock();
        f.debug_struct("Recording")
            .field("limit", &self.limit)
            .field("len", &recorded.len)
            .field("status", &recorded.status)
            .finish()
    }
}

struct Recorded<B> {
    chunks: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    status: Status,
    /// The caller's body, not read to its end, left by the attempt that dropped it.
    rest: Option<Pin<Box<B>>>,
    /// Replays that have caught up with the recording, waiting for more of it (one, but for
    /// an abandoned attempt's body that its connection still polls).
    waiting: Vec<Waker>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The caller's body has not been read to its end (yet).
    #[default]
    InProgress,
    /// The whole body is recorded.
    Complete,
    /// Over the limit, or failed: never replayed.
    Unreplayable,
}

/// A replay could not go on: the part of the body it needed was not kept.
#[derive(Debug)]
struct NotReplayable;

impl std::fmt::Display for NotReplayable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body could not be replayed: it outgrew the replay limit or failed")
    }
}

impl std::error::Error for NotReplayable {}

impl<B> Recording<B> {
    fn new(limit: usize, status: Status) -> Arc<Self> {
        Arc::new(Self {
            limit,
            recorded: Mutex::new(Recorded {
                chunks: Vec::new(),
                len: 0,
                trailers: None,
                status,
                rest: None,
                waiting: Vec::new(),
            }),
        })
    }

    // The lock is held for a push or a read of one chunk, never across an await; a waiting
    // replay is woken after it is released.
    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded<B>> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut Recorded<B>)) {
        let waiting = {
            let mut recorded = self.lock();
            change(&mut recorded);
            std::mem::take(&mut recorded.waiting)
        };
        for waker in waiting {
            waker.wake();
        }
    }

    fn push(&self, chunk: &Bytes) {
        self.update(|recorded| {
            if recorded.status != Status::InProgress {
                return;
            }
            if recorded.len + chunk.len() > self.limit {
                recorded.unreplayable();
                return;
            }
            recorded.len += chunk.len();
            recorded.chunks.push(chunk.clone());
        });
    }

    fn end(&self, trailers: Option<HeaderMap>) {
        self.update(|recorded| {
            if recorded.status == Status::InProgress {
                recorded.trailers = trailers;
                recorded.status = Status::Complete;
            }
        });
    }

    fn fail(&self) {
        self.update(Recorded::unreplayable);
    }

    /// Keeps the unread rest of the caller's body for the next attempt, if it can use it.
    fn hand_over(&self, body: Pin<Box<B>>) {
        let mut body = Some(body);
        self.update(|recorded| {
            if recorded.status == Status::InProgress {
                recorded.rest = body.take();
            }
        });
        // A body nobody can use is dropped here, outside the lock.
        drop(body);
    }
}

impl<B> Recorded<B> {
    /// Too big to keep, or failed: frees what was kept; a replay behind it will fail.
    fn unreplayable(&mut self) {
        self.status = Status::Unreplayable;
        self.chunks = Vec::new();
        self.trailers = None;
        self.rest = None;
    }
}

impl<B: Body> ReplayBody<B> {
    /// The first attempt's body, and the recording a retry will replay (`None`: the body is
    /// empty, and so is every retry's).
    pub(crate) fn recording(body: B, limit: usize) -> (Self, Option<Arc<Recording<B>>>) {
        if body.is_end_stream() {
            return (Self::empty(), None);
        }
        let too_big = usize::try_from(body.size_hint().lower()).map_or(true, |n| n > limit);
        if too_big {
            let recording = Recording::new(limit, Status::Unreplayable);
            return (Self::passthrough(body), Some(recording));
        }
        let recording = Recording::new(limit, Status::InProgress);
        let kind = Kind::Streaming {
            body: Some(Box::pin(body)),
            recording: recording.clone(),
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

    /// A replay of `recording`, unless the body can no longer be replayed. A recording still
    /// in progress is replayed as far as it goes, then continued from the caller's body.
    pub(crate) fn replaying(recording: &Arc<Recording<B>>) -> Option<Self> {
        (recording.lock().status != Status::Unreplayable).then(|| Self {
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

/// What a replay does next.
enum Step<B> {
    Frame(Frame<Bytes>),
    End,
    Fail,
    /// Carry on with the caller's body, which no attempt is reading now.
    TakeOver(Pin<Box<B>>, Arc<Recording<B>>),
    Wait,
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let step = match self.as_mut().project().kind.project() {
                KindProj::Empty => return Poll::Ready(None),
                KindProj::Passthrough { body } => {
                    return Poll::Ready(
                        ready!(body.poll_frame(cx))
                            .map(|frame| frame.map(|f| f.map_data(into_bytes)).map_err(Into::into)),
                    );
                }
                KindProj::Streaming { body, recording } => {
                    let Some(body) = body else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(ready!(stream(body.as_mut(), recording, cx)));
                }
                KindProj::Replaying {
                    recording,
                    next,
                    trailers_sent,
                } => replay_step(recording, next, trailers_sent, cx),
            };
            match step {
                Step::Frame(frame) => return Poll::Ready(Some(Ok(frame))),
                Step::End => return Poll::Ready(None),
                Step::Fail => return Poll::Ready(Some(Err(NotReplayable.into()))),
                Step::Wait => return Poll::Pending,
                Step::TakeOver(body, recording) => {
                    self.as_mut().project().kind.set(Kind::Streaming {
                        body: Some(body),
                        recording,
                    });
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Streaming { body, .. } => body.as_ref().is_none_or(|b| b.is_end_stream()),
            Kind::Replaying {
                recording,
                next,
                trailers_sent,
            } => {
                let recorded = recording.lock();
                recorded.status == Status::Complete
                    && *next >= recorded.chunks.len()
                    && (*trailers_sent || recorded.trailers.is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Streaming { body, .. } => body
                .as_ref()
                .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint()),
            Kind::Replaying {
                recording, next, ..
            } => {
                let recorded = recording.lock();
                let left: usize = recorded.chunks.iter().skip(*next).map(Bytes::len).sum();
                if recorded.status == Status::Complete {
                    SizeHint::with_exact(left as u64)
                } else {
                    // The rest of the caller's body is still to come.
                    let mut hint = SizeHint::new();
                    hint.set_lower(left as u64);
                    hint
                }
            }
        }
    }
}

/// Reads one frame of the caller's body, recording it.
fn stream<B>(
    mut body: Pin<&mut B>,
    recording: &Recording<B>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, BoxError>>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let frame = match ready!(body.as_mut().poll_frame(cx)) {
        None => {
            recording.end(None);
            return Poll::Ready(None);
        }
        Some(Err(error)) => {
            recording.fail();
            return Poll::Ready(Some(Err(error.into())));
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

/// The next step of a replay at chunk `next` of `recording`.
fn replay_step<B>(
    recording: &Arc<Recording<B>>,
    next: &mut usize,
    trailers_sent: &mut bool,
    cx: &mut Context<'_>,
) -> Step<B> {
    let mut recorded = recording.lock();
    if let Some(chunk) = recorded.chunks.get(*next) {
        *next += 1;
        return Step::Frame(Frame::data(chunk.clone()));
    }
    match recorded.status {
        Status::Unreplayable => Step::Fail,
        Status::Complete => {
            if !*trailers_sent {
                *trailers_sent = true;
                if let Some(trailers) = &recorded.trailers {
                    return Step::Frame(Frame::trailers(trailers.clone()));
                }
            }
            Step::End
        }
        Status::InProgress => match recorded.rest.take() {
            Some(body) => Step::TakeOver(body, recording.clone()),
            // Another attempt is still reading the caller's body: wait for its chunks, or
            // for it to hand the rest over.
            None => {
                if !recorded.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    recorded.waiting.push(cx.waker().clone());
                }
                Step::Wait
            }
        },
    }
}
