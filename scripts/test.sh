#!/usr/bin/env bash
# Runs every test: unit tests, the end-to-end suites (real redis-server, the
# real .wasm through spindle-runner, both transports) and the interop suites
# against the real npm packages. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_toolchain
ensure_redis
ensure_postgres
build_all

out="$(mktemp)"
trap 'rm -f "$out"' EXIT

log "interop: @upstash/redis against the REST gateway"
tests/interop/upstash-redis/run.sh 2>&1 | tee -a "$out"

log "interop: express-session + connect-redis against the auth component"
tests/interop/express-session/run.sh 2>&1 | tee -a "$out"

log "interop: @upstash/ratelimit and the api component sharing one keyspace"
tests/interop/upstash-ratelimit/run.sh 2>&1 | tee -a "$out"

log "interop: Socket.IO 4 servers on @socket.io/redis-adapter receiving notify publishes"
tests/interop/socketio/run.sh 2>&1 | tee -a "$out"

log "unit and end-to-end tests (cargo test)"
cargo test --release --tests --no-fail-fast "${NATIVE_PACKAGES[@]}" 2>&1 | tee -a "$out"

# One closing line for the whole run, over every runner above.
passed=$(( $(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$out" | awk '{s+=$4} END {print s+0}') \
         + $(grep -oE '^# pass [0-9]+' "$out" | awk '{s+=$3} END {print s+0}') ))
failed=$(( $(grep -oE '[0-9]+ failed;' "$out" | awk '{s+=$1} END {print s+0}') \
         + $(grep -oE '^# fail [0-9]+' "$out" | awk '{s+=$3} END {print s+0}') ))
echo "total: $passed passed, $failed failed"
[ "$failed" = 0 ]
