-- Cluster layout, the topic's step of registering a webhook (after
-- webhook_reserve and the tick list), all in the topic's slot; safe to repeat.
-- KEYS  [1] the topic's registry (hash id → registry value), [2] its
--       webhook set, [3] its fan-out cursor, [4] its stream
-- ARGV  id, registry value, most webhooks per topic
-- Returns {1} added, {-2} the topic has the most, {0} missing keys
if #KEYS < 4 then return {0} end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  return {-2}
end
add_to_topic(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
return {1}
