# The one shell harness of every test and bench script: paths, the host
# switch, free ports, throwaway processes (redis-server, the REST gateway, the
# app on spindle-runner or real Spin, the supervised worker), and clean-up of
# everything it started, pass or fail. Sourced, never run.
#
# Env: SPINDLE_HOST   runner (default) or spin: which host serves the app
#      SPIN_BIN       the Spin CLI (else `spin` on PATH, else ../shared/bin/spin)
#      RUNNER_BIN     the spindle-runner binary (default: the tests' target/native/;
#                     the benchmarks pass target/runner/, the one up.sh serves with)
#      CARGO_TARGET_DIR, REDIS_SERVER (a redis-server binary), KEEP_WORK=1
#
# After sourcing: repo, target_dir, workdir (a scratch dir, removed on exit
# unless KEEP_WORK), and the functions below. Callers add to `pids` anything
# else they start; `cleanup` stops it.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$repo/scripts/lib.sh"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
runner_bin="${RUNNER_BIN:-$target_dir/native/spindle-runner}"
gateway_bin="$target_dir/native/spindle-rest-gateway"
redis_bin="${REDIS_SERVER:-redis-server}"
spindle_host="${SPINDLE_HOST:-runner}"
case "$spindle_host" in
  runner | spin) ;;
  *) echo "SPINDLE_HOST=$spindle_host: expected runner or spin" >&2; exit 2 ;;
esac

# The Spin CLI, as the e2e harness finds it (tests/src/lib.rs, spin_bin).
spin_bin() { find_spin; }

workdir="$(mktemp -d)"
pids=()

# Stops everything in `pids`, newest first: each is the leader of its own
# process group (see `spawn`), so Spin's trigger child goes too. TERM, then
# KILL after 10 s. On failure, the tail of every log in the scratch dir.
cleanup() {
  local status=$? i
  trap - EXIT INT TERM
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM -- "-${pids[i]}" 2>/dev/null || kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 100); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-${pids[i]}" 2>/dev/null || kill -KILL "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  if [ "$status" != 0 ] && [ -d "$workdir" ]; then
    while IFS= read -r f; do
      [ -s "$f" ] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
    done < <(find "$workdir" -name '*.log' -o -name '*_stderr.txt')
  fi
  [ -n "${KEEP_WORK:-}" ] && echo "kept $workdir" >&2 || rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" in the background as the leader of a new process group, logging
