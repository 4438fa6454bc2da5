-- Indexes a session whose sid has no tag of its user (one Express issued):
-- its own step, as the session is in another slot. Safe to repeat.
-- KEYS[1] the user's index   ARGV[1] sid   ARGV[2] score (creation, ms)   ARGV[3] TTL, s
-- ARGV[4] '1' to remove the entry instead (the session was deleted)
if ARGV[4] == '1' then return redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
