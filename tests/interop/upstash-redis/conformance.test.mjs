// Conformance of spindle-rest-gateway with the real @upstash/redis client.
//
// Expected results are the ones the Upstash docs give for each command, so a
// failure here means the gateway answers differently from Upstash, in a way
// the official client notices.
//
// Needs UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (run.sh sets them
// up against a throwaway redis-server). Keys carry a per-run prefix, so the
// suite never touches other data and never flushes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";

const url = process.env.UPSTASH_REDIS_REST_URL;
const token = process.env.UPSTASH_REDIS_REST_TOKEN;
if (!url || !token) {
  throw new Error("set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN (see run.sh)");
}

// The client's defaults: base64 response encoding, automatic JSON
// (de)serialisation. Retries off so a failure shows at once.
const redis = new Redis({ url, token, retry: false, enableTelemetry: false });
const prefix = `interop:${process.pid}:${Date.now()}:`;
const k = (name) => prefix + name;

test("strings: set/get/incr/mget", async () => {
  assert.equal(await redis.set(k("s"), "hello"), "OK");
  assert.equal(await redis.get(k("s")), "hello");
  assert.equal(await redis.get(k("missing")), null);
  assert.equal(await redis.incr(k("n")), 1);
  assert.equal(await redis.incrby(k("n"), 41), 42);
  assert.deepEqual(await redis.mget(k("s"), k("missing"), k("n")), ["hello", null, 42]);
});

test("strings: set with ex and nx", async () => {
  assert.equal(await redis.set(k("ex"), "v", { ex: 100 }), "OK");
  const ttl = await redis.ttl(k("ex"));
  assert.ok(ttl > 0 && ttl <= 100, `ttl ${ttl}`);
  assert.equal(await redis.set(k("nx"), "first", { nx: true }), "OK");
  assert.equal(await redis.set(k("nx"), "second", { nx: true }), null);
  assert.equal(await redis.get(k("nx")), "first");
});

test("hashes: hset/hgetall/hincrby", async () => {
  assert.equal(await redis.hset(k("h"), { name: "ada", visits: 1 }), 2);
  assert.deepEqual(await redis.hgetall(k("h")), { name: "ada", visits: 1 });
  assert.equal(await redis.hincrby(k("h"), "visits", 4), 5);
  assert.equal(await redis.hget(k("h"), "visits"), 5);
  assert.equal(await redis.hgetall(k("no-hash")), null);
});

test("sets: sadd/smembers/sismember", async () => {
  assert.equal(await redis.sadd(k("set"), "a", "b", "c"), 3);
  assert.equal(await redis.sadd(k("set"), "a"), 0);
  assert.deepEqual((await redis.smembers(k("set"))).sort(), ["a", "b", "c"]);
  assert.equal(await redis.sismember(k("set"), "b"), 1);
  assert.equal(await redis.sismember(k("set"), "z"), 0);
});

test("sorted sets: zadd/zrange withScores/zscore", async () => {
  assert.equal(
    await redis.zadd(k("z"), { score: 2, member: "two" }, { score: 1, member: "one" }),
    2,
  );
  assert.deepEqual(await redis.zrange(k("z"), 0, -1), ["one", "two"]);
  assert.deepEqual(await redis.zrange(k("z"), 0, -1, { withScores: true }), ["one", 1, "two", 2]);
  assert.equal(await redis.zscore(k("z"), "two"), 2);
  assert.equal(await redis.zscore(k("z"), "none"), null);
});

test("streams: xadd/xrange/xlen", async () => {
  const id1 = await redis.xadd(k("st"), "*", { temp: "21", unit: "c" });
  assert.match(id1, /^\d+-\d+$/);
  const id2 = await redis.xadd(k("st"), "*", { temp: "22", unit: "c" });
  assert.equal(await redis.xlen(k("st")), 2);
  // xrange deserialises to { id: { field: value } } (values auto-parsed).
  assert.deepEqual(await redis.xrange(k("st"), "-", "+"), {
    [id1]: { temp: 21, unit: "c" },
    [id2]: { temp: 22, unit: "c" },
  });
});

