#!/usr/bin/env bash
# Runs the Socket.IO interop suite: a throwaway redis-server (free port, no
# persistence), the app host (SPINDLE_HOST) serving the real spin.toml against it (with an
# API key for publishing), then `node --test`, which starts two Socket.IO 4
# servers on @socket.io/redis-adapter over that Redis, connects clients to a
# room on each (websocket transport), publishes through Spindle, and compares
# Spindle's packet byte for byte with @socket.io/redis-emitter's. Users
# (registered through auth, so a session secret and a fresh SQLite file) may
# emit to rooms `team:*` only (notify_socketio_rooms); the API key to any.
# Everything started here is stopped on exit, pass or fail (scripts/harness.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../../scripts/harness.sh"

build
start_redis
api_key="interop-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
api_key_digest="$(printf '%s' "$api_key" | sha256sum | cut -d' ' -f1)"
secret="interop-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf '[sqlite_database.default]\ntype = "spin"\npath = "%s"\n' "$workdir/db.sqlite" >"$workdir/runtime-config.toml"
start_app app --variable "api_keys=$api_key_digest" --variable "session_secrets=$secret" \
  --variable "notify_socketio_rooms=team:*" --runtime-config-file "$workdir/runtime-config.toml"
echo "redis on port $redis_port, spindle on $url_app"

cd "$here"
npm_ci
SPINDLE_URL="$url_app" REDIS_URL="$redis_url" SPINDLE_API_KEY="$api_key" node --test
