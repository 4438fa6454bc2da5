// Publish-to-wake-up latency through the load balancer: a long poll with a
// cursor waits (on whichever host nginx picks), an event is published
// (through whichever host next), and the time from sending the publish to
// the poll's answer is recorded. As bench/notify-latency/wakeup.mjs, but as a
// logged-in user (COOKIE), so it runs against the Node baseline too.
//
//   BASE=http://127.0.0.1:8080 COOKIE='connect.sid=…' TOPIC=t node bench/scale/wakeup.mjs [iterations]
// Prints {"iterations","p50_ms","p99_ms","max_ms"}.
const { BASE, COOKIE, TOPIC } = process.env;
const iterations = Number(process.argv[2] || 50);
const headers = { cookie: COOKIE };

async function poll(after, waitMs) {
  const r = await fetch(`${BASE}/notify/poll?topic=${TOPIC}&after=${after}&wait_ms=${waitMs}`, { headers });
  if (r.status !== 200) throw new Error(`poll: ${r.status} ${await r.text()}`);
  return r.json();
}

let cursor = (await poll("0", 0)).next;
const samples = [];
for (let i = 0; i < iterations; i++) {
  const waiting = poll(cursor, 10000);
  await new Promise((r) => setTimeout(r, 30 + Math.random() * 70)); // let the poll block
  const t0 = performance.now();
  const p = await fetch(`${BASE}/notify/publish`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ topic: TOPIC, event: "ping", data: { i } }),
  });
  if (p.status !== 201) throw new Error(`publish: ${p.status} ${await p.text()}`);
  const got = await waiting;
  const t1 = performance.now();
  if (got.events.length !== 1 || got.events[0].data.i !== i) throw new Error(`unexpected ${JSON.stringify(got)}`);
  cursor = got.next;
  samples.push(t1 - t0);
}
samples.sort((a, b) => a - b);
const q = (p) => Number(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))].toFixed(2));
console.log(JSON.stringify({ iterations, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: Number(samples.at(-1).toFixed(2)) }));
