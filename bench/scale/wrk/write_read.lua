-- A user write followed by a read: PATCH /users/:id (the owner's session)
-- then GET /users/:id, in turn, over the users in USERS ("id=cookie;id=cookie").
local users = {}
for id, cookie in string.gmatch(os.getenv("USERS") or "", "(%d+)=([^;]+)") do
  users[#users + 1] = { id = id, cookie = cookie }
end
local n = 0  -- `tid` is a global: setup() sets it in each thread
local count = 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
end
function request()
  n = n + 1
  local u = users[(((tid or 0) + math.floor(n / 2)) % #users) + 1]
  if n % 2 == 1 then
    local body = string.format('{"display_name":"w%d-%d"}', tid or 0, n)
    return wrk.format("PATCH", "/users/" .. u.id, { ["Content-Type"] = "application/json", ["Cookie"] = u.cookie }, body)
  end
  return wrk.format("GET", "/users/" .. u.id)
end
