#!/usr/bin/env bash
# Runs the Socket.IO interop suite: a throwaway redis-server (free port, no
# persistence), spindle-runner serving the real spin.toml against it (with an
# API key for publishing), then `node --test`, which starts two Socket.IO 4
# servers on @socket.io/redis-adapter over that Redis, connects clients to a
# room on each (websocket transport), publishes through Spindle, and compares
# Spindle's packet byte for byte with @socket.io/redis-emitter's.
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
runner_pid=""
cleanup() {
  local status=$?
  for pid in "$runner_pid" "$redis_pid"; do
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

# --- Build (no-ops after scripts/test.sh's build) ----------------------------
(cd "$repo" && . scripts/lib.sh && build_all >&2)

# --- Redis -------------------------------------------------------------------
redis_port="$(free_port)"
"$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$workdir" --logfile "$workdir/redis.log" &
redis_pid=$!
wait_port "$redis_port" "$redis_pid" redis-server
redis_url="redis://127.0.0.1:$redis_port"

# --- Spindle -----------------------------------------------------------------
api_key="interop-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
api_key_digest="$(printf '%s' "$api_key" | sha256sum | cut -d' ' -f1)"
runner_port="$(free_port)"
"$runner_bin" up -f "$repo/spin.toml" --listen "127.0.0.1:$runner_port" \
  --variable "redis_url=$redis_url" --variable "redis_origin=$redis_url" \
  --variable "redis_trigger_url=$redis_url" --variable "api_keys=$api_key_digest" \
  >"$workdir/runner.out" 2>"$workdir/runner.log" &
runner_pid=$!
wait_port "$runner_port" "$runner_pid" spindle-runner
echo "redis on port $redis_port, spindle on http://127.0.0.1:$runner_port"

# --- Node suite ----------------------------------------------------------------
cd "$here"
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
SPINDLE_URL="http://127.0.0.1:$runner_port" REDIS_URL="$redis_url" SPINDLE_API_KEY="$api_key" \
  node --test
