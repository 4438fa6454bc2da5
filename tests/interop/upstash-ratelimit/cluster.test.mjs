// @upstash/ratelimit and Spindle on a real Redis Cluster (3 masters, 3
// replicas), both over the Upstash REST API through spindle-rest-gateway
// --cluster: the Node side with the real @upstash/redis client, Spindle with
// rate_limit_keys=cluster (run.sh starts it all).
//   GATEWAY_URL, GATEWAY_TOKEN   the gateway
//   SPINDLE_CLUSTER              sliding_window 10/1d, cluster keys, prefix interop-cluster
// A sliding window reads two buckets, the current and the previous window's.
// Under upstash's own keys they hash to two slots, so the cluster refuses
// the script (CROSSSLOT); with the identifier as a hash tag, `{<id>}`, both
// buckets of an identifier share a slot. That is the form both sides use.

import { test, before } from "node:test";
import assert from "node:assert/strict";
import { Redis } from "@upstash/redis";
import { Ratelimit } from "@upstash/ratelimit";
import { ratelimitRest } from "./adapter.mjs";

const env = (k) => {
  if (!process.env[k]) throw new Error(`set ${k} (see run.sh)`);
  return process.env[k];
};
const DAY = 86_400_000;
const ID = "ip:127.0.0.1";
const rest = new Redis({ url: env("GATEWAY_URL"), token: env("GATEWAY_TOKEN"), retry: false, enableTelemetry: false });

const node = (prefix) =>
  new Ratelimit({
    redis: ratelimitRest(rest),
    limiter: Ratelimit.slidingWindow(10, "1 d"),
    prefix: `${prefix}:api`,
    ephemeralCache: false,
    analytics: false,
    timeout: 0,
    enableTelemetry: false,
  });

async function spindle(path = "/api/ping") {
  const r = await fetch(env("SPINDLE_CLUSTER") + path);
  await r.arrayBuffer();
  const rl = r.headers.get("ratelimit") ?? "";
  return { status: r.status, remaining: Number((rl.match(/;r=(\d+)/) ?? [])[1]) };
}

before(async () => {
  const into = Date.now() % DAY;
  if (into > DAY - 60_000) await new Promise((r) => setTimeout(r, DAY - into + 1000));
});

test("upstash's own keys: the two buckets are in two slots and the cluster refuses the script", async () => {
  // interop-untagged:api:ip:127.0.0.1:<day> and …:<day - 1>
  await assert.rejects(node("interop-untagged").limit(ID), /CROSSSLOT/);
});

test("{id}-tagged: Node and Spindle draw on one budget on the cluster", async () => {
  const seen = [];
  for (let i = 0; i < 14; i++) {
    if (i % 2 === 0) {
      const r = await node("interop-cluster").limit(`{${ID}}`);
      seen.push([r.success, r.remaining]);
    } else {
      const r = await spindle();
      assert.ok(r.status === 200 || r.status === 429, `status ${r.status}`);
      seen.push([r.status === 200, r.remaining]);
    }
  }
  assert.deepEqual(seen, [
    ...Array.from({ length: 10 }, (_, k) => [true, 9 - k]),
    ...Array.from({ length: 4 }, () => [false, 0]),
  ]);
  const bucket = Math.floor(Date.now() / DAY);
  const key = `interop-cluster:api:{${ID}}:${bucket}`;
  assert.equal(await rest.get(key), 10, "denials were not counted");
  assert.ok((await rest.pttl(key)) > 0, "the bucket expires");
  assert.equal((await spindle("/api/quota")).remaining, 0);
});

test("{id}-tagged: concurrent calls from both sides admit exactly the limit", async () => {
  const bucket = Math.floor(Date.now() / DAY);
  await rest.del(`interop-cluster:api:{${ID}}:${bucket}`, `interop-cluster:api:{${ID}}:${bucket - 1}`);
  const rl = node("interop-cluster");
  const calls = Array.from({ length: 40 }, (_, i) =>
    i % 2 === 0 ? rl.limit(`{${ID}}`).then((r) => r.success) : spindle().then((r) => r.status === 200),
  );
  assert.equal((await Promise.all(calls)).filter(Boolean).length, 10);
});
