#!/usr/bin/env bash
# Where a request's time goes (issue 14), per route, on the runner and on
# real Spin, two ways:
#
# - instructions per request, counted by valgrind's callgrind: they repeat
#   from run to run whatever else the machine does, so a change to the guest
#   shows as a number that moved;
# - CPU time and context switches per request of the host's processes, from
#   `perf stat -e task-clock,context-switches` (software counters: this
#   machine has no hardware ones) on the host running natively: the least of
#   CPU_REPS runs of CPU_N requests. They see what instruction counts miss:
#   the kernel, and thread hand-offs (Spin's variable reads).
#
#   bench/profile/run.sh                 # the runner, then Spin
#   bench/profile/run.sh runner          # one host (runner or spin)
#   NAMES=1 bench/profile/run.sh runner  # + the guest's function names (an unstripped build)
#   MODE=cpu bench/profile/run.sh spin   # only the CPU pass (MODE=callgrind: only the counts)
#   WASM_DIR=/some/build bench/profile/run.sh   # Spindle's components from elsewhere (a before/after)
#
# For each host: the floor (bench/floor: /ok, /get) and Spindle (spin.toml,
# Redis over TCP). Requests go one at a time over one keep-alive connection
# (bench/profile/drive.py, which fails on any unexpected status). Under
# callgrind, after WARMUP requests the counters are zeroed
# (callgrind_control -z), N requests are sent and the counters dumped
# (callgrind_control --dump); bench/profile/cgsum.py reads each dump: Ir per
# request in all, in the guest's compiled code (what valgrind calls `???`)
# and in the host; the guest's calls into the host (the runner only: Spin's
# binary is stripped); and the top functions.
#
# Under valgrind the pooling allocator's PAGEMAP_SCAN ioctl is unavailable,
# so the runner resets the first 2 MiB of every instance's memory with
# memset (natively it resets only the pages the guest dirtied): that memset
# is reported apart ("reset") and left out of "host".
#
# The user, its session and its cached record are made on the host running
# natively (Argon2id under valgrind takes minutes); the app is then
# restarted under valgrind on the same Redis and database.
#
# Env: N [300], WARMUP [20], CPU_N [400], CPU_REPS [5], MODE [both], NAMES=1,
#      WASM_DIR, SKIP_BUILD=1, KEEP_WORK=1, SPIN_BIN.
# Writes RESULTS_DIR [bench/results]/<date>-profile.md and .jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/harness.sh
cd "$repo"

hosts=("$@")
[ ${#hosts[@]} -gt 0 ] || hosts=(runner spin)
for h in "${hosts[@]}"; do
  case "$h" in runner | spin) ;; *) echo "usage: bench/profile/run.sh [runner|spin]..." >&2; exit 2 ;; esac
done
n="${N:-300}"
warm="${WARMUP:-20}"
cpu_n="${CPU_N:-400}"
cpu_reps="${CPU_REPS:-5}"
mode="${MODE:-both}"
case "$mode" in both | cpu | callgrind) ;; *) echo "MODE=$mode: expected both, cpu or callgrind" >&2; exit 2 ;; esac
results_dir="${RESULTS_DIR:-$repo/bench/results}"
tools=(python3 node redis-cli)
[ "$mode" != cpu ] && tools+=(valgrind callgrind_control)
[ "$mode" != callgrind ] && tools+=(perf)
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done

wasm_dir="$target_dir/wasm32-wasip2/release"
if [ "${SKIP_BUILD:-}" != 1 ]; then
  log "building the components, the floor and the runner"
  if [ "${NAMES:-}" = 1 ]; then
    # The same code with its name section (strip only drops custom sections).
    CARGO_PROFILE_RELEASE_STRIP=false cargo build --target wasm32-wasip2 --release --target-dir "$target_dir/profile-names" \
      $(for p in health auth api users notify console floor; do printf -- '-p %s ' "$p"; done) >&2
  else
    cargo build --target wasm32-wasip2 --release >&2
    cargo build --target wasm32-wasip2 --release -p floor >&2
  fi
  cargo build --profile native -p spindle-runner --bins >&2
fi
[ "${NAMES:-}" = 1 ] && wasm_dir="$target_dir/profile-names/wasm32-wasip2/release"

