// The fault run's client side (bench/scale/run.sh drives the faults):
//
//   node faults.mjs sessions <n>   logs one user in n times through BASE;
//                                  prints {"id","cookies":[…]}
//   node faults.mjs probe          until SIGTERM, every INTERVAL_MS (20): one
//                                  GET /auth/me (COOKIE) and one POST
//                                  /notify/publish to TOPIC, through BASE;
//                                  writes every answer to OUT (JSON lines)
//   node faults.mjs verify         reads OUT and FAULT_AT / BACK_AT (ms since
//                                  the epoch: the fault, and the moment the
//                                  failed part was started again), checks
//                                  that every session in SESSIONS (a file
//                                  from `sessions`) still works and that
//                                  every event acknowledged with 201 is in
//                                  TOPIC's stream; prints a JSON summary and
//                                  exits 1 if anything acknowledged was lost.
import { readFileSync, writeFileSync } from "node:fs";
import { account, call, sleep } from "./client.mjs";

const { BASE } = process.env;
const mode = process.argv[2];

if (mode === "sessions") {
  const n = Number(process.argv[3] || 20);
  const first = await account(BASE, `fault${process.pid}`);
  const cookies = [first.cookie];
  for (let i = 1; i < n; i++) {
    const l = await call(BASE, "POST", "/auth/login", { body: { username: first.username, password: "bench-password-1" } });
    if (l.status !== 200) throw new Error(`login: ${l.status}`);
    cookies.push(l.cookie);
  }
  console.log(JSON.stringify({ id: first.id, cookies }));
} else if (mode === "probe") {
  const interval = Number(process.env.INTERVAL_MS || 20);
  const lines = [];
  let stop = false;
  process.on("SIGTERM", () => { stop = true; });
  for (let i = 0; !stop; i++) {
    const t = Date.now();
    const [me, pub] = await Promise.all([
      call(BASE, "GET", "/auth/me", { cookie: process.env.COOKIE, timeoutMs: 5000 }),
      call(BASE, "POST", "/notify/publish", { cookie: process.env.COOKIE, timeoutMs: 5000, body: { topic: process.env.TOPIC, event: "probe", data: { i } } }),
    ]);
    lines.push(JSON.stringify({ t, me: me.status, pub: pub.status, id: pub.status === 201 ? pub.body.id : null, err: me.error || pub.error || undefined }));
    const left = interval - (Date.now() - t);
    if (left > 0) await sleep(left);
  }
  writeFileSync(process.env.OUT, lines.join("\n") + "\n");
} else if (mode === "verify") {
  const rows = readFileSync(process.env.OUT, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const faultAt = Number(process.env.FAULT_AT), backAt = Number(process.env.BACK_AT);
  const failed = (r) => r.me !== 200 || r.pub !== 201;
  const failures = rows.filter(failed);
  const statuses = {};
  for (const r of failures) {
    for (const [what, s, ok] of [["/auth/me", r.me, 200], ["publish", r.pub, 201]]) {
      if (s !== ok) statuses[`${what} ${s || r.err}`] = (statuses[`${what} ${s || r.err}`] || 0) + 1;
    }
  }
  // Recovery: from the moment the failed part was started again to the first
  // probe (sent after it) that fully succeeded and stayed so.
  let lastFailure = failures.length ? failures.at(-1).t : null;
  const firstOkAfterBack = rows.find((r) => r.t >= backAt && !failed(r) && (lastFailure === null || r.t > lastFailure));
  const acked = rows.filter((r) => r.pub === 201).map((r) => r.id);
  // Every acknowledged event must be in the stream: read it all with cursors.
  const seen = new Set();
  let cursor = "0";
  for (;;) {
    const p = await call(BASE, "GET", `/notify/poll?topic=${process.env.TOPIC}&after=${cursor}&wait_ms=0`, { cookie: process.env.COOKIE });
    if (p.status !== 200) throw new Error(`poll: ${p.status} ${JSON.stringify(p.body)}`);
    for (const e of p.body.events) seen.add(e.id);
    if (!p.body.events.length) break;
    cursor = p.body.next;
  }
  const lost = acked.filter((id) => !seen.has(id));
  const sessions = JSON.parse(readFileSync(process.env.SESSIONS, "utf8"));
  let sessionsValid = 0;
  for (const c of sessions.cookies) {
    const r = await call(BASE, "GET", "/auth/me", { cookie: c });
    if (r.status === 200 && r.body.user.id === sessions.id) sessionsValid++;
  }
  const summary = {
    probes: rows.length,
    failed_probes: failures.length,
    failures: statuses,
    first_failure_ms: failures.length ? failures[0].t - faultAt : null,
    last_failure_ms: lastFailure === null ? null : lastFailure - faultAt,
    recovery_ms: firstOkAfterBack ? Math.max(0, firstOkAfterBack.t - backAt) : null,
    acknowledged_events: acked.length,
    lost_events: lost.length,
    sessions_before: sessions.cookies.length,
    sessions_valid_after: sessionsValid,
  };
  console.log(JSON.stringify(summary));
  process.exit(lost.length || sessionsValid !== sessions.cookies.length || !firstOkAfterBack ? 1 : 0);
} else {
  console.error("usage: node faults.mjs sessions <n> | probe | verify");
  process.exit(2);
}
