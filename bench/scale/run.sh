#!/usr/bin/env bash
# The scale-out benchmark (issue 8): N Spindle hosts (spindle-runner
# processes, default 4) behind Debian's nginx (round robin, no stickiness),
# one Redis, one PostgreSQL; the Node baseline (bench/node: express,
# express-session + connect-redis, @upstash/ratelimit, better-sqlite3, Node
# cluster) on as many hosts behind the same nginx, same Redis, same run.
#
#   bench/scale/run.sh            everything (about 7 minutes on 2 cores):
#                                 scenarios, scaling, Redis's ceiling,
#                                 correctness under load, faults; writes
#                                 bench/scale/results/<date>.md and .svg
#   bench/scale/run.sh --smoke    CI: correctness under load only (no timing
#                                 asserted), about a minute; prints
#                                 "# pass N" / "# fail N", exits 1 on any
#                                 error or violation
#
# Environment (defaults in brackets):
#   HOSTS [4]  DURATION [10s] per measurement  WARMUP [2s]  CONNECTIONS [50]
#   THREADS [2] (wrk)  API_RATE_LIMIT ["sliding_window 20/10s"] (both stacks)
#   NODE_WORKERS [nproc] cluster workers per Node host  BASELINE [auto|skip]
#   LATENCY_ITERATIONS [50]  REDIS_BENCH_N [200000]  RESULTS_DIR
#   [bench/scale/results]  KEEP_WORK (keep the scratch dir and its logs)
#   SKIP_BUILD=1 (everything is built already)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
. scripts/lib.sh

mode=full
case "${1:-}" in
    --smoke) mode=smoke ;;
    "") ;;
    *) echo "usage: bench/scale/run.sh [--smoke]" >&2; exit 2 ;;
esac

hosts="${HOSTS:-4}"
duration="${DURATION:-10s}"
warmup="${WARMUP:-2s}"
conns="${CONNECTIONS:-50}"
threads="${THREADS:-2}"
api_rate_limit="${API_RATE_LIMIT:-sliding_window 20/10s}"
node_workers="${NODE_WORKERS:-$(nproc)}"
baseline="${BASELINE:-auto}"
latency_iterations="${LATENCY_ITERATIONS:-50}"
redis_bench_n="${REDIS_BENCH_N:-200000}"
results_dir="${RESULTS_DIR:-bench/scale/results}"
export PATH="$PATH:/usr/sbin"   # nginx

ensure_toolchain
ensure_redis
ensure_postgres
command -v wrk >/dev/null || apt_install wrk
command -v nginx >/dev/null || apt_install nginx
# SKIP_BUILD=1: the caller has just built everything (scripts/test.sh)
[ -n "${SKIP_BUILD:-}" ] || build_all >/dev/null 2>&1 || build_all

. scripts/harness.sh
work="$workdir"
. bench/scale/lib.sh

session_secret="$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')"
results="$work/results.jsonl"
: >"$results"
emit() { echo "$1" >>"$results"; }   # one JSON object per line, for report.mjs

# --- the fleet ---------------------------------------------------------------------

log "scale: Redis, PostgreSQL, $hosts Spindle hosts, nginx"
start_redis --appendonly no
start_postgres
for i in $(seq 1 "$hosts"); do start_runner "$i"; done
for i in $(seq 1 "$hosts"); do wait_http "http://127.0.0.1:${runner_port[$i]}/healthz" "runner $i"; done

