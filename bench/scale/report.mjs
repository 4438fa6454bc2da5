// Turns the scale-out run's results (JSON lines from bench/scale/run.sh) into
// a Markdown report and an SVG chart, and prints the report:
//   node bench/scale/report.mjs results.jsonl out.md out.svg
// No dependencies: the SVG is written by hand.
import { readFileSync, writeFileSync } from "node:fs";

const [input, mdPath, svgPath] = process.argv.slice(2);
const rows = readFileSync(input, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
const meta = rows.find((r) => r.kind === "meta") || {};
const scenarios = rows.filter((r) => r.kind === "scenario");
const NAMES = {
  me: ["session check", "GET /auth/me with a session cookie"],
  ping: ["rate-limited ping", "GET /api/ping, a new client address per request (X-Forwarded-For), nothing refused"],
  user_read: ["cached user read (hit)", "GET /users/:id of one user, anonymous"],
  write_read: ["user write, then read", "PATCH /users/:id (owner's session) and GET /users/:id in turn, over 3 users"],
  publish_poll: ["publish + poll", "POST /notify/publish, then GET /notify/poll?after=<cursor>&wait_ms=0 in turn, one topic per wrk thread, as a logged-in user"],
};
const ORDER = Object.keys(NAMES);
const H = meta.hosts || 4;
const at = (system, scenario, hosts = H) => scenarios.find((r) => r.system === system && r.scenario === scenario && r.hosts === hosts);
const int = (x) => (x === undefined || x === null ? "–" : Math.round(x).toLocaleString("en-US"));
const ms = (x) => (x === undefined || x === null ? "–" : `${Number(x).toFixed(2)} ms`);
const ratio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : "–");
const withNode = scenarios.some((r) => r.system === "node");

const out = [];
const p = (s = "") => out.push(s);
p(`# Scale-out benchmark, ${(meta.date || "").slice(0, 10)}`);
p();
p(`Run by \`bench/scale/run.sh\` at ${meta.date}.`);
p();
p(`**Machine:** ${meta.cpus} × ${meta.cpu}, ${meta.memory_gib} GiB RAM, ${meta.kernel}; load average at the end ${meta.loadavg}. ` +
  `Redis ${meta.redis}, nginx ${meta.nginx}, Node ${meta.node}, PostgreSQL ${meta.postgres}. Everything on this one machine, over loopback: ` +
  `the load generator, nginx, ${H} Spindle hosts (\`spindle-runner\` processes)` +
  (withNode ? `, ${H} Node hosts (\`bench/node/cluster.mjs\`, ${meta.node_workers} cluster workers each)` : "") +
  `, one Redis and one PostgreSQL (Spindle's users; the Node baseline keeps its users in better-sqlite3).`);
p();
p(`**Load:** ${meta.wrk}, through nginx (round robin, keep-alive to the hosts). ` +
  `\`api_rate_limit\` = \`${meta.api_rate_limit}\` on both stacks. Redis round trips per request are the commands clients sent, counted with \`MONITOR\` ` +
  `during a separate one-connection, one-second run; Redis commands per request are \`INFO commandstats\` ` +
  `before and after the main run, divided by the requests wrk completed, and include the commands Lua scripts run inside Redis.`);
p();
if (!withNode) p("**The Node baseline was not run** (bench/node/cluster.mjs missing, or BASELINE=skip): its columns are empty.\n");

p("## Spindle against the Node baseline");
p();
p(`| scenario | Spindle req/s | Node req/s | Spindle ÷ Node | Spindle p50 | Node p50 | Spindle p99 | Node p99 | Spindle round trips/req | Node round trips/req | Spindle Redis cmds/req | Node Redis cmds/req |`);
p("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const s of ORDER) {
  const a = at("spindle", s), b = at("node", s);
  if (!a && !b) continue;
  p(`| ${NAMES[s][0]} | ${int(a?.rps)} | ${int(b?.rps)} | ${ratio(a?.rps, b?.rps)} | ${ms(a?.p50_ms)} | ${ms(b?.p50_ms)} | ${ms(a?.p99_ms)} | ${ms(b?.p99_ms)} | ${a?.round_trips_per_req ?? "–"} | ${b?.round_trips_per_req ?? "–"} | ${a?.redis_cmds_per_req ?? "–"} | ${b?.redis_cmds_per_req ?? "–"} |`);
}
p();
for (const s of ORDER) {
  const a = at("spindle", s), b = at("node", s);
  if (!a && !b) continue;
  p(`### ${NAMES[s][0]}`);
  p();
  p(`${NAMES[s][1]}.`);
  p();
  p("| | Spindle | Node | Spindle ÷ Node |");
  p("|---|---|---|---|");
  p(`| requests/s | ${int(a?.rps)} | ${int(b?.rps)} | ${ratio(a?.rps, b?.rps)} |`);
  p(`| p50 latency | ${ms(a?.p50_ms)} | ${ms(b?.p50_ms)} | ${ratio(a?.p50_ms, b?.p50_ms)} |`);
  p(`| p99 latency | ${ms(a?.p99_ms)} | ${ms(b?.p99_ms)} | ${ratio(a?.p99_ms, b?.p99_ms)} |`);
  p(`| Redis round trips/request | ${a?.round_trips_per_req ?? "–"} | ${b?.round_trips_per_req ?? "–"} | ${ratio(a?.round_trips_per_req, b?.round_trips_per_req)} |`);
  p(`| Redis commands/request | ${a?.redis_cmds_per_req ?? "–"} | ${b?.redis_cmds_per_req ?? "–"} | ${ratio(a?.redis_cmds_per_req, b?.redis_cmds_per_req)} |`);
  p(`| non-2xx / socket errors | ${a ? `${a.non2xx} / ${a.socket_errors}` : "–"} | ${b ? `${b.non2xx} / ${b.socket_errors}` : "–"} | |`);
  p();
}

