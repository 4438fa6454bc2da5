// Spindle's /api rate limits and the real @upstash/ratelimit, sharing one
// Redis keyspace: calls from Node and calls to Spindle interleave on one
// identifier, and their combined count is what is enforced.
//
// run.sh starts a throwaway redis-server and four spindle-runner processes,
// one per policy, each with its own rate_limit_prefix:
//   SPINDLE_SLIDING  sliding_window 10/1d              prefix interop-sliding
//   SPINDLE_FIXED    fixed_window 10/1d                prefix interop-fixed
//   SPINDLE_TOKEN    token_bucket 5/1d burst 10        prefix interop-token
//   SPINDLE_CLUSTER  sliding_window 10/1d, cluster keys prefix interop-cluster
// Spindle counts this process (it connects from 127.0.0.1) as `ip:127.0.0.1`
// under `<prefix>:api`; the Node side uses the same prefix and identifier,
// which is the whole recipe (README, "Rate limiting").

import { test, before, beforeEach, after } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { Ratelimit } from "@upstash/ratelimit";
import { ratelimitRedis } from "./adapter.mjs";

const env = (k) => {
  if (!process.env[k]) throw new Error(`set ${k} (see run.sh)`);
  return process.env[k];
};
const DAY = 86_400_000;
const ID = "ip:127.0.0.1";

const client = createClient({ url: env("REDIS_URL") });
await client.connect();
const redis = ratelimitRedis(client);

// What a Node service writes: the same prefix and identifier as Spindle, no
// local cache (so every answer comes from Redis), no request timeout race.
const node = (prefix, algorithm) =>
  new Ratelimit({
    redis,
    limiter: algorithm,
    prefix: `${prefix}:api`,
    ephemeralCache: false,
    analytics: false,
    timeout: 0,
    enableTelemetry: false,
  });

/** One Spindle request: status and the draft-11 RateLimit numbers. */
async function spindle(base, path = "/api/ping", init = undefined) {
  const r = await fetch(base + path, init);
  await r.arrayBuffer();
  const rl = r.headers.get("ratelimit") ?? "";
  const param = (k) => Number((rl.match(new RegExp(`;${k}=(\\d+)`)) ?? [])[1]);
  if (r.status === 429) {
    assert.equal(r.headers.get("retry-after"), String(param("t")), "Retry-After agrees with t");
  }
  return { status: r.status, remaining: param("r"), t: param("t") };
}

async function allKeys() {
  return (await client.keys("*")).sort();
}

async function assertEveryKeyHasATtl() {
  for (const k of await allKeys()) {
    assert.ok((await client.pTTL(k)) > 0, `${k} has no TTL`);
  }
}

before(async () => {
  // The windows are a day long; do not straddle midnight UTC.
  const into = Date.now() % DAY;
  if (into > DAY - 60_000) await new Promise((r) => setTimeout(r, DAY - into + 1000));
});
beforeEach(async () => {
  await client.flushDb();
});
after(async () => {
  await client.quit();
});

/** Alternates Node and Spindle calls; returns [allowed, remaining] per call. */
async function interleave(n, nodeCall, spindleBase, spindleIdentifier = ID) {
  const seen = [];
  for (let i = 0; i < n; i++) {
    if (i % 2 === 0) {
      const r = await nodeCall(spindleIdentifier);
      seen.push([r.success, r.remaining]);
    } else {
      const r = await spindle(spindleBase);
      assert.ok(r.status === 200 || r.status === 429, `status ${r.status}`);
      seen.push([r.status === 200, r.remaining]);
    }
  }
  return seen;
}

const tenThenDenied = (n) => [
  ...Array.from({ length: 10 }, (_, k) => [true, 9 - k]),
  ...Array.from({ length: n - 10 }, () => [false, 0]),
];

test("sliding window: Node and Spindle draw on one budget, in upstash's keys", async () => {
  const rl = node("interop-sliding", Ratelimit.slidingWindow(10, "1 d"));
  const seen = await interleave(14, (id) => rl.limit(id), env("SPINDLE_SLIDING"));
  assert.deepEqual(seen, tenThenDenied(14));
  const bucket = Math.floor(Date.now() / DAY);
  assert.deepEqual(await allKeys(), [`interop-sliding:api:${ID}:${bucket}`]);
  assert.equal(await client.get(`interop-sliding:api:${ID}:${bucket}`), "10", "denials were not counted");
  assert.equal((await rl.getRemaining(ID)).remaining, 0);
  assert.equal((await spindle(env("SPINDLE_SLIDING"), "/api/quota")).remaining, 0);
  await assertEveryKeyHasATtl();
});

