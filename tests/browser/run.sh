#!/usr/bin/env bash
# The browser test of the console (components/console, served at /): Debian's
# chromium, driven by playwright-core, against the real app on the host
# SPINDLE_HOST picks. Two app hosts ("a" and "b") share one throwaway
# redis-server and one SQLite file, as two hosts behind a load balancer share
# Redis and a database; page A talks to host a, page B to host b.
#
# Screenshots go to target/browser-artifacts/*.png (CI artefacts).
#   tests/browser/run.sh                       # run it
#   UPDATE_SCREENSHOT=1 tests/browser/run.sh   # also refresh docs/console.png
# Everything started here is stopped on exit, pass or fail (scripts/harness.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../scripts/harness.sh"

# Debian's chromium (not a browser downloaded by playwright).
[ -x /usr/bin/chromium ] || apt_install chromium

build
start_redis
cat >"$workdir/runtime-config.toml" <<EOF
[sqlite_database.default]
type = "spin"
path = "$workdir/console.db"
EOF
secret="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
# A small quota, so the page can drain it in a few requests.
api_limit=5
common=(--runtime-config-file "$workdir/runtime-config.toml"
  --variable "session_secrets=$secret"
  --variable "api_rate_limit=fixed_window $api_limit/60s")
start_app a "${common[@]}" --variable host_id=a
start_app b "${common[@]}" --variable host_id=b
echo "redis on port $redis_port, host a on $url_a, host b on $url_b"

cd "$here"
npm_ci
artifacts="$target_dir/browser-artifacts"
mkdir -p "$artifacts"
rm -f "$artifacts"/*.png
SPINDLE_URL_A="$url_a" SPINDLE_URL_B="$url_b" API_LIMIT="$api_limit" ARTIFACTS="$artifacts" \
  node --test --test-reporter=tap
echo "screenshots: $artifacts"
if [ "${UPDATE_SCREENSHOT:-0}" = 1 ]; then
  cp "$artifacts/console.png" "$repo/docs/console.png"
  echo "updated docs/console.png"
fi
