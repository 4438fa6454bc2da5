-- Prepended to webhook_create and webhook_add: a webhook joins its topic's
-- registry and set. A topic's first webhook starts its cursor at the
-- stream's current end: a new webhook gets the events published from now on.
local function add_to_topic(registry, set, cursor, stream, id, def)
  redis.call('HSET', registry, id, def)
  redis.call('SADD', set, id)
  if redis.call('EXISTS', cursor) == 0 then
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    redis.call('SET', cursor, last[1] and last[1][1] or '0-0')
  end
end
