-- Removes one of the owner's webhooks. Its pending deliveries are dropped
-- when next claimed. The topic's keys are derived here from the stored
-- topic (the caller only knows the id), so this script needs one Redis
-- node, as the session scripts do.
-- KEYS  [1] the registry, [2] the owner's webhook set, [3] the set of topics with webhooks
-- ARGV  id, owner, key prefix
-- Returns {1} deleted, {0} no such webhook of this owner
if #KEYS < 3 then return {0} end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {0} end
local owner, topic = string.match(v, '^([^\n]*)\n([^\n]*)\n')
if owner ~= ARGV[2] then return {0} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
local set = ARGV[3] .. ':{' .. topic .. '}:webhooks'
redis.call('SREM', set, ARGV[1])
if redis.call('SCARD', set) == 0 then
  redis.call('DEL', set, ARGV[3] .. ':{' .. topic .. '}:webhooks-cursor')
  redis.call('SREM', KEYS[3], topic)
end
return {1}
