-- KEYS[1] the user's index   ARGV[1] session key prefix
-- ARGV[2] handle: the first 16 hex digits of SHA-1(sid)
-- Returns 1 if a live session was destroyed, 0 if none matched.
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(redis.sha1hex(sid), 1, 16) == ARGV[2] then
    local n = redis.call('DEL', ARGV[1] .. sid)
    redis.call('ZREM', KEYS[1], sid)
    return n
  end
end
return 0