with_node=0
if [ "$mode" = full ] && [ "$baseline" != skip ]; then
    # npm ci when node_modules is missing or older than the lock file (as bench/node/run-smoke.sh)
    if node_baseline_ready; then
        if [ ! -f bench/node/node_modules/.package-lock.json ] \
            || [ bench/node/package-lock.json -nt bench/node/node_modules/.package-lock.json ]; then
            log "npm ci in bench/node"
            (cd bench/node && npm ci --no-audit --no-fund --loglevel=error) >&2 \
                || { echo "scale: npm ci in bench/node failed: the Node baseline's columns are skipped" >&2; baseline=skip; }
        fi
    fi
    if [ "$baseline" = skip ]; then
        :
    elif node_baseline_ready; then
        log "scale: $hosts Node baseline hosts ($node_workers workers each)"
        for i in $(seq 1 "$hosts"); do start_node_host "$i"; done
        for i in $(seq 1 "$hosts"); do wait_http "http://127.0.0.1:${node_port[$i]}/healthz" "node host $i"; done
        with_node=1
    else
        echo "scale: the Node baseline (bench/node/cluster.mjs with its package-lock.json) is missing: its columns are skipped" >&2
    fi
fi

ports() { local p="" i; for i in $(seq 1 "$2"); do eval "p+=\${$1[$i]},"; done; echo "${p%,}"; }
lb_spindle="$(free_port)"
specs=("spindle=$lb_spindle:$(ports runner_port "$hosts")")
if [ "$mode" = full ]; then
    lb_s1="$(free_port)"; lb_s2="$(free_port)"
    specs+=("spindle1=$lb_s1:$(ports runner_port 1)" "spindle2=$lb_s2:$(ports runner_port 2)")
    if [ "$with_node" = 1 ]; then lb_node="$(free_port)"; specs+=("node=$lb_node:$(ports node_port "$hosts")"); fi
fi
start_nginx "${specs[@]}"
wait_http "http://127.0.0.1:$lb_spindle/healthz" "nginx → spindle"

# --- correctness under load (smoke and full) -----------------------------------------

