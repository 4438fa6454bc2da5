#!/usr/bin/env bash
# Notify through the runner, over Spin TCP and over REST (through
# spindle-rest-gateway): publish throughput (wrk, POST with an API key, a
# Lua script) and publish-to-poll-wake-up latency across two hosts
# (bench/notify_latency.mjs).
#
#   bench/notify_latency.sh
#   DURATION=10s CONNECTIONS=50 ITERATIONS=200 bench/notify_latency.sh
#
# Everything runs on loopback: a throwaway redis-server, the gateway, two
# runners per transport, wrk (Debian's package; installed if missing).
# The notify rate limits are lifted for the run (notify_rate_limit,
# notify_stream_rate_limit, notify_max_streams).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_toolchain
ensure_redis
command -v wrk >/dev/null || apt_install wrk
build_all >/dev/null 2>&1 || build_all

duration="${DURATION:-10s}"
conns="${CONNECTIONS:-50}"
iterations="${ITERATIONS:-200}"

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

export API_KEY="bench-$RANDOM$RANDOM"
digest=$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)
evalshas() { redis-cli -p "$rport" info commandstats | awk -F'[=,]' '/^cmdstat_evalsha:/ {s+=$2} END {print s+0}'; }

start_runner() { # $1 transport → prints the port
    local port url token_var=()
    port=$(free_port)
    if [ "$1" = tcp ]; then url="redis://127.0.0.1:$rport"; else url="http://127.0.0.1:$gport"; token_var=(--variable "redis_token=$token"); fi
    target/native/spindle-runner up -f spin.toml --listen "127.0.0.1:$port" \
        --variable "redis_url=$url" --variable "redis_origin=$url" ${token_var[@]+"${token_var[@]}"} \
        --variable "redis_trigger_url=redis://127.0.0.1:$rport" --variable "api_keys=$digest" \
        --variable "notify_rate_limit=fixed_window 1000000000/60s" \
        --variable "notify_stream_rate_limit=fixed_window 1000000000/60s" --variable "notify_max_streams=1000" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
    echo "$port"
}

echo "wrk -t2 -c$conns -d$duration (publish), $iterations publish→poll wake-ups across two hosts, $(nproc) cores"
echo "| transport | publish req/s | publish p50 | publish p99 | EVALSHA/publish | wake-up p50 | wake-up p99 | wake-up max |"
echo "|---|---|---|---|---|---|---|---|"
for transport in tcp rest; do
    a=$(start_runner "$transport")
    b=$(start_runner "$transport")
    # Warm up (loads the script, opens pooled connections).
    curl -s -o /dev/null -X POST -H 'content-type: application/json' -H "x-api-key: $API_KEY" \
        -d '{"topic":"bench-0","event":"warm"}' "http://127.0.0.1:$a/notify/publish"
    before=$(evalshas)
    out=$(wrk -t2 -c"$conns" -d"$duration" --latency -s bench/notify_publish.lua "http://127.0.0.1:$a")
    after=$(evalshas)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [ -z "$non2xx" ] || echo "warning: $non2xx non-2xx answers" >&2
    lat=$(PUBLISH_URL="http://127.0.0.1:$a" POLL_URL="http://127.0.0.1:$b" node bench/notify_latency.mjs "$iterations")
    printf '| %s | %s | %s | %s | %s | %s ms | %s ms | %s ms |\n' "$transport" "$rps" "$p50" "$p99" \
        "$(awk -v a="$before" -v b="$after" -v n="$reqs" 'BEGIN {printf "%.2f", (b-a)/n}')" \
        "$(node -e "console.log(JSON.parse(process.argv[1]).p50_ms)" "$lat")" \
        "$(node -e "console.log(JSON.parse(process.argv[1]).p99_ms)" "$lat")" \
        "$(node -e "console.log(JSON.parse(process.argv[1]).max_ms)" "$lat")"
done
