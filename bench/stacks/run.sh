#!/usr/bin/env bash
# The stacks benchmark (issue 13, item 3): one host per stack, direct (no
# proxy), in one run on this machine, so the ratios between them mean
# something even when the machine is busy:
#
#   1. the Node baseline (bench/node/cluster.mjs, 2 workers)
#   2. Spindle (spin.toml) on real Spin 4.0.2, over TCP and over REST (gateway):
#      the four app routes, and (over TCP) the six answers that need no Redis
#   3. Spindle on spindle-runner, the same
#   4. the floor (bench/floor: /ok, /get-socket, /get, /get-rest) on Spin and on the runner,
#      and the key-value floor (bench/floor-kv: /kv, Spin's key-value API on
#      its Redis provider) on Spin
#   5. the proxy's own ceiling (nginx → a static upstream) beside 4 Spindle
#      hosts on Spin behind the same nginx
#   6. with RUNNER_BEFORE=<a spindle-runner binary>: Spindle on that runner
#      too, over TCP, as host "runner-before" (issue 16: the runner built with
#      another profile, e.g. `cargo build --release -p spindle-runner`)
#
# Every cell twice: "one host" (nothing pinned) and "per core" (the host's
# whole process group pinned to CPU 0 with taskset, wrk, Redis and the
# gateway to CPU 1). Reported: req/s, p50, p99 (wrk --latency), Redis
# commands, round trips and new connections per request (INFO), and the
# CPU-seconds per 1,000 requests of every server process (host with its
# children, Redis, gateway; not wrk).
#
#   bench/stacks/run.sh            about 20 minutes: 10 s per cell
#   bench/stacks/run.sh --quick    about 7 minutes: 3 s per cell
#
# Env: DURATION (per cell, overrides the mode), WARMUP [1s], CONNECTIONS [50],
#      THREADS [2], SPIN_BIN, SKIP_BUILD=1, KEEP_WORK=1, RESULTS_DIR [bench/results],
#      RUNNER_BEFORE (see 6)
# Writes RESULTS_DIR/<date>.md and .jsonl (<date>-quick.* with --quick).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The runner the stacks measure is the one scripts/up.sh serves with.
RUNNER_BIN="${RUNNER_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/runner/spindle-runner}"
. scripts/harness.sh
cd "$repo"

mode=full
case "${1:-}" in
  --quick) mode=quick ;;
  "") ;;
  *) echo "usage: bench/stacks/run.sh [--quick]" >&2; exit 2 ;;
esac
command_line="bench/stacks/run.sh${1:+ $1}"
if [ "$mode" = quick ]; then duration="${DURATION:-3s}"; else duration="${DURATION:-10s}"; fi
warmup="${WARMUP:-1s}"
conns="${CONNECTIONS:-50}"
threads="${THREADS:-2}"
results_dir="${RESULTS_DIR:-$repo/bench/results}"
stamp="$(date -u +%F)"
[ "$mode" = quick ] && stamp="$stamp-quick"
load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"
started_at="$(date -u +%FT%TZ)"
export PATH="$PATH:/usr/sbin" # nginx
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 CPUs (per-core figures pin to CPUs 0 and 1)" >&2; exit 1; }
spin="$(find_spin)" || { echo "no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin): the Spin rows need it" >&2; exit 1; }
for t in wrk nginx redis-server taskset node python3; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done

if [ "${SKIP_BUILD:-}" != 1 ]; then
  log "building the components, the floor, the runner and the gateway"
  cargo build --target wasm32-wasip2 --release >&2
  cargo build --target wasm32-wasip2 --release -p floor -p floor-kv >&2
  cargo build --profile runner --bin spindle-runner -p spindle-runner >&2
  cargo build --profile native -p spindle-rest-gateway >&2
fi
if [ ! -f bench/node/node_modules/.package-lock.json ] || [ bench/node/package-lock.json -nt bench/node/node_modules/.package-lock.json ]; then
  log "npm ci in bench/node"
  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error) >&2
fi

results="$workdir/results.jsonl"
: >"$results"
emit() { echo "$1" >>"$results"; }
all_cpus="0-$(($(nproc) - 1))"
session_secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
api_rate_limit="sliding_window 20/10s" # with a fresh X-Forwarded-For per request (bench/scale/wrk/ping.lua): every request allowed

# --- shared servers ---------------------------------------------------------------

