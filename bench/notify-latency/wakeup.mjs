// Publish-to-wake-up latency: a long poll waits on host B (with a cursor),
// an event is published through host A, and the time from sending the
// publish to the poll's answer is recorded. Prints p50/p90/p99/max in ms.
//
//   PUBLISH_URL=http://127.0.0.1:3000 POLL_URL=http://127.0.0.1:3001 API_KEY=… \
//     node bench/notify-latency/wakeup.mjs [iterations]
const { PUBLISH_URL, POLL_URL, API_KEY } = process.env;
const iterations = Number(process.argv[2] || 200);
const headers = { "x-api-key": API_KEY };
const topic = `latency-${process.pid}`;

async function poll(after, waitMs) {
  const r = await fetch(`${POLL_URL}/notify/poll?topic=${topic}&after=${after}&wait_ms=${waitMs}`, { headers });
  if (r.status !== 200) throw new Error(`poll: ${r.status} ${await r.text()}`);
  return r.json();
}

let cursor = (await poll("0", 0)).next;
const samples = [];
for (let i = 0; i < iterations; i++) {
  const waiting = poll(cursor, 10000);
  // Let the poll reach Redis and block; a random extra delay lands the publish
  // anywhere in a REST poll interval (250 ms by default), not always at one phase.
  await new Promise((r) => setTimeout(r, 30 + Math.random() * 250));
  const t0 = performance.now();
  const p = await fetch(`${PUBLISH_URL}/notify/publish`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ topic, event: "ping", data: { i } }),
  });
  if (p.status !== 201) throw new Error(`publish: ${p.status} ${await p.text()}`);
  const got = await waiting;
  const t1 = performance.now();
  if (got.events.length !== 1 || got.events[0].data.i !== i) throw new Error(`unexpected ${JSON.stringify(got)}`);
  cursor = got.next;
  samples.push(t1 - t0);
}
samples.sort((a, b) => a - b);
const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))].toFixed(2);
console.log(JSON.stringify({ iterations, p50_ms: q(0.5), p90_ms: q(0.9), p99_ms: q(0.99), max_ms: samples.at(-1).toFixed(2) }));
