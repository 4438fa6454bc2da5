#!/usr/bin/env bash
# Throughput of GET routes through spindle-runner, over Spin TCP and over
# REST (through spindle-rest-gateway), with Redis commands per request.
#
#   bench/transports.sh [route ...]        default: /healthz
#   DURATION=10s CONNECTIONS=50 bench/transports.sh /healthz /api/ping
#
# Everything runs on loopback: a throwaway redis-server on a free port, the
# gateway, the runner, and wrk (Debian's package; installed if missing).
# Other app variables come from the environment, as for the runner itself:
#   SPIN_VARIABLE_API_RATE_LIMIT="fixed_window 1000000000/60s" bench/transports.sh /api/ping
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_toolchain
ensure_redis
command -v wrk >/dev/null || apt_install wrk
build_all >/dev/null 2>&1 || build_all

routes=("$@")
[ ${#routes[@]} -gt 0 ] || routes=(/healthz)
duration="${DURATION:-10s}"
conns="${CONNECTIONS:-50}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done

gport=$(free_port)
token=bench-$RANDOM$RANDOM
target/native/spindle-rest-gateway --listen "127.0.0.1:$gport" --redis "redis://127.0.0.1:$rport" --token "$token" >/dev/null &
pids+=($!)

commands() { redis-cli -p "$rport" info commandstats | awk -F'[=,]' '/^cmdstat_/ && !/^cmdstat_info:/ {s+=$2} END {print s+0}'; }

run() { # $1 transport
    local port url origin token_var=()
    port=$(free_port)
    if [ "$1" = tcp ]; then url="redis://127.0.0.1:$rport"; else url="http://127.0.0.1:$gport"; token_var=(--variable "redis_token=$token"); fi
    target/native/spindle-runner up -f spin.toml --listen "127.0.0.1:$port" \
        --variable "redis_url=$url" --variable "redis_origin=$url" ${token_var[@]+"${token_var[@]}"} \
        >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    for route in "${routes[@]}"; do
        curl -s -o /dev/null "http://127.0.0.1:$port$route"   # warm-up
        local before after out rps reqs p50 p99
        before=$(commands)
        out=$(wrk -t2 -c"$conns" -d"$duration" --latency "http://127.0.0.1:$port$route")
        after=$(commands)
        rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
        p50=$(awk '$1=="50%" {print $2}' <<<"$out")
        p99=$(awk '$1=="99%" {print $2}' <<<"$out")
        non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
        printf '| %-4s | %-14s | %10s | %8s | %8s | %8s | %s |\n' "$1" "$route" "$rps" "$p50" "$p99" \
            "$(awk -v a="$before" -v b="$after" -v n="$reqs" 'BEGIN {printf "%.2f", (b-a)/n}')" "${non2xx:-0}"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "wrk -t2 -c$conns -d$duration, $(nproc) cores"
echo "| transport | route | req/s | p50 | p99 | Redis cmds/req | non-2xx |"
echo "|---|---|---|---|---|---|---|"
run tcp
run rest
