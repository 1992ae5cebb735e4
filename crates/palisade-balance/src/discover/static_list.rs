use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tower::discover::Change;

/// A fixed set of endpoints: each is inserted once, then the source waits forever.
///
/// It never ends: to a balancer a discovery that ends is an error, and a fixed set is not.
pub fn static_list<K, S>(endpoints: impl IntoIterator<Item = (K, S)>) -> StaticDiscover<K, S> {
    StaticDiscover {
        changes: endpoints
            .into_iter()
            .map(|(key, service)| Change::Insert(key, service))
            .collect(),
    }
}

/// See [`static_list`].
#[derive(Debug)]
pub struct StaticDiscover<K, S> {
    changes: VecDeque<Change<K, S>>,
}

impl<K, S> Unpin for StaticDiscover<K, S> {}

impl<K, S> Stream for StaticDiscover<K, S> {
    type Item = Result<Change<K, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.changes.pop_front() {
            Some(change) => Poll::Ready(Some(Ok(change))),
            None => Poll::Pending,
        }
    }
}
