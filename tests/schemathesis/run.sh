#!/usr/bin/env bash
# Runs schemathesis (PyPI, pinned in requirements.txt) against the real app
# on the host SPINDLE_HOST picks (scripts/harness.sh), with every check on (`--checks all`), four times:
# anonymous and logged in, over TCP and over REST (the local gateway).
#
#   tests/schemathesis/run.sh                     # CI: MAX_EXAMPLES=15, 2-3 minutes for all four runs
#   MAX_EXAMPLES=400 tests/schemathesis/run.sh    # a deeper run
#
# Env: MAX_EXAMPLES (test cases per operation and phase; default 15),
#      ST_RUNS (default "tcp:anon tcp:user rest:anon rest:user"),
#      ST_SEED (a fixed seed; default random, printed), ST_EXTRA (more `st run`
#      arguments, e.g. "--report har"), ST_OUT (reports; default target/schemathesis),
#      SKIP_BUILD=1, and the harness's (SPINDLE_HOST, SPIN_BIN,
#      CARGO_TARGET_DIR, REDIS_SERVER).
#
# Prints one `# pass 1` or `# fail 1` line per run (scripts/test.sh counts
# them) and exits non-zero when any run found a failure. Reports (JUnit, and
# the failing requests as curl commands) stay in target/schemathesis/.
#
# The app runs with generous rate limits so 429s do not hide everything else
# (429 is still documented and accepted), short long-poll and SSE lifetimes
# so those operations answer within the request timeout, and webhooks allowed
# only to http://127.0.0.1:9 (a URL elsewhere is a documented 400).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../scripts/harness.sh"
max_examples="${MAX_EXAMPLES:-15}"
runs="${ST_RUNS:-tcp:anon tcp:user rest:anon rest:user}"
seed="${ST_SEED:-$RANDOM$RANDOM}"
out_dir="${ST_OUT:-$target_dir/schemathesis}"
mkdir -p "$out_dir"

# The pinned schemathesis, in a venv under target/ (reused when it matches).
venv="$target_dir/schemathesis-venv"
if ! [ -x "$venv/bin/st" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv python3-pip
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi

command -v curl >/dev/null || apt_install curl
build

start_redis
start_gateway

# One app per transport, each with its own SQLite database.
start_st_app() { # $1 transport
  local t="$1"
  mkdir -p "$workdir/$t"
  printf '[sqlite_database.default]\ntype = "spin"\npath = "%s"\n' "$workdir/$t/db.sqlite" >"$workdir/$t/rc.toml"
  start_app "$t" "$t" --runtime-config-file "$workdir/$t/rc.toml" \
    --variable "session_secrets=schemathesis-secret-0123456789abcdef" \
    --variable "api_rate_limit=fixed_window 1000000/60s" \
    --variable "login_rate_limit=fixed_window 1000000/60s" \
    --variable "register_rate_limit=fixed_window 1000000/60s" --variable "notify_redrive_rate_limit=fixed_window 1000000/60s" \
    --variable "notify_rate_limit=fixed_window 1000000/60s" \
    --variable "notify_stream_rate_limit=fixed_window 1000000/60s" --variable "notify_max_streams=1000" \
    --variable "notify_poll_timeout=500ms" --variable "notify_sse_lifetime=1s" \
    --variable "webhook_origin=http://127.0.0.1:9" --variable "notify_webhook_allow=http://127.0.0.1:9"
}

# Registers and logs in a user; prints its session cookie (name=value).
login() { # $1 base url
  local body='{"username":"schemathesis","password":"correct horse battery"}'
  curl -fsS -o /dev/null -H 'content-type: application/json' -d "$body" "$1/auth/register"
  curl -fsS -D - -o /dev/null -H 'content-type: application/json' -d "$body" "$1/auth/login" |
    tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | head -n 1
}

cp "$here/schemathesis.toml" "$workdir/user.toml"
cat >>"$workdir/user.toml" <<EOF

[auth.dynamic.openapi.session]
path = "/auth/login"
payload = { username = "schemathesis", password = "correct horse battery" }
extract_from = "cookie"
extract_selector = "connect.sid"
EOF

failed=0
total_cases=0
total_failures=0
echo "schemathesis $("$venv/bin/st" --version | awk '{print $NF}'), --max-examples $max_examples, --seed $seed"
for run in $runs; do
  transport="${run%%:*}" who="${run##*:}"
  var="url_$transport"
  cookie_var="cookie_$transport"
  if [ -z "${!var:-}" ]; then
    start_st_app "$transport"
    # The run's user is registered first, so it is user 1 (an id the
    # generated cases use: its owner-only PATCH is reached).
    printf -v "$cookie_var" '%s' "$(login "${!var}")"
    [ -n "${!cookie_var}" ] || { echo "could not log in to ${!var}" >&2; exit 1; }
  fi
  base="${!var}"
  # Logged in, schemathesis logs in itself (the `session` cookie scheme,
  # from POST /auth/login as the user registered above; user.toml) and again
  # whenever a case answers 401: cases that log out, or log in, end the
  # session they carry.
  config="$here/schemathesis.toml"
  [ "$who" = user ] && config="$workdir/user.toml"
  log="$out_dir/$transport-$who.log"
  echo "== schemathesis: $transport, $who ($base)"
  set +e
  # One worker: CPython 3.11 ast.parse (used by hypothesis) is not thread-safe.
  # From $out_dir, where schemathesis keeps its .schemathesis/ cache.
  (cd "$out_dir" && PYTHONPATH="$here" "$venv/bin/st" --config-file "$config" --no-color run "$base/openapi.json" --url "$base" \
    --checks all --max-examples "$max_examples" --seed "$seed" --workers 1 \
    --request-timeout 10 --max-failures 50 --suppress-health-check all --warnings off \
    --report junit --report-dir "$out_dir" --report-junit-path "$out_dir/$transport-$who.xml" \
    ${ST_EXTRA:-}) >"$log" 2>&1
  status=$?
  set -e
  # The summary: operations, test cases, failures.
  sed -n '/SUMMARY/,$p' "$log" | sed -n -e '/^Test cases:/{n;p}' -e '/^ *❌ ST/p' -e '/^ *Tested:/p' | sed 's/^ */   /' || true
  cases="$(grep -oE '[0-9]+ generated' "$log" | tail -n 1 | awk '{print $1}' || true)"
  fails="$(sed -n '/^Test cases:/{n;p}' "$log" | grep -oE '[0-9]+ unique failures?' | awk '{print $1}' || true)"
  total_cases=$((total_cases + ${cases:-0}))
  total_failures=$((total_failures + ${fails:-0}))
  if [ "$status" = 0 ]; then
    echo "# pass 1"
  else
    failed=1
    echo "# fail 1"
    echo "--- $transport, $who: failures (full log: $log)"
    sed -n '/FAILURES/,/SUMMARY/p' "$log" | head -n 200
  fi
done
echo "schemathesis: $total_cases test cases, $total_failures failed, over: $runs"
exit "$failed"
