#!/usr/bin/env bash
# Runs the whole app locally: builds it, starts a local redis-server when the
# configured Redis is the unreachable local default, and serves spin.toml on
# http://127.0.0.1:3000 through spindle-runner.
#
#   scripts/up.sh            # Spin outbound Redis (TCP)
#   scripts/up.sh --rest     # the Upstash REST API, through the local gateway
#   scripts/up.sh -- --variable session_secrets=…   # extra runner flags
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

ensure_toolchain
ensure_redis
build_all

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

redis_url="${SPIN_VARIABLE_REDIS_URL:-redis://127.0.0.1:6379}"
if [ "$redis_url" = "redis://127.0.0.1:6379" ] && ! redis-cli -p 6379 ping >/dev/null 2>&1; then
    log "starting redis-server on 127.0.0.1:6379 (no persistence)"
    redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
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
    log "starting the REST gateway on 127.0.0.1:8079 in front of $redis_url"
    target/native/spindle-rest-gateway --listen 127.0.0.1:8079 --redis "$redis_url" --token "$token" >/dev/null &
    pids+=($!)
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/8079) 2>/dev/null && break; sleep 0.1; done
    vars+=(--variable redis_url=http://127.0.0.1:8079 --variable redis_origin=http://127.0.0.1:8079 --variable "redis_token=$token")
fi

log "serving on http://$listen"
target/native/spindle-runner up -f spin.toml --listen "$listen" ${vars[@]+"${vars[@]}"} ${extra[@]+"${extra[@]}"} &
pids+=($!)
wait "${pids[-1]}"
