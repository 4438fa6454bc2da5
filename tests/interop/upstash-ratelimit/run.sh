#!/usr/bin/env bash
# Runs the @upstash/ratelimit interop suite: a throwaway redis-server (free
# port, no persistence), four spindle-runner processes serving the real
# spin.toml against it (one per rate-limit policy), then `node --test`, where
# the real @upstash/ratelimit (over node-redis) and Spindle share one keyspace.
# Everything started here is stopped on exit, pass or fail.
#
# Env: CARGO_TARGET_DIR (where cargo builds; default <repo>/target),
#      REDIS_SERVER (redis-server binary; default from PATH).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
runner_bin="$target_dir/release/spindle-runner"
redis_bin="${REDIS_SERVER:-redis-server}"

workdir="$(mktemp -d)"
redis_pid=""
runner_pids=()
cleanup() {
  local status=$?
  for pid in "${runner_pids[@]}" "$redis_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" != 0 ]; then
    for f in "$workdir"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() { # $1 port, $2 pid, $3 what
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening" >&2; exit 1; }
    sleep 0.05
  done
  echo "$3 did not listen on $1" >&2
  exit 1
}

# --- Redis -------------------------------------------------------------------
redis_port="$(free_port)"
"$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$workdir" --logfile "$workdir/redis.log" &
redis_pid=$!
wait_port "$redis_port" "$redis_pid" redis-server
redis_url="redis://127.0.0.1:$redis_port"

# --- Spindle -----------------------------------------------------------------
# The runner loads every component of spin.toml; build what is stale (no-ops
# after scripts/test.sh's build).
(cd "$repo" && . scripts/lib.sh && build_all >&2)

start_runner() { # $1 name, then --variable values
  local name="$1" port
  shift
  port="$(free_port)"
  local args=(up -f "$repo/spin.toml" --listen "127.0.0.1:$port"
    --variable "redis_url=$redis_url" --variable "redis_origin=$redis_url")
  for v in "$@"; do args+=(--variable "$v"); done
  "$runner_bin" "${args[@]}" >"$workdir/$name.log" 2>&1 &
  runner_pids+=($!)
  wait_port "$port" "$!" "runner $name"
  printf -v "url_$name" 'http://127.0.0.1:%s' "$port"
}
start_runner sliding "api_rate_limit=sliding_window 10/1d" rate_limit_prefix=interop-sliding
start_runner fixed "api_rate_limit=fixed_window 10/1d" rate_limit_prefix=interop-fixed
start_runner token "api_rate_limit=token_bucket 5/1d burst 10" rate_limit_prefix=interop-token
start_runner cluster "api_rate_limit=sliding_window 10/1d" rate_limit_prefix=interop-cluster rate_limit_keys=cluster
echo "redis on port $redis_port; runners at $url_sliding $url_fixed $url_token $url_cluster"

# --- Node suite --------------------------------------------------------------
cd "$here"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
REDIS_URL="$redis_url" SPINDLE_SLIDING="$url_sliding" SPINDLE_FIXED="$url_fixed" \
  SPINDLE_TOKEN="$url_token" SPINDLE_CLUSTER="$url_cluster" \
  UPSTASH_DISABLE_TELEMETRY=1 node --test
