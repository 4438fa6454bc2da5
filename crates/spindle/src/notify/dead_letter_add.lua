-- Cluster layout: appends dead letters to one owner's stream (in the owner's
-- slot), after delivery_settle said their outcomes applied.
-- KEYS  [1] the owner's dead-letter stream
-- ARGV  MAXLEN, TTL ms, then the dead letters' JSON
-- Returns {dead letters written}
if #KEYS < 1 then return {0} end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'j', ARGV[i])
end
if #ARGV >= 3 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return {#ARGV - 2}
