-- Fills entries, each only if the caller's lease is still current: a write
-- in between deleted the lease, so a fill of what was read before it is refused.
--
-- KEYS[1] epoch key, KEYS[2] epoch-refresh lease, then per cache key:
-- value, lease, stale copy (one hash tag).
-- ARGV[1] lease token
-- ARGV[2] the epoch read from the database ('' when not read), ARGV[3] how
--         long Redis may keep trusting it, ms (never raised past what it is)
-- then per key: the entry ('' keeps the present value: it was revalidated),
-- and its PTTL in ms.
--
-- Returns 1 per key filled (or revalidated), 0 per refused fill.
local token = ARGV[1]
if ARGV[2] ~= '' then
  local new, px = tonumber(ARGV[2]), tonumber(ARGV[3])
  local cur = tonumber(redis.call('GET', KEYS[1]) or '')
  if px and px > 0 then
    if not cur or cur < new then
      redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    elseif cur == new and redis.call('PTTL', KEYS[1]) < px then
      redis.call('PEXPIRE', KEYS[1], ARGV[3])
    end
  end
  if redis.call('GET', KEYS[2]) == token then redis.call('DEL', KEYS[2]) end
end

local out = {}
for i = 3, #KEYS - 2, 3 do
  local j = 4 + (i - 3) / 3 * 2
  local ok = 0
  if ARGV[j] and redis.call('GET', KEYS[i + 1]) == token then
    if ARGV[j] ~= '' then
      redis.call('SET', KEYS[i], ARGV[j], 'PX', ARGV[j + 1])
      redis.call('DEL', KEYS[i + 2])
    end
    redis.call('DEL', KEYS[i + 1])
    ok = 1
  end
  out[#out + 1] = ok
end
return out
