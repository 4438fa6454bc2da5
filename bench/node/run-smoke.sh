#!/usr/bin/env bash
# Smoke test of the Node.js baseline: a throwaway redis-server on a free
# port, `npm ci` (from the committed lock file, when node_modules is missing
# or older than it), then `node --test smoke.test.mjs`, which starts the
# cluster itself. Prints node's TAP summary (# pass N / # fail N); exits
# non-zero on failure. Env: REDIS_SERVER (redis-server binary), NPM_CI=1 to
# force a clean `npm ci`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
redis_bin="${REDIS_SERVER:-redis-server}"

workdir="$(mktemp -d)"
redis_pid=
cleanup() {
  local status=$?
  if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  [ "$status" = 0 ] || { [ -f "$workdir/redis.log" ] && tail -n 20 "$workdir/redis.log" >&2; }
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

if [ "${NPM_CI:-0}" = 1 ] || [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

port="$(free_port)"
"$redis_bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$workdir" --logfile "$workdir/redis.log" &
redis_pid=$!
for _ in $(seq 1 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$redis_pid" 2>/dev/null || { echo "redis-server exited" >&2; exit 1; }
  sleep 0.05
done

REDIS_URL="redis://127.0.0.1:$port" node --test smoke.test.mjs
