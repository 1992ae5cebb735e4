//! [`GrpcRetryLayer`]: each gRPC call retried, hedged and bounded as its method's entry of
//! the service config says.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use palisade_core::BoxError;
use tower_layer::Layer;
use tower_service::Service;

use super::{MethodConfig, ServiceConfig};
use crate::budget::{Budget, BudgetConfig, TokenBudget};
use crate::config::RetryConfig;
use crate::future::ResponseFuture;
use crate::http::ReplayBodies;
use crate::policy::{HttpPolicy, Policy};
use crate::replay::Replay;
use crate::service::start;
use crate::shared::Shared;

/// How the calls of one method (or service, or every method) are made.
struct Route {
    shared: Arc<Shared>,
    policy: HttpPolicy,
}

/// Every route of a config, found by a call's path without an allocation.
struct Routes {
    /// By `package.Service/Method`.
    methods: HashMap<String, Route>,
    /// By `package.Service`.
    services: HashMap<String, Route>,
    /// The `{}` entry's, or sent once.
    default: Route,
    replay: ReplayBodies,
}

impl Routes {
    fn route(&self, path: &str) -> &Route {
        let path = path.strip_prefix('/').unwrap_or(path);
        if let Some(route) = self.methods.get(path) {
            return route;
        }
        let service = path.split_once('/').map_or(path, |(service, _)| service);
        self.services.get(service).unwrap_or(&self.default)
    }
}

/// Retries, hedges and bounds each gRPC call as its method's entry of a [`ServiceConfig`]
/// says: made by [`ServiceConfig::layer`]. Requests take any body, replayed as
/// [`HttpRetryLayer`](crate::HttpRetryLayer)'s are; a tonic `Channel` below needs them mapped
/// into its body (`.map_request(|r: http::Request<_>| r.map(tonic::body::Body::new))`).
#[derive(Clone)]
pub struct GrpcRetryLayer {
    routes: Arc<Routes>,
}

impl std::fmt::Debug for GrpcRetryLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRetryLayer")
            .field("methods", &self.routes.methods.keys().collect::<Vec<_>>())
            .field("services", &self.routes.services.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl GrpcRetryLayer {
    pub(super) fn new(config: &ServiceConfig, name: &str) -> Self {
        // One budget for the whole channel, as A6's throttling is.
        let budget: Arc<dyn Budget> = match config.throttling {
            Some(t) => Arc::new(
                TokenBudget::new(t.max_tokens, t.token_ratio).expect("checked as it was read"),
            ),
            None => BudgetConfig::default()
                .build()
                .expect("the default budget is valid"),
        };
        let route = |entry: Option<&MethodConfig>| {
            let (config, policy) = match entry {
                Some(entry) => (entry.retry_config(name), entry.policy()),
                None => (
                    RetryConfig::builder(name)
                        .max_attempts(1)
                        .build()
                        .expect("valid"),
                    HttpPolicy::default(),
                ),
            };
            Route {
                shared: Arc::new(Shared::with_budget(config, budget.clone())),
                policy,
            }
        };
        let mut methods = HashMap::new();
        let mut services = HashMap::new();
        let mut default = None;
        for entry in &config.methods {
            for name in &entry.names {
                match (&name.service, &name.method) {
                    (Some(service), Some(method)) => {
                        methods.insert(format!("{service}/{method}"), route(Some(entry)));
                    }
                    (Some(service), None) => {
                        services.insert(service.clone(), route(Some(entry)));
                    }
                    _ => default = Some(route(Some(entry))),
                }
            }
        }
        Self {
            routes: Arc::new(Routes {
                methods,
                services,
                default: default.unwrap_or_else(|| route(None)),
                replay: ReplayBodies::new(64 * 1024, false),
            }),
        }
    }
}

impl<S> Layer<S> for GrpcRetryLayer {
    type Service = GrpcRetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcRetry {
            inner,
            routes: self.routes.clone(),
        }
    }
}

/// A gRPC client whose calls are retried, hedged and bounded per method; made by
/// [`GrpcRetryLayer`].
#[derive(Clone)]
pub struct GrpcRetry<S> {
    inner: S,
    routes: Arc<Routes>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for GrpcRetry<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcRetry")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for GrpcRetry<S>
where
    ReplayBodies: Replay<Request<B>>,
    S: Service<<ReplayBodies as Replay<Request<B>>>::Attempt> + Clone,
    S::Error: Into<BoxError>,
    HttpPolicy: Policy<Request<B>, S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReplayBodies, HttpPolicy, Request<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let routes = &self.routes;
        let route = routes.route(request.uri().path());
        start(
            &mut self.inner,
            &route.shared,
            &route.policy,
            &routes.replay,
            request,
        )
    }
}
