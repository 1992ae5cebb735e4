//! The Lua scripts behind every write, and how they are sent: alone, or followed by `WAIT` on
//! the same connection when writes must reach replicas.

use std::sync::LazyLock;

use redis::{ErrorKind, RedisResult, Script, ScriptInvocation, ServerErrorKind, Value};

use super::connection::Connection;
use super::durability::Durability;
use super::reply::millis;

/// `KEYS[1]` record; `ARGV` owner, fingerprint, lease in ms.
/// Returns `1` if it created the record, else `{state, fp, resp}` (`resp` nil unless done).
pub(super) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
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
/// Returns `1` if the owner held the claim and the record is now done — or the owner had
/// already completed it with this very response: a completion whose answer was lost may
/// be sent again — else `0`.
pub(super) static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local r = redis.call('HMGET', KEYS[1], 'state', 'owner')
if r[2] ~= ARGV[1] then
  return 0
end
if r[1] == 'done' then
  if redis.call('HGET', KEYS[1], 'resp') == ARGV[2] then
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'done', 'resp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// `KEYS[1]` record; `ARGV` owner.
/// Returns `1` if the owner held the claim and the record is now gone, else `0`.
pub(super) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
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

/// Runs `invocation`, then `WAIT` for `durability`'s replicas, in one pipeline: the script's
/// reply, and how many replicas acknowledged every write the connection made so far.
///
/// One pipeline, so both go out on the same connection to the same server: `WAIT` counts
/// the acknowledgements of the writes of *its* connection, and a reconnect between the two
/// would have it count a fresh connection's (none) and answer at once. On Redis Cluster the
/// pipeline goes to the node that owns the record's slot, the script's key.
pub(super) async fn invoke_and_wait(
    con: &mut Connection,
    invocation: &ScriptInvocation<'_>,
    durability: Durability,
) -> RedisResult<(Value, u32)> {
    let mut pipeline = redis::pipe();
    pipeline
        .invoke_script(invocation)
        .cmd("WAIT")
        .arg(durability.replicas)
        .arg(millis(durability.timeout));
    match pipeline.query_async(con).await {
        // A server that never saw the script (a restart, a promoted replica): load it, and
        // send the pipeline again, as `Script::invoke_async` does for a lone script.
        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            invocation.load_async(con).await?;
            pipeline.query_async(con).await
        }
        reply => reply,
    }
}
