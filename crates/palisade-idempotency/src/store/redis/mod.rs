//! The Redis store: one hash per record, every write a Lua script that checks the owner, on
//! one server or a Redis Cluster, optionally durable on replicas.
//!
//! The story (a record's layout, the scripts and their fencing, reconnects, Redis Cluster,
//! durable writes, expiry on Redis's clock) is told on [`RedisStore`], this private module's
//! public face.

mod connection;
mod durability;
mod reply;
mod scripts;

use std::time::Duration;

use redis::Value;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClient;
use tokio::time::Instant;

use self::connection::{Cluster, Connection};
pub use self::durability::Durability;
use self::reply::{bad_reply, decode_record, flag, millis, owner_arg};
use self::scripts::{CLAIM, COMPLETE, EXTEND, RELEASE, invoke_and_wait};
use super::{Claim, Record, Store, StoreError, StoreFuture};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// The default prefix of the records' key names.
const DEFAULT_PREFIX: &str = "palisade:idem";

/// Records in Redis, shared by every instance of a service. Cloning is cheap, and clones
/// share the connection.
///
/// # A record
///
/// A record is one Redis hash named `{prefix}:{hex}`, where `hex` is the
/// [`RecordKey`]'s SHA-256 in lowercase hex and `prefix` defaults to `palisade:idem`. The
/// key a client sent is never written to Redis: only its hash is. Its fields:
///
/// | field | value |
/// |---|---|
/// | `state` | `inflight` while the first request runs, `done` once it finished |
/// | `owner` | the claim's [`Owner`] token, 32 lowercase hex digits |
/// | `fp` | the request's [`Fingerprint`], 32 raw bytes |
/// | `resp` | [`StoredResponse::encode`]'s bytes (only once done) |
///
/// The hash's expiry is the lease while in flight and the time to live once done, so Redis
/// deletes both a forgotten claim and an old response by itself.
///
/// # The scripts
///
/// Every operation is a single round trip: one `EVALSHA` for a write, one `HMGET` for a
/// lookup. Each script runs atomically on the server, so nothing can change the record
/// between its check and its write:
///
/// - **claim** returns the record's `state`, `fp` and `resp` if the hash exists; otherwise
///   it creates it (`state = inflight`, `owner`, `fp`), sets the lease with `PEXPIRE`, and
///   returns `1`. Of two concurrent claims, exactly one creates the record.
/// - **complete** writes `state = done` and `resp` and sets the time to live — only if the
///   record is held by the caller's owner token. The very completion the owner already
///   made is accepted again without a change, so a completion whose answer was lost can be
///   resent; any other is refused.
/// - **release** deletes the record — only if it is in flight and held by the caller.
/// - **extend** (the heartbeat) sets the lease anew with `PEXPIRE` — only under the same
///   condition.
///
/// The owner check is the fencing. A holder whose lease ran out (a paused process, a handler
/// slower than its lease) has lost the record: Redis deleted it, and another request may
/// have claimed the key again under a new owner token. Without the check, the late holder's
/// complete would overwrite the new holder's claim with a response to a *different* run, and
/// its release would delete a claim that is still running, letting a third duplicate in. With
/// it, the late write is refused and reported `false`.
///
/// # Scripts the server forgot
///
/// Scripts are sent by their SHA-1 (`EVALSHA`), through [`redis::Script`]. When the server
/// does not know a script — after a restart, a failover to a replica that never saw it, or a
/// `SCRIPT FLUSH` — it answers `NOSCRIPT`, and the script is loaded and run again. That
/// costs two more round trips, once per script per server.
///
/// # Connections
///
/// [`connect`](Self::connect) talks through a [`ConnectionManager`]: one multiplexed
/// connection, shared by every clone of the store, that reconnects by itself when it breaks.
/// An operation that was under way when the connection broke, or that comes while Redis
/// cannot be reached, fails with a [`StoreError`], which the layer handles as its
/// configuration says (and, after three failures in a row, its store breaker answers for
/// the store until a probe gets through); once Redis is back, operations succeed again.
/// [`connect`](Self::connect) sets timeouts, so that an operation against an unreachable or
/// hung Redis fails within a few seconds instead of waiting for the operating system's TCP
/// timeouts (see there for the values); for other settings, build the manager yourself and
/// pass it to [`new`](Self::new).
///
/// # Redis Cluster
///
/// Each script touches exactly one key, the record's hash, declared as its `KEYS[1]`, and
/// the lookup reads only that key: a record lives in one hash slot, so every operation goes
/// to the one node that owns the record's slot, and records spread over the cluster's
/// primaries by their hash. [`cluster`](Self::cluster) connects to a cluster through the
/// redis crate's cluster connection ([`ClusterClient`]): it learns the slot map from any node it is given,
/// keeps a multiplexed connection to each primary, follows `MOVED` and `ASK` redirections,
/// and refreshes the slot map when a redirection or a broken connection says the topology
/// changed (a failover, a resharding). While a primary is down and not yet replaced, the
/// records in its slots cannot be read or written, and requests for them get the layer's
/// fail-closed answer; the other primaries' records are served as usual.
///
/// # Durable writes
///
/// Redis replicates asynchronously: a primary acknowledges a claim before its replica has
/// it, and a failover in that moment loses the claim, letting a duplicate run.
/// [`durable`](Self::durable) makes the store wait for replicas (`WAIT`) before it reports
/// a claim or a completion; see [`Durability`] for what that guarantees and what it costs,
/// and docs/idempotency.md for the measured duplicates with and without it.
///
/// # Time
///
/// Leases and times to live are expiries that Redis keeps, on Redis's clock: every instance
/// of a service sees a record expire at the same moment, whatever its own clock says. A
/// lease runs from when Redis ran the script, not from when the caller sent it. Durations
/// are sent in whole milliseconds, rounded up (a zero lease is one millisecond).
///
/// # Example
///
/// ```no_run
/// use palisade_idempotency::store::{Durability, RedisStore};
///
/// # async fn run() -> Result<(), palisade_idempotency::store::StoreError> {
/// // One Redis server.
/// let store = RedisStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .prefix("orders:idem");
///
/// // A Redis Cluster, each claim and completion held by a replica before the handler runs
/// // or the answer is kept.
/// let store = RedisStore::cluster(["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"])
///     .await?
///     .durable(Durability::replicas(1));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
    durability: Option<Durability>,
}

