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


def one_get(host, tr, mode):
    """The floor's one GET over the transport Spindle uses: REST, or for TCP
    RESP over wasi:sockets (`/get-socket`; runs before it had only `/get`,
    Spin's outbound Redis, under "tcp")."""
    if tr == "rest":
        return cell("floor", host, "rest", "/get-rest", mode)
    return cell("floor", host, "tcp", "/get-socket", mode) or cell("floor", host, "tcp", "/get", mode)


def expects_error(route):
    """The no-Redis answers are named "<status> <method> <path>"; a 4xx one
    is the answer expected, not an error."""
    return route[:1] == "4"


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
  "per 1,000 requests. errors: socket errors, and non-2xx answers where a 2xx is expected, both runs.")
w("")
w("| stack | host | Redis via | route | one host req/s | p50 ms | p99 ms | per core req/s | p50 ms | p99 ms "
  "| Redis cmds/req | conns/req | CPU-s/1k one host | CPU-s/1k per core | errors |")
w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, stack, host, tr, route in rows:
    h = cell(stack, host, tr, route, "host")
    k = cell(stack, host, tr, route, "core") or {}
    errs = h["socket_errors"] + k.get("socket_errors", 0)
    if not expects_error(route):
        errs += h["non2xx"] + k.get("non2xx", 0)
    hostname = {"node": "node", "spin": "Spin 4.0.2", "runner": "runner",
                "runner-before": "runner (`RUNNER_BEFORE`)"}[host]
    via = {"tcp": "TCP", "rest": "REST", "kv": "key-value", "redis": "Spin outbound Redis",
           "-": "–"}[tr] if stack != "node" else "TCP"
    if route[:1].isdigit():
        via = "– (no Redis)"
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
tcp_floor = "`/get-socket`: RESP over wasi:sockets, as Spindle's TCP" if cell("floor", "spin", "tcp", "/get-socket", "core") \
    else "`/get`: Spin outbound Redis"
w("Against `/ok` (200, no Redis) and against the floor's single GET over the same transport "
  f"({tcp_floor}; `/get-rest`: REST through the gateway).")
w("")
w("| route | " + " | ".join(f"{names[c]} ÷ ok" for c in configs) + " | "
  + " | ".join(f"{names[c]} ÷ one GET" for c in configs) + " |")
w("|---|" + "---|" * (2 * len(configs)))
for r in routes:
    a, b = [], []
    for h, t in configs:
        s = cell("spindle", h, t, r, "core")
        ok = cell("floor", h, "-", "/ok", "core")
        g = one_get(h, t, "core")
        a.append(ratio(s and s["rps"], ok and ok["rps"]))
        b.append(ratio(s and s["rps"], g and g["rps"]))
    w(f"| `{r}` | " + " | ".join(a + b) + " |")

answers = []
for c in cells:
    if c["stack"] == "spindle" and c["route"][:1].isdigit() and c["route"] not in answers:
        answers.append(c["route"])
if answers:
    w("")
    w("## The answers that need no Redis ÷ the floor (per core)")
    w("")
    w("Each request answered by Spindle without a Redis call (the Redis cmds/req column above shows 0), "
      "against the floor's `/ok` on the same host. Status, method and path as sent.")
    w("")
    w("| answer | Spin req/s | Spin ÷ ok | Spin CPU-s/1k | runner req/s | runner ÷ ok | runner CPU-s/1k |")
    w("|---|---|---|---|---|---|---|")
    for r in answers:
        v = []
        for h in ("spin", "runner"):
            s_ = cell("spindle", h, "tcp", r, "core")
            ok = cell("floor", h, "-", "/ok", "core")
            v += [rps(s_), ratio(s_ and s_["rps"], ok and ok["rps"]), f"{s_['cpu_s_per_1k']:.3f}" if s_ else "–"]
        w(f"| `{r}` | " + " | ".join(v) + " |")

kv = cell("floor", "spin", "kv", "/kv", "core")
if kv:
    w("")
    w("## One read on Spin, per transport (per core)")
    w("")
    w("The same read (`floor:key`, a connect-redis session's size) four ways on Spin 4.0.2: Spin's outbound Redis "
      "and RESP over wasi:sockets (each a new connection per request), REST through the gateway (Spin's pooled outbound HTTP), and Spin's "
      "key-value API on its Redis provider (one connection per app, a `PING` with each `Store::open`). "
      "Beside them, Spindle's session check (`/auth/me`, one `GET sess:<sid>`).")
    w("")
    w("| what | req/s per core | ÷ ok | p99 ms | Redis cmds/req | conns/req | CPU-s/1k |")
    w("|---|---|---|---|---|---|---|")
    ok = cell("floor", "spin", "-", "/ok", "core")
    get_tr = "redis" if cell("floor", "spin", "redis", "/get", "core") else "tcp"
    for what, c, h in [("floor `/get`, Spin outbound Redis", cell("floor", "spin", get_tr, "/get", "core"), cell("floor", "spin", get_tr, "/get", "host")),
                       ("floor `/get-socket`, RESP over wasi:sockets", cell("floor", "spin", "tcp", "/get-socket", "core"), cell("floor", "spin", "tcp", "/get-socket", "host")),
                       ("floor `/get-rest`, REST", cell("floor", "spin", "rest", "/get-rest", "core"), cell("floor", "spin", "rest", "/get-rest", "host")),
                       ("floor-kv `/kv`, key-value", kv, cell("floor", "spin", "kv", "/kv", "host")),
                       ("Spindle `/auth/me`, TCP", cell("spindle", "spin", "tcp", "/auth/me", "core"), cell("spindle", "spin", "tcp", "/auth/me", "host")),
                       ("Spindle `/auth/me`, REST", cell("spindle", "spin", "rest", "/auth/me", "core"), cell("spindle", "spin", "rest", "/auth/me", "host"))]:
        if c and h:
            w(f"| {what} | {rps(c)} | {ratio(c['rps'], ok and ok['rps'])} | {c['p99_ms']:.2f} "
              f"| {h['redis_cmds_per_req']:.2f} | {h['connections_per_req']:.2f} | {c['cpu_s_per_1k']:.3f} |")

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
