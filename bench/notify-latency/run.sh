#!/usr/bin/env bash
# Notify, over TCP and over REST (through spindle-rest-gateway), on the host
# SPINDLE_HOST names (runner, the default, or spin): publish throughput (wrk,
# POST with an API key, publish.lua) and publish-to-poll wake-up latency
# across two hosts (wakeup.mjs).
#
#   bench/notify-latency/run.sh
#   SPINDLE_HOST=spin DURATION=10s CONNECTIONS=50 ITERATIONS=200 bench/notify-latency/run.sh
#
# Everything runs on loopback through scripts/harness.sh: a throwaway
# redis-server, the gateway, two hosts per transport, wrk. The notify rate
# limits are lifted for the run (notify_rate_limit, notify_stream_rate_limit,
# notify_max_streams).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/../../scripts/harness.sh"
cd "$repo"
ensure_toolchain
ensure_redis
command -v wrk >/dev/null || apt_install wrk
[ -n "${SKIP_BUILD:-}" ] || build_all >/dev/null 2>&1 || build_all

duration="${DURATION:-10s}"
conns="${CONNECTIONS:-50}"
iterations="${ITERATIONS:-200}"

start_redis
start_gateway
export API_KEY="bench-$RANDOM$RANDOM"
digest=$(printf %s "$API_KEY" | sha256sum | cut -d' ' -f1)
evalshas() { redis-cli -p "$redis_port" info commandstats | awk -F'[=,]' '/^cmdstat_evalsha:/ {s+=$2} END {print s+0}'; }
vars=(--variable "session_secrets=bench-notify-latency-0123456789" --variable "api_keys=$digest"
    --variable "notify_rate_limit=fixed_window 1000000000/60s"
    --variable "notify_stream_rate_limit=fixed_window 1000000000/60s" --variable "notify_max_streams=1000")

echo "$spindle_host: wrk -t2 -c$conns -d$duration (publish), $iterations publish→poll wake-ups across two hosts, $(nproc) cores"
echo "| transport | publish req/s | publish p50 | publish p99 | EVALSHA/publish | wake-up p50 | wake-up p99 | wake-up max |"
echo "|---|---|---|---|---|---|---|---|"
for transport in tcp rest; do
    start_app "a_$transport" "$transport" "${vars[@]}"
    start_app "b_$transport" "$transport" "${vars[@]}"
    a="url_a_$transport" b="url_b_$transport"
    wait_http "${!a}/healthz" "host a"
    wait_http "${!b}/healthz" "host b"
    # Warm up (loads the script).
    curl -s -o /dev/null -X POST -H 'content-type: application/json' -H "x-api-key: $API_KEY" \
        -d '{"topic":"bench-0","event":"warm"}' "${!a}/notify/publish"
    before=$(evalshas)
    out=$(wrk -t2 -c"$conns" -d"$duration" --latency -s "$here/publish.lua" "${!a}")
    after=$(evalshas)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [ -z "$non2xx" ] || echo "warning: $non2xx non-2xx answers" >&2
    lat=$(PUBLISH_URL="${!a}" POLL_URL="${!b}" node "$here/wakeup.mjs" "$iterations")
    field() { node -e "console.log(JSON.parse(process.argv[1]).$1)" "$lat"; }
    printf '| %s | %s | %s | %s | %s | %s ms | %s ms | %s ms |\n' "$transport" "$rps" "$p50" "$p99" \
        "$(awk -v a="$before" -v b="$after" -v n="$reqs" 'BEGIN {printf "%.2f", (b-a)/n}')" \
        "$(field p50_ms)" "$(field p99_ms)" "$(field max_ms)"
done