impl RedisStore {
    /// How long [`connect`](Self::connect) and [`cluster`](Self::cluster) wait for a
    /// connection to be established.
    pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

    /// How long [`connect`](Self::connect) and [`cluster`](Self::cluster) wait for Redis to
    /// answer a command.
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

    /// How long [`cluster`](Self::cluster) lets one operation take in all, redirections and
    /// retries included.
    pub const CLUSTER_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

    /// A store talking through `manager`, with the default prefix `palisade:idem`.
    ///
    /// The manager's own settings apply: its timeouts bound how long an operation waits
    /// for an unreachable or hung Redis.
    pub fn new(manager: ConnectionManager) -> Self {
        Self::with_connection(Connection::Single(manager))
    }

    /// A store on the Redis Cluster that `client` connects to, with the default prefix:
    /// for the client settings [`cluster`](Self::cluster) does not offer (TLS,
    /// credentials, other timeouts).
    ///
    /// The client's own settings apply (its retries, their waits and its timeouts); the
    /// redis crate's defaults retry an operation 16 times over minutes, so set them for
    /// your latency budget. When operations keep timing out, the store connects anew
    /// through `client` (see [`cluster`](Self::cluster)).
    ///
    /// Fails if no node can be reached.
    pub async fn with_cluster_client(client: ClusterClient) -> Result<Self, StoreError> {
        let cluster = Cluster::connect(client).await.map_err(StoreError::new)?;
        Ok(Self::with_connection(cluster.connection()))
    }

    fn with_connection(connection: Connection) -> Self {
        Self {
            connection,
            prefix: DEFAULT_PREFIX.to_owned(),
            durability: None,
        }
    }

    /// Connects to the Redis at `url` (e.g. `redis://127.0.0.1:6379/`), with the default
    /// prefix.
    ///
    /// The connection waits at most [`CONNECTION_TIMEOUT`](Self::CONNECTION_TIMEOUT) (1 s)
    /// for each attempt to connect and at most
    /// [`RESPONSE_TIMEOUT`](Self::RESPONSE_TIMEOUT) (1 s) for an answer. When the
    /// connection breaks it reconnects in the background, trying three times with backoff
    /// between 100 ms and 1 s; operations that come meanwhile wait for that, then fail if
    /// it failed, and the next operation tries again. So an operation against a Redis that
    /// is down fails within about 5 s at worst (a host that does not answer at all), in
    /// about half a second when the connection is refused outright, and the store recovers
    /// by itself when Redis is back. Concurrent operations share one reconnection.
    ///
    /// Fails if `url` is not a Redis URL or the first connection cannot be made.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::new)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Self::CONNECTION_TIMEOUT))
            .set_response_timeout(Some(Self::RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(100))
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(StoreError::new)?;
        Ok(Self::new(manager))
    }

