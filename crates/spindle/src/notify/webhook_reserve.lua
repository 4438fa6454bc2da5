-- Cluster layout, the first step of registering a webhook: holds its place
-- among the owner's, whose definitions this hash keeps (so a list reads one
-- key). The topic's step follows (webhook_add); when it refuses, the caller
-- removes the entry again (HDEL).
-- KEYS  [1] the owner's webhook definitions (hash id → registry value)
-- ARGV  id, registry value, most webhooks per owner
-- Returns {1} held, {-1} the owner has the most, {0} missing keys
if #KEYS < 1 then return {0} end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {-1} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1}
