#!/usr/bin/env bash
# Runs every test: unit tests; the end-to-end suites (real redis-server,
# the real .wasm, both transports) on real Spin and on spindle-runner, and
# their REST tests again on a real Redis Cluster; the
# interop suites with the real npm packages, schemathesis, the browser test
# and the scale-out smoke on both hosts; the fuzz targets. Installs what is
# missing first.
#
# Spin is found as SPIN_BIN, else `spin` on PATH, else ../shared/bin/spin.
# Without it, one line says so and only the runner's half runs: nothing is
# reported as passed on Spin that did not run there.
#
#   scripts/test.sh                  # everything
#   HOSTS=spin scripts/test.sh       # one host's half (spin or runner)
#   SPINDLE_REDIS=cluster scripts/test.sh   # the e2e suites' REST backends
#                                    # on a real Redis Cluster (docs/testing.md)
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_toolchain
ensure_redis
ensure_postgres
ensure_test_tools
build_all || exit 1

if spin="$(find_spin)"; then
    export SPIN_BIN="$spin" # absolute: every suite, from whatever folder it runs in
    read -r -a hosts <<<"${HOSTS:-spin runner}"
    log "real Spin: $spin ($("$spin" --version))"
elif [ -n "${HOSTS:-}" ] && [[ " $HOSTS " == *" spin "* ]]; then
    echo "HOSTS asks for spin, but there is no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin)" >&2
    exit 1
else
    hosts=(runner)
    echo "NOTE: no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin): the Spin half of the suites did not run; only spindle-runner was tested"
fi

[ "${SPINDLE_REDIS:-node}" = cluster ] && log "SPINDLE_REDIS=cluster: each e2e suite's REST backend is a 3-master, 3-replica Redis Cluster"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
failed_steps=()

# step HOST NAME COMMAND...: runs one suite, its output to the console and
# to $out/HOST.log (which the totals count), and goes on when it fails.
step() {
    local host="$1" name="$2"
    shift 2
    log "[$host] $name"
    if [ -x "$1" ]; then # a script: bounded, as run_tests bounds each suite
        timeout --kill-after=10 "${STEP_TIMEOUT:-1200}" "$@"
    else
        "$@"
    fi 2>&1 | tee -a "$out/$host.log"
    local status=${PIPESTATUS[0]}
    [ "$status" = 0 ] || failed_steps+=("[$host] $name (exit $status)")
}

# The test executables cargo built: the e2e suites (tests/) run once per
# host, the others once. As `cargo test` would, each runs in its package's
# folder; unlike it, a failing one does not stop the rest.
run_tests() { # e2e|unit
    local dir exe kind status=0
    while read -r dir exe; do
        kind=unit
        [ "$dir" = "$PWD/tests" ] && kind=e2e
        [ "$kind" = "$1" ] || continue
        # runner_postgres tests the runner's own spin:postgres host with a
        # script that Spin 4.0.2's host hangs on (a statement returning no
        # rows never answers; docs/testing.md). The users suites cover
        # PostgreSQL on both hosts.
        if [ "${SPINDLE_HOST:-}" = spin ] && [[ "$(basename "$exe")" == runner_postgres-* ]]; then
            echo "     Not on Spin: $(basename "$exe") (the runner's pg3 host only)"
            continue
        fi
        echo "     Running $(basename "$exe")"
        # A hung suite fails on its own, after SUITE_TIMEOUT s, instead of
        # holding up every suite after it (and CI's limit).
        (cd "$dir" && timeout --kill-after=10 "${SUITE_TIMEOUT:-900}" "$exe") || status=1
    done < <(test_binaries)
    return "$status"
}

