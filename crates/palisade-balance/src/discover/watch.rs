use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tower::discover::Change;

pin_project! {
    /// Endpoints pushed by the application: each set sent on the watch channel is compared
    /// with the last, and the differences come out as changes — removals first, so that a
    /// balancer never holds more endpoints than the newest set.
    ///
    /// An empty set is taken for a glitch of whatever produced it (a registry that answered
    /// nothing, a config file read while being written), not an order to drop every
    /// endpoint: the last good set is kept, with a warning and
    /// `palisade_balance_discovery_kept_total{source="watch"}`. To take every endpoint out on
    /// purpose, drop them from the balancer itself. When the sender is dropped the source
    /// ends, and the endpoints stay as they were.
    pub struct WatchDiscover<K, M, S> {
        #[pin]
        sets: WatchStream<BTreeSet<K>>,
        make: M,
        current: BTreeSet<K>,
        changes: VecDeque<Change<K, S>>,
        name: Arc<str>,
        kept: metrics::Counter,
    }
}

impl<K, M, S> WatchDiscover<K, M, S>
where
    K: Ord + Clone + Send + Sync + 'static,
    M: FnMut(&K) -> S,
{
    /// Follows `sets`, making the service of each new endpoint with `make`; `name` (the
    /// balancer's, usually) labels its metrics and events.
    pub fn new(name: impl Into<Arc<str>>, sets: watch::Receiver<BTreeSet<K>>, make: M) -> Self {
        let name = name.into();
        Self {
            kept: crate::metrics::discovery_kept(&name, "watch"),
            name,
            sets: WatchStream::new(sets),
            make,
            current: BTreeSet::new(),
            changes: VecDeque::new(),
        }
    }
}

impl<K, M, S> Stream for WatchDiscover<K, M, S>
where
    K: Ord + Clone + Send + Sync + 'static,
    M: FnMut(&K) -> S,
{
    type Item = Result<Change<K, S>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if let Some(change) = this.changes.pop_front() {
                return Poll::Ready(Some(Ok(change)));
            }
            let Some(set) = ready!(this.sets.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            if set.is_empty() && !this.current.is_empty() {
                tracing::warn!(
                    discovery = %this.name,
                    endpoints = this.current.len(),
                    "discovery produced an empty set; keeping the last good one"
                );
                this.kept.increment(1);
                continue;
            }
            for gone in this.current.difference(&set) {
                this.changes.push_back(Change::Remove(gone.clone()));
            }
            for new in set.difference(this.current) {
                let service = (this.make)(new);
                this.changes.push_back(Change::Insert(new.clone(), service));
            }
            *this.current = set;
        }
    }
}