# load_start NAME PORT COOKIE: wrk on /auth/me (with COOKIE's session) and
# on /api/ping through the balancer on PORT until load_stop; the load's own
# errors count as errors.
load_start() {
    local c=$(( conns / 2 > 1 ? conns / 2 : 1 ))
    COOKIE="$3" wrk -t1 -c"$c" -d600s -s bench/scale/wrk/me.lua "http://127.0.0.1:$2" >"$work/$1-me.wrk" 2>&1 &
    load_pids=($!)
    wrk -t1 -c"$c" -d600s -s bench/scale/wrk/ping.lua "http://127.0.0.1:$2" >"$work/$1-ping.wrk" 2>&1 &
    load_pids+=($!)
    pids+=("${load_pids[@]}")
    sleep 1
}
load_stop() { # NAME: sets load_reqs, load_non2xx, load_errors (both wrk together)
    local p r1 n1 e1 r2 n2 e2
    for p in "${load_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    for p in "${load_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    read -r _ r1 _ _ n1 e1 < <(wrk_parse "$work/$1-me.wrk")
    read -r _ r2 _ _ n2 e2 < <(wrk_parse "$work/$1-ping.wrk")
    load_reqs=$((r1 + r2)) load_non2xx=$((n1 + n2)) load_errors=$((e1 + e2))
}
first_cookie() { node -e 'console.log(JSON.parse(process.argv[1]).users[0].cookie)' "$1"; }

accounts_spindle="$(BASE="http://127.0.0.1:$lb_spindle" node bench/scale/setup.mjs sp 4)"
if [ "$with_node" = 1 ]; then
    accounts_node="$(BASE="http://127.0.0.1:$lb_node" node bench/scale/setup.mjs nb 4)"
fi

if [ "$mode" = smoke ]; then
    conns="${CONNECTIONS:-8}"
    check_env=(ROUNDS="${ROUNDS:-3}" SESSION_N="${SESSION_N:-100}" STALE_M="${STALE_M:-30}")
else
    check_env=(ROUNDS="${ROUNDS:-5}" SESSION_N="${SESSION_N:-200}" STALE_M="${STALE_M:-100}")
fi
# correctness SYSTEM PORT ACCOUNTS: check.mjs through the balancer under
# load; sets check_status and writes $work/check-SYSTEM.json
correctness() {
    log "scale: correctness of $1 through nginx across $hosts hosts, under load"
    load_start "check-$1" "$2" "$(first_cookie "$3")"
    check_status=0
    env "${check_env[@]}" BASE="http://127.0.0.1:$2" HOSTS="$hosts" API_RATE_LIMIT="$api_rate_limit" \
        RESULT_FILE="$work/check-$1.json" node bench/scale/check.mjs | grep -v '^{' || check_status=$?
    [ -s "$work/check-$1.json" ] || check_status=1
    load_stop "check-$1"
    echo "load meanwhile: $load_reqs requests (/auth/me and /api/ping), $load_non2xx non-2xx, $load_errors socket errors"
    if [ -s "$work/check-$1.json" ]; then
        emit "{\"kind\":\"check\",\"system\":\"$1\",\"result\":$(cat "$work/check-$1.json"),\"load\":{\"requests\":$load_reqs,\"non2xx\":$load_non2xx,\"socket_errors\":$load_errors}}"
    fi
}
if [ "$with_node" = 1 ]; then
    # The same checks against the baseline, for the record only: they do not
    # decide this run's exit status.
    correctness node "$lb_node" "$accounts_node" || true
fi
correctness spindle "$lb_spindle" "$accounts_spindle"
spindle_check_status="$check_status"
conns="${CONNECTIONS:-50}"

if [ "$mode" = smoke ]; then
    # One pass/fail per check; the load's errors are a check of their own.
    pass=0 fail=0
    for c in rate_limit sessions stale; do
        if [ -s "$work/check-spindle.json" ] && node -e '
            const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]];
            process.exit(s && s.errors === 0 && s.violations === 0 ? 0 : 1)' "$work/check-spindle.json" "$c"; then
            echo "ok - $c: 0 errors, 0 violations"; pass=$((pass + 1))
        else
            echo "not ok - $c"; fail=$((fail + 1))
        fi
    done
    if [ "$load_non2xx" = 0 ] && [ "$load_errors" = 0 ] && [ "$load_reqs" -gt 0 ]; then
        echo "ok - load: $load_reqs requests, 0 non-2xx, 0 socket errors"; pass=$((pass + 1))
    else
        echo "not ok - load: $load_reqs requests, $load_non2xx non-2xx, $load_errors socket errors"; fail=$((fail + 1))
    fi
    # anything else check.mjs found (e.g. fewer hosts answering than expected)
    if [ "$spindle_check_status" != 0 ] && [ "$fail" = 0 ]; then echo "not ok - check.mjs exited $spindle_check_status"; fail=1; fi
    echo "# pass $pass"
    echo "# fail $fail"
    [ "$fail" = 0 ]
    exit
fi

# --- scenarios: Spindle against the baseline ---------------------------------------------

# scenario_env ACCOUNTS SCENARIO: the wrk script's environment
scenario_env() {
    node -e '
        const [accounts, scenario, topic] = process.argv.slice(1);
        const u = JSON.parse(accounts).users;
        const env = { me: { COOKIE: u[0].cookie }, ping: {}, user_read: { USER_ID: u[0].id },
            write_read: { USERS: u.slice(1).map((x) => `${x.id}=${x.cookie}`).join(";") },
            publish_poll: { COOKIE: u[0].cookie, TOPIC: topic } }[scenario];
        for (const [k, v] of Object.entries(env)) console.log(`${k}=${v}`);' "$1" "$2" "pp$RANDOM"
}

