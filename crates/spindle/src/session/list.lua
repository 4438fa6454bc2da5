-- KEYS[1] the user's index   ARGV[1] session key prefix
-- Returns {sid1, json1, sid2, json2, ...}.
local out = {}
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = #members, 1, -1 do
  local v = redis.call('GET', ARGV[1] .. members[i])
  if v then
    out[#out + 1] = members[i]
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], members[i])
  end
end
return out