# The manifests, pointing at the chosen build.
sed -e "s|^source = \"target/wasm32-wasip2/release/|source = \"${WASM_DIR:-$wasm_dir}/|" spin.toml >"$workdir/spin.toml"
sed -e "s|^source = \"../../target/wasm32-wasip2/release/|source = \"$wasm_dir/|" bench/floor/spin.toml >"$workdir/floor.toml"

start_redis
rcli() { redis-cli -p "$redis_port" "$@"; }
rcli set floor:key '{"cookie":{"originalMaxAge":86400000},"user":{"id":1,"username":"floor"}}' >/dev/null
redis_counters() { # "commands connections", as bench/stacks/run.sh counts them
  local cmds
  cmds="$(rcli info commandstats | awk -F'[=,]' '/^cmdstat_/ && !/^cmdstat_info:/ {s+=$2} END {print s+0}')"
  echo "$cmds $(rcli info stats | tr -d '\r' | awk -F: '$1=="total_connections_received" {print $2}')"
}
session_secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
app_vars=(--variable "redis_host=$redis_host" --variable "session_secrets=$session_secret"
  --variable "trusted_proxies=127.0.0.1" --variable "api_rate_limit=sliding_window 20/10s"
  --variable "login_rate_limit=sliding_window 1000000/60s")
floor_vars=(--variable "redis_host=$redis_host")
results="$workdir/results.jsonl"
: >"$results"

# serve NAME HOST MANIFEST VALGRIND(0|1) VARS...: sets port, sid.
serve() {
  local name="$1" host="$2" manifest="$3" vg="$4" pre=() extra=()
  shift 4
  spindle_host="$host"
  host_cmd "$name" "$manifest"
  if [ "$host" = runner ]; then
    printf '[sqlite_database.default]\ntype = "spin"\npath = "%s"\n' "$workdir/$name.db" >"$workdir/$name-rc.toml"
    extra=(--runtime-config-file "$workdir/$name-rc.toml")
  fi
  # A small pool: valgrind cannot reserve 1000 memories of 4 GiB.
  [ "$vg" = 1 ] && pre=(env SPIN_MAX_INSTANCE_COUNT=4 SPINDLE_PROFILE=perfmap valgrind -q --tool=callgrind
    --trace-children=yes "--callgrind-out-file=$workdir/cg.%p")
  port="$(free_port)"
  spawn "$name-$vg" ${pre[@]+"${pre[@]}"} "${host_argv[@]}" --listen "127.0.0.1:$port" "$@" ${extra[@]+"${extra[@]}"}
  sid="$last_pid"
  wait_port "$port" "$sid" "$name" 6000
}

# The process under callgrind that serves requests (Spin: its trigger child).
served_pid() { # SID HOST
  local pat=spindle-runner
  [ "$2" = spin ] && pat="trigger http"
  pgrep -s "$1" -f "valgrind.*$pat" | tail -n 1
}

# profile LABEL HOST NAME ROUTES...: one host already serving on $port under callgrind.
profile() {
  local label="$1" host="$2" name="$3" pid r c0 c1 dump
  shift 3
  pid="$(served_pid "$sid" "$host")"
  [ -n "$pid" ] || { echo "no callgrind process for $name" >&2; return 1; }
  for r in "$@"; do
    python3 bench/profile/drive.py "http://127.0.0.1:$port" "$r" "$warm"
    callgrind_control -z "$pid" >/dev/null 2>&1
    read -r -a c0 < <(redis_counters)
    python3 bench/profile/drive.py "http://127.0.0.1:$port" "$r" "$n"
    read -r -a c1 < <(redis_counters)
    callgrind_control "--dump=route-$r" "$pid" >/dev/null 2>&1
    for _ in $(seq 100); do
      dump="$(grep -l "^desc: Trigger: dump route-$r\$" "$workdir"/cg."$pid".* 2>/dev/null | tail -n 1 || true)"
      [ -n "$dump" ] && break
      sleep 0.1
    done
    python3 bench/profile/cgsum.py "$dump" "$n" "/tmp/perf-$pid.map" --json \
      --meta "label=$label" "host=$host" "route=$r" \
      "redis_cmds=$(awk -v a="${c0[0]}" -v b="${c1[0]}" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n}')" \
      "redis_conns=$(awk -v a="${c0[1]}" -v b="${c1[1]}" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n}')" >>"$results"
    printf '  %-7s %-6s %-8s %s\n' "$label" "$host" "$r" "$(tail -n 1 "$results" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%12s Ir/req  guest %10s  host %10s" % tuple(format(round(d[k]), ",") for k in ("ir", "guest", "host_ir")))')" >&2
  done
}

