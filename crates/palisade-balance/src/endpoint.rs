//! The balancer's endpoints, in one map: per key, everything the balancer keeps about an
//! endpoint — its ejection breaker, its load, and either its ready service or how to stop
//! readying it. An endpoint that discovery removes (or whose service fails) goes in one
//! step, and nothing of it can be left behind.
//!
//! Power of two choices draws among the *ready* endpoints by index, so the map keeps them
//! first: the entries at `0..ready` are ready, the rest are being readied. An endpoint
//! moves between the two by a swap across that boundary — the ready ones keep the order
//! they would have in a map of their own (one that becomes ready goes last; one that
//! leaves is replaced by the last) — so a draw, a move and a removal are all O(1), and a
//! draw reads the endpoint at once, with no lookup by key.

use std::hash::Hash;
use std::sync::Arc;

use indexmap::IndexMap;
use palisade_breaker::BreakerHandle;
use tokio::sync::oneshot;

use crate::health::Watch;
use crate::load::Load;

/// Every endpoint the balancer knows, ready ones first.
pub(crate) struct Endpoints<K, S> {
    map: IndexMap<K, Endpoint<S>>,
    /// How many of the first entries are ready.
    ready: usize,
    /// How many of the endpoints being readied are there because their breaker is open.
    ejected: usize,
}

/// What the balancer keeps about one endpoint.
struct Endpoint<S> {
    /// Its ejection breaker, made when discovery added it.
    breaker: BreakerHandle,
    /// Its load: made when it first becomes ready, then kept across its trips to readying.
    load: Option<Arc<Load>>,
    state: State<S>,
    /// Its health checks, if the balancer probes; dropping it stops them.
    _health: Option<Watch>,
}

enum State<S> {
    /// The balancer holds its service and may choose it.
    Ready(Ready<S>),
    /// Its service is being driven to readiness in the background.
    Readying {
        /// Held for its drop, which stops the readying.
        _cancel: oneshot::Sender<()>,
        /// Out of the rotation because its breaker is open.
        ejected: bool,
    },
}

/// A ready endpoint: what a request sent to it needs.
pub(crate) struct Ready<S> {
    pub(crate) service: S,
    /// The endpoint's load (the one it keeps), at hand.
    pub(crate) load: Arc<Load>,
    pub(crate) requests: metrics::Counter,
}

impl<K, S> Endpoints<K, S> {
    pub(crate) fn new() -> Self {
        Self {
            map: IndexMap::new(),
            ready: 0,
            ejected: 0,
        }
    }

