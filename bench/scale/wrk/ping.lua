-- GET /api/ping, the rate-limited route, each request from another client
-- address (X-Forwarded-For, which the hosts believe from nginx): a fleet
-- serving many clients, every request a full limiter decision that allows.
-- 2^20 addresses per wrk thread in 10.0.0.0/8, used in turn.
local n = 0  -- `tid` is a global: setup() sets it in each thread
local count = 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
end
function request()
  n = n + 1
  local c = n % 1048576
  local ip = string.format("10.%d.%d.%d", ((tid or 0) % 16) * 16 + math.floor(c / 65536), math.floor(c / 256) % 256, c % 256)
  return wrk.format("GET", "/api/ping", { ["X-Forwarded-For"] = ip })
end
