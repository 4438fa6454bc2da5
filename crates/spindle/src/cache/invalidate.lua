-- Invalidates after a write: deletes each value and its lease, so that no
-- fill begun before the write can land. A positive value is kept as the
-- stale copy for ARGV[1] ms (0: not kept), for readers that accept it.
--
-- KEYS: per cache key, value, lease, stale copy (one hash tag).
-- Returns how many values were present.
local keep = tonumber(ARGV[1]) or 0
local n = 0
for i = 1, #KEYS - 2, 3 do
  local v = redis.call('GET', KEYS[i])
  if v then
    n = n + 1
    if keep > 0 and string.match(v, '^%-?%d+:%d+:V') then
      redis.call('SET', KEYS[i + 2], v, 'PX', ARGV[1])
    end
    redis.call('DEL', KEYS[i])
  end
  redis.call('DEL', KEYS[i + 1])
end
return n
