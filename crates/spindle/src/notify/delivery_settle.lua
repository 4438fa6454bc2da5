-- Records what happened to claimed deliveries: delivered (forgotten),
-- retry (due again at a later time), dead (moved to the owner's
-- dead-letter stream), or dropped (never queued, at the owner's pending
-- cap: only the dead letter is written). A retry or dead-letter applies
-- only while the record is still at the claimed attempt (a slower worker
-- whose lease ran out must not undo a newer claim). A forgotten record
-- leaves its owner's pending count.
-- KEYS  [1] due zset, [2] pending hash, [3] pending counts (owner → n), then
--       dead-letter streams (none in the cluster layout, where they are in
--       their owners' slots: dead-letter key index 0, and the worker writes
--       the dead letters whose outcome applied as a step of its own)
-- ARGV  dead-letter MAXLEN, dead-letter TTL ms, then per delivery:
--       id, attempt, outcome (ok | retry | dead | dropped), due ms, dead-letter key index, dead-letter JSON
-- Returns {deliveries settled, then per delivery 1 if its outcome applied
--         (a dead or dropped one's dead letter is due) else 0}
local n, applied = 0, {}
local function dead_letter(i)
  local dead = KEYS[tonumber(ARGV[i + 4]) or 0]
  if dead then
    redis.call('XADD', dead, 'MAXLEN', '~', ARGV[1], '*', 'j', ARGV[i + 5])
    redis.call('PEXPIRE', dead, ARGV[2])
  end
end
local function forget(id, rec)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local owner = string.match(rec, '^%d+\n[^\n]*\n([^\n]*)\n')
  if owner and KEYS[3] and redis.call('HINCRBY', KEYS[3], owner, -1) <= 0 then
    redis.call('HDEL', KEYS[3], owner)
  end
end
for i = 3, #ARGV - 5, 6 do
  local id, attempt, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local rec = redis.call('HGET', KEYS[2], id)
  local current = rec and string.match(rec, '^(%d+)\n')
  local before = n
  if outcome == 'dropped' then
    dead_letter(i)
    n = n + 1
  elseif outcome == 'ok' then
    if rec then
      forget(id, rec)
      n = n + 1
    end
  elseif current and current == attempt then
    if outcome == 'retry' then
      redis.call('ZADD', KEYS[1], ARGV[i + 3], id)
      n = n + 1
    elseif outcome == 'dead' then
      dead_letter(i)
      forget(id, rec)
      n = n + 1
    end
  end
  applied[#applied + 1] = n - before
end
local out = {n}
for _, a in ipairs(applied) do out[#out + 1] = a end
return out
