-- An owner's webhooks; ids whose registration is gone are dropped.
-- KEYS  [1] the owner's webhook set, [2] the registry
-- Returns {registry value, ...}
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = KEYS[2] and redis.call('HGET', KEYS[2], id)
  if v then out[#out + 1] = v else redis.call('SREM', KEYS[1], id) end
end
return out