    /// Connects to the Redis Cluster that `nodes` belong to, with the default prefix.
    ///
    /// Each node is `host:port` or a URL (`redis://host:port/`, `rediss://…` for TLS when
    /// the redis crate is built with it); one reachable node is enough to learn the
    /// cluster's slot map, more make the first connection survive a node that is down.
    ///
    /// Each connection attempt waits at most
    /// [`CONNECTION_TIMEOUT`](Self::CONNECTION_TIMEOUT) (1 s), each answer at most
    /// [`RESPONSE_TIMEOUT`](Self::RESPONSE_TIMEOUT) (1 s). An operation that meets a
    /// redirection or a broken connection is retried up to three times, 10 to 400 ms apart
    /// (the slot map is refreshed meanwhile), and takes at most
    /// [`CLUSTER_OPERATION_TIMEOUT`](Self::CLUSTER_OPERATION_TIMEOUT) (3 s) in all, so a
    /// failover that completes within about a second is followed without an error.
    ///
    /// Fails if a node is not a valid address or no node can be reached.
    pub async fn cluster<I, S>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = nodes
            .into_iter()
            .map(|node| node_url(node.as_ref()))
            .collect();
        if urls.is_empty() {
            return Err(StoreError::new("a Redis Cluster needs at least one node"));
        }
        let client = redis::cluster::ClusterClient::builder(urls)
            .connection_timeout(Self::CONNECTION_TIMEOUT)
            .response_timeout(Self::RESPONSE_TIMEOUT)
            .overall_response_timeout(Some(Self::CLUSTER_OPERATION_TIMEOUT))
            .retries(3)
            .min_retry_wait(10)
            .max_retry_wait(400)
            .build()
            .map_err(StoreError::new)?;
        Self::with_cluster_client(client).await
    }

    /// Names records `{prefix}:{hex}` instead of `palisade:idem:{hex}`: to keep services
    /// sharing a Redis apart, or to match an ACL's key pattern.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Reports a claim or a completion only once `durability`'s replicas hold it; see
    /// [`Durability`].
    pub fn durable(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    /// The Redis key of a record.
    fn key(&self, key: &RecordKey) -> String {
        format!("{}:{}", self.prefix, key.to_hex())
    }

    /// The connection for one operation (an `Arc` clone: it is shared), the cluster's
    /// current one if it was replaced.
    fn connection(&self) -> Connection {
        match &self.connection {
            Connection::Cluster(_, cluster, _) => cluster.connection(),
            single => single.clone(),
        }
    }
}

/// A cluster node as the redis crate takes it: a URL, `redis://` if none was given.
fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}/")
    }
}

/// The error of a durable write that too few replicas acknowledged in time.
fn not_durable(what: &str, acks: u32, durability: Durability, key: &str) -> StoreError {
    StoreError::new(format!(
        "the {what} of {key} reached {acks} of {} replicas within {:?}",
        durability.replicas, durability.timeout
    ))
}

/// A claim script's reply: `1` (claimed) or the record that was there.
fn decode_claim(reply: Value, key: &str) -> Result<Claim, StoreError> {
    match reply {
        Value::Int(1) => Ok(Claim::Claimed),
        reply @ Value::Array(_) => match decode_record(reply, key)? {
            Some(record) => Ok(Claim::Existing(record)),
            None => Err(bad_reply("record without fields", key)),
        },
        other => Err(bad_reply(&format!("claim answered {other:?}"), key)),
    }
}

