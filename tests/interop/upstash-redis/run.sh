#!/usr/bin/env bash
# Runs the @upstash/redis conformance suite against spindle-rest-gateway:
# a throwaway redis-server (free port, no persistence), the gateway built in
# release mode on a free port with a random token, then `node --test`.
# Everything started here is stopped on exit, pass or fail (../lib.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../lib.sh"

build
start_redis
token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
SPINDLE_REST_TOKEN="$token" "$gateway_bin" --listen 127.0.0.1:0 --redis "$redis_url" >"$workdir/gateway.out" &
pids+=($!)
gateway_url=""
for _ in $(seq 1 200); do
  gateway_url="$(sed -n 's/^listening on \(http:\/\/.*\)$/\1/p' "$workdir/gateway.out")"
  [ -n "$gateway_url" ] && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "gateway exited before listening" >&2; exit 1; }
  sleep 0.05
done
[ -n "$gateway_url" ] || { echo "gateway did not report its address" >&2; exit 1; }
echo "redis on port $redis_port, gateway at $gateway_url"

npm_ci
UPSTASH_REDIS_REST_URL="$gateway_url" UPSTASH_REDIS_REST_TOKEN="$token" \
  UPSTASH_DISABLE_TELEMETRY=1 node --test
