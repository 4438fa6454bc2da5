-- Sliding window, in the @upstash/ratelimit layout and with its weighting:
-- the previous window counts in proportion to how much of it still
-- overlaps the sliding window, floor((1 - (now % window) / window) * previous).
-- KEYS[1]  <prefix>:<id>:<floor(now / window)>      the current window's counter
-- KEYS[2]  <prefix>:<id>:<floor(now / window) - 1>  the previous window's counter
-- ARGV     limit, window_ms, now_ms, cost (> 0 consumes, < 0 refunds, 0 peeks)
-- Returns  {allowed, limit, remaining, reset_ms, retry_after_ms}, a flat array.
--
-- A denial writes nothing, and says exactly when a request of the same cost
-- would pass if nothing else happened meanwhile. A refund gives back at most
-- what the current window used. The counter expires 2 windows + 1 s after it
-- is created, as upstash sets it: long enough to serve as the previous window.
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])

local reset = (math.floor(now / window) + 1) * window
local current = tonumber(redis.call('GET', KEYS[1])) or 0
local previous = tonumber(redis.call('GET', KEYS[2])) or 0

-- The same floating-point expression as upstash's script, so both agree to the unit.
local function weighted(t, count)
  return math.floor((1 - (t % window) / window) * count)
end

local used = weighted(now, previous) + current

local probe = cost
if probe == 0 then probe = 1 end
if probe > 0 and used + probe > limit then
  -- The first instant in [lo, hi] at which `count` (weighted) + base + probe
  -- fits, or nil. The weight only falls within a window: binary search.
  local function first(lo, hi, count, base)
    if lo > hi or weighted(hi, count) + base + probe > limit then return nil end
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if weighted(mid, count) + base + probe <= limit then hi = mid else lo = mid + 1 end
    end
    return lo
  end
  local at = first(now + 1, reset - 1, previous, current)
    or first(reset, reset + window - 1, current, 0)
    or reset + window
  return {0, limit, math.max(0, limit - used), reset, at - now}
end

if cost < 0 then cost = math.max(cost, -math.max(current, 0)) end
if cost ~= 0 then
  current = redis.call('INCRBY', KEYS[1], cost)
  if redis.call('PTTL', KEYS[1]) < 0 then
    redis.call('PEXPIRE', KEYS[1], window * 2 + 1000)
  end
end
return {1, limit, math.max(0, limit - weighted(now, previous) - current), reset, 0}
