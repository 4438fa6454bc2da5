-- Cluster layout, the topic's step of deleting a webhook (before the owner's
-- entry goes): safe to repeat. Its pending deliveries are dropped when next
-- claimed, as in the single-node layout.
-- KEYS  [1] the topic's registry, [2] its webhook set, [3] its fan-out cursor
-- ARGV  id
-- Returns {removed (1 or 0), webhooks left on the topic}
if #KEYS < 3 then return {0, 0} end
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('DEL', KEYS[3]) end
return {removed, left}
