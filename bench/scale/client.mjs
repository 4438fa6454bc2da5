// Small HTTP helpers shared by the benchmark's Node scripts (Node's fetch).

/** One request: {status, body (JSON or text), cookie (the session cookie set, if any), upstream, error}. */
export async function call(base, method, path, { body, cookie, headers = {}, timeoutMs = 10_000 } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["content-type"] = "application/json";
  if (cookie) h.cookie = cookie;
  try {
    const res = await fetch(base + path, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed = text;
    try { parsed = JSON.parse(text); } catch {}
    const set = res.headers.getSetCookie().find((c) => c.startsWith("connect.sid="));
    return {
      status: res.status,
      body: parsed,
      cookie: set ? set.split(";")[0] : undefined,
      upstream: res.headers.get("x-upstream") || "",
    };
  } catch (e) {
    return { status: 0, body: null, error: String(e?.cause?.code || e?.name || e), upstream: "" };
  }
}

/** Registers (if needed) and logs in `username`; returns {id, username, cookie}. */
export async function account(base, username, password = "bench-password-1") {
  const r = await call(base, "POST", "/auth/register", { body: { username, password } });
  if (r.status !== 201 && r.status !== 409) throw new Error(`register ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  const l = await call(base, "POST", "/auth/login", { body: { username, password } });
  if (l.status !== 200 || !l.cookie) throw new Error(`login ${username}: ${l.status} ${JSON.stringify(l.body)}`);
  return { id: l.body.user.id, username, cookie: l.cookie };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
