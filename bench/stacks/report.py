#!/usr/bin/env python3
"""The markdown report of bench/stacks/run.sh, from its .jsonl (one meta line,
then one line per cell): python3 bench/stacks/report.py RESULTS.jsonl"""
import json
import sys

lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = next(l for l in lines if l.get("kind") == "meta")
cells = [l for l in lines if l.get("kind") != "meta"]


def cell(stack, host, tr, route, mode):
    for c in cells:
        if (c["stack"], c["host"], c["transport"], c["route"], c["mode"]) == (stack, host, tr, route, mode):
            return c
    return None


def n(v, d=0):
    return f"{v:,.{d}f}"


def rps(c):
    """req/s, or what a cell with no completed request means."""
    if c is None:
        return "–"
    return n(c["rps"]) if c["requests"] else "**0** (no request completed)"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


rows = []  # (label, stack, host, transport, route), in the run's order
for c in cells:
    if c["mode"] != "host":
        continue
    key = (c["stack"], c["host"], c["transport"], c["route"])
    if key not in [r[1:] for r in rows]:
        label = {"node": "Node baseline (2 workers)", "spindle": "Spindle", "floor": "floor"}[c["stack"]]
        rows.append((label,) + key)

out = []
w = out.append
w(f"# Stacks benchmark, {meta['started'][:10]}")
w("")
w(f"Command: `{meta['command']}` (commit {meta['commit']}), started {meta['started']}.")
w("")
w(f"Machine: {meta['nproc']} × {meta['cpu']}; load average at the start {meta['loadavg_start']}, "
  f"at the end {meta['loadavg_end']} (the machine is shared: compare only within this run). "
  f"{meta['spin']}; spindle-runner at the same commit; Redis {meta['redis']}; Node {meta['node']}; nginx {meta['nginx']}.")
w("")
w(f"Load: {meta['wrk']}, direct to one host (no proxy). **one host**: nothing pinned. "
  "**per core**: the host's whole process group on CPU 0 (`taskset`), wrk, Redis and the gateway on CPU 1. "
  "Redis columns are from the one-host run: `INFO commandstats` calls (without INFO's own, commands inside "
  "scripts included) and `total_connections_received`, each as a delta over the requests wrk completed. "
  "CPU-s/1k: utime+stime of every server process (the host with its children, Redis, the gateway; not wrk) "
  "per 1,000 requests. errors: non-2xx answers + socket errors, both runs.")
