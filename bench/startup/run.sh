#!/usr/bin/env bash
# Start-up times (issue 16): from `scripts/up.sh` to the first 200 of
# /healthz, per host (real Spin, spindle-runner), with the CPU time it spent
# (up.sh and everything it ran and reaped: cargo, rustc, the linker).
#
#   bench/startup/run.sh           warm: twice per host, with everything built
#   bench/startup/run.sh --cold    cold: per host, a fresh clone of HEAD with an
#                                  empty target/ and an empty cargo registry cache
#                                  (a CARGO_HOME of its own): about 10 minutes on 2 cores
#
# Each start gets its own redis-server (SPIN_VARIABLE_REDIS_HOST) and a free
# port, so it runs beside anything else. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/harness.sh
cd "$repo"
mode=warm
case "${1:-}" in --cold) mode=cold ;; "") ;; *) echo "usage: $0 [--cold]" >&2; exit 2 ;; esac
start_redis
clk_tck="$(getconf CLK_TCK)"

# One start in DIR on HOST: "<seconds> <cpu seconds>" to the first /healthz 200.
one() { # DIR HOST [env...]
  local dir="$1" host="$2" port t0 pid ticks
  shift 2
  port="$(free_port)"
  t0="$(date +%s.%N)"
  (cd "$dir" && exec env SPINDLE_HOST="$host" SPIN_VARIABLE_REDIS_HOST="$redis_host" "$@" \
    setsid scripts/up.sh --listen "127.0.0.1:$port" >"$workdir/up-$host-$mode.log" 2>&1) &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/healthz"; do
    kill -0 "$pid" 2>/dev/null || { echo "up.sh on $host exited: $workdir/up-$host-$mode.log" >&2; tail -20 "$workdir/up-$host-$mode.log" >&2; return 1; }
    sleep 0.1
  done
  local t1; t1="$(date +%s.%N)"
  ticks="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat")"
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sleep 1 # the worker loop and the host leave the port and their redis
  echo "$(echo "$t1 - $t0" | bc) $(echo "$ticks / $clk_tck" | bc -l)"
}

spin_env=()
if spin="$(find_spin)"; then spin_env=(SPIN_BIN="$spin"); fi
printf '| host | start | to the first /healthz 200 | CPU |\n|---|---|---|---|\n'
for host in spin runner; do
  if [ "$host" = spin ] && [ ${#spin_env[@]} = 0 ]; then echo "| spin | – | no Spin CLI | – |"; continue; fi
  if [ "$mode" = warm ]; then
    for n in 1 2; do
      read -r wall cpu < <(one "$repo" "$host" "${spin_env[@]}")
      printf '| %s | warm restart %s | %.2f s | %.2f s |\n' "$host" "$n" "$wall" "$cpu"
    done
  else
    clone="$workdir/clone-$host"
    git clone -q "$repo" "$clone"
    mkdir -p "$workdir/cargo-home-$host"
    read -r wall cpu < <(one "$clone" "$host" "${spin_env[@]}" CARGO_HOME="$workdir/cargo-home-$host" \
      CARGO_TARGET_DIR="$clone/target")
    printf '| %s | cold (fresh clone, empty target/ and registry cache) | %.1f s | %.1f s |\n' "$host" "$wall" "$cpu"
  fi
done
