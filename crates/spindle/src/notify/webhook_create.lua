-- Registers a webhook on a topic.
-- KEYS  [1] the registry (hash id → "<owner>\n<topic>\n<JSON>"), [2] the
--       topic's webhook set, [3] the owner's webhook set, [4] the set of
--       topics with webhooks, [5] the topic's fan-out cursor, [6] its stream
-- ARGV  id, registry value, topic, most webhooks per owner, most per topic
-- Returns {1} created, {-1} the owner has the most, {-2} the topic has the
--         most, {0} missing keys
-- A topic's first webhook starts its cursor at the stream's current end:
-- a new webhook gets the events published from now on.
if #KEYS < 6 then return {0} end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {-1} end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[5]) then return {-2} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[3])
if redis.call('EXISTS', KEYS[5]) == 0 then
  local last = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)
  redis.call('SET', KEYS[5], last[1] and last[1][1] or '0-0')
end
return {1}
