-- KEYS[1] the user's index   ARGV[1] session key prefix
-- Returns how many sessions existed.
local n = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('DEL', ARGV[1] .. sid)
end
redis.call('DEL', KEYS[1])
return n
