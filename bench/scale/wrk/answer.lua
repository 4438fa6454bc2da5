-- One fixed request from the environment: METHOD [GET], PATH_ [/], BODY
-- [none] and CONTENT_TYPE [none]. bench/stacks/run.sh uses it for the
-- answers that need no Redis (404, 405, 401, 400, /openapi.json, the console).
wrk.method = os.getenv("METHOD") or "GET"
wrk.path = os.getenv("PATH_") or "/"
local body = os.getenv("BODY")
if body and body ~= "" then wrk.body = body end
local ctype = os.getenv("CONTENT_TYPE")
if ctype and ctype ~= "" then wrk.headers["Content-Type"] = ctype end
