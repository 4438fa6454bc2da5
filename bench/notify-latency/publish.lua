-- wrk script: POST /notify/publish with an API key, a small JSON event,
-- spread over 100 topics. Set API_KEY in the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("API_KEY") or ""
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"topic":"bench-%d","event":"tick","data":{"n":%d,"text":"hello"}}', n % 100, n)
  return wrk.format(nil, "/notify/publish", nil, body)
end