# measure SYSTEM LB_PORT SCENARIO [HOSTS]: warm-up, then wrk; one result line
measure() {
    local system="$1" port="$2" scenario="$3" n="${4:-$hosts}" accounts envs=() before after
    if [ "$system" = node ]; then accounts="$accounts_node"; else accounts="$accounts_spindle"; fi
    while IFS= read -r v; do envs+=("$v"); done < <(scenario_env "$accounts" "$scenario")
    local url="http://127.0.0.1:$port" script="bench/scale/wrk/$scenario.lua" out="$work/$system-$n-$scenario.wrk"
    env "${envs[@]}" wrk -t"$threads" -c"$conns" -d"$warmup" -s "$script" "$url" >/dev/null 2>&1
    before="$(redis_commands)"
    env "${envs[@]}" wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$script" "$url" >"$out" 2>&1
    after="$(redis_commands)"
    local rps reqs p50 p99 non2xx errs
    read -r rps reqs p50 p99 non2xx errs < <(wrk_parse "$out")
    local cmds trips
    cmds="$(awk -v a="$before" -v b="$after" -v n="$reqs" 'BEGIN {printf "%.2f", n ? (b-a)/n : 0}')"
    trips="$(round_trips "$url" "$script" "${envs[@]}")"
    printf '  %-8s %-13s %d hosts: %9.0f req/s  p50 %6.2f ms  p99 %7.2f ms  %5s Redis cmds/req  %5s round trips/req  %d non-2xx  %d socket errors\n' \
        "$system" "$scenario" "$n" "$rps" "$p50" "$p99" "$cmds" "$trips" "$non2xx" "$errs"
    emit "{\"kind\":\"scenario\",\"system\":\"$system\",\"scenario\":\"$scenario\",\"hosts\":$n,\"rps\":$rps,\"requests\":$reqs,\"p50_ms\":$p50,\"p99_ms\":$p99,\"redis_cmds_per_req\":$cmds,\"round_trips_per_req\":$trips,\"non2xx\":$non2xx,\"socket_errors\":$errs}"
}

# round_trips URL SCRIPT ENV...: the commands clients sent Redis per request
# (round trips; not the ones scripts run inside Redis), from MONITOR during a
# one-connection, one-second run with no other load. MONITOR marks commands a
# script runs as "[0 lua]"; client commands carry the client's address.
round_trips() {
    local url="$1" script="$2" mon="$work/monitor.txt" mp reqs
    shift 2
    # redis-cli itself in the background (not the rcli function, whose
    # subshell a kill would leave the monitor running behind).
    redis-cli -p "$redis_port" monitor >"$mon" 2>/dev/null &
    mp=$!
    sleep 0.3
    env "$@" wrk -t1 -c1 -d1s -s "$script" "$url" >"$work/round-trips.wrk" 2>&1
    sleep 0.3
    kill "$mp" 2>/dev/null; wait "$mp" 2>/dev/null || true
    read -r _ reqs _ < <(wrk_parse "$work/round-trips.wrk")
    LC_ALL=C awk -v n="$reqs" '
        /^[0-9.]+ \[[0-9]+ [0-9.]+:[0-9]+\] / && !/\] "(info|INFO|monitor|MONITOR|ping|PING)"/ {c++}
        END {printf "%.2f", n ? c/n : 0}' "$mon"
}

log "scale: scenarios, wrk -t$threads -c$conns -d$duration through nginx, $hosts hosts each"
for scenario in me ping user_read write_read publish_poll; do
    measure spindle "$lb_spindle" "$scenario"
    if [ "$with_node" = 1 ]; then measure node "$lb_node" "$scenario"; fi
done

log "scale: publish → poll wake-up, $latency_iterations times through nginx"
wake() { # SYSTEM PORT ACCOUNTS
    local cookie out
    cookie="$(first_cookie "$3")"
    if out="$(BASE="http://127.0.0.1:$2" COOKIE="$cookie" TOPIC="wake$RANDOM" node bench/scale/wakeup.mjs "$latency_iterations" 2>&1)"; then
        echo "  $1: $out"
        emit "{\"kind\":\"wakeup\",\"system\":\"$1\",\"result\":$out}"
    else
        echo "  $1: wake-up measurement failed: $out" >&2
    fi
}
wake spindle "$lb_spindle" "$accounts_spindle"
if [ "$with_node" = 1 ]; then wake node "$lb_node" "$accounts_node"; fi

