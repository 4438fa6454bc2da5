-- KEYS[1] sess:<sid>   KEYS[2] the user's index   KEYS[3] (optional) sess:<sid> being replaced
-- (all in the user's slot: the sids carry its hash tag)
-- ARGV[1] sid  ARGV[2] session JSON  ARGV[3] now, ms (the index score)
-- ARGV[4] most sessions per user  ARGV[5] TTL, s  ARGV[6] session key prefix
-- ARGV[7] the user's hash tag, '{<id>}'
-- Returns {1, sid...}: created, and the sids over the cap without the tag
-- (in other slots), whose sessions the caller deletes and then their index
-- entries; or {0} when the sid is taken (the caller draws another).
if not redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5], 'NX') then return {0} end
if KEYS[3] then redis.call('DEL', KEYS[3]) end
local tag = ARGV[7]
local function ours(sid) return string.sub(sid, 1, #tag) == tag end
-- Trim entries whose session is gone (expired, or destroyed by another app).
for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if ours(sid) and redis.call('EXISTS', ARGV[6] .. sid) == 0 then redis.call('ZREM', KEYS[2], sid) end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local out = {1}
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if over > 0 then
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
    if sid ~= ARGV[1] then
      if ours(sid) then
        redis.call('DEL', ARGV[6] .. sid)
        redis.call('ZREM', KEYS[2], sid)
      else
        out[#out + 1] = sid
      end
    end
  end
end
local ttl = tonumber(ARGV[5])
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
return out