# The REST tests of the e2e suites again, on a real Redis Cluster
# (SPINDLE_REDIS=cluster: each REST backend a fresh 3-master, 3-replica
# cluster behind the gateway; docs/testing.md): the tests named `rest`
# (every both_transports! test's `::rest` half, the `_over_rest` ones) and
# golden's, in the suites that start a Backend.
run_cluster_tests() {
    local dir exe name status=0
    while read -r dir exe; do
        [ "$dir" = "$PWD/tests" ] || continue
        name="$(basename "$exe")"
        grep -qE 'both_transports!|Backend::start\(Transport::Rest\)' "tests/tests/${name%-*}.rs" 2>/dev/null || continue
        echo "     Running $name (REST on a Redis Cluster)"
        (cd "$dir" && SPINDLE_REDIS=cluster timeout --kill-after=10 "${SUITE_TIMEOUT:-900}" "$exe" rest every_script_gives_the_same_reply) || status=1
    done < <(test_binaries)
    return "$status"
}

# Host-independent: the library's, the runner's and the gateway's own tests
# (property-based fuzz tests included, this many cases per property), and the
# coverage-guided cargo-fuzz targets, 10 s each (fuzz/README.md).
export PROPTEST_CASES=4096
step unit "unit tests of the library, the runner and the gateway" run_tests unit
step unit "fuzz: cargo-fuzz targets, 10 s each" fuzz/run.sh 10
step unit "deploy: the SpinKube manifests against the SpinApp CRD's schema" deploy/spinkube/check.sh
step unit "interop: @upstash/redis against the REST gateway" tests/interop/upstash-redis/run.sh

for host in "${hosts[@]}"; do
    export SPINDLE_HOST="$host" SKIP_BUILD=1
    step "$host" "end-to-end suites (tests/tests/*.rs)" run_tests e2e
    [ "${SPINDLE_REDIS:-node}" = cluster ] ||
        step "$host" "end-to-end suites, their REST tests on a Redis Cluster" run_cluster_tests
    step "$host" "interop: express-session + connect-redis and the auth component" tests/interop/express-session/run.sh
    step "$host" "interop: @upstash/ratelimit and the api component in one keyspace" tests/interop/upstash-ratelimit/run.sh
    step "$host" "interop: Socket.IO servers receiving notify publishes" tests/interop/socketio/run.sh
    step "$host" "schemathesis: openapi.json against the app (anonymous and logged in, TCP and REST)" tests/schemathesis/run.sh
    step "$host" "browser: the console in Debian's chromium (screenshots in target/browser-artifacts/)" tests/browser/run.sh
    # bench/scale starts runner hosts only (docs/testing.md): once is enough.
    [ "$host" = runner ] && step "$host" "bench: scale-out smoke (4 runner hosts behind nginx, correctness under load, no timing)" bench/scale/run.sh --smoke
done

# One closing line: every runner above reports `test result: … N passed; M
# failed` (cargo) or `# pass N` / `# fail M` (the shell suites).
count() { # FILE: "passed failed"
    local p f
    p=$(( $(grep -oE 'test result: [a-zA-Z]+\. [0-9]+ passed' "$1" | awk '{s+=$4} END {print s+0}') \
        + $(grep -oE '^# pass [0-9]+' "$1" | awk '{s+=$3} END {print s+0}') ))
    f=$(( $(grep -oE '[0-9]+ failed;' "$1" | awk '{s+=$1} END {print s+0}') \
        + $(grep -oE '^# fail [0-9]+' "$1" | awk '{s+=$3} END {print s+0}') ))
    echo "$p $f"
}
passed=0 failed=0 parts=()
for f in "$out"/*.log; do
    read -r p q < <(count "$f")
    passed=$((passed + p)) failed=$((failed + q))
    parts+=("$(basename "$f" .log): $p passed, $q failed")
done
for s in "${failed_steps[@]}"; do echo "FAILED: $s"; done
echo "total: $passed passed, $failed failed ($(IFS=';'; echo "${parts[*]}" | sed 's/;/; /g'))"
[ "$failed" = 0 ] && [ ${#failed_steps[@]} = 0 ]