/// Sends a durable completion until enough replicas acknowledge the answer — that it is
/// done, or that the record is not the owner's — or the durability's patience runs out.
///
/// Resending is safe: the very completion its owner already made is accepted again without
/// a change. Resending is what carries a completion across a failover: the claim
/// was durable, so the promoted replica holds it, and the next attempt completes it there.
///
/// Each attempt takes the store's current connection: one that stopped answering is
/// replaced meanwhile (see [`Connection`]), and resending on it would only time out again.
async fn complete_durably(
    store: &RedisStore,
    invocation: &redis::ScriptInvocation<'_>,
    durability: Durability,
    key: &str,
) -> Result<bool, StoreError> {
    const FIRST_PAUSE: Duration = Duration::from_millis(25);
    const LONGEST_PAUSE: Duration = Duration::from_millis(500);
    let deadline = Instant::now() + durability.patience;
    let mut pause = FIRST_PAUSE;
    loop {
        let mut con = store.connection();
        let failure = match invoke_and_wait(&mut con, invocation, durability).await {
            // Only an answer its replicas back is believed, a refusal included: a node
            // that has no replicas to acknowledge may be one that should not answer at
            // all — an old primary restarted empty that still thinks the slot is its own,
            // for a moment, would say the claim is gone when the real primary holds it.
            Ok((reply, acks)) if acks >= durability.replicas => return flag(reply, key),
            Ok((_, acks)) => not_durable("completion", acks, durability, key),
            Err(error) => StoreError::new(error),
        };
        if Instant::now() + pause > deadline {
            return Err(failure);
        }
        tracing::debug!(%failure, "sending a durable completion again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

impl Store for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a RecordKey,
        fingerprint: Fingerprint,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        let key = self.key(key);
        let mut con = self.connection();
        let durability = self.durability;
        Box::pin(async move {
            let owner = owner_arg(owner);
            let mut invocation = CLAIM.prepare_invoke();
            invocation
                .key(&key)
                .arg(&owner)
                .arg(&fingerprint.0)
                .arg(millis(lease));
            let Some(durability) = durability else {
                let reply: Value = invocation
                    .invoke_async(&mut con)
                    .await
                    .map_err(StoreError::new)?;
                return decode_claim(reply, &key);
            };
            let (reply, acks) = invoke_and_wait(&mut con, &invocation, durability)
                .await
                .map_err(StoreError::new)?;
            if reply == Value::Int(1) && acks < durability.replicas {
                // Not durable, so not trusted: take it back, so that the client's retry
                // finds the key free rather than held until the lease ends. If this fails
                // too, the lease frees the key.
                let released: Result<Value, _> =
                    RELEASE.key(&key).arg(&owner).invoke_async(&mut con).await;
                if let Err(error) = released {
                    tracing::debug!(%error, key, "releasing a claim that was not durable");
                }
                return Err(not_durable("claim", acks, durability, &key));
            }
            decode_claim(reply, &key)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let key = self.key(key);
        let durability = self.durability;
        Box::pin(async move {
            let mut invocation = COMPLETE.prepare_invoke();
            invocation
                .key(&key)
                .arg(owner_arg(owner))
                .arg(&response.encode()[..])
                .arg(millis(ttl));
            match durability {
                Some(durability) => complete_durably(self, &invocation, durability, &key).await,
                None => {
                    let mut con = self.connection();
                    let reply: Value = invocation
                        .invoke_async(&mut con)
                        .await
                        .map_err(StoreError::new)?;
                    flag(reply, &key)
                }
            }
        })
    }

    fn release<'a>(&'a self, key: &'a RecordKey, owner: Owner) -> StoreFuture<'a, bool> {
        let key = self.key(key);
        let mut con = self.connection();
        Box::pin(async move {
            let reply: Value = RELEASE
                .key(&key)
                .arg(owner_arg(owner))
                .invoke_async(&mut con)
                .await
                .map_err(StoreError::new)?;
            flag(reply, &key)
        })
    }

    fn extend<'a>(
        &'a self,
        key: &'a RecordKey,
        owner: Owner,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        let key = self.key(key);
        let mut con = self.connection();
        Box::pin(async move {
            let reply: Value = EXTEND
                .key(&key)
                .arg(owner_arg(owner))
                .arg(millis(lease))
                .invoke_async(&mut con)
                .await
                .map_err(StoreError::new)?;
            flag(reply, &key)
        })
    }

    fn lookup<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        let key = self.key(key);
        let mut con = self.connection();
        Box::pin(async move {
            let reply: Value = redis::cmd("HMGET")
                .arg(&key)
                .arg("state")
                .arg("fp")
                .arg("resp")
                .query_async(&mut con)
                .await
                .map_err(StoreError::new)?;
            decode_record(reply, &key)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_become_urls() {
        assert_eq!(node_url("10.0.0.1:7000"), "redis://10.0.0.1:7000/");
        assert_eq!(node_url("rediss://h:7000/"), "rediss://h:7000/");
    }
}
