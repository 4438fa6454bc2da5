-- KEYS[1] sess:<sid>   KEYS[2] (optional) the user's index
-- ARGV[1] sid  ARGV[2] new JSON  ARGV[3] index score (creation, ms)
-- ARGV[4] SHA-1 (hex) of the value that was read  ARGV[5] TTL, s (0 or less deletes)
-- Returns 1 written, 0 gone, -1 changed since it was read, 2 deleted (expired).
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if redis.sha1hex(cur) ~= ARGV[4] then return -1 end
local ttl = tonumber(ARGV[5])
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  if KEYS[2] then redis.call('ZREM', KEYS[2], ARGV[1]) end
  return 2
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl, 'XX')
if KEYS[2] then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
  if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
end
return 1
