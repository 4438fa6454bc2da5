// One worker of the baseline: Spindle's routes written the idiomatic Node
// way. express + express-session/connect-redis (sessions), @upstash/ratelimit
// over node-redis (rate limits), Redis cache-aside in front of better-sqlite3
// (users), Redis Streams + Socket.IO's redis adapter (notify). Request and
// response shapes follow Spindle's README so the same load scripts drive both.

import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { isIPv6 } from "node:net";
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient, createClientPool } from "redis";
import { Ratelimit } from "@upstash/ratelimit";
import { Server as SocketServer } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import argon2 from "argon2";
// One adapter for the interop suite and the baseline (it needs only node:crypto).
import { ratelimitRedis } from "../../tests/interop/upstash-ratelimit/adapter.mjs";
import { open as openDb, statements } from "./db.mjs";

// ---------------------------------------------------------------- helpers

const PROBLEM_TITLES = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
  409: "Conflict", 412: "Precondition Failed", 413: "Payload Too Large", 415: "Unsupported Media Type",
  429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
};

class Problem extends Error {
  constructor(status, kind, detail, headers = {}) {
    super(detail);
    this.status = status;
    this.kind = kind;
    this.headers = headers;
  }
}

function sendProblem(res, p) {
  if (res.headersSent) return res.end();
  for (const [k, v] of Object.entries(p.headers ?? {})) res.setHeader(k, v);
  res.status(p.status).type("application/problem+json").send(
    JSON.stringify({ type: `urn:spindle:problem:${p.kind}`, title: PROBLEM_TITLES[p.status] ?? "Error", status: p.status, detail: p.message }),
  );
}

const bad = (detail) => new Problem(400, "bad-request", detail);
const unauthorized = (detail = "sign in first") => new Problem(401, "unauthorized", detail);
const forbidden = (detail) => new Problem(403, "forbidden", detail);
const notFound = (detail = "no such resource") => new Problem(404, "not-found", detail);

const iso = (ms) => (ms === undefined || ms === null ? null : new Date(ms).toISOString());
const sha256hex = (s) => createHash("sha256").update(s).digest("hex");

/** Express 4 does not catch rejected promises: route them to the error handler. */
const wrap = (fn) => (req, res, next) => Promise.resolve(fn(req, res, next)).catch(next);

/** Spindle's rate-limit identifier rule: plain ids as they are, others hashed. */
function keyId(id) {
  return /^[A-Za-z0-9\-._~:@/+=]{1,128}$/.test(id) ? id : `!${sha256hex(id).slice(0, 32)}`;
}

/** The client address as Spindle keys it: IPv4 as is, IPv6 per /64. */
function clientId(req) {
  let ip = req.ip ?? req.socket.remoteAddress ?? "unknown";
  if (ip.startsWith("::ffff:") && ip.includes(".")) ip = ip.slice(7);
  if (!isIPv6(ip)) return `ip:${ip}`;
  const [head, tail = ""] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const full = ip.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  const prefix = full.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":");
  return `ip:${prefix}::/64`;
}

// ---------------------------------------------------------------- the worker