# --- scaling: 1, 2, 4 hosts, beside Redis's own ceiling ---------------------------------------

log "scale: Spindle on 1, 2 and $hosts hosts"
for scenario in ping me; do
    measure spindle "$lb_s1" "$scenario" 1
    if [ "$hosts" -ge 2 ]; then measure spindle "$lb_s2" "$scenario" 2; fi
    # the $hosts-host figures are the scenario runs above
done

log "scale: Redis's ceiling for the same commands (redis-benchmark -c $conns, no pipelining)"
ceiling() { # NAME redis-benchmark command...
    local name="$1" out rps p50 p99
    shift
    out="$(redis-benchmark -p "$redis_port" -c "$conns" -n "$redis_bench_n" -r 100000000 --csv "$@" 2>/dev/null | tail -n 1)"
    rps="$(awk -F'","' '{print $2}' <<<"$out")"
    p50="$(awk -F'","' '{print $5}' <<<"$out")"
    p99="$(awk -F'","' '{print $7}' <<<"$out")"
    printf '  redis-benchmark %-5s %9.0f req/s  p50 %s ms  p99 %s ms   (%s)\n' "$name" "$rps" "$p50" "$p99" "$*"
    emit "{\"kind\":\"ceiling\",\"scenario\":\"$name\",\"rps\":$rps,\"p50_ms\":$p50,\"p99_ms\":$p99,\"command\":\"$1\"}"
}
# /auth/me is one GET of the session key; /api/ping one EVALSHA of the
# sliding-window script on a fresh client's two keys, as the route sends it.
sid="$(node -e '
    const c = decodeURIComponent(JSON.parse(process.argv[1]).users[0].cookie.split("=")[1]);
    console.log(c.slice(2, c.lastIndexOf(".")))' "$accounts_spindle")"
ceiling me GET "sess:$sid"
sha="$(rcli script load "$(cat crates/spindle/src/ratelimit/sliding_window.lua)")"
window_ms="$(node -e '
    const m = /(\d+)\/(\d+)(ms|s|m)$/.exec(process.argv[1]);
    console.log(Number(m[2]) * { ms: 1, s: 1000, m: 60000 }[m[3]], m[1])' "$api_rate_limit")"
read -r wms limit <<<"$window_ms"
now_ms="$(date +%s%3N)"
w=$(( now_ms / wms ))
ceiling ping EVALSHA "$sha" 2 "@upstash/ratelimit:api:ip:10.__rand_int__:$w" "@upstash/ratelimit:api:ip:10.__rand_int__:$((w - 1))" \
    "$limit" "$wms" "$now_ms" 1

# --- faults under load ----------------------------------------------------------------

log "scale: faults under load (Redis with appendonly from here on)"
rcli config set appendonly yes >/dev/null
for _ in $(seq 600); do
    info="$(rcli info persistence)"
    grep -q '^aof_enabled:1' <<<"$info" && grep -q '^aof_rewrite_in_progress:0' <<<"$info" \
        && grep -q '^aof_rewrite_scheduled:0' <<<"$info" && break
    sleep 0.1
done
fault_status=0