# to $workdir/$1.log (the first argument is a name); sets `last_pid`.
spawn() {
  local name="$1"
  shift
  setsid "$@" >>"$workdir/$name.log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # PORT PID WHAT [TRIES of 50 ms, default 600]
  for _ in $(seq 1 "${4:-600}"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening on $1" >&2; return 1; }
    sleep 0.05
  done
  echo "$3 did not listen on $1" >&2
  return 1
}

wait_http() { # URL WHAT: until it answers 200 (30 s)
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null --max-time 2 "$1" && return 0
    sleep 0.05
  done
  echo "$2: $1 did not answer 200" >&2
  return 1
}

# Builds what is stale: a no-op after the test command's own build.
build() {
  [ "${SKIP_BUILD:-}" = 1 ] || (cd "$repo" && build_all >&2)
}

# Installs a Node suite's packages (from its lock file) when missing.
npm_ci() { # [DIR, default: the caller's `here`]
  local dir="${1:-$here}"
  [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}

# A redis-server on a free port (or $redis_port, kept across a restart);
# sets redis_port, redis_url, redis_host (host:port), redis_pid. Extra
# arguments go to redis-server (e.g. --appendonly yes); its data dir stays
# in the scratch dir, so a restart with appendonly loads what it wrote.
start_redis() {
  redis_port="${redis_port:-$(free_port)}"
  mkdir -p "$workdir/redis"
  spawn redis "$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$workdir/redis" --maxclients 10000 --tcp-backlog 4096 "$@"
  redis_pid=$last_pid
  wait_port "$redis_port" "$redis_pid" redis-server
  for _ in $(seq 200); do # LOADING while an append-only file is read
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.05
  done
  redis_url="redis://127.0.0.1:$redis_port"
  redis_host="127.0.0.1:$redis_port"
}

# spindle-rest-gateway on a free port, in front of $redis_url, or of what
# the arguments say (e.g. --cluster --redis SEED…); sets gateway_url,
# gateway_host, gateway_token, gateway_pid. Its JSON log: $workdir/gateway.log.
start_gateway() {
  gateway_token="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
  local port args=("$@")
  [ ${#args[@]} -gt 0 ] || args=(--redis "$redis_url")
  port="$(free_port)"
  SPINDLE_REST_TOKEN="$gateway_token" spawn gateway "$gateway_bin" --listen "127.0.0.1:$port" "${args[@]}"
  gateway_pid=$last_pid
  wait_port "$port" "$gateway_pid" gateway
  gateway_url="http://127.0.0.1:$port"
  gateway_host="127.0.0.1:$port"
}

# A 3-master, 3-replica Redis Cluster on loopback: six cluster-enabled
# redis-servers joined by redis-cli, ready when every node says
# cluster_state:ok. Sets cluster_ports and cluster_seeds (--redis flags for
# the gateway).
start_cluster() {
  local port bus i
  cluster_ports=()
  for i in 1 2 3 4 5 6; do
    port="$(free_port)"
    bus="$(free_port)"
    spawn "cluster-$port" "$redis_bin" --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
      --cluster-config-file "$workdir/nodes-$port.conf" --cluster-node-timeout 1000 \
      --save "" --appendonly no --dir "$workdir"
    wait_port "$port" "$last_pid" "cluster node $i"
    cluster_ports+=("$port")
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
    --cluster-replicas 1 --cluster-yes >"$workdir/cluster-create.log"
  for port in "${cluster_ports[@]}"; do
    for _ in $(seq 1 300); do
      redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok' && break
      sleep 0.1
    done
    redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok' ||
      { echo "cluster node $port is not ok" >&2; return 1; }
  done
  cluster_seeds=()
  for port in "${cluster_ports[@]:0:2}"; do cluster_seeds+=(--redis "redis://127.0.0.1:$port"); done
}

# The variables that point the HTTP app at Redis: over TCP (the default) or,
# with `rest`, through the gateway (start_gateway first). One per line.
redis_vars() { # [tcp|rest]
  if [ "${1:-tcp}" = rest ]; then
    printf '%s\n' "redis_scheme=http" "redis_host=$gateway_host" "redis_token=$gateway_token"
  else
    printf '%s\n' "redis_host=$redis_host"
  fi
}

# The host command for a manifest, in the array `host_argv`: `spin up` or
# `spindle-runner up`, with a state dir of its own for Spin (its default
# SQLite database, component logs).
host_cmd() { # NAME MANIFEST
  if [ "$spindle_host" = spin ]; then
    local spin
    spin="$(spin_bin)" || { echo "SPINDLE_HOST=spin, but no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin)" >&2; return 1; }
    host_argv=("$spin" up -f "$2" --state-dir "$workdir/$1-state")
  else
    host_argv=("$runner_bin" up -f "$2")
  fi
}

# Serves spin.toml: start_app NAME [tcp|rest] [--variable k=v | other host flags]...
# Sets url_NAME, port_NAME, pid_NAME. Its output: $workdir/NAME.log (and,
# on Spin, $workdir/NAME-state/logs/). PORT=... picks the port (a restart).
start_app() {
  local name="$1" transport=tcp port args=() v
  shift
  case "${1:-}" in tcp | rest) transport="$1"; shift ;; esac
  port="${PORT:-$(free_port)}"
  while IFS= read -r v; do args+=(--variable "$v"); done < <(redis_vars "$transport")
  host_cmd "$name" "$repo/spin.toml"
  spawn "$name" "${host_argv[@]}" --listen "127.0.0.1:$port" "${args[@]}" "$@"
  printf -v "pid_$name" '%s' "$last_pid"
  printf -v "port_$name" '%s' "$port"
  printf -v "url_$name" 'http://127.0.0.1:%s' "$port"
  wait_port "$port" "$last_pid" "$spindle_host ($name)"
}

# The webhook worker (spin-worker.toml) on $redis_host, under a supervisor
# loop that starts it again whenever it exits, as systemd's Restart=always
# would: Spin stops an app whose Redis trigger loses Redis.
start_worker() { # NAME [--variable k=v]...
  local name="$1" cmd
  shift
  host_cmd "$name" "$repo/spin-worker.toml"
  cmd="$(printf '%q ' "${host_argv[@]}" --variable "redis_host=$redis_host" "$@")"
  spawn "$name" bash -c "while :; do $cmd; echo \"worker exited (\$?); restarting\"; sleep 0.5; done"
  printf -v "pid_$name" '%s' "$last_pid"
}

# wrk_parse FILE: "rps requests p50_ms p99_ms non2xx socket_errors" of a
# `wrk --latency` report (the bench scripts).
wrk_parse() {
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /m$/) return v*60000; if (v ~ /s$/) return v*1000; return v }
    /^Requests\/sec/ {rps=$2}
    /requests in/ {reqs=$1}
    $1=="50%" {p50=ms($2)}
    $1=="99%" {p99=ms($2)}
    /Non-2xx/ {non=$NF}
    /Socket errors/ {gsub(/,/, ""); err=$4+$6+$8+$10}
    END {printf "%s %s %.2f %.2f %d %d\n", rps+0, reqs+0, p50, p99, non+0, err+0}' "$1"
}
