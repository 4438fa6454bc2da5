-- Cluster layout: a tick found a topic with no webhooks and nothing due (in
-- a step of its own, on the topic's slot); drops it from the tick's topics
-- unless a webhook was registered on it since `cutoff` (a registration
-- ZADDs the topic before its topic step, so a topic that just got a webhook
-- keeps its entry whichever step ran first).
-- KEYS  [1] topics by registration time (zset)
-- ARGV  topic, cutoff ms
-- Returns {1} dropped, {0} kept
if #KEYS < 1 then return {0} end
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) < tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {1}
end
return {0}
