-- Fixed window, in the @upstash/ratelimit layout.
-- KEYS[1]  <prefix>:<id>:<floor(now / window)>, a counter (string)
-- ARGV     limit, window_ms, now_ms, cost (> 0 consumes, < 0 refunds, 0 peeks)
-- Returns  {allowed, limit, remaining, reset_ms, retry_after_ms}, a flat array.
--
-- A denial writes nothing. A refund gives back at most what the window used.
-- The counter expires `window` ms after it is created, as upstash sets it.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])

local reset = (math.floor(now / window) + 1) * window
local used = tonumber(redis.call('GET', KEYS[1])) or 0

-- A peek answers for a request of cost 1, without writing.
local probe = cost
if probe == 0 then probe = 1 end
if probe > 0 and used + probe > limit then
  return {0, limit, math.max(0, limit - used), reset, reset - now}
end

if cost < 0 then cost = math.max(cost, -math.max(used, 0)) end
if cost ~= 0 then
  used = redis.call('INCRBY', KEYS[1], cost)
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
  end
end
return {1, limit, math.max(0, limit - used), reset, 0}
