#!/usr/bin/env bash
# Runs the whole app locally on http://127.0.0.1:3000: builds what it runs,
# starts a local redis-server when the configured Redis is the local default
# and nothing answers there, then serves spin.toml (the HTTP app) and
# spin-worker.toml (the webhook worker, restarted whenever it exits, as a
# supervisor would) on real Spin when there is one (SPIN_BIN, spin on PATH,
# ../shared/bin/spin), else on spindle-runner.
#
#   scripts/up.sh                    # RESP over TCP to Redis
#   scripts/up.sh --rest             # the Upstash REST API, through the local gateway
#   scripts/up.sh --listen 127.0.0.1:8080
#   scripts/up.sh -- --variable api_rate_limit="fixed_window 5/60s"   # more host flags
#   SPINDLE_HOST=runner scripts/up.sh                                   # the runner even where Spin is
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

rest=0
listen=127.0.0.1:3000
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rest) rest=1 ;;
        --listen) listen="$2"; shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "unknown option $1 (see the header of $0)"; exit 2 ;;
    esac
    shift
done

host="${SPINDLE_HOST:-}"
if [ -z "$host" ]; then
    if find_spin >/dev/null; then host=spin; else host=runner; fi
fi
case "$host" in
    spin) spin="$(find_spin)" || { echo "SPINDLE_HOST=spin, but no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin)"; exit 1; } ;;
    runner) ;;
    *) echo "SPINDLE_HOST=$host: expected spin or runner"; exit 2 ;;
esac

ensure_toolchain
ensure_redis
log "building the components (wasm32-wasip2)"
cargo build --target wasm32-wasip2 --release
if [ "$host" = runner ]; then
    log "building spindle-runner (profile runner: LTO, a few minutes on 2 cores)"
    cargo build --profile runner --bin spindle-runner -p spindle-runner
fi
if [ "$rest" = 1 ]; then
    log "building spindle-rest-gateway (native)"
    cargo build --profile native --bins -p spindle-rest-gateway
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

redis_host="${SPIN_VARIABLE_REDIS_HOST:-127.0.0.1:6379}"
if [ "$redis_host" = 127.0.0.1:6379 ] && ! redis-cli -p 6379 ping >/dev/null 2>&1; then
    log "starting redis-server on 127.0.0.1:6379 (no persistence)"
    setsid redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

vars=()
# auth needs session_secrets: a development secret, generated once and kept in
# the gitignored .spin/ so logins survive restarts. Yours wins if you set one
# (SPIN_VARIABLE_SESSION_SECRETS, or --variable after --).
if [ -z "${SPIN_VARIABLE_SESSION_SECRETS:-}" ]; then
    secret_file=.spin/dev-session-secret
    if [ ! -s "$secret_file" ]; then
        mkdir -p .spin
        (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=,\n' > "$secret_file")
    fi
    vars+=(--variable "session_secrets=$(cat "$secret_file")")
fi
if [ "$rest" = 1 ]; then
    token="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    log "starting the REST gateway on 127.0.0.1:8079 in front of redis://$redis_host"
    SPINDLE_REST_TOKEN="$token" setsid target/native/spindle-rest-gateway --listen 127.0.0.1:8079 --redis "redis://$redis_host" >/dev/null &
    pids+=($!)
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8079) 2>/dev/null && break; sleep 0.1; done
    vars+=(--variable redis_scheme=http --variable redis_host=127.0.0.1:8079 --variable "redis_token=$token")
fi

if [ "$host" = spin ]; then up=("$spin" up); else up=(target/runner/spindle-runner up); fi
log "starting the webhook worker (spin-worker.toml) on $host, restarted whenever it exits"
worker=("${up[@]}" -f spin-worker.toml --variable "redis_host=$redis_host")
setsid bash -c "while :; do $(printf '%q ' "${worker[@]}") >>.spin/worker.log 2>&1; sleep 1; done" &
pids+=($!)

log "serving spin.toml on $host at http://$listen"
mkdir -p .spin
setsid "${up[@]}" -f spin.toml --listen "$listen" ${vars[@]+"${vars[@]}"} ${extra[@]+"${extra[@]}"} &
app=$!
pids+=($app)
for _ in $(seq 300); do
    curl -s -o /dev/null "http://$listen/healthz" && break
    kill -0 "$app" 2>/dev/null || { echo "the app exited; its output is above"; exit 1; }
    sleep 0.1
done
cat <<EOF

  Spindle is up on $host ($([ "$rest" = 1 ] && echo "REST through the gateway" || echo "RESP over TCP") to Redis at $redis_host).
    console:  http://$listen/
    health:   curl -s http://$listen/healthz
    worker:   .spin/worker.log
  Stop with Ctrl-C.

EOF
wait "$app"
