#!/usr/bin/env bash
# Runs the @upstash/redis conformance suite against spindle-rest-gateway,
# in front of a single redis-server and/or in front of a 3-master,
# 3-replica Redis Cluster (free ports, no persistence), each gateway with a
# random token, then `node --test`.
# Everything started here is stopped on exit, pass or fail (../lib.sh).
#
#   run.sh [single|cluster|all]     (default: all)
#
# Env: SKIP_BUILD=1 uses the gateway binary already built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../lib.sh"

mode="${1:-all}"
case "$mode" in
  single | cluster | all) ;;
  *) echo "usage: $0 [single|cluster|all]" >&2; exit 2 ;;
esac

[ "${SKIP_BUILD:-}" = 1 ] || build
npm_ci

# start_gateway NAME ARGS...: the gateway on a free port; sets gateway_url
# and token. Its JSON log goes to $workdir/gateway-NAME.log.
start_gateway() {
  local name="$1"
  shift
  token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  SPINDLE_REST_TOKEN="$token" "$gateway_bin" --listen 127.0.0.1:0 "$@" \
    >"$workdir/gateway-$name.out" 2>"$workdir/gateway-$name.log" &
  pids+=($!)
  gateway_url=""
  for _ in $(seq 1 200); do
    gateway_url="$(sed -n 's/^listening on \(http:\/\/.*\)$/\1/p' "$workdir/gateway-$name.out")"
    [ -n "$gateway_url" ] && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "gateway exited before listening" >&2; exit 1; }
    sleep 0.05
  done
  [ -n "$gateway_url" ] || { echo "gateway did not report its address" >&2; exit 1; }
}

suite() {
  UPSTASH_REDIS_REST_URL="$gateway_url" UPSTASH_REDIS_REST_TOKEN="$token" \
    UPSTASH_DISABLE_TELEMETRY=1 node --test
}

# Six cluster-enabled redis-servers, joined as 3 masters with a replica
# each by redis-cli; waits until every node reports cluster_state:ok.
# Sets cluster_seeds (--redis flags for the gateway).
start_cluster() {
  local ports=() port bus i
  for i in 1 2 3 4 5 6; do
    port="$(free_port)"
    bus="$(free_port)"
    "$redis_bin" --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file "$workdir/nodes-$port.conf" --cluster-node-timeout 1000 \
      --save "" --appendonly no --dir "$workdir" --logfile "$workdir/cluster-$port.log" &
    pids+=($!)
    wait_port "$port" "$!" "cluster node $i"
    ports+=("$port")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${ports[@]}") \
    --cluster-replicas 1 --cluster-yes >"$workdir/cluster-create.out"
  for port in "${ports[@]}"; do
    for _ in $(seq 1 300); do
      redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok' && break
      sleep 0.1
    done
    redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok' ||
      { echo "cluster node $port is not ok" >&2; exit 1; }
  done
  cluster_seeds=()
  for port in "${ports[@]:0:2}"; do cluster_seeds+=(--redis "redis://127.0.0.1:$port"); done
  echo "cluster on ports ${ports[*]}"
}

if [ "$mode" != cluster ]; then
  start_redis
  start_gateway single --redis "$redis_url"
  echo "single: redis on port $redis_port, gateway at $gateway_url"
  suite
fi
if [ "$mode" != single ]; then
  start_cluster
  start_gateway cluster --cluster "${cluster_seeds[@]}"
  echo "cluster: gateway at $gateway_url"
  suite
fi
