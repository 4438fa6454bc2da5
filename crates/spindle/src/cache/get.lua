-- Read-through lookup with leases, for any number of keys in one round trip.
--
-- KEYS[1] epoch key, KEYS[2] epoch-refresh lease, then per cache key three
-- keys sharing one hash tag: value, lease, stale copy.
-- ARGV[1] lease token (random, per request)   ARGV[2] lease lifetime, ms
-- ARGV[3] stale grace, ms: a value is fresh while its PTTL exceeds this
-- ARGV[4] refresh the epoch when its PTTL is below this, ms (0: never)
-- ARGV[5] XFetch factor beta * -ln(u), u uniform in (0, 1] (0: off)
-- ARGV[6] '1' when the caller accepts values older than the last write
--
-- An entry is '<epoch>:<delta ms>:<V|N><payload>'. It is trusted only when
-- its epoch equals the epoch key.
--
-- Returns a flat array: epoch (or nil), 1 if the caller now holds the epoch
-- refresh lease, then per key a status and an entry (or nil):
--   1 hit          the entry
--   2 lease        the caller must load and fill; when the epoch key is
--                  missing, a fresh entry to check against the database's epoch
--   3 refresh      a hit, and the caller holds the lease to refresh it early (XFetch)
--   4 stale        an older entry; someone else holds the lease
--   5 wait         someone else holds the lease and there is nothing to serve
local token, lease_ms, grace = ARGV[1], ARGV[2], tonumber(ARGV[3])
local refresh_below, xf, want_stale = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'

local epoch = redis.call('GET', KEYS[1])
local out = {epoch, 0}
if epoch and refresh_below > 0 then
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 and left < refresh_below
      and redis.call('SET', KEYS[2], token, 'NX', 'PX', ARGV[4]) then
    out[2] = 1
  end
end

local function lease(key)
  return redis.call('SET', key, token, 'NX', 'PX', lease_ms)
end

for i = 3, #KEYS - 2, 3 do
  local vkey, lkey, skey = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local v = redis.call('GET', vkey)
  local v_epoch, v_delta
  if v then
    v_epoch, v_delta = string.match(v, '^(%-?%d+):(%d+):[VN]')
    if not v_epoch then
      redis.call('DEL', vkey)
      v = false
    end
  end
  local fresh_left = 0
  if v then fresh_left = redis.call('PTTL', vkey) - grace end
  local status, data = 5, false
  if v and epoch and v_epoch == epoch then
    if fresh_left > 0 then
      if xf > 0 and fresh_left <= tonumber(v_delta) * xf and lease(lkey) then
        status, data = 3, v
      else
        status, data = 1, v
      end
    elseif lease(lkey) then
      status = 2
    else
      -- Past its freshness but never invalidated: still the newest version.
      status, data = 4, v
    end
  elseif lease(lkey) then
    status = 2
    if v and not epoch and fresh_left > 0 then data = v end
  elseif want_stale then
    local s = v or redis.call('GET', skey)
    if s then status, data = 4, s end
  end
  out[#out + 1] = status
  out[#out + 1] = data
end
return out
