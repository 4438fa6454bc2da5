-- The worker's claim, one round trip with a bounded amount of work: fans
-- new events of the given topics out into one pending delivery per webhook,
-- then leases the deliveries that are due and reads their events. Leasing
-- is atomic, so when every host's worker gets the same trigger message,
-- each delivery goes to exactly one of them.
-- A pending delivery is a reference to its event, never a copy: the event
-- is read from the topic's stream when the delivery is leased, so a publish
-- costs one stream entry however many webhooks it goes to. That stream's
-- key is built here from the key prefix and the record's topic, so this
-- script needs one Redis node, as the session scripts do.
-- KEYS  [1] due zset (delivery id → due ms), [2] pending hash (delivery id →
--       record), [3] the registry, [4] pending counts (owner → deliveries
--       pending), then per topic: stream, webhook set, cursor
-- ARGV  now_ms, lease_ms, batch, most events per topic, fan-out budget,
--       most pending per owner, key prefix, then the topics' names
-- Record "<attempt>\n<webhook id>\n<owner>\n<topic>\n<event id>"
-- Fan-out takes whole events (each to all of its topic's webhooks) while
-- the budget (events × webhooks) lasts, and moves the topic's cursor past
-- the last event it took: the rest is the next claim's. A delivery whose
-- owner already has the most pending is not queued but returned 'capped'.
-- Returns {more, then per delivery: kind, delivery id, record, registry
--         value, event, published ms, data}: more is 1 when fan-out work
--         is left; kind is 'lease' (due: attempt + 1, leased until now +
--         lease_ms, with its event), 'gone' (leased, but the event is no
--         longer in the stream: event, ms and data are ''), or 'capped' (not
--         queued, attempt 0; ms and data '').
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local batch, max_events = tonumber(ARGV[3]), tonumber(ARGV[4])
local budget, cap, prefix = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local due, pending, registry, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local out = {0}
if not counts then return out end
local function push(kind, id, rec, def, e, t, d)
  for _, v in ipairs({kind, id, rec, def, e, t, d}) do out[#out + 1] = v end
end
local function fields(entry)
  local f = {}
  for i = 1, #entry[2], 2 do f[entry[2][i]] = entry[2][i + 1] end
  return f
end
local function owner_of(def) return string.match(def, '^([^\n]*)\n') end
local function release(owner)
  if redis.call('HINCRBY', counts, owner, -1) <= 0 then redis.call('HDEL', counts, owner) end
end

local defs, held = {}, {}
for g = 0, math.floor((#KEYS - 4) / 3) - 1 do
  local stream, set, cursor_key = KEYS[5 + 3 * g], KEYS[6 + 3 * g], KEYS[7 + 3 * g]
  local topic = ARGV[8 + g] or ''
  local cursor = redis.call('GET', cursor_key)
  local hooks = cursor and redis.call('SMEMBERS', set) or {}
  local n = #hooks > 0 and math.min(max_events, math.floor(budget / #hooks)) or 0
  if #hooks > 0 and n < 1 then out[1] = 1 end
  if n >= 1 then
    local entries = redis.call('XRANGE', stream, '(' .. cursor, '+', 'COUNT', n)
    if #entries == n then out[1] = 1 end
    for _, e in ipairs(entries) do
      local event = fields(e).e or ''
      for _, h in ipairs(hooks) do
        if defs[h] == nil then defs[h] = redis.call('HGET', registry, h) end
        local def = defs[h]
        if def then
          local owner = owner_of(def)
          local id = h .. '/' .. e[1]
          local rec = '0\n' .. h .. '\n' .. owner .. '\n' .. topic .. '\n' .. e[1]
          held[owner] = held[owner] or tonumber(redis.call('HGET', counts, owner) or '0')
          if held[owner] >= cap then
            push('capped', id, rec, def, event, '', '')
          elseif redis.call('HSETNX', pending, id, rec) == 1 then
            redis.call('ZADD', due, now, id)
            redis.call('HINCRBY', counts, owner, 1)
            held[owner] = held[owner] + 1
          end
        end
      end
    end
    budget = budget - #entries * #hooks
    if #entries > 0 then redis.call('SET', cursor_key, entries[#entries][1]) end
  end
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, batch)) do
  local rec = redis.call('HGET', pending, id)
  local attempt, hook, owner, topic, event_id
  if rec then
    attempt, hook, owner, topic, event_id = string.match(rec, '^(%d+)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)$')
  end
  local legacy = rec and not attempt
  if legacy then
    -- Written by an earlier version, with the event in it: from now on a
    -- reference like the others, and counted.
    attempt, hook, topic, event_id = string.match(rec, '^(%d+)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n')
  end
  local def = hook and redis.call('HGET', registry, hook)
  if not def then
    redis.call('ZREM', due, id)
    if redis.call('HDEL', pending, id) == 1 and owner then release(owner) end
  else
    if legacy then
      owner = owner_of(def)
      redis.call('HINCRBY', counts, owner, 1)
    end
    rec = (tonumber(attempt) + 1) .. '\n' .. hook .. '\n' .. owner .. '\n' .. topic .. '\n' .. event_id
    redis.call('HSET', pending, id, rec)
    redis.call('ZADD', due, now + lease, id)
    local found = redis.pcall('XRANGE', prefix .. ':{' .. topic .. '}:events', event_id, event_id)
    local entry = not found.err and found[1]
    if entry then
      local f = fields(entry)
      push('lease', id, rec, def, f.e or '', f.t or '0', f.d or 'null')
    else
      push('gone', id, rec, def, '', '', '')
    end
  end
end
return out