    /// Every endpoint, ready or not.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The ready endpoints, which are at indices `0..ready_len()`.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready
    }

    /// The endpoints being readied, ejected ones among them.
    pub(crate) fn readying_len(&self) -> usize {
        self.map.len() - self.ready
    }

    /// The endpoints being readied because their breaker is open.
    pub(crate) fn ejected_len(&self) -> usize {
        self.ejected
    }

    /// The ready endpoint at `index` (below [`ready_len`](Self::ready_len)).
    pub(crate) fn ready(&self, index: usize) -> &Ready<S> {
        debug_assert!(index < self.ready);
        match &self.map[index].state {
            State::Ready(ready) => ready,
            State::Readying { .. } => unreachable!("the first `ready` endpoints are ready"),
        }
    }

    /// The ready endpoint at `index`, with its key.
    pub(crate) fn ready_mut(&mut self, index: usize) -> (&K, &mut Ready<S>) {
        debug_assert!(index < self.ready);
        let Some((key, endpoint)) = self.map.get_index_mut(index) else {
            unreachable!("the index of a ready endpoint is in the map")
        };
        match &mut endpoint.state {
            State::Ready(ready) => (key, ready),
            State::Readying { .. } => unreachable!("the first `ready` endpoints are ready"),
        }
    }

    /// The key of the endpoint at `index`.
    pub(crate) fn key(&self, index: usize) -> &K {
        let Some((key, _)) = self.map.get_index(index) else {
            unreachable!("the index of an endpoint is in the map")
        };
        key
    }

    /// The breaker of the endpoint at `index`.
    pub(crate) fn breaker(&self, index: usize) -> &BreakerHandle {
        &self.map[index].breaker
    }

    /// Moves the ready endpoint at `index` behind the other ready ones, where an endpoint
    /// that has just become ready goes.
    pub(crate) fn move_to_back(&mut self, index: usize) {
        debug_assert!(index < self.ready);
        self.map.swap_indices(index, self.ready - 1);
    }

    /// Removes the ready endpoint at `index`; returns its key.
    pub(crate) fn remove_ready(&mut self, index: usize) -> Option<K> {
        debug_assert!(index < self.ready);
        self.remove_index(index)
    }

    /// Removes the endpoint at `index`, ready or not.
    fn remove_index(&mut self, index: usize) -> Option<K> {
        let index = if index < self.ready {
            self.leave_ready(index)
        } else {
            index
        };
        // The last entry takes its place: one being readied, as the removed one now is.
        let (key, endpoint) = self.map.swap_remove_index(index)?;
        if let State::Readying { ejected: true, .. } = endpoint.state {
            self.ejected -= 1;
        }
        // Dropping the endpoint drops its service, or its `cancel`, which stops its readying.
        Some(key)
    }

    /// Moves the ready endpoint at `index` just past the ready ones (the last ready one
    /// takes its place); returns its new index.
    fn leave_ready(&mut self, index: usize) -> usize {
        self.ready -= 1;
        self.map.swap_indices(index, self.ready);
        self.ready
    }

    /// Moves the endpoint being readied at `index` just behind the ready ones; returns its
    /// new index.
    fn join_ready(&mut self, index: usize) -> usize {
        self.map.swap_indices(index, self.ready);
        self.ready += 1;
        self.ready - 1
    }
}

impl<K: Hash + Eq, S> Endpoints<K, S> {
    /// Whether the endpoint under `key` is ready.
    pub(crate) fn is_ready(&self, key: &K) -> bool {
        self.map
            .get_index_of(key)
            .is_some_and(|index| index < self.ready)
    }

    /// The ready endpoint under `key`, if it is.
    pub(crate) fn get_ready_mut(&mut self, key: &K) -> Option<&mut Ready<S>> {
        match &mut self.map.get_mut(key)?.state {
            State::Ready(ready) => Some(ready),
            State::Readying { .. } => None,
        }
    }

    /// Adds an endpoint to be readied behind `breaker`, probed by `health`, in place of any
    /// under the same key (whose readying and probing stop). Its readying listens on the
    /// returned receiver, which hears when the endpoint is removed.
    pub(crate) fn insert(
        &mut self,
        key: K,
        breaker: BreakerHandle,
        health: Option<Watch>,
    ) -> oneshot::Receiver<()> {
        self.remove(&key);
        let (cancel, cancelled) = oneshot::channel();
        self.map.insert(
            key,
            Endpoint {
                breaker,
                load: None,
                _health: health,
                state: State::Readying {
                    _cancel: cancel,
                    ejected: false,
                },
            },
        );
        cancelled
    }

    /// Removes the endpoint under `key`, ready or not; whether there was one.
    pub(crate) fn remove(&mut self, key: &K) -> bool {
        match self.map.get_index_of(key) {
            Some(index) => self.remove_index(index).is_some(),
            None => false,
        }
    }

