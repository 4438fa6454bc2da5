-- The worker's claim: fans new events of the given topics out into one
-- pending delivery per webhook, then leases the deliveries that are due.
-- Leasing is atomic, so when every host's worker gets the same trigger
-- message, each delivery goes to exactly one of them.
-- KEYS  [1] due zset (delivery id → due ms), [2] pending hash (delivery id →
--       record), [3] the registry, then per topic: stream, webhook set, cursor
-- ARGV  now_ms, lease_ms, batch, max events per topic, then the topics' names
-- Record "<attempt>\n<webhook id>\n<topic>\n<event id>\n<event>\n<published ms>\n<data>"
-- Returns {delivery id, record, registry value, ...}: up to `batch` due
--         deliveries, attempt + 1, each leased (due again) at now + lease_ms
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local batch, max_events = tonumber(ARGV[3]), tonumber(ARGV[4])
for g = 0, math.floor((#KEYS - 3) / 3) - 1 do
  local stream, set, cursor_key = KEYS[4 + 3 * g], KEYS[5 + 3 * g], KEYS[6 + 3 * g]
  local topic = ARGV[5 + g] or ''
  local cursor = redis.call('GET', cursor_key)
  local hooks = redis.call('SMEMBERS', set)
  if cursor and #hooks > 0 then
    local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', max_events)
    for _, e in ipairs(entries) do
      local f = {}
      for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
      local tail = topic .. '\n' .. e[1] .. '\n' .. (f.e or '') .. '\n' .. (f.t or '0') .. '\n' .. (f.d or 'null')
      for _, h in ipairs(hooks) do
        local id = h .. '/' .. e[1]
        if redis.call('HSETNX', KEYS[2], id, '0\n' .. h .. '\n' .. tail) == 1 then
          redis.call('ZADD', KEYS[1], now, id)
        end
      end
    end
    if #entries > 0 then redis.call('SET', cursor_key, entries[#entries][1]) end
  end
end
local out = {}
if not KEYS[3] then return out end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, batch)) do
  local rec = redis.call('HGET', KEYS[2], id)
  local attempt, hook, rest
  if rec then attempt, hook, rest = string.match(rec, '^(%d+)\n([^\n]*)\n(.*)$') end
  local def = hook and redis.call('HGET', KEYS[3], hook)
  if not def then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
  else
    rec = (tonumber(attempt) + 1) .. '\n' .. hook .. '\n' .. rest
    redis.call('HSET', KEYS[2], id, rec)
    redis.call('ZADD', KEYS[1], now + lease, id)
    out[#out + 1] = id
    out[#out + 1] = rec
    out[#out + 1] = def
  end
end
return out
