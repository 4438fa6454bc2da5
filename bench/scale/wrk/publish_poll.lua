-- Publish + poll: POST /notify/publish, then GET /notify/poll with the
-- reader's cursor and wait_ms=0 (answers at once with what was published
-- since), in turn, one topic per wrk thread, as a logged-in user (COOKIE).
-- TOPIC is the topics' prefix.
local n = 0  -- `tid` is a global: setup() sets it in each thread
local count = 0
local cursor = "0"
local prefix = os.getenv("TOPIC") or "scale"
local cookie = os.getenv("COOKIE") or ""
function setup(thread)
  count = count + 1
  thread:set("tid", count)
end
local function later(a, b) -- is stream id a after b?
  local am, as = string.match(a, "^(%d+)-(%d+)$")
  local bm, bs = string.match(b, "^(%d+)-(%d+)$")
  if not am then return false end
  if not bm then return true end
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
function request()
  n = n + 1
  local topic = prefix .. "-" .. (tid or 0)
  if n % 2 == 1 then
    local body = string.format('{"topic":"%s","event":"tick","data":{"n":%d,"text":"hello"}}', topic, n)
    return wrk.format("POST", "/notify/publish", { ["Content-Type"] = "application/json", ["Cookie"] = cookie }, body)
  end
  return wrk.format("GET", "/notify/poll?topic=" .. topic .. "&after=" .. cursor .. "&wait_ms=0", { ["Cookie"] = cookie })
end
function response(status, headers, body)
  local next = string.match(body, '"next"%s*:%s*"([^"]+)"')
  if next and later(next, cursor) then cursor = next end
end
