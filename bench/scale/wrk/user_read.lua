-- GET /users/:id of an existing user, anonymously: the cached read, hit path
-- (the first request fills the cache; USER_ID).
wrk.method = "GET"
wrk.path = "/users/" .. (os.getenv("USER_ID") or "1")
