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

ensure_node_modules() {
    # $1: a folder with package.json and package-lock.json
    if [ ! -d "$1/node_modules" ]; then
        log "npm ci in $1"
        (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
    fi
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