start_redis
start_gateway
rcli() { redis-cli -p "$redis_port" "$@"; }
# INFO as "commands connections": the calls of INFO commandstats without
# INFO's own (commands run inside scripts count too, as Redis counts them:
# total_commands_processed counts them as well, so neither tells round
# trips from a script's inner calls), and total_connections_received.
redis_counters() {
  local cmds
  cmds="$(rcli info commandstats | awk -F'[=,]' '/^cmdstat_/ && !/^cmdstat_info:/ {s+=$2} END {print s+0}')"
  echo "$cmds $(rcli info stats | tr -d '\r' | awk -F: '$1=="total_connections_received" {print $2}')"
}

# CPU ticks (utime+stime, and cutime+cstime of reaped children) of every
# process in the given sessions (each spawn is a session of its own, so a
# session is a host with all its children).
cpu_ticks() { # SID...
  python3 - "$@" <<'PY'
import os, sys
want = set(sys.argv[1:])
total = 0
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    # f[0] is field 3 (state): session is field 6, utime..cstime fields 14-17
    if f[3] in want:
        total += sum(int(x) for x in f[11:15])
print(total)
PY
}
clk_tck="$(getconf CLK_TCK)"

# Sets the CPU affinity of every thread of every process in a session.
pin_session() { # SID CPUS
  local p
  for p in $(ps -o pid= -s "$1"); do taskset -a -pc "$2" "$p" >/dev/null 2>&1 || true; done
}

# --- one cell ---------------------------------------------------------------------

# measure STACK HOST TRANSPORT ROUTE URL HOST_SID [wrk args...]: one-host and
# per-core figures for one route; WRK_ENV (an array) is wrk's environment.
measure() {
  local stack="$1" host="$2" transport="$3" route="$4" url="$5" sid="$6" mode_ cpus_host cpus_rest wrk_pin out
  shift 6
  for mode_ in host core; do
    if [ "$mode_" = core ]; then cpus_host=0 cpus_rest=1 wrk_pin=(taskset -c 1)
    else cpus_host="$all_cpus" cpus_rest="$all_cpus" wrk_pin=()
    fi
    pin_session "$sid" "$cpus_host"
    pin_session "$redis_pid" "$cpus_rest"
    pin_session "$gateway_pid" "$cpus_rest"
    out="$workdir/$stack-$host-$transport-${route//\//_}-$mode_.wrk"
    env "${WRK_ENV[@]}" "${wrk_pin[@]}" wrk -t"$threads" -c"$conns" -d"$warmup" "$@" "$url" >/dev/null 2>&1 || true
    local c0 c1 t0 t1
    read -r -a c0 < <(redis_counters)
    t0="$(cpu_ticks "$sid" "$redis_pid" "$gateway_pid")"
    env "${WRK_ENV[@]}" "${wrk_pin[@]}" wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url" >"$out" 2>&1 || true
    t1="$(cpu_ticks "$sid" "$redis_pid" "$gateway_pid")"
    read -r -a c1 < <(redis_counters)
    local rps reqs p50 p99 non2xx errs
    read -r rps reqs p50 p99 non2xx errs < <(wrk_parse "$out")
    local line
    line="$(awk -v rps="$rps" -v n="$reqs" -v p50="$p50" -v p99="$p99" -v non="$non2xx" -v err="$errs" \
      -v dc="$((c1[0] - c0[0]))" -v dn="$((c1[1] - c0[1]))" -v dt="$((t1 - t0))" -v hz="$clk_tck" \
      -v stack="$stack" -v host="$host" -v tr="$transport" -v route="$route" -v mode="$mode_" 'BEGIN {
        printf "{\"stack\":\"%s\",\"host\":\"%s\",\"transport\":\"%s\",\"route\":\"%s\",\"mode\":\"%s\",", stack, host, tr, route, mode
        printf "\"rps\":%.1f,\"requests\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"non2xx\":%d,\"socket_errors\":%d,", rps, n, p50, p99, non, err
        printf "\"redis_cmds_per_req\":%.3f,\"connections_per_req\":%.3f,\"cpu_s_per_1k\":%.3f}",
          n ? dc / n : 0, n ? dn / n : 0, n ? dt / hz / n * 1000 : 0
      }')"
    emit "$line"
    printf '  %-6s %-6s %-4s %-16s %-4s %8.0f req/s  p50 %6.2f ms  p99 %7.2f ms  %s non-2xx %s errors\n' \
      "$stack" "$host" "$transport" "$route" "$mode_" "$rps" "$p50" "$p99" "$non2xx" "$errs" >&2
  done
  pin_session "$sid" "$all_cpus"
  pin_session "$redis_pid" "$all_cpus"
  pin_session "$gateway_pid" "$all_cpus"
}


