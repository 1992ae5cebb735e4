//! One Redis server or a Redis Cluster, behind the one interface the scripts are sent
//! through; a cluster connection that stops answering is replaced.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where the store's commands go, for one operation: a cheap clone of the store's shared
/// connection.
#[derive(Clone)]
pub(super) enum Connection {
    /// One server (a standalone Redis, a primary, or a proxy that routes by slot), through a
    /// multiplexed connection that reconnects by itself.
    Single(ConnectionManager),
    /// A Redis Cluster: each command goes to the node that owns its key's slot, following
    /// `MOVED` and `ASK` redirections and refreshing the slot map when the topology changes.
    /// The `u64` is the generation of the connection (see [`Cluster`]).
    Cluster(ClusterConnection, Arc<Cluster>, u64),
}

/// How many operations in a row must time out before a cluster connection is replaced.
const REPLACE_AFTER_TIMEOUTS: u32 = 8;

/// How long a replacement cluster connection may take to connect.
const REPLACE_WITHIN: Duration = Duration::from_secs(5);

/// A Redis Cluster connection, watched: when operations keep timing out, a new connection
/// is made from the client, and later operations use it.
///
/// The redis crate's cluster connection can stop answering for good after a failover under
/// load — its slot refresh waits for a lock that in-flight requests hold, and every later
/// request times out (palisade's cluster failover test reproduces it with redis 1.8 when
/// fifty tasks keep claiming while a primary dies). A fresh connection learns the slot map
/// anew and works; the stuck one is dropped with its last clone.
///
/// Only the timeouts of the current connection count: requests still under way on a
/// replaced one time out too, and must not have the new one replaced at once.
pub(super) struct Cluster {
    client: ClusterClient,
    /// The connection in use, and its generation (how many replaced it).
    current: RwLock<(u64, ClusterConnection)>,
    timeouts_in_a_row: AtomicU32,
    replacing: AtomicBool,
}

impl Cluster {
    /// Connects through `client`.
    pub(super) async fn connect(client: ClusterClient) -> RedisResult<Arc<Self>> {
        let connection = client.get_async_connection().await?;
        Ok(Arc::new(Self {
            client,
            current: RwLock::new((0, connection)),
            timeouts_in_a_row: AtomicU32::new(0),
            replacing: AtomicBool::new(false),
        }))
    }

    /// The connection to use now (a clone: the lock is held for the clone only).
    pub(super) fn connection(self: &Arc<Self>) -> Connection {
        let (generation, connection) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Connection::Cluster(connection, Arc::clone(self), generation)
    }

    /// Counts the current connection's timeouts in a row, and starts a replacement when
    /// there are too many.
    fn observe<T>(self: &Arc<Self>, generation: u64, result: &RedisResult<T>) {
        let current = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        if generation != current {
            return;
        }
        match result {
            Err(error) if error.is_timeout() => {
                let timeouts = self.timeouts_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if timeouts >= REPLACE_AFTER_TIMEOUTS
                    && !self.replacing.swap(true, Ordering::AcqRel)
                {
                    tokio::spawn(Arc::clone(self).replace());
                }
            }
            // An answer, even an error one, means the connection works.
            _ => self.timeouts_in_a_row.store(0, Ordering::Relaxed),
        }
    }

    async fn replace(self: Arc<Self>) {
        tracing::warn!("Redis Cluster operations keep timing out: reconnecting");
        match tokio::time::timeout(REPLACE_WITHIN, self.client.get_async_connection()).await {
            Ok(Ok(connection)) => {
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                *current = (current.0 + 1, connection);
            }
            Ok(Err(error)) => tracing::warn!(%error, "reconnecting to the Redis Cluster"),
            Err(_) => tracing::warn!("reconnecting to the Redis Cluster timed out"),
        }
        // If it failed, as many timeouts again try again: a cluster that is down is not
        // reconnected to at every request.
        self.timeouts_in_a_row.store(0, Ordering::Relaxed);
        self.replacing.store(false, Ordering::Release);
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(manager) => manager.req_packed_command(cmd),
            Self::Cluster(connection, cluster, generation) => {
                let (cluster, generation) = (Arc::clone(cluster), *generation);
                let request = connection.req_packed_command(cmd);
                Box::pin(async move {
                    let result = request.await;
                    cluster.observe(generation, &result);
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection, cluster, generation) => {
                let (cluster, generation) = (Arc::clone(cluster), *generation);
                let request = connection.req_packed_commands(pipeline, offset, count);
                Box::pin(async move {
                    let result = request.await;
                    cluster.observe(generation, &result);
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(manager) => manager.get_db(),
            Self::Cluster(connection, ..) => connection.get_db(),
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(manager) => f.debug_tuple("Single").field(manager).finish(),
            // The cluster connection has no `Debug` of its own.
            Self::Cluster(..) => f.write_str("Cluster"),
        }
    }
}