w("")
w("| stack | host | Redis via | route | one host req/s | p50 ms | p99 ms | per core req/s | p50 ms | p99 ms "
  "| Redis cmds/req | conns/req | CPU-s/1k one host | CPU-s/1k per core | errors |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, stack, host, tr, route in rows:
    h = cell(stack, host, tr, route, "host")
    k = cell(stack, host, tr, route, "core") or {}
    errs = h["non2xx"] + h["socket_errors"] + k.get("non2xx", 0) + k.get("socket_errors", 0)
    hostname = {"node": "node", "spin": "Spin 4.0.2", "runner": "runner",
                "runner-before": "runner (`RUNNER_BEFORE`)"}[host]
    via = {"tcp": "TCP", "rest": "REST", "-": "–"}[tr] if stack != "node" else "TCP"
    w(f"| {label} | {hostname} | {via} | `{route}` | {rps(h)} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f} "
      f"| {rps(k or None)} | {k.get('p50_ms', 0):.2f} | {k.get('p99_ms', 0):.2f} "
      f"| {h['redis_cmds_per_req']:.2f} | {h['connections_per_req']:.2f} "
      f"| {h['cpu_s_per_1k']:.3f} | {k.get('cpu_s_per_1k', 0):.3f} | {errs} |")

routes = ["/healthz", "/auth/me", "/api/ping", "/users/:id"]
configs = [("spin", "tcp"), ("spin", "rest"), ("runner", "tcp"), ("runner", "rest")]
names = {("spin", "tcp"): "Spin, TCP", ("spin", "rest"): "Spin, REST", ("runner", "tcp"): "runner, TCP",
         ("runner", "rest"): "runner, REST"}

w("")
w("## Spindle ÷ Node (req/s)")
w("")
w("| route | " + " | ".join(f"{names[c]} one host" for c in configs) + " | "
  + " | ".join(f"{names[c]} per core" for c in configs) + " |")
w("|---|" + "---|" * (2 * len(configs)))
for r in routes:
    vals = []
    for mode in ("host", "core"):
        nd = cell("node", "node", "tcp", r, mode)
        for h, t in configs:
            s = cell("spindle", h, t, r, mode)
            vals.append(ratio(s and s["rps"], nd and nd["rps"]))
    w(f"| `{r}` | " + " | ".join(vals) + " |")

w("")
w("## Spindle ÷ the floor (req/s, per core, same host)")
w("")
w("Against `/ok` (200, no Redis) and against the floor's single GET over the same transport "
  "(`/get`: Spin outbound Redis, `/get-rest`: REST through the gateway).")
w("")
w("| route | " + " | ".join(f"{names[c]} ÷ ok" for c in configs) + " | "
  + " | ".join(f"{names[c]} ÷ one GET" for c in configs) + " |")
w("|---|" + "---|" * (2 * len(configs)))
for r in routes:
    a, b = [], []
    for h, t in configs:
        s = cell("spindle", h, t, r, "core")
        ok = cell("floor", h, "-", "/ok", "core")
        g = cell("floor", h, t, "/get" if t == "tcp" else "/get-rest", "core")
        a.append(ratio(s and s["rps"], ok and ok["rps"]))
        b.append(ratio(s and s["rps"], g and g["rps"]))
    w(f"| `{r}` | " + " | ".join(a + b) + " |")

if any(c["host"] == "runner-before" for c in cells):
    w("")
    w("## The runner ÷ the `RUNNER_BEFORE` runner (req/s, TCP)")
    w("")
    w("The same guests on two spindle-runner binaries (issue 16: `--profile native` against the "
      "binary given as `RUNNER_BEFORE`, e.g. the size-tuned release profile).")
    w("")
    w("| route | one host | per core |")
    w("|---|---|---|")
    for r in routes:
        v = [ratio((cell("spindle", "runner", "tcp", r, m) or {}).get("rps"),
                   (cell("spindle", "runner-before", "tcp", r, m) or {}).get("rps")) for m in ("host", "core")]
        w(f"| `{r}` | " + " | ".join(v) + " |")

proxy = [c for c in cells if c["mode"] == "proxy"]
if proxy:
    w("")
    w("## The proxy's ceiling, beside many hosts behind it")
    w("")
    w("nginx (`worker_processes auto`, keep-alive upstreams, bench/scale/nginx.conf.in) in front of a static "
      "upstream (another nginx server answering `return 200`), and in front of 4 Spindle hosts on Spin 4.0.2 "
      "(TCP), on the same 2 cores, unpinned. Beside them: one Spindle host on Spin, direct, from the table above.")
    w("")
    w("| what | route | req/s | p50 ms | p99 ms | ÷ the proxy's ceiling | errors |")
    w("|---|---|---|---|---|---|---|")
    ceiling = next((c["rps"] for c in proxy if c["stack"] == "static"), 0)
    for c in proxy:
        what = {"static": "nginx → static upstream (the ceiling)", "spin4": "nginx → 4 Spindle hosts on Spin"}[c["stack"]]
        w(f"| {what} | `{c['route']}` | {n(c['rps'])} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} "
          f"| {ratio(c['rps'], ceiling)} | {c['non2xx'] + c['socket_errors']} |")
    for r in ("/healthz", "/auth/me"):
        s = cell("spindle", "spin", "tcp", r, "host")
        if s:
            w(f"| 1 Spindle host on Spin, direct | `{r}` | {n(s['rps'])} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} "
              f"| {ratio(s['rps'], ceiling)} | {s['non2xx'] + s['socket_errors']} |")

if meta.get("wasm_bytes"):
    w("")
    w("Component sizes (bytes): " + ", ".join(f"{k} {v:,}" for k, v in meta["wasm_bytes"].items()) + ".")
print("\n".join(out))
