//! What the discovery sources that follow a registry share: a task that keeps the current
//! set of endpoints up to date (from etcd, from Kubernetes), publishing each new set on a
//! `watch` channel, and a [`WatchDiscover`] that turns the sets into tower's changes — with
//! its keeping of the last good set when one comes out empty. The task stops when the
//! source is dropped.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::sync::watch;
use tower::discover::Change;

use super::WatchDiscover;

pin_project! {
    /// The sets a follower task publishes, as changes.
    pub(crate) struct Followed<K, M, S> {
        #[pin]
        changes: WatchDiscover<K, M, S>,
        task: AbortOnDrop,
    }
}

/// A task, aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<K, M, S> Followed<K, M, S>
where
    K: Ord + Clone + Send + Sync + 'static,
    M: FnMut(&K) -> S,
{
    /// Spawns `follow` with the sender of the sets (empty at first), and follows what it
    /// publishes, making each new endpoint's service with `make`; `name` labels the metrics.
    pub(crate) fn spawn<F>(
        name: Arc<str>,
        make: M,
        follow: impl FnOnce(watch::Sender<BTreeSet<K>>) -> F,
    ) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (publish, sets) = watch::channel(BTreeSet::new());
        Self {
            changes: WatchDiscover::new(name, sets, make),
            task: AbortOnDrop(tokio::spawn(follow(publish))),
        }
    }
}

impl<K, M, S> Stream for Followed<K, M, S>
where
    K: Ord + Clone + Send + Sync + 'static,
    M: FnMut(&K) -> S,
{
    type Item = Result<Change<K, S>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().changes.poll_next(cx)
    }
}

/// Publishes `set` if it differs from the last one.
pub(crate) fn publish<K: PartialEq>(sender: &watch::Sender<BTreeSet<K>>, set: BTreeSet<K>) {
    sender.send_if_modified(|current| {
        let changed = *current != set;
        if changed {
            *current = set;
        }
        changed
    });
}