# fault NAME ACTION: sessions made before, then load + probe, ACTION (which
# sets fault_at and back_at), then verification; one result line.
fault() {
    local name="$1" action="$2" sessions probe_pid out
    BASE="http://127.0.0.1:$lb_spindle" node bench/scale/faults.mjs sessions 20 >"$work/$name-sessions.json"
    local cookie topic="fault-$name-$RANDOM"
    cookie="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).cookies[0])' "$work/$name-sessions.json")"
    load_start "$name" "$lb_spindle" "$(first_cookie "$accounts_spindle")"
    BASE="http://127.0.0.1:$lb_spindle" COOKIE="$cookie" TOPIC="$topic" OUT="$work/$name-probe.jsonl" \
        node bench/scale/faults.mjs probe &
    probe_pid=$!
    pids+=("$probe_pid")
    sleep 3
    "$action"
    sleep 5
    kill -TERM "$probe_pid"; wait "$probe_pid" || true
    load_stop "$name"
    if ! out="$(BASE="http://127.0.0.1:$lb_spindle" COOKIE="$cookie" TOPIC="$topic" OUT="$work/$name-probe.jsonl" \
        SESSIONS="$work/$name-sessions.json" FAULT_AT="$fault_at" BACK_AT="$back_at" node bench/scale/faults.mjs verify)"; then
        fault_status=1
    fi
    echo "  $name: $out"
    echo "  $name: load meanwhile: $load_reqs requests, $load_non2xx non-2xx, $load_errors socket errors; down for $(( back_at - fault_at )) ms; ready again ${ready_ms} ms after the restart"
    emit "{\"kind\":\"fault\",\"fault\":\"$name\",\"down_ms\":$(( back_at - fault_at )),\"ready_ms\":$ready_ms,\"result\":${out:-null},\"load\":{\"requests\":$load_reqs,\"non2xx\":$load_non2xx,\"socket_errors\":$load_errors}}"
}

restart_redis() {
    fault_at="$(date +%s%3N)"
    rcli shutdown >/dev/null 2>&1 || true     # with appendonly: fsyncs the AOF, then exits
    wait "$redis_pid" 2>/dev/null || true
    sleep "${REDIS_DOWN:-2}"
    back_at="$(date +%s%3N)"
    start_redis --appendonly yes
    ready_ms=$(( $(date +%s%3N) - back_at ))
}
kill_host() {
    local victim=$(( hosts > 1 ? 2 : 1 ))
    fault_at="$(date +%s%3N)"
    kill -9 "${runner_pid[$victim]}"
    wait "${runner_pid[$victim]}" 2>/dev/null || true
    sleep "${HOST_DOWN:-3}"
    back_at="$(date +%s%3N)"
    start_runner "$victim"
    wait_http "http://127.0.0.1:${runner_port[$victim]}/healthz" "runner $victim (restarted)"
    ready_ms=$(( $(date +%s%3N) - back_at ))
}
fault redis_restart restart_redis
fault host_kill kill_host

# --- the report ------------------------------------------------------------------------

emit "$(node -e '
    const os = require("os"), { execSync } = require("child_process");
    const sh = (c) => { try { return execSync(c, { encoding: "utf8" }).trim(); } catch { return "?"; } };
    console.log(JSON.stringify({ kind: "meta",
        date: new Date().toISOString(), cpus: os.cpus().length, cpu: os.cpus()[0]?.model?.trim(),
        memory_gib: (os.totalmem() / 2 ** 30).toFixed(1), kernel: `${os.type()} ${os.release()}`,
        loadavg: os.loadavg().map((x) => x.toFixed(2)).join(" "),
        redis: sh("redis-server --version").split(" ")[2], nginx: sh("nginx -v 2>&1").split("/")[1],
        node: process.version, postgres: sh("ls /usr/lib/postgresql | sort -V | tail -n 1"),
        hosts: +process.argv[1], node_workers: +process.argv[2], with_node: process.argv[3] === "1",
        wrk: `wrk -t${process.argv[4]} -c${process.argv[5]} -d${process.argv[6]} (after ${process.argv[7]} of warm-up)`,
        api_rate_limit: process.argv[8] }));' \
    "$hosts" "$node_workers" "$with_node" "$threads" "$conns" "$duration" "$warmup" "$api_rate_limit")"
mkdir -p "$results_dir"
stamp="$(date -u +%F)"
node bench/scale/report.mjs "$results" "$results_dir/$stamp.md" "$results_dir/$stamp.svg"
cp "$results" "$results_dir/$stamp.jsonl"
echo "wrote $results_dir/$stamp.md, $results_dir/$stamp.svg and $results_dir/$stamp.jsonl"
[ "$spindle_check_status" = 0 ] && [ "$fault_status" = 0 ]
