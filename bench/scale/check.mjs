// Correctness through the load balancer, meant to run while wrk loads the
// hosts (bench/scale/run.sh starts it so). Every check can fail:
//
//  1. rate-limit exactness: ROUNDS rounds; in each, a fresh client address
//     (X-Forwarded-For) fires K concurrent GET /api/ping at once, spread by
//     nginx over every host; exactly LIMIT answer 200 and K − LIMIT 429,
//     nothing else. A round is fired inside one window of the policy (and
//     redone if it straddled a boundary, where a sliding window legitimately
//     counts part of the last window).
//  2. session validity: one login, then SESSION_N GET /auth/me (16 at a
//     time) all 200 with that user, on every host; then a logout (204), and
//     SESSION_N more all 401, on every host.
//  3. no stale read: STALE_M times, PATCH the user's display name to a new
//     value, and once the PATCH is answered, HOSTS concurrent GETs (any host)
//     must all show it. READERS (4) background readers GET the same user meanwhile
//     (they fill the cache while writes invalidate it).
//
//   BASE=http://127.0.0.1:8080 HOSTS=4 API_RATE_LIMIT="sliding_window 20/10s" \
//     node bench/scale/check.mjs
// Prints one line per check and a JSON summary (also to RESULT_FILE, if set);
// exits 1 on any error or violation.
import { writeFileSync } from "node:fs";
import { account, call, sleep } from "./client.mjs";

const BASE = process.env.BASE;
const HOSTS = Number(process.env.HOSTS || 4);
const ROUNDS = Number(process.env.ROUNDS || 5);
const K = Number(process.env.K || 60);
const SESSION_N = Number(process.env.SESSION_N || 200);
const STALE_M = Number(process.env.STALE_M || 100);
const READERS = Number(process.env.READERS || 4);
const policy = /^(fixed_window|sliding_window) (\d+)\/(\d+)(ms|s|m)$/.exec(process.env.API_RATE_LIMIT || "");
if (!policy) throw new Error(`API_RATE_LIMIT must be a fixed or sliding window, got ${process.env.API_RATE_LIMIT}`);
const LIMIT = Number(policy[2]);
const WINDOW_MS = Number(policy[3]) * { ms: 1, s: 1000, m: 60000 }[policy[4]];
if (K <= LIMIT) throw new Error(`K (${K}) must exceed the limit (${LIMIT})`);

const summary = { rate_limit: {}, sessions: {}, stale: {} };
const problems = [];
const tag = `${process.pid % 256}`;

// --- 1. rate-limit exactness ---------------------------------------------
{
  let rounds = 0, redone = 0, errors = 0, violations = 0;
  const hosts = new Set();
  for (let r = 0; rounds < ROUNDS; r++) {
    if (r > ROUNDS * 3) { problems.push("rate limit: could not fire inside one window"); errors++; break; }
    // Fire early in a window, with room to spare.
    const into = Date.now() % WINDOW_MS;
    if (into > WINDOW_MS / 2 || into < 50) await sleep(WINDOW_MS - into + 100);
    const ip = `198.18.${tag}.${r + 1}`;
    const t0 = Date.now();
    const answers = await Promise.all(
      Array.from({ length: K }, () => call(BASE, "GET", "/api/ping", { headers: { "x-forwarded-for": ip } })),
    );
    const t1 = Date.now();
    if (Math.floor(t0 / WINDOW_MS) !== Math.floor(t1 / WINDOW_MS)) { redone++; continue; }
    rounds++;
    const ok = answers.filter((a) => a.status === 200).length;
    const limited = answers.filter((a) => a.status === 429).length;
    const other = answers.filter((a) => a.status !== 200 && a.status !== 429);
    answers.forEach((a) => a.upstream && hosts.add(a.upstream));
    errors += other.length;
    if (other.length) problems.push(`rate limit round ${r}: ${other.length} answers neither 200 nor 429: ${[...new Set(other.map((a) => a.status + (a.error ? ` ${a.error}` : "")))].join(", ")}`);
    if (ok !== LIMIT || limited !== K - LIMIT) {
      violations++;
      problems.push(`rate limit round ${r}: ${ok} × 200 and ${limited} × 429, expected ${LIMIT} and ${K - LIMIT}`);
    }
  }
  summary.rate_limit = { rounds, redone, requests_per_round: K, limit: LIMIT, hosts: hosts.size, errors, violations };
  if (hosts.size < HOSTS) problems.push(`rate limit: answered by ${hosts.size} hosts, expected ${HOSTS}`);
  console.log(`rate-limit exactness: ${rounds} rounds of ${K} concurrent requests, limit ${LIMIT}, ${hosts.size} hosts: ${errors} errors, ${violations} violations`);
}

