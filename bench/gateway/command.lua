-- wrk script for bench/gateway/run.sh: one Upstash command per request,
-- `POST /` with a JSON body, on random keys (key:0 .. key:99999, as
-- redis-benchmark -r 100000 does). CMD is GET, SET or EVALSHA (with SHA,
-- which INCRs counter:N: keys of their own, as SET leaves strings behind).
local cmd = os.getenv("CMD") or "GET"
local sha = os.getenv("SHA") or ""
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
wrk.headers["Content-Type"] = "application/json"

request = function()
  local key = "key:" .. math.random(0, 99999)
  local body
  if cmd == "SET" then
    body = '["SET","' .. key .. '","xxx"]'
  elseif cmd == "EVALSHA" then
    body = '["EVALSHA","' .. sha .. '",1,"counter:' .. math.random(0, 99999) .. '"]'
  else
    body = '["GET","' .. key .. '"]'
  end
  return wrk.format(nil, "/", nil, body)
end

-- Fail loudly rather than measure error answers.
response = function(status, headers, body)
  if status ~= 200 then
    error("status " .. status .. ": " .. body)
  end
end
