-- Records what happened to claimed deliveries: delivered (forgotten),
-- retry (due again at a later time), or dead (moved to the owner's
-- dead-letter stream). A retry or dead-letter applies only while the record
-- is still at the claimed attempt (a slower worker whose lease ran out
-- must not undo a newer claim).
-- KEYS  [1] due zset, [2] pending hash, then dead-letter streams
-- ARGV  dead-letter MAXLEN, dead-letter TTL ms, then per delivery:
--       id, attempt, outcome (ok | retry | dead), due ms, dead-letter key index, dead-letter JSON
-- Returns {deliveries settled}
local n = 0
for i = 3, #ARGV - 5, 6 do
  local id, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local rec = redis.call('HGET', KEYS[2], id)
  local current = rec and string.match(rec, '^(%d+)\n')
  if outcome == 'ok' then
    if rec then
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      n = n + 1
    end
  elseif current and current == attempt then
    if outcome == 'retry' then
      redis.call('ZADD', KEYS[1], ARGV[i + 3], id)
      n = n + 1
    elseif outcome == 'dead' then
      local dead = KEYS[tonumber(ARGV[i + 4]) or 0]
      if dead then
        redis.call('XADD', dead, 'MAXLEN', '~', ARGV[1], '*', 'j', ARGV[i + 5])
        redis.call('PEXPIRE', dead, ARGV[2])
      end
      redis.call('ZREM', KEYS[1], id)
      redis.call('HDEL', KEYS[2], id)
      n = n + 1
    end
  end
end
return {n}
