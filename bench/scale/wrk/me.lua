-- GET /auth/me with a session cookie made at set-up (COOKIE): the session check.
wrk.method = "GET"
wrk.path = "/auth/me"
wrk.headers["Cookie"] = os.getenv("COOKIE") or ""
