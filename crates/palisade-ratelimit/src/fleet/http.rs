//! [`FleetRateLimitLayer`]: fleet-wide limits in front of an HTTP or gRPC server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use palisade_core::grpc::is_grpc;
use palisade_core::{ConfigError, ResponseBody, rejection_response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::Fleet;
use super::shared::{Checked, Local, Shared};
use crate::config::RateLimitConfig;
use crate::http::Head;
use crate::key::Key;
use crate::store::Store;

/// Limits request rates across a fleet, in front of an HTTP or gRPC server: every instance
/// takes from the same counts in `store`. Refusals are the same as
/// [`HttpRateLimitLayer`](crate::HttpRateLimitLayer)'s (`429` + the RateLimit fields, or
/// `RESOURCE_EXHAUSTED`).
///
/// A request waits for the store's answer before it reaches the service (batched mode: only
/// when its lease is spent), so the service must be `Clone`, as behind tower's `Buffer`: the
/// clone that was ready is moved into the future.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use palisade_ratelimit::fleet::{Fleet, FleetRateLimitLayer, OnStoreError};
/// use palisade_ratelimit::http::KeySource;
/// use palisade_ratelimit::store::MemoryStore;
/// use palisade_ratelimit::{Policy, Quota, RateLimitConfig};
///
/// let config = RateLimitConfig::builder("api")
///     .policy(Policy::new("per-key", Quota::per_second(100)).key(KeySource::header("x-api-key")))
///     .build()
///     .unwrap();
/// // Leases of 10; when the store fails, each instance keeps a quarter of the quota.
/// let fleet = Fleet::batched(10).on_store_error(OnStoreError::Local { share: 0.25 });
/// let layer = FleetRateLimitLayer::new(config, fleet, MemoryStore::new()).unwrap();
/// let app: axum::Router = axum::Router::new()
///     .route("/", axum::routing::get(|| async { "hello" }))
///     .layer(layer);
/// # let _ = app;
/// # });
/// ```
#[derive(Clone)]
pub struct FleetRateLimitLayer {
    shared: Arc<Shared>,
}

impl FleetRateLimitLayer {
    /// A layer that limits as `config` says, with the counts in `store`, used as `fleet`
    /// says.
    pub fn new(
        config: RateLimitConfig,
        fleet: Fleet,
        store: impl Store,
    ) -> Result<Self, ConfigError> {
        fleet.validate()?;
        for (i, policy) in config.policies.iter().enumerate() {
            if policy.quota.interval() < std::time::Duration::from_micros(1) {
                return Err(ConfigError::new(
                    format!("policies[{i}].quota"),
                    "is more than a million requests a second for one key: a store counts in microseconds",
                ));
            }
        }
        Ok(Self {
            shared: Arc::new(Shared::new(config, fleet, Arc::new(store))),
        })
    }
}

impl std::fmt::Debug for FleetRateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetRateLimitLayer")
            .field("config", &self.shared.limiter.config)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for FleetRateLimitLayer {
    type Service = FleetRateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FleetRateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// An HTTP service behind a fleet-wide rate limiter; made by [`FleetRateLimitLayer`].
#[derive(Clone)]
pub struct FleetRateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for FleetRateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetRateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, RB> Service<Request<B>> for FleetRateLimit<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
{
    type Response = Response<ResponseBody<RB>>;
    type Error = S::Error;
    type Future = FleetResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let head = Head::of(&request);
        let keys: Vec<(usize, Key)> = self
            .shared
            .limiter
            .policies
            .iter()
            .enumerate()
            .filter(|(_, live)| live.policy.scope.applies(&head))
            .filter_map(|(i, live)| Some((i, live.policy.key.key_of(&head)?)))
            .collect();
        let grpc = is_grpc(request.headers());
        if keys.is_empty() {
            return FleetResponseFuture::calling(self.inner.call(request), None);
        }
        // One policy, and the instance knows the answer (a cell left in a lease, a refusal
        // that holds): no round trip, no clone.
        if let [(index, key)] = &keys[..] {
            match self.shared.local(*index, key) {
                Local::Served => {
                    return FleetResponseFuture::calling(self.inner.call(request), None);
                }
                Local::Refused(verdict) => {
                    let limited = self.shared.refusal(*index, &verdict);
                    let fields = self.shared.refusal_fields(*index, &verdict);
                    return FleetResponseFuture::refused(refusal_response(&limited, fields, grpc));
                }
                Local::Ask => {}
            }
        }
        let want_fields = self.shared.limiter.config.headers_on_success;
        let shared = self.shared.clone();
        let check = Box::pin(async move { shared.check(keys, want_fields).await });
        // The clone that was ready goes with the request; this one readies itself next.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        FleetResponseFuture {
            state: State::Checking {
                check,
                service: Some(ready),
                request: Some(request),
                grpc,
            },
        }
    }
}

