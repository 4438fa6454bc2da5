#!/usr/bin/env bash
# Runs the @upstash/ratelimit interop suite: a throwaway redis-server (free
# port, no persistence), four the app host (SPINDLE_HOST) processes serving the real
# spin.toml against it (one per rate-limit policy), then `node --test`, where
# the real @upstash/ratelimit (over node-redis) and Spindle share one keyspace;
# then the same on a real Redis Cluster through the gateway (cluster.test.mjs).
# Everything started here is stopped on exit, pass or fail (scripts/harness.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../../scripts/harness.sh"

build
start_redis
start_app sliding --variable "api_rate_limit=sliding_window 10/1d" --variable rate_limit_prefix=interop-sliding
start_app fixed --variable "api_rate_limit=fixed_window 10/1d" --variable rate_limit_prefix=interop-fixed
start_app token --variable "api_rate_limit=token_bucket 5/1d burst 10" --variable rate_limit_prefix=interop-token
start_app cluster --variable "api_rate_limit=sliding_window 10/1d" --variable rate_limit_prefix=interop-cluster \
  --variable rate_limit_keys=cluster
echo "redis on port $redis_port; hosts at $url_sliding $url_fixed $url_token $url_cluster"

cd "$here"
npm_ci
REDIS_URL="$redis_url" SPINDLE_SLIDING="$url_sliding" SPINDLE_FIXED="$url_fixed" \
  SPINDLE_TOKEN="$url_token" SPINDLE_CLUSTER="$url_cluster" \
  UPSTASH_DISABLE_TELEMETRY=1 node --test ratelimit.test.mjs

# On a real 3-master, 3-replica cluster: both sides over REST through the
# gateway in cluster mode.
start_cluster
start_gateway --cluster "${cluster_seeds[@]}"
start_app on_cluster rest --variable "api_rate_limit=sliding_window 10/1d" --variable rate_limit_prefix=interop-cluster \
  --variable rate_limit_keys=cluster
echo "cluster: ports ${cluster_ports[*]}, gateway at $gateway_url, spindle at $url_on_cluster"
GATEWAY_URL="$gateway_url" GATEWAY_TOKEN="$gateway_token" SPINDLE_CLUSTER="$url_on_cluster" \
  UPSTASH_DISABLE_TELEMETRY=1 node --test cluster.test.mjs
