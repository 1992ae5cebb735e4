//! Telling palisade's own refusals from the answers of a service.
//!
//! A stack composes several palisade layers, and one layer's refusal passes through the
//! others on its way out. An idempotency layer's "still in flight" answer is a `409` or a
//! gRPC `UNAVAILABLE`; a shedder's is a `503`. Read as a service's answers, they would make
//! a breaker above them count failures that no dependency had, and a retry above them sleep
//! on a `Retry-After` that no server sent. So every refusal carries a mark that the other
//! layers look for:
//!
//! - a **response** made by [`rejection_response`](crate::rejection_response) carries a
//!   [`Refused`] in its extensions (HTTP and gRPC alike; extensions never cross the wire,
//!   so the mark says "refused in this process");
//! - an **error** (a layer in generic mode returns its refusal as a typed error) has
//!   [`LocalRefusal`] as its [`source`](std::error::Error::source), which [`is_refusal`]
//!   finds anywhere in an error's chain.
//!
//! What each layer does with the mark:
//!
//! | layer | a refusal from a layer below it |
//! |---|---|
//! | breaker | neither a success nor a failure (`Outcome::Ignored`) |
//! | retry | retried as its status says, after the backoff: its `Retry-After` is not a server's |
//! | shed | no latency sample: the request did no work |
//!
//! ```
//! use http::{Response, StatusCode};
//! use palisade_core::refusal::{self, Refused};
//!
//! let answered = Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body(()).unwrap();
//! assert!(refusal::of_response(&answered).is_none(), "a service's 503");
//!
//! let mut refused = Response::new(());
//! refused.extensions_mut().insert(Refused::new("overloaded"));
//! assert_eq!(refusal::of_response(&refused).map(Refused::kind), Some("overloaded"));
//! ```

use std::error::Error;
use std::fmt;

/// The mark on a response that a palisade layer made to refuse a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    kind: &'static str,
}

impl Refused {
    /// A refusal of this kind (the [`Rejection::kind`](crate::Rejection::kind) of the layer
    /// that refused: `"overloaded"`, `"breaker-open"`, `"idempotency-in-flight"`, ...).
    pub fn new(kind: &'static str) -> Self {
        Self { kind }
    }

    /// The kind of refusal.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

/// The refusal mark of `response`, if a palisade layer in this process made it.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub fn of_response<B>(response: &http::Response<B>) -> Option<&Refused> {
    response.extensions().get::<Refused>()
}

/// The [`source`](Error::source) of every error by which a palisade layer refuses a
/// request: "the request was refused in this process, before it reached the service".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRefusal;

/// The one value of [`LocalRefusal`], for `source()` to return.
pub static LOCAL_REFUSAL: LocalRefusal = LocalRefusal;

impl fmt::Display for LocalRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused in this process by a palisade layer; the service never saw it")
    }
}

impl Error for LocalRefusal {}

/// Whether `error`, or an error in its chain of sources, is a palisade layer's refusal.
pub fn is_refusal(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<LocalRefusal>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// Whether an error of a service's own type is a palisade refusal: it can be only when the
/// type is a `BoxError`, as every palisade layer's error in generic mode is.
pub fn is_refusal_error<E: 'static>(error: &E) -> bool {
    let any: &dyn std::any::Any = error;
    any.downcast_ref::<crate::BoxError>()
        .is_some_and(|boxed| is_refusal(&**boxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Shed;

    impl fmt::Display for Shed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("shed")
        }
    }

    impl Error for Shed {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&LOCAL_REFUSAL)
        }
    }

    #[derive(Debug)]
    struct Wrapped(crate::BoxError);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn refusals_are_found_anywhere_in_the_chain() {
        assert!(is_refusal(&Shed));
        assert!(is_refusal(&Wrapped(Box::new(Shed))));
        assert!(!is_refusal(&std::io::Error::other("connection reset")));
        let boxed: crate::BoxError = Box::new(Wrapped(Box::new(Shed)));
        assert!(is_refusal_error(&boxed));
        assert!(!is_refusal_error(&std::io::Error::other("reset")));
        let plain: crate::BoxError = "timed out".into();
        assert!(!is_refusal_error(&plain));
    }
}