test("scripts: eval, scriptLoad, evalsha", async () => {
  assert.equal(await redis.eval("return ARGV[1]", [], ["hello"]), "hello");
  assert.deepEqual(await redis.eval("return {KEYS[1], tonumber(ARGV[1]) + 1}", [k("key")], [41]), [
    k("key"),
    42,
  ]);
  const sha = await redis.scriptLoad("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  assert.match(sha, /^[0-9a-f]{40}$/);
  assert.equal(await redis.evalsha(sha, [k("counter")], [5]), 5);
  assert.equal(await redis.evalsha(sha, [k("counter")], [5]), 10);
  assert.deepEqual(await redis.scriptExists(sha, "0".repeat(40)), [1, 0]);
  await assert.rejects(redis.evalsha("0".repeat(40), [], []), /NOSCRIPT/);
});

test("pipeline: one request, results in order", async () => {
  const results = await redis
    .pipeline()
    .set(k("p"), 1)
    .incr(k("p"))
    .get(k("p"))
    .hset(k("ph"), { a: "x" })
    .hgetall(k("ph"))
    .exec();
  assert.deepEqual(results, ["OK", 2, 2, 1, { a: "x" }]);
});

test("pipeline: an error slot with keepErrors, others still run", async () => {
  await redis.set(k("pe"), "text");
  const results = await redis.pipeline().incr(k("pe")).set(k("pe2"), "ok").exec({ keepErrors: true });
  assert.match(results[0].error, /^ERR value is not an integer/);
  assert.deepEqual(results[1], { error: undefined, result: "OK" });
  assert.equal(await redis.get(k("pe2")), "ok");
  // Without keepErrors the client throws, naming the failed command.
  await assert.rejects(redis.pipeline().incr(k("pe")).exec(), /Command 1 \[ incr \] failed/);
});

test("multi-exec: atomic transaction", async () => {
  const results = await redis.multi().set(k("m"), 10).incrby(k("m"), 5).get(k("m")).exec();
  assert.deepEqual(results, ["OK", 15, 15]);
});

test("auto-pipelining batches through /pipeline", async () => {
  const auto = new Redis({ url, token, retry: false, enableTelemetry: false, enableAutoPipelining: true });
  // The client batches writes and reads into two /pipeline requests sent
  // at once, and no server orders two concurrent requests (a cluster
  // gateway runs them on different masters' connections): so the reads
  // wait for the writes.
  const [a, b] = await Promise.all([auto.set(k("ap"), "v"), auto.incr(k("apn"))]);
  const [c, d] = await Promise.all([auto.get(k("ap")), auto.get(k("apn"))]);
  assert.deepEqual([a, b, c, d], ["OK", 1, "v", 1]);
});

test("values: JSON auto-(de)serialisation and unicode", async () => {
  const doc = { name: "spindle", tags: ["a", "b"], nested: { n: 1.5, ok: true, none: null } };
  assert.equal(await redis.set(k("json"), doc), "OK");
  assert.deepEqual(await redis.get(k("json")), doc);
  const text = "héllo wörld ✓ 🎉 \u0000 \"quoted\" back\\slash";
  await redis.set(k("uni"), text);
  assert.equal(await redis.get(k("uni")), text);
  // Numeric-looking strings come back as numbers (client behaviour).
  await redis.set(k("num"), "123");
  assert.equal(await redis.get(k("num")), 123);
});

test("values: binary bytes survive the base64 leg", async () => {
  // Non-UTF-8 bytes can only be written from Lua; the client then decodes
  // the base64 answer with a lenient UTF-8 decoder, as it does for Upstash.
  await redis.eval("redis.call('SET', KEYS[1], string.char(0, 255, 104, 105)) return 1", [k("bin")], []);
  assert.equal(await redis.strlen(k("bin")), 4);
  assert.equal(await redis.get(k("bin")), "\u0000\ufffdhi");
});

test("without base64 response encoding", async () => {
  const plain = new Redis({ url, token, retry: false, enableTelemetry: false, responseEncoding: false });
  await plain.set(k("plain"), "ünïcode ✓");
  assert.equal(await plain.get(k("plain")), "ünïcode ✓");
  assert.deepEqual(await plain.zrange(k("z"), 0, -1, { withScores: true }), ["one", 1, "two", 2]);
});

test("errors: Redis error replies reject with Redis's text", async () => {
  await redis.set(k("err"), "not a number");
  await assert.rejects(redis.incr(k("err")), (err) => {
    assert.equal(err.name, "UpstashError");
    assert.match(err.message, /ERR value is not an integer or out of range/);
    return true;
  });
  await assert.rejects(redis.hget(k("err"), "f"), /WRONGTYPE/);
});

test("errors: a wrong token is unauthorized", async () => {
  const bad = new Redis({ url, token: "wrong-token", retry: false, enableTelemetry: false });
  await assert.rejects(bad.get(k("s")), /Unauthorized/);
});
