# Shared by every tests/interop/*/run.sh: paths, a scratch dir, a throwaway
# redis-server, the runner, and clean-up of everything started, pass or fail.
# Sourced after the caller sets `here` (its own folder).
#
# Env: CARGO_TARGET_DIR (where cargo builds; default <repo>/target),
#      REDIS_SERVER (redis-server binary; default from PATH).

repo="$(cd "$here/../../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
runner_bin="$target_dir/native/spindle-runner"
gateway_bin="$target_dir/native/spindle-rest-gateway"
redis_bin="${REDIS_SERVER:-redis-server}"

workdir="$(mktemp -d)"
pids=()
cleanup() {
  local status=$? i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      kill "${pids[i]}" 2>/dev/null || true
      wait "${pids[i]}" 2>/dev/null || true
    fi
  done
  if [ "$status" != 0 ]; then
    for f in "$workdir"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() { # $1 port, $2 pid, $3 what
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening" >&2; exit 1; }
    sleep 0.05
  done
  echo "$3 did not listen on $1" >&2
  exit 1
}

# Builds what is stale: no-ops after scripts/test.sh's build.
build() {
  (cd "$repo" && . scripts/lib.sh && build_all >&2)
}

# Starts redis-server on a free port; sets redis_port and redis_url.
start_redis() {
  redis_port="$(free_port)"
  "$redis_bin" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$workdir" --logfile "$workdir/redis.log" &
  pids+=($!)
  wait_port "$redis_port" "$!" redis-server
  redis_url="redis://127.0.0.1:$redis_port"
}

# Serves spin.toml against $redis_url: start_runner NAME [runner args...];
# sets url_NAME. Its output goes to $workdir/NAME.log.
start_runner() {
  local name="$1" port
  shift
  port="$(free_port)"
  "$runner_bin" up -f "$repo/spin.toml" --listen "127.0.0.1:$port" \
    --variable "redis_url=$redis_url" --variable "redis_origin=$redis_url" \
    --variable "redis_trigger_url=$redis_url" "$@" >"$workdir/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$port" "$!" "runner $name"
  printf -v "url_$name" 'http://127.0.0.1:%s' "$port"
}

# Installs the suite's npm packages (from its lock file) when missing.
npm_ci() {
  cd "$here"
  [ -d node_modules ] || npm ci --no-audit --no-fund
}
