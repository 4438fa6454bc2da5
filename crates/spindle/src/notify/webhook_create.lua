-- Registers a webhook on a topic (single-node layout).
-- KEYS  [1] the registry (hash id → "<owner>\n<topic>\n<JSON>"), [2] the
--       topic's webhook set, [3] the owner's webhook set, [4] the set of
--       topics with webhooks, [5] the topic's fan-out cursor, [6] its stream
-- ARGV  id, registry value, topic, most webhooks per owner, most per topic
-- Returns {1} created, {-1} the owner has the most, {-2} the topic has the
--         most, {0} missing keys
if #KEYS < 6 then return {0} end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[4]) then return {-1} end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[5]) then return {-2} end
add_to_topic(KEYS[1], KEYS[2], KEYS[5], KEYS[6], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[3])
return {1}
