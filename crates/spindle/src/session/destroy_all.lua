-- KEYS[1] the user's index   ARGV[1] session key prefix   ARGV[2] the user's hash tag
-- Returns {n, sid...}: how many sessions in the user's slot existed (they
-- and their entries are gone), then the indexed sids without the tag (in
-- other slots), whose sessions the caller deletes and then their entries.
local n, out, tag = 0, {0}, ARGV[2]
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(sid, 1, #tag) == tag then
    n = n + redis.call('DEL', ARGV[1] .. sid)
    redis.call('ZREM', KEYS[1], sid)
  else
    out[#out + 1] = sid
  end
end
out[1] = n
return out
