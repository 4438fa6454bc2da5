-- KEYS[1] the user's index   ARGV[1] session key prefix
-- ARGV[2] handle: the first 16 hex digits of SHA-1(sid)   ARGV[3] the user's hash tag
-- Returns {1} if a live session was destroyed, {0} if none matched, or
-- {2, sid}: the match has no tag (another slot), and the caller deletes its
-- session and then its entry.
local tag = ARGV[3]
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(redis.sha1hex(sid), 1, 16) == ARGV[2] then
    if string.sub(sid, 1, #tag) ~= tag then return {2, sid} end
    redis.call('ZREM', KEYS[1], sid)
    return {redis.call('DEL', ARGV[1] .. sid)}
  end
end
return {0}
