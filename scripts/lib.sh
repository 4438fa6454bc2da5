# Shared set-up for scripts/up.sh and scripts/test.sh: install what a fresh
# Debian machine of this kind lacks, idempotently. Sourced, not run.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    # $@: packages; installs only the missing ones.
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_toolchain() {
    command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        log "adding the wasm32-wasip2 target"
        rustup target add wasm32-wasip2
    fi
}

ensure_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || apt_install redis-server redis-tools
}

ensure_postgres() {
    # The Postgres suites run their own throwaway servers from Debian's
    # binaries (/usr/lib/postgresql/<ver>/bin) on free ports.
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
    apt_install postgresql postgresql-client
    # The package creates a "main" cluster and, where services run, starts it
    # on 5432. The tests do not use it: stop it and keep it from auto-starting.
    local conf ver
    for conf in /etc/postgresql/*/main/start.conf; do
        [ -f "$conf" ] || continue
        ver="$(basename "$(dirname "$(dirname "$conf")")")"
        as_root pg_ctlcluster "$ver" main stop >/dev/null 2>&1 || true
        echo manual | as_root tee "$conf" >/dev/null
    done
}

# The Spin CLI: SPIN_BIN, else `spin` on PATH, else ../shared/bin/spin next
# to the repository. Prints its path; fails when there is none.
find_spin() {
    local top
    top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    # SPIN_BIN as an absolute path: the suites run from their own folders,
    # where a relative one (../shared/bin/spin) names nothing.
    if [ -n "${SPIN_BIN:-}" ]; then
        case "$SPIN_BIN" in /*) echo "$SPIN_BIN" ;; *) echo "$(cd "$(dirname "$SPIN_BIN")" && pwd)/$(basename "$SPIN_BIN")" ;; esac
    elif command -v spin >/dev/null; then command -v spin
    elif [ -x "$top/../shared/bin/spin" ]; then echo "$(cd "$top/.." && pwd)/shared/bin/spin"
    else return 1
    fi
}

# What the test command's suites drive or load with: wrk, nginx and curl
# (the scale-out smoke), Python's venv (schemathesis), Debian's chromium
# (the browser test).
ensure_test_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v curl >/dev/null || missing+=(curl)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv python3-pip)
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
    command -v wasm-tools >/dev/null || [ -x "$HOME/.cargo/bin/wasm-tools" ] || { log "installing wasm-tools (cargo install, a few minutes)"; cargo install --locked wasm-tools@1.263.0; }
}

# The native packages, built and tested together: one cargo invocation with
# one feature resolution, so wasmtime and friends compile once, not once per
# different package selection.
NATIVE_PACKAGES=(-p spindle -p spindle-runner -p spindle-rest-gateway -p spindle-e2e)

build_all() {
    log "building the components (wasm32-wasip2)"
    cargo build --target wasm32-wasip2 --release
    log "building the runner, the REST gateway and the tests"
    cargo build --profile native --all-targets "${NATIVE_PACKAGES[@]}"
}

# Every test executable of the native packages, built as build_all built
# them (so nothing recompiles), one per line: "<dir> <path>", where <dir> is
# the package's folder (cargo test runs each there; tests/ holds the e2e
# suites).
test_binaries() {
    cargo test --profile native --tests --no-run --message-format=json "${NATIVE_PACKAGES[@]}" 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["manifest_path"].rsplit("/", 1)[0], m["executable"])'
}
