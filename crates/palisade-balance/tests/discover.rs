//! Discovery sources: what they yield as endpoints come and go.

use std::collections::BTreeSet;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use palisade_balance::discover::{WatchDiscover, static_list};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tower::discover::Change;

/// The changes ready now, without waiting.
async fn ready_now<S, K, V>(source: &mut S) -> Vec<Change<K, V>>
where
    S: Stream<Item = Result<Change<K, V>, std::convert::Infallible>> + Unpin,
{
    let mut changes = Vec::new();
    poll_fn(|cx| {
        while let Poll::Ready(Some(Ok(change))) = Pin::new(&mut *source).poll_next(cx) {
            changes.push(change);
        }
        Poll::Ready(())
    })
    .await;
    changes
}

fn keys<K: Clone, V>(changes: &[Change<K, V>]) -> Vec<(char, K)> {
    changes
        .iter()
        .map(|c| match c {
            Change::Insert(k, _) => ('+', k.clone()),
            Change::Remove(k) => ('-', k.clone()),
        })
        .collect()
}

#[tokio::test]
async fn a_static_list_inserts_each_endpoint_once_and_never_ends() {
    let mut source = static_list([("a", 1), ("b", 2)]);
    let changes = ready_now(&mut source).await;
    assert_eq!(keys(&changes), [('+', "a"), ('+', "b")]);
    assert!(
        ready_now(&mut source).await.is_empty(),
        "pending, not ended"
    );
}

#[tokio::test]
async fn a_watch_source_yields_the_differences_between_sets() {
    let (publish, sets) = watch::channel(BTreeSet::from(["a", "b"]));
    let mut source = WatchDiscover::new("test", sets, |k: &&str| k.to_uppercase());
    let first = ready_now(&mut source).await;
    assert_eq!(keys(&first), [('+', "a"), ('+', "b")]);
    assert!(matches!(&first[0], Change::Insert("a", s) if s == "A"));

    publish.send(BTreeSet::from(["b", "c"])).unwrap();
    let next = ready_now(&mut source).await;
    assert_eq!(keys(&next), [('-', "a"), ('+', "c")], "removals first");

    // Sets that arrive faster than they are read collapse into the newest.
    publish.send(BTreeSet::from(["c", "d"])).unwrap();
    publish.send(BTreeSet::from(["d"])).unwrap();
    assert_eq!(
        keys(&ready_now(&mut source).await),
        [('-', "b"), ('-', "c"), ('+', "d")]
    );
}

#[tokio::test]
async fn an_empty_set_keeps_the_last_good_one_and_a_dropped_sender_ends_the_source() {
    let (publish, sets) = watch::channel(BTreeSet::from([1, 2]));
    let mut source = WatchDiscover::new("test", sets, |k: &u32| *k);
    assert_eq!(ready_now(&mut source).await.len(), 2);

    publish.send(BTreeSet::new()).unwrap();
    assert!(ready_now(&mut source).await.is_empty(), "nothing removed");
    publish.send(BTreeSet::from([2, 3])).unwrap();
    assert_eq!(keys(&ready_now(&mut source).await), [('-', 1), ('+', 3)]);

    drop(publish);
    assert!(source.next().await.is_none());
}

#[tokio::test]
async fn both_sources_are_tower_discovers() {
    fn is_discover<D: tower::discover::Discover>(_: &D) {}
    let (_publish, sets) = watch::channel(BTreeSet::from(["a"]));
    is_discover(&WatchDiscover::new("test", sets, |_: &&str| ()));
    is_discover(&static_list([("a", ())]));
}
