-- Takes one reader lease for a caller, if it has fewer than its cap.
-- KEYS[1] the caller's reader leases (zset token -> lease end, ms)
-- ARGV: now (ms), lease end (ms), cap, token
-- Returns {1, leases held now, 0} or {0, leases held, ms until the soonest lease ends}.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local cap = tonumber(ARGV[3])
-- Leases past their end belong to streams whose host died: they no longer count.
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZCARD', key)
if held >= cap then
  local soonest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, held, math.max(1, tonumber(soonest[2]) - now)}
end
redis.call('ZADD', key, ARGV[2], ARGV[4])
-- The key lives as long as its longest lease, so an idle caller leaves nothing behind.
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, last[2])
return {1, held + 1, 0}
