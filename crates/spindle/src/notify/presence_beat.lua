-- A presence heartbeat: the member is here as of now; members older than
-- the TTL are trimmed, at most `max` (the most recent) are kept, and the set
-- expires a TTL after the last heartbeat.
-- KEYS[1]  the topic's presence zset (member → last heartbeat, ms)
-- ARGV     now_ms, ttl_ms, member, max
-- Returns  {members present}
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local max = tonumber(ARGV[4]) or 1000
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
local n = redis.call('ZCARD', KEYS[1])
if n > max then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - max - 1)
  n = max
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {n}
