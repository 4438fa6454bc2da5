#!/usr/bin/env bash
# Runs the @upstash/redis conformance suite against spindle-rest-gateway,
# in front of a single redis-server and/or in front of a 3-master,
# 3-replica Redis Cluster (free ports, no persistence), each gateway with a
# random token, then `node --test`.
# Everything started here is stopped on exit, pass or fail (scripts/harness.sh).
#
#   run.sh [single|cluster|all]     (default: all)
#
# Env: SKIP_BUILD=1 uses the gateway binary already built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../../scripts/harness.sh"

mode="${1:-all}"
case "$mode" in
  single | cluster | all) ;;
  *) echo "usage: $0 [single|cluster|all]" >&2; exit 2 ;;
esac

build
cd "$here"
npm_ci

suite() {
  UPSTASH_REDIS_REST_URL="$gateway_url" UPSTASH_REDIS_REST_TOKEN="$gateway_token" \
    UPSTASH_DISABLE_TELEMETRY=1 node --test
}

if [ "$mode" != cluster ]; then
  start_redis
  start_gateway
  echo "single: redis on port $redis_port, gateway at $gateway_url"
  suite
fi
if [ "$mode" != single ]; then
  start_cluster
  start_gateway --cluster "${cluster_seeds[@]}"
  echo "cluster: ports ${cluster_ports[*]}, gateway at $gateway_url"
  suite
fi
