#!/usr/bin/env python3
"""The markdown report of bench/profile/run.sh: one row per host and route.

    report.py RESULTS.jsonl "HOW IT RAN"
"""
import json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cpu = {(r["label"], r["host"], r["route"]): r for r in rows if r.get("kind") == "cpu"}
cg = {(r["label"], r["host"], r["route"]): r for r in rows if r.get("kind") != "cpu"}
keys = list(dict.fromkeys([(r["label"], r["host"], r["route"]) for r in rows]))
REDIS = {"healthz", "me", "ping", "user"}  # the routes that make one Redis round trip

print(f"# Where a request's time goes\n\n`{sys.argv[2]}`\n")
print("CPU-ms: CPU time of the host's processes per request (perf stat task-clock, the least of the runs), "
      "cs: their context switches per request; ÷ floor: the floor's CPU-ms over the route's (what a CPU-bound "
      "req/s ratio would be) against `/ok` for routes without Redis and `/get` (one round trip) for the others. "
      "Ir: instructions per request (callgrind), all threads of the host; guest: in the compiled wasm; host: the rest, "
      "less reset (the pool's memset of up to 2 MiB per instance under valgrind); imports: the guest's calls into the "
      "host (component imports and resource drops; runner only, Spin's binary is stripped), variables: "
      "`variables.get` among them. Redis cmds and conns: per request (INFO), under callgrind.\n")
print("| stack | host | route | CPU-ms | cs | ÷ floor | Ir | guest | host | reset | imports | variables | Redis cmds | conns |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
n = lambda v: "–" if v is None else f"{v:,.0f}"
for k in keys:
    c, g = cpu.get(k, {}), cg.get(k, {})
    floor = cpu.get(("floor", k[1], "get" if k[2] in REDIS or k[2] == "get" else "ok"), {})
    ratio = f"{floor['cpu_ms'] / c['cpu_ms']:.2f}×" if c and floor and k[0] != "floor" else "–"
    print(f"| {k[0]} | {k[1]} | {k[2]} | {c.get('cpu_ms', '–')} | {c.get('cs', '–')} | {ratio} | {n(g.get('ir'))} | {n(g.get('guest'))} "
          f"| {n(g.get('host_ir'))} | {n(g.get('reset'))} | {n(g.get('imports'))} | {n(g.get('variables'))} "
          f"| {g.get('redis_cmds', '–')} | {g.get('redis_conns', '–')} |")
named = [g for g in cg.values() if any(len(f.split("::")) > 2 for f, _ in g["top_guest"])]
if named:
    print("\n## The guest's top functions (self Ir per request)\n")
    for g in named:
        top = ", ".join(f"`{f.split('::', 2)[-1][:70]}` {c:,.0f}" for f, c in g["top_guest"][:6])
        print(f"- {g['label']} {g['host']} {g['route']}: {top}")
