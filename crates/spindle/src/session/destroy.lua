-- KEYS[1] sess:<sid>   KEYS[2] (optional) the user's index   ARGV[1] sid
-- Returns 1 if the session existed.
local n = redis.call('DEL', KEYS[1])
if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
return n
