#!/usr/bin/env bash
# What one read through Spin's key-value API (Redis provider) does when
# Redis fails, beside the same read over Spin's outbound Redis and over RESP
# on wasi:sockets (Spindle's TCP transport, which bounds it): issue 14,
# item 3. Spin only. About 2 minutes.
#
#   bench/floor-kv/fault.sh        (after bench/stacks/run.sh has built the floors)
#
# Per route, three faults in turn: Redis stopped (SIGSTOP: accepts, never
# answers), Redis killed (connection refused), then Redis started again on
# the same port: how long until the route answers 200. Each request waits
# at most WAIT seconds [15] (curl -m).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/harness.sh
cd "$repo"
wait_s="${WAIT:-15}"
spindle_host=spin

start_redis
rcli() { redis-cli -p "$redis_port" "$@"; }
rcli set floor:key hello >/dev/null
printf '[key_value_store.default]\ntype = "redis"\nurl = "%s"\n' "$redis_url" >"$workdir/kv.toml"
kv_port="$(free_port)" floor_port="$(free_port)"
host_cmd floor-kv bench/floor-kv/spin.toml
spawn floor-kv "${host_argv[@]}" --listen "127.0.0.1:$kv_port" --runtime-config-file "$workdir/kv.toml"
host_cmd floor bench/floor/spin.toml
spawn floor "${host_argv[@]}" --listen "127.0.0.1:$floor_port" --variable "redis_host=$redis_host"
routes=("http://127.0.0.1:$kv_port/kv" "http://127.0.0.1:$floor_port/get" "http://127.0.0.1:$floor_port/get-socket")
for u in "${routes[@]}"; do wait_http "$u" "$u"; done

# "<status> <seconds>" of one GET (status 000: no answer within WAIT).
probe() { curl -s -o /dev/null -m "$wait_s" -w '%{http_code} %{time_total}' "$1" || true; }

printf '| route | Redis stopped (SIGSTOP) | Redis killed | after Redis starts again: first 200 within |\n|---|---|---|---|\n'
for u in "${routes[@]}"; do
  kill -STOP "$redis_pid"
  stopped="$(probe "$u")"
  kill -CONT "$redis_pid"
  sleep 0.5
  kill -TERM "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
  killed="$(probe "$u")"
  start_redis
  rcli set floor:key hello >/dev/null
  t0="$(date +%s.%N)" back="no 200 within 60 s"
  for _ in $(seq 60); do
    if [ "$(probe "$u" | cut -d' ' -f1)" = 200 ]; then back="$(echo "$(date +%s.%N) - $t0" | bc | xargs printf '%.2f s')"; break; fi
    sleep 1
  done
  fmt() { read -r code secs <<<"$1"; [ "$code" = 000 ] && echo "no answer in ${wait_s} s" || printf '%s in %.2f s' "$code" "$secs"; }
  printf '| `%s` | %s | %s | %s |\n' "${u##*/}" "$(fmt "$stopped")" "$(fmt "$killed")" "$back"
done