    /// The endpoint under `key`, being readied, is ready with `service`: it joins the ready
    /// ones, last, with its load (made by `new_load` the first time) and its request
    /// counter (made by `requests`). Whether it was ejected, or `None` if it is not being
    /// readied (removed, or added again, meanwhile): then `service` is dropped.
    pub(crate) fn readied(
        &mut self,
        key: &K,
        service: S,
        new_load: impl FnOnce() -> Arc<Load>,
        requests: impl FnOnce() -> metrics::Counter,
    ) -> Option<bool> {
        let index = self.map.get_index_of(key)?;
        let endpoint = &mut self.map[index];
        let State::Readying { ejected, .. } = endpoint.state else {
            return None;
        };
        let load = endpoint.load.get_or_insert_with(new_load).clone();
        // Drops `cancel`: the readying is over.
        endpoint.state = State::Ready(Ready {
            service,
            load,
            requests: requests(),
        });
        if ejected {
            self.ejected -= 1;
        }
        self.join_ready(index);
        Some(ejected)
    }
}

impl<K: Clone, S> Endpoints<K, S> {
    /// Sends the ready endpoint at `index` back to readying, `ejected` if its breaker is
    /// open (the last ready one takes its place). Returns its key, its service to ready, and
    /// the receiver its readying listens on, which hears when the endpoint is removed.
    pub(crate) fn unready(&mut self, index: usize, ejected: bool) -> (K, S, oneshot::Receiver<()>) {
        debug_assert!(index < self.ready);
        let index = self.leave_ready(index);
        let (cancel, cancelled) = oneshot::channel();
        let Some((key, endpoint)) = self.map.get_index_mut(index) else {
            unreachable!("the index of a ready endpoint is in the map")
        };
        let state = std::mem::replace(
            &mut endpoint.state,
            State::Readying {
                _cancel: cancel,
                ejected,
            },
        );
        let State::Ready(ready) = state else {
            unreachable!("the first `ready` endpoints are ready")
        };
        if ejected {
            self.ejected += 1;
        }
        (key.clone(), ready.service, cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use indexmap::IndexSet;
    use palisade_breaker::{BreakerConfig, CircuitBreakerLayer};

    type Map = Endpoints<u32, u32>;

    fn breaker() -> BreakerHandle {
        let config = BreakerConfig::builder("test").silent().build().unwrap();
        CircuitBreakerLayer::with_config(config).handle()
    }

    fn load() -> Arc<Load> {
        let ms = Duration::from_millis(1);
        Arc::new(Load::new(ms, ms, ms))
    }

    fn ready(map: &mut Map, key: u32) -> Option<bool> {
        map.readied(&key, key * 10, load, metrics::Counter::noop)
    }

    /// The ready keys, in the order the draws see them.
    fn ready_keys(map: &Map) -> Vec<u32> {
        (0..map.ready_len())
            .map(|i| map.ready(i).service / 10)
            .collect()
    }

    #[test]
    fn an_endpoint_goes_from_readying_to_ready_and_back() {
        let mut map = Map::new();
        let mut cancelled = map.insert(1, breaker(), None);
        map.insert(2, breaker(), None);
        assert_eq!((map.ready_len(), map.readying_len()), (0, 2));

        assert_eq!(ready(&mut map, 2), Some(false));
        assert_eq!(ready(&mut map, 3), None, "unknown");
        assert_eq!(ready(&mut map, 2), None, "already ready");
        assert_eq!(ready_keys(&map), [2]);
        assert!(map.is_ready(&2) && !map.is_ready(&1));
        assert!(map.get_ready_mut(&1).is_none());

        let (key, service, _) = map.unready(0, true);
        assert_eq!((key, service), (2, 20));
        assert_eq!(
            (map.ready_len(), map.readying_len(), map.ejected_len()),
            (0, 2, 1)
        );

        assert_eq!(ready(&mut map, 2), Some(true), "was ejected");
        assert_eq!(map.ejected_len(), 0);

        use oneshot::error::TryRecvError;
        assert_eq!(cancelled.try_recv(), Err(TryRecvError::Empty));
        assert!(map.remove(&1));
        assert!(!map.remove(&1));
        assert_eq!(
            cancelled.try_recv(),
            Err(TryRecvError::Closed),
            "its readying is cancelled"
        );
        assert_eq!((map.len(), map.ready_len()), (1, 1));
    }

    #[test]
    fn an_endpoint_keeps_its_load_across_its_trips_to_readying() {
        let mut map = Map::new();
        map.insert(1, breaker(), None);
        ready(&mut map, 1);
        let first = map.ready(0).load.clone();
        map.unready(0, false);
        ready(&mut map, 1);
        assert!(Arc::ptr_eq(&first, &map.ready(0).load));

        // Added again: a new endpoint, with a new load.
        map.insert(1, breaker(), None);
        ready(&mut map, 1);
        assert!(!Arc::ptr_eq(&first, &map.ready(0).load));
    }

    #[test]
    fn removing_an_ejected_endpoint_uncounts_it() {
        let mut map = Map::new();
        for key in 0..3 {
            map.insert(key, breaker(), None);
            ready(&mut map, key);
        }
        map.unready(1, true);
        assert_eq!(map.ejected_len(), 1);
        map.insert(1, breaker(), None);
        assert_eq!(map.ejected_len(), 0, "replaced");
        assert_eq!(map.len(), 3);
    }

    /// Against a model — a map of the ready endpoints on their own, a set of the ejected
    /// ones — through random moves: the ready endpoints come in the model's order, so that a
    /// seeded draw picks the endpoint it would pick from such a map.
    #[test]
    fn the_ready_order_is_that_of_a_map_of_the_ready_ones() {
        let mut map = Map::new();
        let mut model_ready: IndexSet<u32> = IndexSet::new();
        let mut model_all: IndexSet<u32> = IndexSet::new();
        let mut model_ejected: IndexSet<u32> = IndexSet::new();
        for step in 0..20_000u64 {
            let draw = |n: u64| palisade_core::random::uniform(7, 2 * step + n);
            let key = (draw(0) * 12.0) as u32;
            match (draw(1) * 6.0) as u32 {
                0 => {
                    map.insert(key, breaker(), None);
                    model_ready.swap_remove(&key);
                    model_ejected.swap_remove(&key);
                    model_all.insert(key);
                }
                1 => {
                    assert_eq!(map.remove(&key), model_all.swap_remove(&key));
                    model_ready.swap_remove(&key);
                    model_ejected.swap_remove(&key);
                }
                2 | 3 => {
                    let readying = model_all.contains(&key) && !model_ready.contains(&key);
                    let was_ejected = model_ejected.swap_remove(&key);
                    assert_eq!(ready(&mut map, key), readying.then_some(was_ejected));
                    if readying {
                        model_ready.insert(key);
                    }
                }
                4 if !model_ready.is_empty() => {
                    let index = key as usize % model_ready.len();
                    let ejected = step % 2 == 0;
                    let (unready, _, _) = map.unready(index, ejected);
                    assert_eq!(model_ready.swap_remove_index(index), Some(unready));
                    if ejected {
                        model_ejected.insert(unready);
                    }
                }
                5 if !model_ready.is_empty() => {
                    let index = key as usize % model_ready.len();
                    if step % 2 == 0 {
                        let removed = map.remove_ready(index);
                        let expected = model_ready.swap_remove_index(index);
                        assert_eq!(removed, expected);
                        model_all.swap_remove(&expected.unwrap());
                    } else {
                        map.move_to_back(index);
                        let moved = model_ready.swap_remove_index(index).unwrap();
                        model_ready.insert(moved);
                    }
                }
                _ => {}
            }
            assert_eq!(
                ready_keys(&map),
                model_ready.iter().copied().collect::<Vec<_>>()
            );
            assert_eq!(map.len(), model_all.len());
            assert_eq!(map.ejected_len(), model_ejected.len());
            for key in &model_ready {
                assert!(map.is_ready(key));
                assert_eq!(map.get_ready_mut(key).map(|r| r.service), Some(key * 10));
            }
        }
    }
}