const wake = rows.filter((r) => r.kind === "wakeup");
if (wake.length) {
  p("### publish → poll wake-up latency");
  p();
  p("A long poll with a cursor waits (on whichever host nginx picks), an event is published (through whichever host next); the time from sending the publish to the poll's answer.");
  p();
  p("| stack | iterations | p50 | p99 | max |");
  p("|---|---|---|---|---|");
  for (const w of wake) p(`| ${w.system === "node" ? "Node" : "Spindle"} | ${w.result.iterations} | ${ms(w.result.p50_ms)} | ${ms(w.result.p99_ms)} | ${ms(w.result.max_ms)} |`);
  p();
}

const ceilings = rows.filter((r) => r.kind === "ceiling");
p("## Scaling: 1, 2 and 4 hosts, and Redis's own ceiling");
p();
p("Spindle behind the same nginx with 1, 2 and " + H + " hosts. The ceiling is `redis-benchmark` against the same Redis, with the " +
  "connections of wrk and no pipelining, sending exactly what the route sends: for `/auth/me` one `GET sess:<sid>`; for `/api/ping` " +
  "one `EVALSHA` of the sliding-window script on a fresh client's two keys. On " + meta.cpus + " cores every host, nginx, wrk and " +
  "Redis share the same CPUs: more hosts cannot add capacity here, only use what one host process leaves idle (real scaling needs " +
  "more machines). The " + H + "-host figures are the scenario runs above.");
p();
const hostCounts = [...new Set(scenarios.filter((r) => r.system === "spindle" && (r.scenario === "ping" || r.scenario === "me")).map((r) => r.hosts))].sort((a, b) => a - b);
p(`| route | ${hostCounts.map((n) => `${n} host${n > 1 ? "s" : ""}`).join(" | ")} | Redis ceiling | best ÷ ceiling |`);
p(`|---|${hostCounts.map(() => "---|").join("")}---|---|`);
for (const s of ["ping", "me"]) {
  const c = ceilings.find((x) => x.scenario === s);
  const vals = hostCounts.map((n) => at("spindle", s, n)?.rps);
  const best = Math.max(...vals.filter(Boolean));
  p(`| ${s === "ping" ? "/api/ping" : "/auth/me"} | ${vals.map((v) => `${int(v)} req/s`).join(" | ")} | ${int(c?.rps)} req/s | ${c ? `${((100 * best) / c.rps).toFixed(0)} %` : "–"} |`);
}
p();

const checks = rows.filter((r) => r.kind === "check").sort((a, b) => (a.system === "spindle" ? -1 : 1) - (b.system === "spindle" ? -1 : 1));
if (checks.length) {
  p("## Correctness under load");
  p();
  p(`Through nginx across ${H} hosts, while wrk loads \`/auth/me\` and \`/api/ping\` through the same nginx. ` +
    "Spindle must show 0 errors and 0 violations (the run fails otherwise); the same checks against the Node baseline are for the record.");
  p();
  p("| stack | check | what | hosts | errors | violations |");
  p("|---|---|---|---|---|---|");
  for (const check of checks) {
    const c = check.result, who = check.system === "node" ? "Node" : "Spindle";
    p(`| ${who} | rate-limit exactness | ${c.rate_limit.rounds} rounds of ${c.rate_limit.requests_per_round} concurrent requests from a fresh address, limit ${c.rate_limit.limit}: exactly ${c.rate_limit.limit} × 200 and ${c.rate_limit.requests_per_round - c.rate_limit.limit} × 429 | ${c.rate_limit.hosts} | ${c.rate_limit.errors} | ${c.rate_limit.violations} |`);
    p(`| ${who} | session validity | ${c.sessions.requests / 2} checks of one session, all the same user; logout; ${c.sessions.requests / 2} more, all 401 | ${c.sessions.hosts_valid} / ${c.sessions.hosts_after_logout} | ${c.sessions.errors} | ${c.sessions.violations} |`);
    p(`| ${who} | no stale read | ${c.stale.writes} PATCHes, each followed by ${H} concurrent GETs that must show it (${c.stale.reads} reads; ${c.stale.background_reads} background reads meanwhile) | ${c.stale.hosts} | ${c.stale.errors} | ${c.stale.violations} |`);
    p(`| ${who} | the load meanwhile | ${int(check.load.requests)} requests | ${H} | ${int(check.load.non2xx)} non-2xx, ${int(check.load.socket_errors)} socket errors | |`);
  }
  const bad = checks.flatMap((c) => (c.result.problems || []).slice(0, 3).map((x) => `${c.system}: ${x}`));
  if (bad.length) {
    p();
    p("First problems found:");
    p();
    for (const b of bad) p(`- ${b.replace(/\|/g, "\\|")}`);
  }
  p();
}

