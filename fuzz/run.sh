#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 10 s each) and
# prints one TAP-style line per target, `# pass 1` or `# fail 1`, which
# scripts/test.sh counts. Exits non-zero when any target crashed; the
# crashing input is left in fuzz/artifacts/<target>/ (replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>`).
#
#   fuzz/run.sh [seconds-per-target] [target...]
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer=address, …);
# RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain accept them.
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-10}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(cookie json_body topic_cursor ratelimit_policy rest_reply resp_reply msgpack)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --version 0.13.2 >&2 || exit 1
fi

echo "==> building the fuzz targets" >&2
cargo fuzz build >&2 || { echo "# fail ${#targets[@]}"; exit 1; }

failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    log="$(mktemp)"
    # One process per target (no -jobs/-workers): the machine is shared.
    # Seeds in seeds/<target> are read, new inputs go to corpus/<target>.
    cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    runs="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)"
    if [ "$rc" = 0 ]; then
        echo "fuzz $t: ${runs:-?} inputs in ${secs}s, no failure"
        echo "# pass 1"
    else
        failed=$((failed + 1))
        echo "fuzz $t: FAILED after ${runs:-?} inputs (exit $rc)"
        grep -E "panicked at|assertion|left:|right:|SUMMARY|ERROR: libFuzzer|Test unit written|Base64:" "$log" | head -20 | sed 's/^/    /'
        echo "# fail 1"
    fi
    rm -f "$log"
done
[ "$failed" = 0 ]
