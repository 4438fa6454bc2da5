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

log "bench: scale-out smoke (4 hosts behind nginx, correctness under load, no timing)"
SKIP_BUILD=1 bench/scale/run.sh --smoke 2>&1 | tee -a "$out"

log "schemathesis: openapi.json against the app (anonymous and logged in, TCP and REST)"
SKIP_BUILD=1 tests/schemathesis/run.sh 2>&1 | tee -a "$out"

# The property-based fuzz tests (crates/spindle/tests/fuzz_*.rs) run inside
# the cargo test below, this many cases per property (~15 s in all); the
# coverage-guided cargo-fuzz targets run here, 10 s each (fuzz/README.md).
export PROPTEST_CASES=4096
log "fuzz: cargo-fuzz targets, 10 s each"
fuzz/run.sh 10 2>&1 | tee -a "$out"

log "browser: the console at / in Debian's chromium (playwright-core); screenshots in target/browser-artifacts/"
tests/browser/run.sh 2>&1 | tee -a "$out"

log "unit and end-to-end tests (cargo test)"
cargo test --profile native --tests --no-fail-fast "${NATIVE_PACKAGES[@]}" 2>&1 | tee -a "$out"

# One closing line for the whole run, over every runner above.
passed=$(( $(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$out" | awk '{s+=$4} END {print s+0}') \
         + $(grep -oE '^# pass [0-9]+' "$out" | awk '{s+=$3} END {print s+0}') ))
failed=$(( $(grep -oE '[0-9]+ failed;' "$out" | awk '{s+=$1} END {print s+0}') \
         + $(grep -oE '^# fail [0-9]+' "$out" | awk '{s+=$3} END {print s+0}') ))
echo "total: $passed passed, $failed failed"
[ "$failed" = 0 ]