# cpu_pass LABEL HOST ROUTES...: the host running natively on $port.
cpu_pass() {
  local label="$1" host="$2" r i pids best
  shift 2
  pids="$(pgrep -s "$sid" | paste -sd, -)"
  for r in "$@"; do
    python3 bench/profile/drive.py "http://127.0.0.1:$port" "$r" "$warm"
    best="$(for i in $(seq "$cpu_reps"); do
      perf stat -x, -e task-clock,context-switches -p "$pids" -o "$workdir/perf.csv" -- \
        python3 bench/profile/drive.py "http://127.0.0.1:$port" "$r" "$cpu_n"
      awk -F, -v n="$cpu_n" '$3 ~ /^task-clock/ {t = $1} $3 ~ /^context-switches/ {c = $1} END {printf "%.4f %.2f\n", t / n, c / n}' "$workdir/perf.csv"
    done | sort -n | head -n 1)"
    echo "{\"kind\":\"cpu\",\"label\":\"$label\",\"host\":\"$host\",\"route\":\"$r\",\"cpu_ms\":${best% *},\"cs\":${best#* }}" >>"$results"
    printf '  %-7s %-6s %-8s %8s CPU-ms/req  %6s context switches/req\n' "$label" "$host" "$r" "${best% *}" "${best#* }" >&2
  done
}

stop() { # SID
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

app_routes=(healthz me ping user 404 405 401 400 openapi console)
for host in "${hosts[@]}"; do
  log "the floor on $host: natively (which also fills the compilation cache), then under callgrind"
  serve "floor-$host" "$host" "$workdir/floor.toml" 0 "${floor_vars[@]}"
  wait_http "http://127.0.0.1:$port/ok" floor
  [ "$mode" != callgrind ] && cpu_pass floor "$host" ok get
  stop "$sid"
  if [ "$mode" != cpu ]; then
    serve "floor-$host" "$host" "$workdir/floor.toml" 1 "${floor_vars[@]}"
    profile floor "$host" "floor-$host" ok get
    stop "$sid"
  fi

  log "Spindle on $host: natively (a user, its session, its cached record), then under callgrind"
  serve "app-$host" "$host" "$workdir/spin.toml" 0 "${app_vars[@]}"
  wait_http "http://127.0.0.1:$port/healthz" app
  acct="$(BASE="http://127.0.0.1:$port" node bench/scale/setup.mjs "p$RANDOM$RANDOM" 1)"
  export COOKIE USER_ID
  COOKIE="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].cookie)' "$acct")"
  USER_ID="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].id)' "$acct")"
  curl -sf -o /dev/null "http://127.0.0.1:$port/users/$USER_ID" # fills the cache
  [ "$mode" != callgrind ] && cpu_pass spindle "$host" "${app_routes[@]}"
  stop "$sid"
  if [ "$mode" != cpu ]; then
    serve "app-$host" "$host" "$workdir/spin.toml" 1 "${app_vars[@]}"
    profile spindle "$host" "app-$host" "${app_routes[@]}"
    stop "$sid"
  fi
done

mkdir -p "$results_dir"
stamp="$(date -u +%F)-profile"
cp "$results" "$results_dir/$stamp.jsonl"
python3 bench/profile/report.py "$results" "MODE=$mode N=$n WARMUP=$warm CPU_N=$cpu_n CPU_REPS=$cpu_reps NAMES=${NAMES:-0}${WASM_DIR:+ WASM_DIR=$WASM_DIR} bench/profile/run.sh ${hosts[*]} at $(git rev-parse --short HEAD), load $(cut -d' ' -f1-3 /proc/loadavg)" \
  >"$results_dir/$stamp.md"
log "wrote $results_dir/$stamp.md and .jsonl"
cat "$results_dir/$stamp.md"