const faults = rows.filter((r) => r.kind === "fault");
if (faults.length) {
  p("## Faults under load");
  p();
  p("While wrk loads `/auth/me` and `/api/ping` through nginx, a probe sends one `GET /auth/me` (a session made before the fault) and one " +
    "`POST /notify/publish` every 20 ms. **redis_restart**: Redis (appendonly on) is shut down (`SHUTDOWN`, which fsyncs the AOF) and " +
    "started again on the same port after 2 s. **host_kill**: one host gets `kill -9` and is started again after 3 s. Recovery is measured " +
    "from the moment the failed part is started again to the first probe that fully succeeds (and all later ones do); \"ready after\" is " +
    "how long the restarted process took to answer (Redis: PONG after loading the AOF; a host: its own /healthz, which includes " +
    "compiling the components, under load). Afterwards every " +
    "session made before the fault must still be valid, and every event acknowledged with 201 must be in the stream.");
  p();
  p("| fault | down for | probes failed | failures seen (probe) | load meanwhile: requests / non-2xx / socket errors | restarted part ready after | recovery (probe) | sessions valid after | events acknowledged / lost |");
  p("|---|---|---|---|---|---|---|---|---|");
  for (const f of faults) {
    const r = f.result || {};
    const seen = Object.entries(r.failures || {}).map(([k, v]) => `${k}: ${v}`).join("; ") || "none";
    p(`| ${f.fault} | ${int(f.down_ms)} ms | ${r.failed_probes ?? "–"} of ${r.probes ?? "–"} | ${seen} | ${int(f.load.requests)} / ${int(f.load.non2xx)} / ${int(f.load.socket_errors)} | ${int(f.ready_ms)} ms | ${r.recovery_ms ?? "–"} ms | ${r.sessions_valid_after ?? "–"} of ${r.sessions_before ?? "–"} | ${r.acknowledged_events ?? "–"} / ${r.lost_events ?? "–"} |`);
  }
  p();
}

const md = out.join("\n");
writeFileSync(mdPath, md + "\n");
console.log(md);

