//! [`RedisStore`]: a fleet's quotas in Redis, one script a decision.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Script, Value};

use super::{Grant, Store, StoreError, StoreFuture, Take};

/// The default prefix of the keys' names.
const DEFAULT_PREFIX: &str = "palisade:rl";

/// GCRA on Redis's clock, in microseconds: take up to `cells` of the key's quota, at least
/// one or none, and keep the TAT until the key is whole again (then it is idle, and gone).
/// Lua's numbers are doubles: microseconds since 1970 (about 2^51) are exact.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cells = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local base = math.max(tat, now)
local room = math.floor((tolerance - (base - now)) / interval)
local granted = math.min(math.max(room, 0), cells)
if granted == 0 then
  return {0, math.max(tat - now, 0), base + interval - now - tolerance}
end
local new_tat = base + granted * interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {granted, new_tat - now, 0}
";

/// A fleet's quotas in Redis: every instance of a service takes from the same counts.
///
/// Each key is one Redis string, `{prefix}:{policy}:{key}`, holding its TAT in microseconds
/// of Redis's clock, which expires when the key is whole again (an idle key costs Redis
/// nothing). Each take is one `EVALSHA` of a script that reads the TAT, decides on
/// Redis's clock (`TIME`: the instances' clocks never enter), and writes it back — atomic,
/// one round trip. On a Redis Cluster each key lives in one slot: keys spread over the
/// primaries, and a take goes to the one that owns its key.
///
/// Quotas are sent in whole microseconds, the interval rounded up (stricter, never looser):
/// a quota of more than a million requests a second per key cannot be kept here.
#[derive(Clone)]
pub struct RedisStore<C = ConnectionManager> {
    connection: C,
    script: Arc<Script>,
    prefix: Arc<str>,
}

impl RedisStore<ConnectionManager> {
    /// How long a connection attempt may take.
    pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
    /// How long an answer may take. The fleet layer's own timeout
    /// ([`Fleet::store_timeout`](crate::fleet::Fleet::store_timeout)) is usually shorter.
    pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

    /// Connects to the Redis at `url` (`redis://host:port/`), through one multiplexed
    /// connection that reconnects by itself.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::new)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Self::CONNECTION_TIMEOUT))
            .set_response_timeout(Some(Self::RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(StoreError::new)?;
        Ok(Self::new(manager))
    }
}

impl RedisStore<ClusterConnection> {
    /// Connects to the Redis Cluster that `nodes` (`host:port` or URLs) belong to: the redis
    /// crate's cluster connection, which follows `MOVED` and `ASK` and refreshes its slot
    /// map when the topology changes.
    pub async fn cluster<I, S>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = nodes
            .into_iter()
            .map(|node| {
                let node = node.as_ref();
                if node.contains("://") {
                    node.to_owned()
                } else {
                    format!("redis://{node}/")
                }
            })
            .collect();
        if urls.is_empty() {
            return Err(StoreError::new("a Redis Cluster needs at least one node"));
        }
        let client = redis::cluster::ClusterClient::builder(urls)
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(200)
            .build()
            .map_err(StoreError::new)?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(StoreError::new)?;
        Ok(Self::new(connection))
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// A store on `connection`: a [`ConnectionManager`], a cluster connection, or any
    /// connection of the redis crate that is cheap to clone.
    pub fn new(connection: C) -> Self {
        Self {
            connection,
            script: Arc::new(Script::new(TAKE)),
            prefix: Arc::from(DEFAULT_PREFIX),
        }
    }

    /// Names keys `{prefix}:…` instead of `palisade:rl:…`: to keep services sharing a Redis
    /// apart, or to match an ACL's key pattern.
    pub fn prefix(mut self, prefix: impl Into<Arc<str>>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn take<'a>(&'a self, take: Take<'a>) -> StoreFuture<'a> {
        Box::pin(async move {
            let mut key = Vec::with_capacity(self.prefix.len() + 1 + take.key.len());
            key.extend_from_slice(self.prefix.as_bytes());
            key.push(b':');
            key.extend_from_slice(take.key);
            let interval = micros_up(take.interval).max(1);
            let tolerance = interval.saturating_mul(u64::from(take.burst));
            let mut connection = self.connection.clone();
            let reply: Value = self
                .script
                .key(key)
                .arg(interval)
                .arg(tolerance)
                .arg(take.cells)
                .invoke_async(&mut connection)
                .await
                .map_err(StoreError::new)?;
            read_grant(&reply)
        })
    }
}

impl<C> std::fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Whole microseconds, rounded up.
fn micros_up(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// The script's `{granted, ahead, over}`, in microseconds.
fn read_grant(reply: &Value) -> Result<Grant, StoreError> {
    let bad = || StoreError::new(format!("the take script answered {reply:?}"));
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    let number = |i: usize| match items.get(i) {
        Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| bad()),
        _ => Err(bad()),
    };
    let (granted, ahead, over) = (number(0)?, number(1)?, number(2)?);
    Ok(Grant {
        granted: u32::try_from(granted).map_err(|_| bad())?,
        ahead: Duration::from_micros(ahead),
        retry_after: (granted == 0).then(|| Duration::from_micros(over)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_that_do_not_read_are_errors() {
        assert!(read_grant(&Value::Nil).is_err());
        assert!(read_grant(&Value::Array(vec![Value::Int(1)])).is_err());
        assert!(
            read_grant(&Value::Array(vec![
                Value::Int(-1),
                Value::Int(0),
                Value::Int(0)
            ]))
            .is_err()
        );
        let grant = read_grant(&Value::Array(vec![
            Value::Int(0),
            Value::Int(500),
            Value::Int(100),
        ]))
        .unwrap();
        assert_eq!(grant.retry_after, Some(Duration::from_micros(100)));
        assert_eq!(micros_up(Duration::from_nanos(1500)), 2);
    }
}
