//! The Redis store: one hash per record, every write a Lua script that checks the owner.
//!
//! The story (a record's layout, the scripts and their fencing, reconnects, Redis Cluster,
//! expiry on Redis's clock) is told on [`RedisStore`], this private module's public face.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::{Script, Value};

use super::{Claim, Record, Store, StoreError, StoreFuture};
use crate::record::{Fingerprint, Owner, RecordKey, StoredResponse};

/// The default prefix of the records' key names.
const DEFAULT_PREFIX: &str = "palisade:idem";

/// `KEYS[1]` record; `ARGV` owner, fingerprint, lease in ms.
/// Returns `1` if it created the record, else `{state, fp, resp}` (`resp` nil unless done).
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HMGET', KEYS[1], 'state', 'fp', 'resp')
end
redis.call('HSET', KEYS[1], 'state', 'inflight', 'owner', ARGV[1], 'fp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// `KEYS[1]` record; `ARGV` owner, encoded response, time to live in ms.
/// Returns `1` if the owner held the claim and the record is now done, else `0`.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'state', 'owner')
if r[1] ~= 'inflight' or r[2] ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'resp', ARGV[2])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// `KEYS[1]` record; `ARGV` owner.
/// Returns `1` if the owner held the claim and the record is now gone, else `0`.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'state', 'owner')
if r[1] ~= 'inflight' or r[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// `KEYS[1]` record; `ARGV` owner, lease in ms.
/// Returns `1` if the owner held the claim and its lease now ends `lease` from now, else `0`.
static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'state', 'owner')
if r[1] ~= 'inflight' or r[2] ~= ARGV[1] then
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
",
    )
});

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
/// | `owner` | the claim's [`Owner`] token, 32 lowercase hex digits (only while in flight) |
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
/// - **complete** writes `state = done` and `resp`, removes `owner` and sets the time to
///   live — only if the record is in flight *and* held by the caller's owner token.
/// - **release** deletes the record — only under the same condition.
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
/// The store talks through a [`ConnectionManager`]: one multiplexed connection, shared by
/// every clone of the store, that reconnects by itself when it breaks. An operation that
/// was under way when the connection broke, or that comes while Redis cannot be reached,
/// fails with a [`StoreError`], which the layer handles as its configuration says; once
/// Redis is back, operations succeed again. [`connect`](Self::connect) sets timeouts, so that
/// an operation against an unreachable or hung Redis fails within a few seconds instead of
/// waiting for the operating system's TCP timeouts (see there for the values); for other
/// settings, build the manager yourself and pass it to [`new`](Self::new).
///
/// # Redis Cluster
///
/// Each script touches exactly one key, the record's hash, declared as its `KEYS[1]`, and
/// the lookup reads only that key: a record lives in one hash slot, so the layout and the
/// scripts are valid on Redis Cluster unchanged, each operation going to the node that owns
/// the record's slot. The [`ConnectionManager`] this store takes talks to a single server
/// (a standalone Redis, a primary, or a proxy that routes by slot); it does not follow
/// cluster redirections itself.
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
/// use palisade_idempotency::store::RedisStore;
///
/// # async fn run() -> Result<(), palisade_idempotency::store::StoreError> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379/")
///     .await?
///     .prefix("orders:idem");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisStore {
    manager: ConnectionManager,
    prefix: String,
}

impl RedisStore {
    /// How long [`connect`](Self::connect) waits for a connection to be established.
    pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);

    /// How long [`connect`](Self::connect) waits for Redis to answer a command.
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

    /// A store talking through `manager`, with the default prefix `palisade:idem`.
    ///
    /// The manager's own settings apply: its timeouts bound how long an operation waits
    /// for an unreachable or hung Redis.
    pub fn new(manager: ConnectionManager) -> Self {
        Self {
            manager,
            prefix: DEFAULT_PREFIX.to_owned(),
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

    /// Names records `{prefix}:{hex}` instead of `palisade:idem:{hex}`: to keep services
    /// sharing a Redis apart, or to match an ACL's key pattern.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The Redis key of a record.
    fn key(&self, key: &RecordKey) -> String {
        format!("{}:{}", self.prefix, key.to_hex())
    }

    /// A clone of the manager, for one operation (an `Arc` clone: the connection is shared).
    fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }
}

/// The owner token as the scripts compare it: fixed-width lowercase hex.
fn owner_arg(owner: Owner) -> String {
    format!("{:032x}", owner.0)
}

/// A duration as Redis's milliseconds: rounded up, at least 1 (`PEXPIRE` with 0 deletes the
/// key), at most a bound Redis accepts (it refuses expiries that overflow its clock).
fn millis(duration: Duration) -> u64 {
    const MAX: u64 = 1 << 52; // ~142 000 years
    let nanos = duration.as_nanos();
    let ms = nanos.div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(MAX).clamp(1, MAX)
}

/// A reply the store cannot make sense of.
fn bad_reply(what: &str, key: &str) -> StoreError {
    StoreError::new(format!("unexpected Redis reply for {key}: {what}"))
}

/// A script's `0`/`1` answer.
fn flag(value: Value, key: &str) -> Result<bool, StoreError> {
    match value {
        Value::Int(1) => Ok(true),
        Value::Int(0) => Ok(false),
        other => Err(bad_reply(&format!("expected 0 or 1, got {other:?}"), key)),
    }
}

