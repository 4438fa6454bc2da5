#!/usr/bin/env bash
# Runs the @upstash/redis conformance suite against spindle-rest-gateway:
# a throwaway redis-server (free port, no persistence), the gateway built in
# release mode on a free port with a random token, then `node --test`.
# Everything started here is stopped on exit, pass or fail.
#
# Env: CARGO_TARGET_DIR (where cargo builds; default <repo>/target),
#      REDIS_SERVER (redis-server binary; default from PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
gateway_bin="$target_dir/release/spindle-rest-gateway"
redis_bin="${REDIS_SERVER:-redis-server}"

workdir="$(mktemp -d)"
redis_pid=""
gateway_pid=""
cleanup() {
  local status=$?
  for pid in "$gateway_pid" "$redis_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# --- Redis -------------------------------------------------------------------
redis_port="$(free_port)"
"$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$workdir" --logfile "$workdir/redis.log" &
redis_pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then break; fi
  kill -0 "$redis_pid" 2>/dev/null || { echo "redis-server exited:" >&2; cat "$workdir/redis.log" >&2; exit 1; }
  sleep 0.05
done

# --- Gateway -----------------------------------------------------------------
(cd "$repo" && . scripts/lib.sh && build_all >&2)
token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
SPINDLE_REST_TOKEN="$token" "$gateway_bin" --listen 127.0.0.1:0 \
  --redis "redis://127.0.0.1:$redis_port" >"$workdir/gateway.out" &
gateway_pid=$!
gateway_url=""
for _ in $(seq 1 200); do
  gateway_url="$(sed -n 's/^listening on \(http:\/\/.*\)$/\1/p' "$workdir/gateway.out")"
  [ -n "$gateway_url" ] && break
  kill -0 "$gateway_pid" 2>/dev/null || { echo "gateway exited before listening" >&2; exit 1; }
  sleep 0.05
done
[ -n "$gateway_url" ] || { echo "gateway did not report its address" >&2; exit 1; }
echo "redis on port $redis_port, gateway at $gateway_url"

# --- Node suite --------------------------------------------------------------
cd "$here"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
UPSTASH_REDIS_REST_URL="$gateway_url" UPSTASH_REDIS_REST_TOKEN="$token" \
  UPSTASH_DISABLE_TELEMETRY=1 node --test
