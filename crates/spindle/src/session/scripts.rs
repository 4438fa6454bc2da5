//! The Lua scripts that keep `sess:<sid>` and the per-user index in step.
//!
//! Each is one round trip and atomic. They take time from ARGV, never from
//! the server clock, and return flat arrays or integers.
//!
//! Redis Cluster: `sess:<sid>` is fixed by connect-redis, so it cannot share a
//! hash tag with `spindle:user-sessions:<id>`, and the index scripts reach
//! session keys they compute. These scripts need a single Redis (or a
//! cluster proxy that pins them to one node); see the README.

use crate::redis::Script;
use std::sync::LazyLock;

/// Creates a session and indexes it under its user.
pub const CREATE: &str = r#"
-- KEYS[1] sess:<sid>   KEYS[2] the user's index   KEYS[3] (optional) sess:<sid> being replaced
-- ARGV[1] sid  ARGV[2] session JSON  ARGV[3] now, ms (the index score)
-- ARGV[4] most sessions per user  ARGV[5] TTL, s  ARGV[6] session key prefix
-- Returns 1, or 0 when the sid is taken (the caller draws another).
if not redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5], 'NX') then return 0 end
if KEYS[3] then redis.call('DEL', KEYS[3]) end
-- Trim entries whose session is gone (expired, or destroyed by another app).
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[6] .. sid) == 0 then redis.call('ZREM', KEYS[2], sid) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    if sid ~= ARGV[1] then
      redis.call('DEL', ARGV[6] .. sid)
      redis.call('ZREM', KEYS[2], sid)
    end
  end
end
local ttl = tonumber(ARGV[5])
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
"#;

/// Writes a session back only if it is unchanged since it was read: a
/// compare-and-set on the SHA-1 of the stored value. A logout (the key is
/// gone) or another write in between is never undone; the caller re-reads
/// and re-applies its change, so concurrent edits of different fields all land.
pub const COMMIT: &str = r#"
-- KEYS[1] sess:<sid>   KEYS[2] (optional) the user's index
-- ARGV[1] sid  ARGV[2] new JSON  ARGV[3] index score (creation, ms)
-- ARGV[4] SHA-1 (hex) of the value that was read  ARGV[5] TTL, s (0 or less deletes)
-- Returns 1 written, 0 gone, -1 changed since it was read, 2 deleted (expired).
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if redis.sha1hex(cur) ~= ARGV[4] then return -1 end
local ttl = tonumber(ARGV[5])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
  return 2
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl, 'XX')
if KEYS[2] then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
  if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
end
return 1
"#;

/// Destroys one session and its index entry.
pub const DESTROY: &str = r#"
-- KEYS[1] sess:<sid>   KEYS[2] (optional) the user's index   ARGV[1] sid
-- Returns 1 if the session existed.
local n = redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
return n
"#;

/// Destroys every session of a user (logout everywhere).
pub const DESTROY_ALL: &str = r#"
-- KEYS[1] the user's index   ARGV[1] session key prefix
-- Returns how many sessions existed.
local n = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. sid)
end
redis.call('DEL', KEYS[1])
return n
"#;

/// Destroys the session of this user whose handle matches.
pub const DESTROY_HANDLE: &str = r#"
-- KEYS[1] the user's index   ARGV[1] session key prefix
-- ARGV[2] handle: the first 16 hex digits of SHA-1(sid)
-- Returns 1 if a live session was destroyed, 0 if none matched.
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(redis.sha1hex(sid), 1, 16) == ARGV[2] then
    local n = redis.call('DEL', ARGV[1] .. sid)
    redis.call('ZREM', KEYS[1], sid)
    return n
  end
end
return 0
"#;

/// Lists a user's live sessions, newest first, trimming dead index entries.
pub const LIST: &str = r#"
-- KEYS[1] the user's index   ARGV[1] session key prefix
-- Returns {sid1, json1, sid2, json2, ...}.
local out = {}
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = #members, 1, -1 do
  local v = redis.call('GET', ARGV[1] .. members[i])
  if v then
    out[#out + 1] = members[i]
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], members[i])
  end
end
return out
"#;

pub static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CREATE));
pub static COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(COMMIT));
pub static DESTROY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DESTROY));
pub static DESTROY_ALL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DESTROY_ALL));
pub static DESTROY_HANDLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(DESTROY_HANDLE));
pub static LIST_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LIST));