// --- the chart ---------------------------------------------------------------------
const W = 960, HGT = 400, esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
const svg = [];
const s = (x) => svg.push(x);
s(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${HGT}" viewBox="0 0 ${W} ${HGT}" font-family="sans-serif" font-size="12">`);
s(`<rect width="${W}" height="${HGT}" fill="white"/>`);
const COLORS = { spindle: "#2b6cb0", node: "#dd6b20" };

// Panel 1: grouped bars, req/s per scenario.
{
  const x0 = 60, y0 = 50, w = 480, h = 260;
  const vals = scenarios.filter((r) => r.hosts === H).map((r) => r.rps);
  const max = niceMax(Math.max(1, ...vals));
  s(`<text x="${x0}" y="24" font-size="14" font-weight="bold">Requests/s through nginx, ${H} hosts: Spindle vs Node</text>`);
  axisY(x0, y0, w, h, max, (v) => y0 + h - (v / max) * h);
  const group = w / ORDER.length;
  ORDER.forEach((sc, i) => {
    const gx = x0 + i * group;
    ["spindle", "node"].forEach((sys, j) => {
      const r = at(sys, sc);
      if (!r) return;
      const bh = (r.rps / max) * h, bw = group * 0.34, bx = gx + group * 0.14 + j * bw;
      s(`<rect x="${bx.toFixed(1)}" y="${(y0 + h - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${bh.toFixed(1)}" fill="${COLORS[sys]}"/>`);
      s(`<text x="${(bx + bw / 2).toFixed(1)}" y="${(y0 + h - bh - 4).toFixed(1)}" text-anchor="middle" font-size="10">${esc(int(r.rps))}</text>`);
    });
    const [a, b] = NAMES[sc][0].split(/ (?=[^ ]+$)/).length > 1 && NAMES[sc][0].length > 14 ? NAMES[sc][0].split(/ (?=[^ ]+$)/) : [NAMES[sc][0], ""];
    s(`<text x="${(gx + group / 2).toFixed(1)}" y="${y0 + h + 16}" text-anchor="middle">${esc(a)}</text>`);
    if (b) s(`<text x="${(gx + group / 2).toFixed(1)}" y="${y0 + h + 30}" text-anchor="middle">${esc(b)}</text>`);
  });
  legend(x0 + 10, HGT - 30, [["Spindle", COLORS.spindle], ...(withNode ? [["Node baseline", COLORS.node]] : [])]);
}

// Panel 2: scaling, log scale, with Redis's ceiling.
{
  const x0 = 620, y0 = 50, w = 300, h = 260;
  s(`<text x="${x0 - 40}" y="24" font-size="14" font-weight="bold">Spindle by hosts vs Redis's ceiling</text>`);
  const all = [...scenarios.filter((r) => r.system === "spindle").map((r) => r.rps), ...ceilings.map((c) => c.rps)].filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...all))), hi = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const Y = (v) => y0 + h - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * h;
  for (let v = lo; v <= hi; v *= 10) {
    s(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/>`);
    s(`<text x="${x0 - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${esc(int(v))}</text>`);
  }
  s(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y0 + h}" stroke="#333"/><line x1="${x0}" x2="${x0 + w}" y1="${y0 + h}" y2="${y0 + h}" stroke="#333"/>`);
  const X = (n) => x0 + 20 + ((hostCounts.indexOf(n)) / Math.max(1, hostCounts.length - 1)) * (w - 40);
  hostCounts.forEach((n) => s(`<text x="${X(n).toFixed(1)}" y="${y0 + h + 16}" text-anchor="middle">${n} host${n > 1 ? "s" : ""}</text>`));
  const LINE = { ping: "#2f855a", me: "#6b46c1" };
  let lastLabelY = -100;
  for (const sc of ["ping", "me"]) {
    const pts = hostCounts.map((n) => [n, at("spindle", sc, n)?.rps]).filter(([, v]) => v);
    s(`<polyline fill="none" stroke="${LINE[sc]}" stroke-width="2" points="${pts.map(([n, v]) => `${X(n).toFixed(1)},${Y(v).toFixed(1)}`).join(" ")}"/>`);
    pts.forEach(([n, v]) => s(`<circle cx="${X(n).toFixed(1)}" cy="${Y(v).toFixed(1)}" r="3" fill="${LINE[sc]}"/>`));
    const c = ceilings.find((x) => x.scenario === sc);
    if (c) {
      s(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(c.rps).toFixed(1)}" y2="${Y(c.rps).toFixed(1)}" stroke="${LINE[sc]}" stroke-dasharray="5,4"/>`);
      let ly = Y(c.rps) - 4;
      if (Math.abs(ly - lastLabelY) < 12) ly = Y(c.rps) + 12; // below its line when the labels would collide
      lastLabelY = ly;
      s(`<text x="${x0 + w}" y="${ly.toFixed(1)}" text-anchor="end" font-size="10" fill="${LINE[sc]}">Redis ceiling, ${sc === "ping" ? "EVALSHA" : "GET"}: ${esc(int(c.rps))}/s</text>`);
    }
  }
  legend(x0 - 40, HGT - 30, [["/api/ping", LINE.ping], ["/auth/me", LINE.me], ["dashed: redis-benchmark", "#999"]]);
}
s(`<text x="${W - 10}" y="${HGT - 8}" text-anchor="end" font-size="10" fill="#666">${esc(`${meta.date?.slice(0, 10)} · ${meta.cpus} × ${meta.cpu} · ${meta.wrk}`)}</text>`);
s("</svg>");
writeFileSync(svgPath, svg.join("\n") + "\n");

function niceMax(v) {
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}
function axisY(x0, y0, w, h, max, Y) {
  for (let i = 0; i <= 5; i++) {
    const v = (max / 5) * i;
    s(`<line x1="${x0}" x2="${x0 + w}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/>`);
    s(`<text x="${x0 - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${esc(int(v))}</text>`);
  }
  s(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y0 + h}" stroke="#333"/><line x1="${x0}" x2="${x0 + w}" y1="${y0 + h}" y2="${y0 + h}" stroke="#333"/>`);
}
function legend(x, y, items) {
  let cx = x;
  for (const [label, color] of items) {
    s(`<rect x="${cx}" y="${y - 10}" width="12" height="12" fill="${color}"/><text x="${cx + 16}" y="${y}">${esc(label)}</text>`);
    cx += 24 + label.length * 7;
  }
}