/// A field's bytes, `None` if the field is missing.
fn field(value: Value, name: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        other => Err(bad_reply(&format!("field {name} is {other:?}"), key)),
    }
}

/// The record in `{state, fp, resp}`, `None` if all three are missing (no record).
fn decode_record(value: Value, key: &str) -> Result<Option<Record>, StoreError> {
    let Value::Array(fields) = value else {
        return Err(bad_reply(&format!("expected a record, got {value:?}"), key));
    };
    let Ok([state, fp, resp]) = <[Value; 3]>::try_from(fields) else {
        return Err(bad_reply("expected three fields", key));
    };
    let state = field(state, "state", key)?;
    let fp = field(fp, "fp", key)?;
    let resp = field(resp, "resp", key)?;
    let Some(state) = state else {
        return if fp.is_none() && resp.is_none() {
            Ok(None)
        } else {
            Err(bad_reply("record without a state", key))
        };
    };
    let fingerprint = fp
        .and_then(|fp| <[u8; 32]>::try_from(fp).ok())
        .map(Fingerprint)
        .ok_or_else(|| bad_reply("missing or malformed fingerprint", key))?;
    match &state[..] {
        b"inflight" => Ok(Some(Record::InFlight { fingerprint })),
        b"done" => {
            let response = resp
                .and_then(|resp| StoredResponse::decode(Bytes::from(resp)))
                .ok_or_else(|| bad_reply("missing or malformed response", key))?;
            Ok(Some(Record::Completed {
                fingerprint,
                response,
            }))
        }
        _ => Err(bad_reply(
            &format!("unknown state {:?}", String::from_utf8_lossy(&state)),
            key,
        )),
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
        Box::pin(async move {
            let reply: Value = CLAIM
                .key(&key)
                .arg(owner_arg(owner))
                .arg(&fingerprint.0)
                .arg(millis(lease))
                .invoke_async(&mut con)
                .await
                .map_err(StoreError::new)?;
            match reply {
                Value::Int(1) => Ok(Claim::Claimed),
                reply @ Value::Array(_) => match decode_record(reply, &key)? {
                    Some(record) => Ok(Claim::Existing(record)),
                    None => Err(bad_reply("record without fields", &key)),
                },
                other => Err(bad_reply(&format!("claim answered {other:?}"), &key)),
            }
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
        let mut con = self.connection();
        Box::pin(async move {
            let reply: Value = COMPLETE
                .key(&key)
                .arg(owner_arg(owner))
                .arg(&response.encode()[..])
                .arg(millis(ttl))
                .invoke_async(&mut con)
                .await
                .map_err(StoreError::new)?;
            flag(reply, &key)
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
    fn durations_become_whole_milliseconds_rounded_up() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1)), 1);
        assert_eq!(millis(Duration::from_millis(250)), 250);
        assert_eq!(millis(Duration::from_micros(250_001)), 251);
        assert_eq!(millis(Duration::MAX), 1 << 52);
    }

    #[test]
    fn owner_tokens_are_fixed_width() {
        assert_eq!(owner_arg(Owner(1)), format!("{}1", "0".repeat(31)));
        assert_eq!(owner_arg(Owner(u128::MAX)), "f".repeat(32));
    }

    fn bulk(bytes: &[u8]) -> Value {
        Value::BulkString(bytes.to_vec())
    }

    #[test]
    fn records_decode() {
        let fp = [7u8; 32];
        assert_eq!(
            decode_record(Value::Array(vec![Value::Nil, Value::Nil, Value::Nil]), "k").unwrap(),
            None
        );
        assert_eq!(
            decode_record(
                Value::Array(vec![bulk(b"inflight"), bulk(&fp), Value::Nil]),
                "k"
            )
            .unwrap(),
            Some(Record::InFlight {
                fingerprint: Fingerprint(fp)
            })
        );
        let response = StoredResponse {
            status: http::StatusCode::ACCEPTED,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"ok"),
            trailers: None,
        };
        assert_eq!(
            decode_record(
                Value::Array(vec![bulk(b"done"), bulk(&fp), bulk(&response.encode())]),
                "k"
            )
            .unwrap(),
            Some(Record::Completed {
                fingerprint: Fingerprint(fp),
                response
            })
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let fp = [7u8; 32];
        let cases = [
            Value::Int(3),
            Value::Array(vec![bulk(b"inflight"), bulk(&fp)]),
            Value::Array(vec![bulk(b"paused"), bulk(&fp), Value::Nil]),
            Value::Array(vec![bulk(b"inflight"), bulk(&fp[..31]), Value::Nil]),
            Value::Array(vec![bulk(b"inflight"), Value::Nil, Value::Nil]),
            Value::Array(vec![bulk(b"done"), bulk(&fp), Value::Nil]),
            Value::Array(vec![bulk(b"done"), bulk(&fp), bulk(b"\x02garbage")]),
            Value::Array(vec![Value::Nil, bulk(&fp), Value::Nil]),
            Value::Array(vec![Value::Int(1), bulk(&fp), Value::Nil]),
        ];
        for case in cases {
            assert!(decode_record(case.clone(), "k").is_err(), "{case:?}");
        }
        assert!(flag(Value::Int(2), "k").is_err());
        assert!(flag(Value::Nil, "k").is_err());
    }
}
