//! Which requests to refuse first.
//!
//! Under overload not every request matters as much: a checkout more than a prefetch, a
//! health check more than a batch export. A request carries a [`Priority`]; sheddable
//! requests may use only part of the limit (half by default) and never wait in the queue,
//! default ones most of it (90 %), so that when the server is full the share left is kept
//! for critical requests (Google SRE's criticality, Netflix's partitioned limits).

#[cfg(feature = "http")]
use http::{HeaderName, HeaderValue, Request};

/// How much a request matters when there is not room for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Priority {
    /// Refused last: may use the whole limit and waits first in the queue.
    Critical,
    /// The usual request.
    #[default]
    Default,
    /// Refused first: may use only part of the limit, and never waits.
    Sheddable,
}

impl Priority {
    pub(crate) const ALL: [Priority; 3] =
        [Priority::Critical, Priority::Default, Priority::Sheddable];

    /// The name used in headers and metrics: `critical`, `default`, `sheddable`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Default => "default",
            Priority::Sheddable => "sheddable",
        }
    }

    /// Reads a header value: `critical`, `default` or `sheddable`, in any case; anything else
    /// is `None`.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?.trim();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(text))
    }
}

/// Tells a request's priority.
pub trait PriorityOf<Req> {
    /// The priority of `request`.
    fn priority_of(&self, request: &Req) -> Priority;
}

/// Every request is [`Priority::Default`]: the generic layer's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllDefault;

impl<Req> PriorityOf<Req> for AllDefault {
    fn priority_of(&self, _: &Req) -> Priority {
        Priority::Default
    }
}

/// A priority from a closure over the request.
///
/// ```
/// use palisade_shed::priority::{Priority, PriorityOf, priority_fn};
///
/// let by_path = priority_fn(|req: &http::Request<()>| match req.uri().path() {
///     "/checkout" => Priority::Critical,
///     "/recommendations" => Priority::Sheddable,
///     _ => Priority::Default,
/// });
/// let req = http::Request::get("/checkout").body(()).unwrap();
/// assert_eq!(by_path.priority_of(&req), Priority::Critical);
/// ```
pub fn priority_fn<F>(f: F) -> PriorityFn<F> {
    PriorityFn(f)
}

/// See [`priority_fn`].
#[derive(Debug, Clone, Copy)]
pub struct PriorityFn<F>(F);

impl<F: Fn(&Req) -> Priority, Req> PriorityOf<Req> for PriorityFn<F> {
    fn priority_of(&self, request: &Req) -> Priority {
        (self.0)(request)
    }
}

/// The HTTP layer's default: a [`Priority`] in the request's extensions (put there by an
/// earlier layer, an auth layer for instance), else the `x-priority` header (name
/// configurable), else [`Priority::Default`]. An unknown header value is the default, not an
/// error: a priority is advice.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone)]
pub struct HttpPriority {
    header: HeaderName,
}

#[cfg(feature = "http")]
impl Default for HttpPriority {
    fn default() -> Self {
        Self {
            header: HeaderName::from_static("x-priority"),
        }
    }
}

#[cfg(feature = "http")]
impl HttpPriority {
    /// Reads the priority from `header` instead of `x-priority`.
    pub fn header(header: HeaderName) -> Self {
        Self { header }
    }
}

#[cfg(feature = "http")]
impl<B> PriorityOf<Request<B>> for HttpPriority {
    fn priority_of(&self, request: &Request<B>) -> Priority {
        if let Some(priority) = request.extensions().get::<Priority>() {
            return *priority;
        }
        request
            .headers()
            .get(&self.header)
            .and_then(Priority::from_header)
            .unwrap_or_default()
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;

    #[test]
    fn http_priority_reads_extensions_then_the_header() {
        let p = HttpPriority::default();
        let mut req = Request::get("/")
            .header("x-priority", "Sheddable")
            .body(())
            .unwrap();
        assert_eq!(p.priority_of(&req), Priority::Sheddable);
        req.extensions_mut().insert(Priority::Critical);
        assert_eq!(p.priority_of(&req), Priority::Critical);
        let odd = Request::get("/")
            .header("x-priority", "urgent!")
            .body(())
            .unwrap();
        assert_eq!(p.priority_of(&odd), Priority::Default);
    }
}
