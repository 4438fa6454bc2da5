#!/usr/bin/env bash
# Runs the @upstash/redis conformance suite against spindle-rest-gateway:
# a throwaway redis-server (free port, no persistence), the gateway on a
# free port with a random token, then `node --test`.
# Everything started here is stopped on exit, pass or fail (scripts/harness.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../../scripts/harness.sh"

build
start_redis
start_gateway
echo "redis on port $redis_port, gateway at $gateway_url"

cd "$here"
npm_ci
UPSTASH_REDIS_REST_URL="$gateway_url" UPSTASH_REDIS_REST_TOKEN="$gateway_token" \
  UPSTASH_DISABLE_TELEMETRY=1 node --test
