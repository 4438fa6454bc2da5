-- Who is present: trims members whose last heartbeat is older than the TTL,
-- then lists the rest, most recent first.
-- KEYS[1]  the topic's presence zset
-- ARGV     now_ms, ttl_ms, max
-- Returns  {member, last_seen_ms, member, last_seen_ms, ...}, a flat array
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local max = tonumber(ARGV[3]) or 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - ttl))
local out = {}
local rows = redis.call('ZREVRANGE', KEYS[1], 0, max - 1, 'WITHSCORES')
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = tonumber(rows[i + 1])
end
return out