stop() { # PID: one host, with its process group (as cleanup does)
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# The four app routes on a stack at URL: healthz, me (logged in), ping, user read (hit).
app_routes() { # STACK HOST TRANSPORT URL SID
  local stack="$1" host="$2" tr="$3" url="$4" sid="$5" acct cookie uid
  acct="$(BASE="$url" node bench/scale/setup.mjs "b$RANDOM$RANDOM" 1)"
  cookie="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].cookie)' "$acct")"
  uid="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].id)' "$acct")"
  curl -sf -o /dev/null -H "Cookie: $cookie" "$url/auth/me" || { echo "$stack/$host/$tr: /auth/me with the new session failed" >&2; return 1; }
  curl -sf -o /dev/null "$url/users/$uid" # fills the cache
  WRK_ENV=(X=1); measure "$stack" "$host" "$tr" /healthz "$url/healthz" "$sid"
  WRK_ENV=(COOKIE="$cookie"); measure "$stack" "$host" "$tr" /auth/me "$url" "$sid" -s bench/scale/wrk/me.lua
  WRK_ENV=(X=1); measure "$stack" "$host" "$tr" /api/ping "$url" "$sid" -s bench/scale/wrk/ping.lua
  WRK_ENV=(USER_ID="$uid"); measure "$stack" "$host" "$tr" /users/:id "$url" "$sid" -s bench/scale/wrk/user_read.lua
}

# The answers that need no Redis (issue 14's first target), each checked for
# its status first: METHOD PATH STATUS [BODY CONTENT_TYPE] per line.
answers=(
  "GET /no/such/route 404"
  "DELETE /api/ping 405"
  "GET /auth/me 401"
  'POST /auth/login 400 {"username": application/json'
  "GET /openapi.json 200"
  "GET / 200"
)
answer_routes() { # STACK HOST TRANSPORT URL SID
  local a method path status body ctype got
  for a in "${answers[@]}"; do
    read -r method path status body ctype <<<"$a"
    got="$(curl -s -o /dev/null -w '%{http_code}' -X "$method" ${body:+-H "Content-Type: $ctype" --data-binary "$body"} "$4$path")"
    [ "$got" = "$status" ] || { echo "$1/$2: $method $path answered $got, not $status" >&2; return 1; }
    WRK_ENV=(METHOD="$method" PATH_="$path" BODY="$body" CONTENT_TYPE="$ctype")
    measure "$1" "$2" "$3" "$status $method $path" "$4" "$5" -s bench/scale/wrk/answer.lua
  done
}

spindle_vars=(
  --variable "session_secrets=$session_secret" --variable "trusted_proxies=127.0.0.1"
  --variable "api_rate_limit=$api_rate_limit" --variable "login_rate_limit=sliding_window 1000000/60s"
)

# Spindle (spin.toml) on HOST over TRANSPORT, with the runner's SQLite in the scratch dir.
spindle() { # HOST TRANSPORT [LABEL]
  local name="sp_$1_$2" extra=() pid url label="${3:-$1}"
  spindle_host="$1"
  if [ "$1" = runner ]; then
    printf '[sqlite_database.default]\ntype = "spin"\npath = "%s"\n' "$workdir/$name.db" >"$workdir/$name.toml"
    extra=(--runtime-config-file "$workdir/$name.toml")
  fi
  log "Spindle on $label over $2"
  rcli flushall >/dev/null
  start_app "$name" "$2" "${spindle_vars[@]}" ${extra[@]+"${extra[@]}"}
  eval "pid=\$pid_$name; url=\$url_$name"
  wait_http "$url/healthz" "$name"
  app_routes spindle "$label" "$2" "$url" "$pid"
  # The no-Redis answers do not depend on the transport: once per host.
  [ "$2" = tcp ] && [ "$label" = "$1" ] && answer_routes spindle "$label" "$2" "$url" "$pid"
  stop "$pid"
}

# The floor (bench/floor/spin.toml) on HOST: /ok, /get-socket (RESP over
# wasi:sockets, as Spindle's TCP), /get (Spin's outbound Redis), /get-rest.
floor() { # HOST
  local name="floor-$1" port url
  spindle_host="$1"
  log "the floor on $1"
  rcli set floor:key "{\"cookie\":{\"originalMaxAge\":86400000},\"user\":{\"id\":1,\"username\":\"floor\"}}" >/dev/null
  port="$(free_port)"
  host_cmd "$name" "$repo/bench/floor/spin.toml"
  spawn "$name" "${host_argv[@]}" --listen "127.0.0.1:$port" --variable "redis_host=$redis_host" \
    --variable "rest_host=$gateway_host" --variable "redis_token=$gateway_token"
  local pid="$last_pid"
  url="http://127.0.0.1:$port"
  wait_port "$port" "$pid" "$name"
  local r
  for r in /ok /get-socket /get /get-rest; do
    wait_http "$url$r" "$name $r"
    local tr=-; [ "$r" = /get-socket ] && tr=tcp; [ "$r" = /get ] && tr=redis; [ "$r" = /get-rest ] && tr=rest
    WRK_ENV=(X=1); measure floor "$1" "$tr" "$r" "$url$r" "$pid"
  done
  stop "$pid"
}

# The key-value floor (bench/floor-kv/spin.toml) on Spin, its "default" store
# on the benchmark's Redis through Spin's Redis provider: /kv. Spin only:
# the runner has no key-value host.
floor_kv() {
  local name=floor-kv port url
  spindle_host=spin
  log "the key-value floor on spin"
  printf '[key_value_store.default]\ntype = "redis"\nurl = "%s"\n' "$redis_url" >"$workdir/kv.toml"
  port="$(free_port)"
  host_cmd "$name" "$repo/bench/floor-kv/spin.toml"
  spawn "$name" "${host_argv[@]}" --listen "127.0.0.1:$port" --runtime-config-file "$workdir/kv.toml"
  local pid="$last_pid"
  url="http://127.0.0.1:$port"
  wait_port "$port" "$pid" "$name"
  wait_http "$url/kv" "$name /kv"
  WRK_ENV=(X=1); measure floor spin kv /kv "$url/kv" "$pid"
  stop "$pid"
}

# --- 1. the Node baseline ------------------------------------------------------------

log "the Node baseline (2 workers)"
node_port="$(free_port)"
PORT="$node_port" BIND=127.0.0.1 REDIS_URL="$redis_url" DB_PATH="$workdir/node-users.db" SESSION_SECRET="$session_secret" \
  API_RATE_LIMIT="$api_rate_limit" WORKERS=2 HOST_ID=node-1 NODE_ENV=production TRUST_PROXY=127.0.0.1 \
  LOGIN_RATE_LIMIT="1000000/60s" spawn node node bench/node/cluster.mjs
node_pid="$last_pid"
wait_port "$node_port" "$node_pid" "node"
wait_http "http://127.0.0.1:$node_port/healthz" node
app_routes node node tcp "http://127.0.0.1:$node_port" "$node_pid"
stop "$node_pid"

# --- 2-3. Spindle ----------------------------------------------------------------------

spindle spin tcp
spindle spin rest
spindle runner tcp
spindle runner rest
if [ -n "${RUNNER_BEFORE:-}" ]; then
  after_bin="$runner_bin"
  runner_bin="$RUNNER_BEFORE"
  spindle runner tcp runner-before
  runner_bin="$after_bin"
fi

# --- 4. the floors -----------------------------------------------------------------------

floor spin
floor runner
floor_kv

# --- 5. the proxy's ceiling, beside many hosts behind it ------------------------------------

log "nginx: its own ceiling (a static upstream) and 4 Spindle hosts on Spin behind it"
spindle_host=spin
rcli flushall >/dev/null
many=()
for i in 1 2 3 4; do
  start_app "many$i" tcp "${spindle_vars[@]}" --variable "host_id=h$i"
  eval "many+=(\$port_many$i)"
done
for i in 1 2 3 4; do eval "wait_http \$url_many$i/healthz many$i"; done
mkdir -p "$workdir/nginx"
lb="$(free_port)" static="$(free_port)" lb_static="$(free_port)"
ups=""
for p in "${many[@]}"; do ups+="        server 127.0.0.1:$p;"$'\n'; done
sed -e "s|@WORK@|$workdir/nginx|g" bench/scale/nginx.conf.in | awk -v ups="    upstream spindle {
$ups        keepalive 64;
    }
    upstream static {
        server 127.0.0.1:$static;
        keepalive 64;
    }" -v srv="    server { listen 127.0.0.1:$lb backlog=4096; location / { proxy_pass http://spindle; } }
    server { listen 127.0.0.1:$lb_static backlog=4096; location / { proxy_pass http://static; } }
    server { listen 127.0.0.1:$static backlog=4096; location / { return 200 \"ok\"; } }" '
  /^@UPSTREAMS@$/ {print ups; next}
  /^@SERVERS@$/ {print srv; next}
  {print}' >"$workdir/nginx/nginx.conf"
[ "$(id -u)" = 0 ] && chmod o+rx "$workdir" "$workdir/nginx"
spawn nginx nginx -e "$workdir/nginx/error.log" -p "$workdir/nginx" -c "$workdir/nginx/nginx.conf"
nginx_pid="$last_pid"
wait_port "$lb" "$nginx_pid" nginx
wait_port "$lb_static" "$nginx_pid" nginx
acct="$(BASE="http://127.0.0.1:$lb" node bench/scale/setup.mjs "m$RANDOM$RANDOM" 1)"
cookie="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].cookie)' "$acct")"
# the "host" of these rows is everything behind nginx: the CPU column counts nginx and Redis only
proxy_cell() { # STACK ROUTE URL [wrk args]
  local stack="$1" route="$2" url="$3" out c0 c1 t0 t1 sids
  shift 3
  sids=("$nginx_pid" "$redis_pid" "$gateway_pid")
  for i in 1 2 3 4; do eval "sids+=(\$pid_many$i)"; done
  out="$workdir/proxy-$stack-${route//\//_}.wrk"
  env "${WRK_ENV[@]}" wrk -t"$threads" -c"$conns" -d"$warmup" "$@" "$url" >/dev/null 2>&1 || true
  read -r -a c0 < <(redis_counters)
  t0="$(cpu_ticks "${sids[@]}")"
  env "${WRK_ENV[@]}" wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url" >"$out" 2>&1 || true
  t1="$(cpu_ticks "${sids[@]}")"
  read -r -a c1 < <(redis_counters)
  local rps reqs p50 p99 non2xx errs
  read -r rps reqs p50 p99 non2xx errs < <(wrk_parse "$out")
  emit "$(awk -v rps="$rps" -v n="$reqs" -v p50="$p50" -v p99="$p99" -v non="$non2xx" -v err="$errs" \
    -v dc="$((c1[0] - c0[0]))" -v dn="$((c1[1] - c0[1]))" -v dt="$((t1 - t0))" -v hz="$clk_tck" \
    -v stack="$stack" -v route="$route" 'BEGIN {
      printf "{\"stack\":\"%s\",\"host\":\"nginx\",\"transport\":\"tcp\",\"route\":\"%s\",\"mode\":\"proxy\",", stack, route
      printf "\"rps\":%.1f,\"requests\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"non2xx\":%d,\"socket_errors\":%d,", rps, n, p50, p99, non, err
      printf "\"redis_cmds_per_req\":%.3f,\"connections_per_req\":%.3f,\"cpu_s_per_1k\":%.3f}",
        n ? dc / n : 0, n ? dn / n : 0, n ? dt / hz / n * 1000 : 0
    }')"
  printf '  %-12s %-9s %8.0f req/s  p50 %6.2f ms  p99 %7.2f ms  %s non-2xx %s errors\n' "$stack" "$route" "$rps" "$p50" "$p99" "$non2xx" "$errs" >&2
}
WRK_ENV=(X=1); proxy_cell static / "http://127.0.0.1:$lb_static/"
WRK_ENV=(X=1); proxy_cell spin4 /healthz "http://127.0.0.1:$lb/healthz"
WRK_ENV=(COOKIE="$cookie"); proxy_cell spin4 /auth/me "http://127.0.0.1:$lb" -s bench/scale/wrk/me.lua

# --- the report ---------------------------------------------------------------------------

mkdir -p "$results_dir"
sizes="$(cd target/wasm32-wasip2/release && for f in health auth api users notify console floor floor_kv; do
  [ -f "$f.wasm" ] && printf '%s %s\n' "$f" "$(stat -c %s "$f.wasm")"; done)"
meta="$(python3 - "$command_line" "$started_at" "$load_at_start" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" \
  "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" "$("$spin" --version)" \
  "$(redis-server --version | awk '{print $3}')" "$(node --version)" "$(nginx -v 2>&1 | sed 's|.*/||')" \
  "$(git -C "$repo" rev-parse --short HEAD)" "wrk -t$threads -c$conns -d$duration --latency (after $warmup of warm-up)" "$sizes" <<'PY'
import json, sys
a = sys.argv[1:]
print(json.dumps({"kind": "meta", "command": a[0], "started": a[1], "loadavg_start": a[2], "loadavg_end": a[3],
    "nproc": int(a[4]), "cpu": a[5], "spin": a[6], "redis": a[7], "node": a[8], "nginx": a[9], "commit": a[10],
    "wrk": a[11], "wasm_bytes": {l.split()[0]: int(l.split()[1]) for l in a[12].splitlines() if l.strip()}}))
PY
)"
{ echo "$meta"; cat "$results"; } >"$results_dir/$stamp.jsonl"
python3 bench/stacks/report.py "$results_dir/$stamp.jsonl" >"$results_dir/$stamp.md"
log "wrote $results_dir/$stamp.md and .jsonl"
cat "$results_dir/$stamp.md"