test("sliding window: concurrent calls from both sides admit exactly the limit", async () => {
  const rl = node("interop-sliding", Ratelimit.slidingWindow(10, "1 d"));
  const calls = Array.from({ length: 40 }, (_, i) =>
    i % 2 === 0 ? rl.limit(ID).then((r) => r.success) : spindle(env("SPINDLE_SLIDING")).then((r) => r.status === 200),
  );
  const results = await Promise.all(calls);
  assert.equal(results.filter(Boolean).length, 10);
});

test("sliding window: both weigh the previous window the same", async () => {
  const rl = node("interop-sliding", Ratelimit.slidingWindow(10, "1 d"));
  const bucket = Math.floor(Date.now() / DAY);
  await client.set(`interop-sliding:api:${ID}:${bucket - 1}`, "8", { PX: 2 * DAY });
  await client.set(`interop-sliding:api:${ID}:${bucket}`, "1", { PX: 2 * DAY });
  // upstash's weighting, as its script computes it.
  const expect = (t) => 10 - 1 - Math.floor((1 - (t % DAY) / DAY) * 8);
  for (const ask of [() => spindle(env("SPINDLE_SLIDING"), "/api/quota"), () => rl.getRemaining(ID)]) {
    const t0 = Date.now();
    const { remaining } = await ask();
    const t1 = Date.now();
    assert.ok([expect(t0), expect(t1)].includes(remaining), `remaining ${remaining}, expected ${expect(t0)}`);
  }
});

test("sliding window: a refund made in Node is budget for Spindle, and echo costs count in Node", async () => {
  const rl = node("interop-sliding", Ratelimit.slidingWindow(10, "1 d"));
  const base = env("SPINDLE_SLIDING");
  // 3 KiB through Spindle's echo costs 3.
  const echo = await spindle(base, "/api/echo", { method: "POST", body: "x".repeat(3 * 1024) });
  assert.deepEqual([echo.status, echo.remaining], [200, 7]);
  assert.equal((await rl.getRemaining(ID)).remaining, 7);
  for (let i = 0; i < 7; i++) assert.equal((await spindle(base)).status, 200);
  assert.equal((await spindle(base)).status, 429);
  assert.equal((await rl.limit(ID)).success, false);
  // Node gives 3 back (upstash's negative rate); Spindle can spend exactly those.
  assert.equal((await rl.limit(ID, { rate: -3 })).success, true);
  for (let i = 0; i < 3; i++) assert.equal((await spindle(base)).status, 200);
  assert.equal((await spindle(base)).status, 429);
  await assertEveryKeyHasATtl();
});

test("fixed window: Node and Spindle draw on one budget", async () => {
  const rl = node("interop-fixed", Ratelimit.fixedWindow(10, "1 d"));
  const seen = await interleave(14, (id) => rl.limit(id), env("SPINDLE_FIXED"));
  assert.deepEqual(seen, tenThenDenied(14));
  const bucket = Math.floor(Date.now() / DAY);
  assert.deepEqual(await allKeys(), [`interop-fixed:api:${ID}:${bucket}`]);
  // upstash's fixed window counts its own denials (2 of them here); Spindle's never does.
  assert.equal(await client.get(`interop-fixed:api:${ID}:${bucket}`), "12");
  assert.equal((await spindle(env("SPINDLE_FIXED"), "/api/quota")).remaining, 0);
  await assertEveryKeyHasATtl();
});

test("token bucket: one hash of refilledAt and tokens, shared", async () => {
  const rl = node("interop-token", Ratelimit.tokenBucket(5, "1 d", 10));
  const seen = await interleave(14, (id) => rl.limit(id), env("SPINDLE_TOKEN"));
  assert.deepEqual(seen, tenThenDenied(14));
  assert.deepEqual(await allKeys(), [`interop-token:api:${ID}`]);
  const bucket = await client.hGetAll(`interop-token:api:${ID}`);
  assert.equal(bucket.tokens, "0");
  assert.ok(Math.abs(Number(bucket.refilledAt) - Date.now()) < 60_000, `refilledAt ${bucket.refilledAt}`);
  assert.equal((await rl.getRemaining(ID)).remaining, 0);
  const denied = await spindle(env("SPINDLE_TOKEN"));
  assert.equal(denied.status, 429);
  // The next 5 tokens come a day after the bucket was first drawn on.
  assert.ok(denied.t > DAY / 1000 - 120 && denied.t <= DAY / 1000, `t ${denied.t}`);
  await assertEveryKeyHasATtl();
});

test("cluster key mode: Node passes the identifier as a {hash tag}", async () => {
  const rl = node("interop-cluster", Ratelimit.slidingWindow(10, "1 d"));
  const seen = await interleave(14, (id) => rl.limit(id), env("SPINDLE_CLUSTER"), `{${ID}}`);
  assert.deepEqual(seen, tenThenDenied(14));
  const bucket = Math.floor(Date.now() / DAY);
  assert.deepEqual(await allKeys(), [`interop-cluster:api:{${ID}}:${bucket}`]);
  await assertEveryKeyHasATtl();
});
