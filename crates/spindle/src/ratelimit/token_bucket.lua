-- Token bucket, in the @upstash/ratelimit layout: a hash with the fields
-- refilledAt (ms) and tokens. `refill` tokens are added every `interval` ms,
-- up to `max`; a missing bucket is a full one.
-- KEYS[1]  <prefix>:<id>
-- ARGV     max, interval_ms, now_ms, cost (> 0 consumes, < 0 refunds, 0 peeks), refill
-- Returns  {allowed, max, remaining, reset_ms, retry_after_ms}, a flat array;
--          reset_ms is the next refill.
--
-- A denial writes nothing. A bucket that is full again is deleted (the same
-- state as a missing one); any other written bucket expires when it would be
-- full, as upstash sets it.
local max = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local refill = tonumber(ARGV[5])

local bucket = redis.call('HMGET', KEYS[1], 'refilledAt', 'tokens')
local refilled_at = tonumber(bucket[1])
local tokens = tonumber(bucket[2])
if refilled_at == nil or tokens == nil then
  refilled_at = now
  tokens = max
end
if now >= refilled_at + interval then
  local n = math.floor((now - refilled_at) / interval)
  tokens = tokens + n * refill
  refilled_at = refilled_at + n * interval
end
tokens = math.min(max, tokens)
local reset = refilled_at + interval

local probe = cost
if probe == 0 then probe = 1 end
if probe > 0 and tokens < probe then
  local at = refilled_at + math.ceil((probe - tokens) / refill) * interval
  return {0, max, math.max(0, tokens), reset, at - now}
end

if cost ~= 0 then
  tokens = math.min(max, tokens - cost)
  if tokens >= max then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 'refilledAt', refilled_at, 'tokens', tokens)
    redis.call('PEXPIRE', KEYS[1], math.ceil((max - tokens) / refill) * interval)
  end
end
return {1, max, math.max(0, tokens), reset, 0}
