#!/usr/bin/env bash
# Runs the express-session + connect-redis interop suite against Spindle's
# auth component: a throwaway redis-server (free port, no persistence), the
# app (spin.toml) on the host SPINDLE_HOST picks, on a free port with a fresh
# SQLite file,
# then `node --test`, whose Express app shares the Redis and the secret.
# Everything started here is stopped on exit, pass or fail (scripts/harness.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../../scripts/harness.sh"

build
start_redis
# Two secrets: Spindle signs with the first, and both sides verify with both.
secrets="interop-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'),interop-previous-secret"
printf '[sqlite_database.default]\ntype = "spin"\npath = "%s"\n' "$workdir/db.sqlite" >"$workdir/runtime-config.toml"
start_app app --variable "session_secrets=$secrets" --runtime-config-file "$workdir/runtime-config.toml"
echo "redis on port $redis_port, spindle on $url_app"

# The Node suite's Express app listens on a free port of its own.
cd "$here"
npm_ci
SPINDLE_URL="$url_app" REDIS_URL="$redis_url" SESSION_SECRETS="$secrets" node --test
