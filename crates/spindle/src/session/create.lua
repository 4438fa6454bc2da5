-- KEYS[1] sess:<sid>   KEYS[2] the user's index   KEYS[3] (optional) sess:<sid> being replaced
-- ARGV[1] sid  ARGV[2] session JSON  ARGV[3] now, ms (the index score)
-- ARGV[4] most sessions per user  ARGV[5] TTL, s  ARGV[6] session key prefix
-- Returns 1, or 0 when the sid is taken (the caller draws another).
if not redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5], 'NX') then return 0 end
if KEYS[3] then redis.call('DEL', KEYS[3]) end
-- Trim entries whose session is gone (expired, or destroyed by another app).
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('EXISTS', ARGV[6] .. sid) == 0 then redis.call('ZREM', KEYS[2], sid) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    if sid ~= ARGV[1] then
      redis.call('DEL', ARGV[6] .. sid)
      redis.call('ZREM', KEYS[2], sid)
    end
  end
end
local ttl = tonumber(ARGV[5])
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
return 1
