#!/usr/bin/env bash
# Two or more spindle-runner binaries on the same guests, interleaved, for a
# before/after of the runner's build profile (issue 16: req/s must not fall
# by more than 5 %). A noisy, shared machine moves req/s by ±15 % between
# cells, so besides req/s this reports each binary's CPU time per request
# (utime+stime of its process over the cell), which moves far less.
#
#   bench/runner-ab/run.sh LABEL=BINARY LABEL=BINARY...   # the first is the reference
#   e.g. bench/runner-ab/run.sh before=/tmp/release/spindle-runner after=target/native/spindle-runner
#
# Env: ROUNDS [5], DURATION [4s], CONNECTIONS [20]. Every binary is pinned to
# CPU 0, wrk and Redis to CPU 1; the cells go round-robin over the binaries,
# ROUNDS times, and the medians are reported. About 1 minute per binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/harness.sh
cd "$repo"
[ $# -ge 2 ] || { echo "usage: $0 LABEL=BINARY LABEL=BINARY..." >&2; exit 2; }
rounds="${ROUNDS:-5}" duration="${DURATION:-4s}" conns="${CONNECTIONS:-20}"
routes=(/healthz /no/such/route /api/ping)
start_redis
taskset -a -pc 1 "$redis_pid" >/dev/null
clk_tck="$(getconf CLK_TCK)"
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
labels=() ports=() procs=()
for arg in "$@"; do
  label="${arg%%=*}" bin="${arg#*=}"
  [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 1; }
  port="$(free_port)"
  spawn "runner-$label" taskset -c 0 "$bin" up -f spin.toml --listen "127.0.0.1:$port" \
    --variable "redis_host=$redis_host" --variable "session_secrets=$secret" --variable "api_rate_limit=fixed_window 100000000/60s"
  wait_http "http://127.0.0.1:$port/healthz" "$label"
  labels+=("$label") ports+=("$port") procs+=("$last_pid")
done
: >"$workdir/cells"
for ((r = 1; r <= rounds; r++)); do
  for route in "${routes[@]}"; do
    for i in "${!labels[@]}"; do
      t0="$(awk '{print $14 + $15}' "/proc/${procs[i]}/stat")"
      taskset -c 1 wrk -t2 -c"$conns" -d"$duration" --latency "http://127.0.0.1:${ports[i]}$route" >"$workdir/cell.wrk"
      t1="$(awk '{print $14 + $15}' "/proc/${procs[i]}/stat")"
      read -r rps n _ < <(wrk_parse "$workdir/cell.wrk")
      echo "${labels[i]} $route $rps $(echo "($t1 - $t0) * 1000000 / $clk_tck / $n" | bc -l)" >>"$workdir/cells"
    done
  done
done
python3 - "$workdir/cells" "${labels[@]}" <<'PY'
import statistics, sys
cells = [l.split() for l in open(sys.argv[1])]
labels = sys.argv[2:]
routes = list(dict.fromkeys(c[1] for c in cells))
med = lambda lab, r, k: statistics.median(float(c[k]) for c in cells if c[0] == lab and c[1] == r)
print(f"| route | " + " | ".join(f"{l} req/s | {l} CPU µs/req" for l in labels) + " | " +
      " | ".join(f"{l} ÷ {labels[0]} req/s | CPU" for l in labels[1:]) + " |")
print("|---|" + "---|---|" * len(labels) + "---|---|" * (len(labels) - 1))
for r in routes:
    v = [f"{med(l, r, 2):,.0f} | {med(l, r, 3):.0f}" for l in labels]
    v += [f"{med(l, r, 2) / med(labels[0], r, 2):.2f}× | {med(l, r, 3) / med(labels[0], r, 3):.2f}×" for l in labels[1:]]
    print(f"| `{r}` | " + " | ".join(v) + " |")
PY