export async function startWorker(cfg, { workerId = 0 } = {}) {
  // One command client per worker (sessions, limits, cache, XADD, Socket.IO
  // publishes), one subscriber for the Socket.IO adapter, and a pool for
  // XREAD BLOCK (a blocked connection serves nothing else).
  const redisErr = (what) => (e) => console.error(`worker ${workerId}: redis ${what}: ${e.message}`);
  const redis = createClient({ url: cfg.redisUrl, disableOfflineQueue: true });
  redis.on("error", redisErr("client"));
  const sub = redis.duplicate();
  sub.on("error", redisErr("subscriber"));
  const blocking = createClientPool(
    { url: cfg.redisUrl, disableOfflineQueue: true },
    { minimum: 1, maximum: cfg.notifyPollConnections, acquireTimeout: 5000 },
  );
  blocking.on("error", redisErr("poll pool"));
  await Promise.all([redis.connect(), sub.connect(), blocking.connect()]);

  const db = openDb(cfg.dbPath);
  const users = statements(db);
  const argonOpts = { type: argon2.argon2id, ...cfg.argon2 };
  // Unknown users are verified against this, so their 401 costs the same time.
  const dummyHash = await argon2.hash("not the password of anyone", argonOpts);

  // ---- rate limits: @upstash/ratelimit over node-redis
  const limiterRedis = ratelimitRedis(redis);
  const makeLimiter = (policyName, p) => {
    if (!p) return null;
    const limiter =
      p.algorithm === "fixed_window" ? Ratelimit.fixedWindow(p.limit, p.window)
      : p.algorithm === "token_bucket" ? Ratelimit.tokenBucket(p.limit, p.window, p.burst)
      : Ratelimit.slidingWindow(p.limit, p.window);
    const rl = new Ratelimit({ redis: limiterRedis, prefix: `${cfg.rateLimitPrefix}:${policyName}`, limiter });
    return { name: policyName, policy: p, rl };
  };
  const apiLimiter = makeLimiter("api", cfg.apiRateLimit);
  const loginLimiter = makeLimiter("login", cfg.loginRateLimit);
  const notifyLimiter = makeLimiter("notify", cfg.notifyRateLimit);

  /** Spends `cost` of `limiter` for `id`; sets the RateLimit headers; throws 429. */
  async function limit(res, limiter, id, { failOpen = true, cost = 1 } = {}) {
    if (!limiter) return;
    const { name, policy, rl } = limiter;
    const q = policy.algorithm === "token_bucket" ? policy.burst : policy.limit;
    const w = Math.ceil(policy.windowMs / 1000);
    res.setHeader("RateLimit-Policy", `"${name}";q=${q};w=${w}`);
    let r;
    try {
      r = await rl.limit(keyId(id), cost === 1 ? undefined : { rate: cost });
    } catch (e) {
      if (failOpen) return void res.setHeader("RateLimit-Status", "not-enforced");
      throw e;
    }
    const now = Date.now();
    const t = Math.max(0, Math.ceil((r.reset - now) / 1000));
    res.setHeader("RateLimit", `"${name}";r=${r.remaining};t=${t}`);
    res.setHeader("X-RateLimit-Limit", String(r.limit));
    res.setHeader("X-RateLimit-Remaining", String(r.remaining));
    res.setHeader("X-RateLimit-Reset", String(Math.ceil(r.reset / 1000)));
    if (r.reason === "timeout") res.setHeader("RateLimit-Status", "not-enforced");
    if (!r.success) {
      throw new Problem(429, "quota-exceeded", `the "${name}" rate limit is spent; retry in ${t} s`, { "Retry-After": String(t) });
    }
  }
  const refund = (limiter, id) => limiter?.rl.limit(keyId(id), { rate: -1 }).catch(() => {});

  // ---- express
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false); // Spindle sends ETags on /users only (set by hand below)
  if (cfg.trustProxy) {
    const v = cfg.trustProxy;
    app.set("trust proxy", v === "true" ? true : /^\d+$/.test(v) ? Number(v) : v.split(",").map((s) => s.trim()));
  }
  const hostHeader = cfg.hostId || null;
  app.use((req, res, next) => {
    if (hostHeader) res.setHeader("X-Host", hostHeader);
    res.setHeader("X-Worker", String(process.pid));
    next();
  });

  const sessionMiddleware = session({
    name: cfg.cookieName,
    secret: cfg.sessionSecrets,
    store: new RedisStore({ client: redis }), // prefix "sess:", connect-redis's default
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: cfg.sessionMaxAgeS * 1000, httpOnly: true, sameSite: "lax", secure: "auto" },
  });
  app.use(sessionMiddleware);

  /** The logged-in user ({id, username}) or null. */
  const sessionUser = (req) => {
    const u = req.session?.user;
    return u && Number.isSafeInteger(u.id) ? u : null;
  };

  /** Spindle's CSRF rule: Origin (else Referer) must be our own origin or an allowed one. */
  function checkOrigin(req) {
    let origin = req.get("origin");
    if (origin === undefined) {
      const referer = req.get("referer");
      if (referer === undefined) return; // not a browser that could be tricked
      try {
        origin = new URL(referer).origin;
      } catch {
        throw forbidden("cross-site request refused");
      }
    }
    const own = `${req.protocol}://${req.get("host")}`;
    if (origin === "null" || (origin !== own && !cfg.allowedOrigins.includes(origin))) {
      throw forbidden("cross-site request refused");
    }
  }

  /** JSON bodies as Spindle takes them: 415 without JSON, 413 over `max`, 400 malformed. */
  const json = (max) => {
    const parse = express.json({ limit: max, strict: false });
    return (req, res, next) => {
      if (!req.is("application/json")) return next(new Problem(415, "unsupported-media-type", "send Content-Type: application/json"));
      parse(req, res, next);
    };
  };
  const object = (body) => {
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw bad("the body must be a JSON object");
    return body;
  };

  /** The caller of a notify route: a session user, or a known API key. */
  function caller(req) {
    const key = req.get("x-api-key");
    const user = sessionUser(req);
    if (user) return { kind: "user", id: `user:${user.id}`, user };
    if (key !== undefined && cfg.apiKeys.size > 0) {
      const digest = sha256hex(key);
      if (!cfg.apiKeys.has(digest)) throw unauthorized("unknown API key");
      return { kind: "key", id: `key:${digest.slice(0, 32)}` };
    }
    return null;
  }

  // ---- health
  app.get("/healthz", wrap(async (req, res) => {
    const t0 = performance.now();
    try {
      await redis.ping();
    } catch {
      throw new Problem(503, "redis-unavailable", "Redis cannot be reached");
    }
    res.json({ status: "ok", redis: { transport: "tcp", latency_ms: Math.round((performance.now() - t0) * 100) / 100 } });
  }));

  // ---- auth
  const creds = (body) => {
    object(body);
    if (typeof body.username !== "string" || typeof body.password !== "string") throw bad("username and password are required strings");
    return body;
  };

  app.post("/auth/register", json(4096), wrap(async (req, res) => {
    checkOrigin(req);
    const { username, password } = creds(req.body);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$/.test(username)) throw bad("a username is 3–32 of A-Z a-z 0-9 _ . -, starting with a letter or digit");
    const len = [...password].length;
    if (len < 8 || len > 128) throw bad("a password is 8–128 characters");
    const hash = await argon2.hash(password, argonOpts);
    const user = users.insert(username, hash, new Date().toISOString());
    if (!user) throw new Problem(409, "conflict", "that username is taken");
    res.status(201).set({ Location: "/auth/me", "Cache-Control": "no-store" }).json({ user });
  }));

  app.post("/auth/login", json(4096), wrap(async (req, res) => {
    checkOrigin(req);
    const { username, password } = creds(req.body);
    // Brute-force throttle as Spindle's: per address and per username, every
    // attempt counts, a success gives both back. Fails closed.
    const byIp = clientId(req);
    const byName = `login:${username.toLowerCase()}`;
    await limit(res, loginLimiter, byIp, { failOpen: false });
    try {
      await limit(res, loginLimiter, byName, { failOpen: false });
    } catch (e) {
      await refund(loginLimiter, byIp);
      throw e;
    }
    const t0 = performance.now();
    const row = users.byName(username);
    const ok = await argon2.verify(row?.password_hash ?? dummyHash, password);
    res.setHeader("Server-Timing", `verify;dur=${(performance.now() - t0).toFixed(1)}`);
    if (!row || !ok) throw unauthorized("invalid username or password");
    await Promise.all([refund(loginLimiter, byIp), refund(loginLimiter, byName)]);
    // As Spindle: the throttle's headers go on refusals only.
    for (const h of ["RateLimit-Policy", "RateLimit", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]) res.removeHeader(h);
    const { password_hash: _, ...user } = row;
    // A new session id; the one the request carried (if any) is destroyed.
    await new Promise((resolve, reject) => req.session.regenerate((e) => (e ? reject(e) : resolve())));
    const now = Date.now();
    req.session.user = { id: user.id, username: user.username };
    req.session.spindle = { created_at: now, last_seen: now, user_agent: req.get("user-agent") ?? "", ip: clientId(req).slice(3) };
    res.set("Cache-Control", "no-store").json({ user, session: sessionJson(req) });
  }));

  function sessionJson(req) {
    const meta = req.session.spindle ?? {};
    return {
      handle: createHash("sha1").update(req.sessionID).digest("hex").slice(0, 16),
      created_at: iso(meta.created_at),
      expires_at: req.session.cookie.expires ? req.session.cookie.expires.toISOString() : null,
      last_seen: iso(meta.last_seen),
    };
  }

  app.get("/auth/me", (req, res) => {
    const user = sessionUser(req);
    if (!user) throw unauthorized();
    res.set("Cache-Control", "no-store").json({ user: { id: user.id, username: user.username }, session: sessionJson(req) });
  });

  app.post("/auth/logout", wrap(async (req, res) => {
    checkOrigin(req);
    if (req.session) await new Promise((resolve, reject) => req.session.destroy((e) => (e ? reject(e) : resolve())));
    res.clearCookie(cfg.cookieName, { path: "/", httpOnly: true, sameSite: "lax" });
    res.status(204).end();
  }));

  // ---- api (rate-limited)
  app.get("/api/ping", wrap(async (req, res) => {
    const user = sessionUser(req);
    let id;
    if (user) id = `user:${user.id}`;
    else {
      const key = req.get("x-api-key");
      if (key !== undefined && cfg.apiKeys.size > 0) {
        const digest = sha256hex(key);
        if (!cfg.apiKeys.has(digest)) throw unauthorized("unknown API key");
        id = `key:${digest.slice(0, 32)}`;
      } else id = clientId(req);
    }
    await limit(res, apiLimiter, id);
    res.json({ pong: true });
  }));

  // ---- users: cache-aside in Redis in front of SQLite
  const cacheKey = (id) => `node:cache:users:${id}`;
  const parseId = (raw) => {
    if (!/^[1-9][0-9]{0,18}$/.test(raw) || BigInt(raw) > 9223372036854775807n) throw bad("a user id is 1–9223372036854775807");
    return BigInt(raw);
  };
  const view = (u, owner) => {
    const v = { id: u.id, username: u.username, display_name: u.display_name, created_at: u.created_at, updated_at: u.updated_at, version: u.version };
    if (owner) v.email = u.email;
    return v;
  };
  const etag = (u, owner) => `"u${u.id}-v${u.version}${owner ? "-owner" : ""}"`;
  const matches = (header, tag) => {
    if (!header) return false;
    const strip = (t) => t.trim().replace(/^W\//, "");
    return header.split(",").some((t) => t.trim() === "*" || strip(t) === strip(tag));
  };

  app.get("/users/:id", wrap(async (req, res) => {
    const id = parseId(req.params.id);
    const key = cacheKey(id);
    res.set({ Vary: "Cookie", "Cache-Control": "no-cache" });
    let cached, state = "HIT";
    try {
      cached = await redis.get(key);
    } catch {
      // Redis down: read the database, fill nothing (as Spindle's BYPASS).
      state = "BYPASS";
      cached = JSON.stringify(users.byId(id));
    }
    if (cached === null) {
      state = "MISS";
      const row = users.byId(id);
      cached = JSON.stringify(row);
      if (row) await redis.set(key, cached, { EX: cfg.usersCacheTtlS });
      else if (cfg.usersCacheNegativeTtlS > 0) await redis.set(key, cached, { EX: cfg.usersCacheNegativeTtlS });
    }
    res.setHeader("X-Cache", state);
    const u = JSON.parse(cached);
    if (!u) throw notFound("no such user");
    const owner = sessionUser(req)?.id === u.id;
    const tag = etag(u, owner);
    res.setHeader("ETag", tag);
    if (matches(req.get("if-none-match"), tag)) return res.status(304).end();
    res.json({ user: view(u, owner) });
  }));

  const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
  app.patch("/users/:id", json(4096), wrap(async (req, res) => {
    const id = parseId(req.params.id);
    const me = sessionUser(req);
    if (!me) throw unauthorized();
    checkOrigin(req);
    if (BigInt(me.id) !== id) throw forbidden("you may change only your own profile");
    const body = object(req.body);
    const keys = Object.keys(body);
    if (keys.length === 0) throw bad("send display_name and/or email");
    for (const k of keys) if (k !== "display_name" && k !== "email") throw bad(`unknown field ${k}`);
    if ("display_name" in body && body.display_name !== null) {
      const d = body.display_name;
      if (typeof d !== "string" || [...d].length < 1 || [...d].length > 64 || CONTROL.test(d)) throw bad("display_name is 1–64 characters, no control characters");
    }
    if ("email" in body && body.email !== null) {
      const e = body.email;
      if (typeof e !== "string" || Buffer.byteLength(e) > 254 || !/^[^@\s]+@[^@\s]+$/.test(e)) throw bad("email is local@domain, at most 254 bytes");
    }
    let version = null;
    const ifMatch = req.get("if-match");
    if (ifMatch !== undefined && ifMatch.trim() !== "*") {
      const m = /^(?:W\/)?"u(\d+)-v(\d+)(?:-owner)?"$|^(\d+)$/.exec(ifMatch.trim());
      if (!m || (m[1] !== undefined && BigInt(m[1]) !== id)) version = -1; // matches nothing
      else version = Number(m[2] ?? m[3]);
    }
    const u = users.update(id, body, version, new Date().toISOString());
    if (!u) {
      const current = users.byId(id);
      if (!current) throw notFound("no such user");
      throw new Problem(412, "precondition-failed", "the user changed since that version", { ETag: etag(current, true) });
    }
    await redis.del(cacheKey(id)); // invalidate: the next read misses and refills
    res.set({ ETag: etag(u, true), "Cache-Control": "no-store" }).json({ user: view(u, true) });
  }));

  // ---- notify: Redis Streams + Socket.IO's redis adapter
  const TOPIC = /^[A-Za-z0-9_.:\-/]{1,128}$/;
  const EVENT = /^[A-Za-z0-9_.:\-/]{1,64}$/;
  const streamKey = (topic) => `node:notify:{${topic}}:stream`;
  const checkTopic = (topic, what = "topic") => {
    if (typeof topic !== "string" || !TOPIC.test(topic)) throw bad(`a ${what} is 1–128 of A-Z a-z 0-9 _ . : - /`);
    if (topic.startsWith("user:") && !/^user:[1-9][0-9]{0,18}$/.test(topic)) throw bad(`a user ${what} is user:<id>`);
    return topic;
  };
  const mayRead = (who, topic) => !topic.startsWith("user:") || (who.kind === "user" && who.id === topic);
  const mayPublish = (who, topic) => !topic.startsWith("user:") || who.kind === "key" || who.id === topic;

  const PUBLISH_FIELDS = new Set(["topic", "event", "data", "idempotency_key", "socketio_room"]);
  app.post("/notify/publish", json(cfg.notifyMaxPayloadBytes), wrap(async (req, res) => {
    res.set("Cache-Control", "no-store");
    const who = caller(req);
    if (!who) throw unauthorized("a session or an X-API-Key is required");
    if (who.kind === "user") checkOrigin(req);
    const body = object(req.body);
    for (const k of Object.keys(body)) if (!PUBLISH_FIELDS.has(k)) throw bad(`unknown field ${k}`);
    const topic = checkTopic(body.topic);
    if (typeof body.event !== "string" || !EVENT.test(body.event)) throw bad("an event is 1–64 of A-Z a-z 0-9 _ . : - /");
    const room = body.socketio_room === undefined ? topic : checkTopic(body.socketio_room, "socketio_room");
    if (!mayPublish(who, topic) || !mayPublish(who, room)) throw forbidden("that is another user's topic");
    const data = JSON.stringify(body.data === undefined ? null : body.data);

    // Idempotency (only when asked): GET first, SET NX after the publish.
    let idemKey = null, fingerprint = null;
    if (body.idempotency_key !== undefined) {
      if (typeof body.idempotency_key !== "string" || !/^[\x21-\x7e]{1,128}$/.test(body.idempotency_key)) throw bad("a bad idempotency_key");
      idemKey = `node:notify:idem:${sha256hex(`${who.id}\n${body.idempotency_key}`)}`;
      fingerprint = sha256hex(JSON.stringify([topic, body.event, data, room]));
      const seen = await redis.get(idemKey);
      if (seen !== null) {
        const [fp, id] = seen.split(" ");
        if (fp !== fingerprint) throw new Problem(409, "conflict", "that idempotency key published something else");
        return res.status(200).json({ id, topic, duplicate: true });
      }
    }

    await limit(res, notifyLimiter, who.id, { failOpen: false });
    const now = Date.now();
    const key = streamKey(topic);
    const [id] = await redis
      .multi()
      .xAdd(key, "*", { event: body.event, data, published_at: String(now) }, {
        TRIM: { strategy: "MAXLEN", strategyModifier: "~", threshold: cfg.notifyStreamMaxlen },
      })
      .expire(key, cfg.notifyRetentionS)
      .exec();
    // Idiomatic Socket.IO fan-out: every worker's and host's clients in the room.
    io.to(room).emit(body.event, body.data === undefined ? null : body.data);
    if (idemKey) await redis.set(idemKey, `${fingerprint} ${id}`, { NX: true, EX: cfg.notifyIdempotencyTtlS });
    res.status(201).json({ id, topic, duplicate: false });
  }));

  const CURSOR = /^(0|[0-9]{1,20}(-[0-9]{1,20})?)$/;
  app.get("/notify/poll", wrap(async (req, res) => {
    res.set("Cache-Control", "no-store");
    const who = caller(req);
    if (!who) throw unauthorized("a session or an X-API-Key is required");
    const topic = checkTopic(req.query.topic);
    if (!mayRead(who, topic)) throw forbidden("that is another user's topic");
    const after = req.query.after;
    if (after !== undefined && (typeof after !== "string" || !CURSOR.test(after))) throw bad("after is a cursor: an event id, or 0");
    let wait = cfg.notifyPollTimeoutMs;
    if (req.query.wait_ms !== undefined) {
      if (typeof req.query.wait_ms !== "string" || !/^\d{1,9}$/.test(req.query.wait_ms)) throw bad("wait_ms is an integer of milliseconds");
      wait = Math.min(Number(req.query.wait_ms), cfg.notifyPollTimeoutMs);
    }
    const key = streamKey(topic);
    let cursor = after;
    if (cursor === undefined) {
      // From now: the stream's current end, so nothing published after this call is missed.
      const last = await redis.xRevRange(key, "+", "-", { COUNT: 1 });
      cursor = last.length ? last[0].id : "0-0";
    } else if (cursor === "0") cursor = "0-0";
    const streams = { key, id: cursor };
    const got = wait === 0
      ? await redis.xRead(streams, { COUNT: 100 })
      : await blocking.xRead(streams, { COUNT: 100, BLOCK: wait });
    const messages = got?.[0]?.messages ?? [];
    const events = messages.map(({ id, message }) => ({
      id,
      event: message.event,
      data: JSON.parse(message.data),
      published_at: iso(Number(message.published_at)),
    }));
    res.json({ topic, events, next: events.length ? events[events.length - 1].id : cursor });
  }));

  // ---- unknown routes, wrong methods, errors
  const ROUTES = [
    ["/healthz", "GET, HEAD"], ["/auth/register", "POST"], ["/auth/login", "POST"], ["/auth/me", "GET, HEAD"],
    ["/auth/logout", "POST"], ["/api/ping", "GET, HEAD"], ["/users/:id", "GET, HEAD, PATCH"],
    ["/notify/publish", "POST"], ["/notify/poll", "GET"],
  ];
  for (const [path, allow] of ROUTES) {
    app.all(path, (req, res) => sendProblem(res, new Problem(405, "method-not-allowed", `${req.method} is not allowed here`, { Allow: allow })));
  }
  app.use((req, res) => sendProblem(res, notFound(`no route for ${req.path}`)));
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    if (err instanceof Problem) return sendProblem(res, err);
    if (err.type === "entity.too.large") return sendProblem(res, new Problem(413, "payload-too-large", "the body is too large"));
    if (err.type === "entity.parse.failed") return sendProblem(res, bad("malformed JSON"));
    if (err.status >= 400 && err.status < 500) return sendProblem(res, new Problem(err.status, "bad-request", "bad request"));
    if (typeof err.code === "string" && err.code.startsWith("SQLITE")) {
      console.error(`worker ${workerId}: sqlite: ${err.message}`);
      return sendProblem(res, new Problem(503, "store-unavailable", "the database failed"));
    }
    if (/redis|socket|ECONN|client is closed|offline/i.test(`${err.name} ${err.message} ${err.constructor?.name}`)) {
      return sendProblem(res, new Problem(503, "redis-unavailable", "Redis cannot be reached"));
    }
    console.error(`worker ${workerId}: ${err.stack ?? err}`);
    sendProblem(res, new Problem(500, "internal-server-error", "something went wrong"));
  });

  // ---- HTTP server + Socket.IO
  const server = createServer(app);
  server.keepAliveTimeout = 65_000;
  const io = new SocketServer(server, {
    adapter: createAdapter(redis, sub),
    transports: ["websocket"], // no sticky sessions behind node:cluster / nginx round robin
  });
  io.engine.use(sessionMiddleware);
  io.use((socket, next) => {
    const user = socket.request.session?.user;
    const key = socket.handshake.auth?.apiKey ?? socket.handshake.headers["x-api-key"];
    let who = null;
    if (user && Number.isSafeInteger(user.id)) who = { kind: "user", id: `user:${user.id}` };
    else if (key && cfg.apiKeys.has(sha256hex(String(key)))) who = { kind: "key", id: `key:${sha256hex(String(key)).slice(0, 32)}` };
    if (!who) return next(new Error("unauthorized"));
    const topics = [].concat(socket.handshake.auth?.topics ?? socket.handshake.query.topic ?? []);
    try {
      for (const t of topics) if (!mayRead(who, checkTopic(String(t)))) return next(new Error("forbidden"));
    } catch {
      return next(new Error("bad topic"));
    }
    socket.join(topics.map(String));
    next();
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(cfg.port, cfg.host, resolve);
  });

  return {
    server,
    async close() {
      io.close();
      await new Promise((r) => server.close(r));
      for (const c of [redis, sub, blocking]) c.destroy(); // nothing to flush: replies are not awaited any more
      db.close();
    },
  };
}

