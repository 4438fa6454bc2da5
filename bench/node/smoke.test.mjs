// Smoke test of the Node.js baseline: starts `node cluster.mjs` with two
// workers against the Redis at REDIS_URL (run-smoke.sh starts a throwaway
// one) and checks every route over real HTTP. Each request opens its own
// connection, so node:cluster spreads them over both workers (X-Worker
// names the one that answered).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { request } from "node:http";
import { createServer } from "node:net";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { io as ioClient } from "socket.io-client";
import { createClient } from "redis";

const HERE = dirname(fileURLToPath(import.meta.url));
const REDIS_URL = process.env.REDIS_URL;
const API_KEY = "smoke-test-key";
const PING_LIMIT = 5;
let child, base, dir, output = "";

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

before(async () => {
  assert.ok(REDIS_URL, "set REDIS_URL to a running Redis (run-smoke.sh does)");
  dir = mkdtempSync(join(tmpdir(), "bench-node-"));
  const port = await freePort();
  child = spawn(process.execPath, [join(HERE, "cluster.mjs")], {
    env: {
      ...process.env,
      PORT: String(port),
      BIND: "127.0.0.1",
      WORKERS: "2",
      REDIS_URL,
      DB_PATH: join(dir, "baseline.sqlite"),
      SESSION_SECRET: "smoke-secret-0123456789abcdef",
      API_RATE_LIMIT: `${PING_LIMIT}/60s`,
      API_KEYS: createHash("sha256").update(API_KEY).digest("hex"),
      HOST_ID: "smoke-host",
      TRUST_PROXY: "127.0.0.1", // as nginx in front: X-Forwarded-For names the client
      ARGON2_MEMORY_KIB: "4096", // quicker logins for the test; the default is 19456
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "listening on" within 20 s:\n${output}`)), 20_000);
    child.stdout.on("data", () => {
      if (/listening on (\d+)/.test(output)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`cluster exited (${code}):\n${output}`)));
  });
  assert.equal(output.match(/listening on (\d+)/)[1], String(port));
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  if (child && child.exitCode === null) {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One request on a fresh connection: {status, headers, body (parsed JSON or text), cookie}. */
function call(method, path, { body, cookie, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    if (data !== undefined && !h["content-type"]) h["content-type"] = "application/json";
    if (cookie) h.cookie = cookie;
    const req = request(`${base}${path}`, { method, headers: h, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        let parsed = text;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {}
        const set = (res.headers["set-cookie"] ?? []).find((c) => c.startsWith("connect.sid="));
        resolve({ status: res.statusCode, headers: res.headers, body: parsed, cookie: set?.split(";")[0] });
      });
    });
    req.on("error", reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

async function registerAndLogin(username, password = "correct horse battery") {
  const reg = await call("POST", "/auth/register", { body: { username, password } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const login = await call("POST", "/auth/login", { body: { username, password } });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.ok(login.cookie?.startsWith("connect.sid=s%3A"), `a signed connect.sid cookie, got ${login.cookie}`);
  return { user: login.body.user, cookie: login.cookie };
}

test("health answers, with X-Host and problem+json for unknown routes", async () => {
  const r = await call("GET", "/healthz");
  assert.equal(r.status, 200);
  assert.equal(r.body.status, "ok");
  assert.equal(r.headers["x-host"], "smoke-host");
  const nf = await call("GET", "/no/such/route");
  assert.equal(nf.status, 404);
  assert.match(nf.headers["content-type"], /^application\/problem\+json/);
  assert.equal(nf.body.type, "urn:spindle:problem:not-found");
  const wrong = await call("DELETE", "/auth/me");
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.allow, "GET, HEAD");
});

test("register, login, me, logout", async () => {
  const reg = await call("POST", "/auth/register", { body: { username: "alice", password: "correct horse battery" } });
  assert.equal(reg.status, 201);
  assert.equal(reg.headers.location, "/auth/me");
  assert.equal(reg.body.user.username, "alice");
  assert.equal(reg.body.user.version, 1);
  assert.equal((await call("POST", "/auth/register", { body: { username: "ALICE", password: "another password" } })).status, 409);
  const badName = await call("POST", "/auth/register", { body: { username: "x", password: "correct horse battery" } });
  assert.equal(badName.status, 400);
  assert.equal(badName.body.type, "urn:spindle:problem:bad-request");
  assert.equal((await call("POST", "/auth/register", { body: "username=a", headers: { "content-type": "text/plain" } })).status, 415);
  assert.equal((await call("POST", "/auth/register", { body: "{not json" })).status, 400);

  const wrong = await call("POST", "/auth/login", { body: { username: "alice", password: "wrong password" } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.cookie, undefined);
  const unknown = await call("POST", "/auth/login", { body: { username: "nobody", password: "wrong password" } });
  assert.deepEqual(unknown.body, wrong.body, "one answer for an unknown user and a wrong password");

  const login = await call("POST", "/auth/login", { body: { username: "alice", password: "correct horse battery" } });
  assert.equal(login.status, 200);
  assert.equal(login.body.user.id, reg.body.user.id);
  assert.match(login.body.session.handle, /^[0-9a-f]{16}$/);
  assert.ok(login.cookie);

  const me = await call("GET", "/auth/me", { cookie: login.cookie });
  assert.equal(me.status, 200);
  assert.deepEqual(me.body.user, { id: reg.body.user.id, username: "alice" });
  assert.equal(me.body.session.handle, login.body.session.handle);
  assert.equal((await call("GET", "/auth/me")).status, 401);
  assert.equal((await call("GET", "/auth/me", { cookie: login.cookie.slice(0, -3) + "AAA" })).status, 401, "a tampered cookie");

  const out = await call("POST", "/auth/logout", { cookie: login.cookie });
  assert.equal(out.status, 204);
  assert.match(out.headers["set-cookie"][0], /^connect\.sid=;/);
  assert.equal((await call("GET", "/auth/me", { cookie: login.cookie })).status, 401, "the session is gone");
  assert.equal((await call("POST", "/auth/logout")).status, 204, "logout without a session");
});

test("a session made by one worker is valid on the other", async () => {
  const { cookie } = await registerAndLogin("bob");
  const workers = new Set();
  for (let i = 0; i < 40; i++) {
    const r = await call("GET", "/auth/me", { cookie });
    assert.equal(r.status, 200, `request ${i} on worker ${r.headers["x-worker"]}`);
    assert.equal(r.body.user.username, "bob");
    workers.add(r.headers["x-worker"]);
  }
  assert.equal(workers.size, 2, `both workers answered (saw ${[...workers]})`);
  await call("POST", "/auth/logout", { cookie });
  for (let i = 0; i < 6; i++) assert.equal((await call("GET", "/auth/me", { cookie })).status, 401);
});

test("ping is rate-limited across workers: 429 after the limit", async () => {
  const workers = new Set();
  for (let i = 0; i < PING_LIMIT; i++) {
    const r = await call("GET", "/api/ping");
    assert.equal(r.status, 200, `ping ${i + 1} of ${PING_LIMIT}`);
    assert.deepEqual(r.body, { pong: true });
    assert.equal(r.headers["ratelimit-policy"], `"api";q=${PING_LIMIT};w=60`);
    assert.equal(r.headers["x-ratelimit-remaining"], String(PING_LIMIT - 1 - i));
    workers.add(r.headers["x-worker"]);
  }
  assert.equal(workers.size, 2, "the budget is shared by both workers");
  for (let i = 0; i < 4; i++) {
    const r = await call("GET", "/api/ping");
    assert.equal(r.status, 429);
    assert.equal(r.body.type, "urn:spindle:problem:quota-exceeded");
    assert.ok(Number(r.headers["retry-after"]) >= 0);
    assert.equal(r.headers["x-ratelimit-remaining"], "0");
  }
  // Another client address behind the trusted proxy has its own budget,
  // under exactly the keys @upstash/ratelimit (and Spindle) use.
  const proxied = await call("GET", "/api/ping", { headers: { "x-forwarded-for": "203.0.113.9, 10.9.9.9" } });
  assert.equal(proxied.status, 200);
  assert.equal(proxied.headers["x-ratelimit-remaining"], String(PING_LIMIT - 1));
  const redis = createClient({ url: REDIS_URL });
  await redis.connect();
  try {
    const window = Math.floor(Date.now() / 60_000);
    const keys = await redis.keys("@upstash/ratelimit:api:ip:*");
    assert.ok(keys.includes(`@upstash/ratelimit:api:ip:10.9.9.9:${window}`) || keys.includes(`@upstash/ratelimit:api:ip:10.9.9.9:${window - 1}`), `keys: ${keys}`);
    assert.ok(keys.some((k) => k.startsWith("@upstash/ratelimit:api:ip:127.0.0.1:")), `keys: ${keys}`);
  } finally {
    await redis.quit();
  }
  // An API key is its own identity with a fresh budget; an unknown key is 401.
  const keyed = await call("GET", "/api/ping", { headers: { "x-api-key": API_KEY } });
  assert.equal(keyed.status, 200);
  assert.equal((await call("GET", "/api/ping", { headers: { "x-api-key": "nope" } })).status, 401);
});

test("users: MISS, HIT, owner-only PATCH invalidates, MISS with the new value", async () => {
  const { user, cookie } = await registerAndLogin("carol");
  const other = await registerAndLogin("dave");
  const path = `/users/${user.id}`;
  const first = await call("GET", path);
  assert.equal(first.status, 200);
  assert.equal(first.headers["x-cache"], "MISS");
  assert.equal(first.body.user.username, "carol");
  assert.equal(first.body.user.email, undefined, "no email for others");
  assert.equal(first.headers.etag, `"u${user.id}-v1"`);
  const second = await call("GET", path);
  assert.equal(second.headers["x-cache"], "HIT");
  assert.deepEqual(second.body, first.body);
  assert.equal((await call("GET", path, { headers: { "if-none-match": first.headers.etag } })).status, 304);

  assert.equal((await call("PATCH", path, { body: { display_name: "Carol" } })).status, 401);
  assert.equal((await call("PATCH", path, { body: { display_name: "Carol" }, cookie: other.cookie })).status, 403);
  assert.equal((await call("PATCH", path, { body: { nickname: "c" }, cookie })).status, 400);
  assert.equal((await call("PATCH", path, { body: { display_name: "Carol" }, cookie, headers: { "if-match": `"u${user.id}-v99"` } })).status, 412);

  const patched = await call("PATCH", path, { body: { display_name: "Carol C.", email: "carol@example.com" }, cookie });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal(patched.body.user.display_name, "Carol C.");
  assert.equal(patched.body.user.email, "carol@example.com");
  assert.equal(patched.body.user.version, 2);
  assert.equal(patched.headers.etag, `"u${user.id}-v2-owner"`);

  const after = await call("GET", path);
  assert.equal(after.headers["x-cache"], "MISS", "the PATCH deleted the cached copy");
  assert.equal(after.body.user.display_name, "Carol C.");
  assert.equal(after.body.user.version, 2);
  const again = await call("GET", path, { cookie });
  assert.equal(again.headers["x-cache"], "HIT");
  assert.equal(again.body.user.email, "carol@example.com", "the owner sees the email");

  const missing = await call("GET", "/users/999999");
  assert.equal(missing.status, 404);
  assert.equal((await call("GET", "/users/0")).status, 400);
  assert.equal((await call("GET", "/users/abc")).status, 400);
});

test("notify: publish, then poll returns the event; a waiting poll wakes up; Socket.IO clients get it", async () => {
  const key = { "x-api-key": API_KEY };
  assert.equal((await call("POST", "/notify/publish", { body: { topic: "orders", event: "x" } })).status, 401);
  const pub = await call("POST", "/notify/publish", {
    headers: key,
    body: { topic: "orders", event: "order.paid", data: { order: 7 } },
  });
  assert.equal(pub.status, 201, JSON.stringify(pub.body));
  assert.equal(pub.body.topic, "orders");
  assert.match(pub.body.id, /^\d+-\d+$/);

  const poll = await call("GET", "/notify/poll?topic=orders&after=0&wait_ms=0", { headers: key });
  assert.equal(poll.status, 200);
  assert.equal(poll.body.topic, "orders");
  assert.deepEqual(poll.body.events.map((e) => [e.id, e.event, e.data]), [[pub.body.id, "order.paid", { order: 7 }]]);
  assert.equal(poll.body.next, pub.body.id);

  // A long poll from now (no cursor) on one connection, a publish on another.
  const { cookie } = await registerAndLogin("erin");
  const waiting = call("GET", "/notify/poll?topic=orders&wait_ms=5000", { cookie });
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  const pub2 = await call("POST", "/notify/publish", { cookie, body: { topic: "orders", event: "order.shipped", data: [1, "two"] } });
  assert.equal(pub2.status, 201);
  const woke = await waiting;
  assert.equal(woke.status, 200);
  assert.deepEqual(woke.body.events.map((e) => [e.id, e.event, e.data]), [[pub2.body.id, "order.shipped", [1, "two"]]]);
  assert.ok(Date.now() - t0 < 3000, "the poll woke up on the publish, not at its timeout");
  const empty = await call("GET", `/notify/poll?topic=orders&after=${woke.body.next}&wait_ms=200`, { headers: key });
  assert.deepEqual(empty.body.events, []);
  assert.equal(empty.body.next, woke.body.next);
  assert.equal((await call("GET", "/notify/poll?topic=user:1", { headers: key })).status, 403);
  assert.equal((await call("GET", "/notify/poll?topic=bad%20topic", { headers: key })).status, 400);

  // Two Socket.IO clients (websocket, which needs no sticky sessions), on
  // whichever workers; a publish reaches both through the redis adapter.
  const clients = [0, 1].map(() =>
    ioClient(base, { transports: ["websocket"], auth: { apiKey: API_KEY, topics: ["chat"] }, forceNew: true, reconnection: false }),
  );
  try {
    await Promise.all(clients.map((c) => new Promise((ok, fail) => { c.once("connect", ok); c.once("connect_error", fail); })));
    const got = clients.map((c) => new Promise((ok) => c.once("message.new", ok)));
    const pub3 = await call("POST", "/notify/publish", { headers: key, body: { topic: "chat", event: "message.new", data: { text: "hi" } } });
    assert.equal(pub3.status, 201);
    const timeout = new Promise((_, fail) => setTimeout(() => fail(new Error("no Socket.IO event within 3 s")), 3000));
    assert.deepEqual(await Promise.race([Promise.all(got), timeout]), [{ text: "hi" }, { text: "hi" }]);
  } finally {
    for (const c of clients) c.close();
  }
});