// --- 2. session validity -------------------------------------------------------
const me = await account(BASE, `check${tag}x${Date.now() % 100000}`);
{
  let errors = 0, violations = 0;
  const before = new Set(), after = new Set();
  async function sweep(cookie, expect, seen) {
    for (let i = 0; i < SESSION_N; i += 16) {
      const batch = await Promise.all(Array.from({ length: Math.min(16, SESSION_N - i) }, () => call(BASE, "GET", "/auth/me", { cookie })));
      for (const a of batch) {
        if (a.upstream) seen.add(a.upstream);
        if (a.status === 0 || a.status >= 500) { errors++; problems.push(`/auth/me: ${a.status} ${a.error || JSON.stringify(a.body)}`); continue; }
        const good = expect === 200 ? a.status === 200 && a.body?.user?.id === me.id : a.status === 401;
        if (!good) { violations++; problems.push(`/auth/me expected ${expect}, got ${a.status} ${JSON.stringify(a.body)}`); }
      }
    }
  }
  await sweep(me.cookie, 200, before);
  const out = await call(BASE, "POST", "/auth/logout", { cookie: me.cookie });
  if (out.status !== 204) { violations++; problems.push(`logout: ${out.status} ${JSON.stringify(out.body)}`); }
  await sweep(me.cookie, 401, after);
  summary.sessions = { requests: SESSION_N * 2, hosts_valid: before.size, hosts_after_logout: after.size, errors, violations };
  if (before.size < HOSTS || after.size < HOSTS) problems.push(`sessions: answered by ${before.size}/${after.size} hosts, expected ${HOSTS}`);
  console.log(`session validity: ${SESSION_N} checks on ${before.size} hosts all the same user, then after logout ${SESSION_N} on ${after.size} hosts all 401: ${errors} errors, ${violations} violations`);
}

// --- 3. no stale read ----------------------------------------------------------
{
  const owner = await account(BASE, `stale${tag}x${Date.now() % 100000}`);
  let errors = 0, violations = 0, reads = 0;
  const hosts = new Set();
  let stop = false, bgReads = 0, bgErrors = 0;
  const background = Array.from({ length: READERS }, async () => {
    while (!stop) {
      const a = await call(BASE, "GET", `/users/${owner.id}`);
      bgReads++;
      if (a.status !== 200) { bgErrors++; problems.push(`background read: ${a.status} ${a.error || ""}`); }
    }
  });
  for (let i = 0; i < STALE_M; i++) {
    const value = `v${i}-${Math.random().toString(36).slice(2, 8)}`;
    const w = await call(BASE, "PATCH", `/users/${owner.id}`, { cookie: owner.cookie, body: { display_name: value } });
    if (w.status !== 200) { errors++; problems.push(`PATCH: ${w.status} ${w.error || JSON.stringify(w.body)}`); continue; }
    const got = await Promise.all(Array.from({ length: HOSTS }, () => call(BASE, "GET", `/users/${owner.id}`)));
    for (const a of got) {
      reads++;
      if (a.upstream) hosts.add(a.upstream);
      if (a.status !== 200) { errors++; problems.push(`GET after PATCH: ${a.status} ${a.error || JSON.stringify(a.body)}`); continue; }
      if (a.body?.user?.display_name !== value) {
        violations++;
        problems.push(`stale read: wrote ${value}, read ${a.body?.user?.display_name} (${a.upstream})`);
      }
    }
  }
  stop = true;
  await Promise.all(background);
  errors += bgErrors;
  summary.stale = { writes: STALE_M, reads, background_reads: bgReads, hosts: hosts.size, errors, violations };
  if (hosts.size < HOSTS) problems.push(`stale reads: answered by ${hosts.size} hosts, expected ${HOSTS}`);
  console.log(`no stale read: ${STALE_M} writes, each followed by ${HOSTS} concurrent reads (${reads} reads, ${hosts.size} hosts; ${bgReads} background reads): ${errors} errors, ${violations} violations`);
}

summary.problems = problems.slice(0, 50);
summary.passed = problems.length === 0;
if (process.env.RESULT_FILE) writeFileSync(process.env.RESULT_FILE, JSON.stringify(summary));
for (const p of problems.slice(0, 20)) console.log(`  problem: ${p}`);
console.log(JSON.stringify(summary));
process.exit(problems.length ? 1 : 0);
