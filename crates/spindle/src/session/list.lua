-- KEYS[1] the user's index   ARGV[1] session key prefix   ARGV[2] the user's hash tag
-- Returns {sid1, json1, sid2, json2, ...}, newest first; a sid without the
-- tag (its session is in another slot) comes with 0 instead of its JSON,
-- for the caller to read.
local out, tag = {}, ARGV[2]
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = #members, 1, -1 do
  local sid = members[i]
  if string.sub(sid, 1, #tag) ~= tag then
    out[#out + 1] = sid
    out[#out + 1] = 0
  else
    local v = redis.call('GET', ARGV[1] .. sid)
    if v then
      out[#out + 1] = sid
      out[#out + 1] = v
    else
      redis.call('ZREM', KEYS[1], sid)
    end
  end
end
return out
