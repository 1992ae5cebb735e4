use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::Response;
use palisade_core::response::rejection_response;
use palisade_core::{Classification, Classify, Outcome, ResponseBody, refusal};
use pin_project_lite::pin_project;

use super::{BreakerBody, ClassifyEos};
use crate::error::BreakerOpen;
use crate::shared::Permit;

pin_project! {
    /// The response future of [`HttpCircuitBreaker`](super::HttpCircuitBreaker).
    pub struct HttpResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin] future: F,
            permit: Option<Permit>,
            classifier: C,
            eos: ClassifyEos<C>,
        },
        Rejected { open: Option<BreakerOpen>, grpc: bool },
    }
}

impl<F, C> HttpResponseFuture<F, C> {
    pub(crate) fn called(future: F, permit: Permit, classifier: C, eos: ClassifyEos<C>) -> Self {
        Self {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                classifier,
                eos,
            },
        }
    }

    pub(crate) fn rejected(open: BreakerOpen, grpc: bool) -> Self {
        Self {
            kind: Kind::Rejected {
                open: Some(open),
                grpc,
            },
        }
    }
}

impl<F, C, B, E> Future for HttpResponseFuture<F, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
    C: Classify<Response<B>, E> + Clone,
{
    type Output = Result<Response<ResponseBody<BreakerBody<B, C>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classifier,
                eos,
            } => {
                let result = ready!(future.poll(cx));
                let permit = permit.take();
                match result {
                    Ok(response) => {
                        let classification = if refusal::of_response(&response).is_some() {
                            // A refusal from a layer below: the service never saw it.
                            Classification::Complete(Outcome::Ignored)
                        } else {
                            classifier.classify_response(&response)
                        };
                        let deferred = match (classification, permit) {
                            (Classification::AtEndOfStream, Some(permit)) => {
                                Some((permit, classifier.clone(), *eos))
                            }
                            (Classification::Complete(outcome), Some(permit)) => {
                                permit.record(outcome);
                                None
                            }
                            (_, None) => None,
                        };
                        Poll::Ready(Ok(
                            response.map(|b| ResponseBody::inner(BreakerBody::new(b, deferred)))
                        ))
                    }
                    Err(error) => {
                        if let Some(permit) = permit {
                            permit.record(if refusal::is_refusal_error(&error) {
                                Outcome::Ignored
                            } else {
                                classifier.classify_error(&error)
                            });
                        }
                        Poll::Ready(Err(error))
                    }
                }
            }
            KindProj::Rejected { open, grpc } => {
                let open = open
                    .take()
                    .expect("HttpResponseFuture polled after completion");
                Poll::Ready(Ok(rejection_response(&open, *grpc)))
            }
        }
    }
}
