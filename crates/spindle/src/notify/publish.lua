-- Publish one event, after the rate limiter, in one round trip. Prepended by
-- the library: `local RL_KEYS, RL_ARGS = <n>, <m>` and the rate-limit script
-- of the policy's algorithm as `local function ratelimit(KEYS, ARGV)`.
--
-- KEYS  the limiter's RL_KEYS keys, then
--       +1 the topic's stream, +2 the topic's webhook set,
--       +3 the idempotency key (only when the publish has one)
-- ARGV  the limiter's RL_ARGS arguments (ARGV[3] is now_ms in every one), then
--       +1 MAXLEN, +2 retention ms, +3 idempotency TTL ms, +4 fingerprint,
--       +5 event, +6 data (JSON), +7 topic channel, +8 the event JSON after its id,
--       +9 worker channel, +10 worker payload, +11 Socket.IO channel ('' for none),
--       +12 the Socket.IO packet in hex (REST arguments must be UTF-8)
-- Returns {allowed, limit, remaining, reset_ms, retry_after_ms, status, id}:
--       status 1 published, 0 replay of an idempotency key (id: the original,
--       nothing consumed, limit 0), -1 the key was used for another publish,
--       -2 no stream key given. A denial is allowed 0, status 0, id ''.
local function arg(i) return ARGV[RL_ARGS + i] end
local stream, hooks, idem = KEYS[RL_KEYS + 1], KEYS[RL_KEYS + 2], KEYS[RL_KEYS + 3]
local now = ARGV[3]
local fingerprint = arg(4) or ''

if idem then
  local seen = redis.call('GET', idem)
  if seen then
    local id, fp = string.match(seen, '^(%S+) (%S*)$')
    if id then
      if fp == fingerprint then return {1, 0, 0, 0, 0, 0, id} end
      return {1, 0, 0, 0, 0, -1, id}
    end
  end
end

local rl_keys, rl_args = {}, {}
for i = 1, RL_KEYS do rl_keys[i] = KEYS[i] end
for i = 1, RL_ARGS do rl_args[i] = ARGV[i] end
local d = ratelimit(rl_keys, rl_args)
if d[1] ~= 1 then return {0, d[2], d[3], d[4], d[5], 0, ''} end
if not stream then return {1, d[2], d[3], d[4], d[5], -2, ''} end

-- Ids are the publishing host's clock (so id order is publish order across
-- hosts as far as clocks agree); when the stream's top id is already later
-- (a host whose clock runs ahead), Redis's own '*' continues after it.
local maxlen = tonumber(arg(1)) or 1000
local fields = {'e', arg(5) or '', 'd', arg(6) or 'null', 't', now}
local id = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, now .. '-*', unpack(fields))
if type(id) == 'table' then
  id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
end
local retention = tonumber(arg(2))
if retention and retention > 0 then redis.call('PEXPIRE', stream, retention) end
if idem then
  redis.call('SET', idem, id .. ' ' .. fingerprint, 'PX', tonumber(arg(3)) or 86400000)
end

if arg(7) and arg(7) ~= '' then
  redis.call('PUBLISH', arg(7), '{"id":"' .. id .. '",' .. (arg(8) or '}'))
end
if hooks and arg(9) and arg(9) ~= '' and redis.call('EXISTS', hooks) == 1 then
  redis.call('PUBLISH', arg(9), arg(10) or '')
end
if arg(11) and arg(11) ~= '' then
  local packet = string.gsub(arg(12) or '', '%x%x', function(h) return string.char(tonumber(h, 16)) end)
  redis.call('PUBLISH', arg(11), packet)
end
return {1, d[2], d[3], d[4], d[5], 1, id}