pin_project! {
    /// The response future of [`FleetRateLimit`].
    pub struct FleetResponseFuture<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B, RB>,
    }
}

type CheckFuture = Pin<Box<dyn Future<Output = Checked> + Send>>;

pin_project! {
    #[project = StateProjection]
    enum State<S, B, RB>
    where
        S: Service<Request<B>>,
    {
        // Waiting for the store.
        Checking {
            check: CheckFuture,
            service: Option<S>,
            request: Option<Request<B>>,
            grpc: bool,
        },
        // Admitted: the service's answer, then the fields.
        Calling {
            #[pin]
            future: S::Future,
            fields: Option<(HeaderValue, HeaderValue)>,
        },
        // Refused.
        Refused {
            response: Option<Box<Response<ResponseBody<RB>>>>,
        },
    }
}

impl<S, B, RB> FleetResponseFuture<S, B, RB>
where
    S: Service<Request<B>>,
{
    fn calling(future: S::Future, fields: Option<(HeaderValue, HeaderValue)>) -> Self {
        Self {
            state: State::Calling { future, fields },
        }
    }

    fn refused(response: Response<ResponseBody<RB>>) -> Self {
        Self {
            state: State::Refused {
                response: Some(Box::new(response)),
            },
        }
    }
}

/// The answer to a refused request, with the refusing policy's fields.
fn refusal_response<RB>(
    limited: &crate::RateLimited,
    fields: Option<(HeaderValue, HeaderValue)>,
    grpc: bool,
) -> Response<ResponseBody<RB>> {
    let mut response = rejection_response(limited, grpc);
    if let Some((policy, state)) = fields {
        let headers = response.headers_mut();
        headers.insert(crate::http::RATELIMIT_POLICY, policy);
        headers.insert(crate::http::RATELIMIT, state);
    }
    response
}

impl<S, B, RB> Future for FleetResponseFuture<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Output = Result<Response<ResponseBody<RB>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProjection::Checking {
                    check,
                    service,
                    request,
                    grpc,
                } => {
                    let checked = ready!(check.as_mut().poll(cx));
                    let next = match checked {
                        Ok(fields) => {
                            let mut service = service.take().expect("polled after completion");
                            let request = request.take().expect("polled after completion");
                            State::Calling {
                                future: service.call(request),
                                fields,
                            }
                        }
                        Err((limited, fields)) => State::Refused {
                            response: Some(Box::new(refusal_response(&limited, fields, *grpc))),
                        },
                    };
                    this.state.set(next);
                }
                StateProjection::Calling { future, fields } => {
                    let mut response = ready!(future.poll(cx))?.map(ResponseBody::inner);
                    if let Some((policy, state)) = fields.take() {
                        let headers = response.headers_mut();
                        headers.insert(crate::http::RATELIMIT_POLICY, policy);
                        headers.insert(crate::http::RATELIMIT, state);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProjection::Refused { response } => {
                    return Poll::Ready(Ok(*response.take().expect("polled after completion")));
                }
            }
        }
    }
}

impl<S, B, RB> std::fmt::Debug for FleetResponseFuture<S, B, RB>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetResponseFuture")
            .finish_non_exhaustive()
    }
}
