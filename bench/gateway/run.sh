#!/usr/bin/env bash
# The gateway's cost, measured: added latency per command against
# redis-benchmark on the same commands, throughput against the Redis
# ceiling on the same cores, and a 3-master cluster against one node.
#
#   bench/gateway/run.sh                 # builds the gateway, ~2 minutes
#   SKIP_BUILD=1 DURATION=10 CONNECTIONS=32 bench/gateway/run.sh
#
# Pinning (2 cores): Redis (or the cluster's masters) on CPU 0, the gateway
# on CPU 1; the load generator on the core its server does not use:
# redis-benchmark on CPU 1 against Redis, wrk on CPU 0 against the gateway.
# So client and server never share a core, but the gateway's client shares
# Redis's core (the gateway needs a core of its own and there are two).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
duration="${DURATION:-10}"
conns="${CONNECTIONS:-32}"
lat_requests="${LATENCY_REQUESTS:-20000}"
gateway_bin="${CARGO_TARGET_DIR:-$repo/target}/native/spindle-rest-gateway"
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --profile native -p spindle-rest-gateway >&2
for tool in redis-server redis-cli redis-benchmark wrk taskset; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_redis() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done; exit 1; }

redis_port=$(free_port)
taskset -c 0 redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
pids+=($!)
wait_redis "$redis_port"

cluster_ports=()
for _ in 1 2 3; do
  p=$(free_port); bus=$(free_port)
  taskset -c 0 redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
    --cluster-config-file "$work/nodes-$p.conf" --dir "$work" --save "" --appendonly no >/dev/null &
  pids+=($!)
  wait_redis "$p"
  cluster_ports+=("$p")
done
redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") --cluster-yes >/dev/null
for p in "${cluster_ports[@]}"; do
  until redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok'; do sleep 0.1; done
done

token="bench-$RANDOM$RANDOM"
start_gateway() { # ARGS...: sets gw_url and gw_pid
  local port; port=$(free_port)
  taskset -c 1 "$gateway_bin" --listen "127.0.0.1:$port" --token "$token" "$@" >/dev/null 2>"$work/gw-$port.log" &
  gw_pid=$!
  pids+=($gw_pid)
  gw_url="http://127.0.0.1:$port"
  until curl -sf -o /dev/null "$gw_url/healthz"; do sleep 0.05; done
}
start_gateway --redis "redis://127.0.0.1:$redis_port"
gw_single=$gw_url; gw_single_pid=$gw_pid
start_gateway --cluster --redis "redis://127.0.0.1:${cluster_ports[0]}"
gw_cluster=$gw_url; gw_cluster_pid=$gw_pid

script="return redis.call('INCR', KEYS[1])"
sha=$(redis-cli -p "$redis_port" SCRIPT LOAD "$script")
curl -sf -H "Authorization: Bearer $token" -d "[\"SCRIPT\",\"LOAD\",\"$script\"]" "$gw_cluster/" >/dev/null

# to_us VALUE: wrk's "123.45us" / "1.23ms" / "1.01s" in microseconds.
to_us() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else print n * 1000000 }'; }

# bench_redis CONC N CMD...: "rps p50_us p99_us" from redis-benchmark --csv.
bench_redis() {
  local c="$1" n="$2"; shift 2
  taskset -c 1 redis-benchmark -p "$redis_port" -c "$c" -n "$n" -r 100000 --csv "$@" |
    awk -F'"' 'NR==2 { printf "%d %d %d\n", $4, $10 * 1000, $14 * 1000 }'
}

# bench_gw URL CONC CMD: "rps p50_us p99_us" from wrk.
bench_gw() {
  local out p50 p99 rps
  out=$(CMD="$3" SHA="$sha" TOKEN="$token" taskset -c 0 wrk -t1 -c"$2" -d"${duration}s" --latency -s "$here/command.lua" "$1/")
  if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "errors in the $3 run:" >&2; echo "$out" >&2; exit 1; fi
  rps=$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")
  p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_us "$(awk '$1=="99%" {print $2}' <<<"$out")")
  echo "$rps $p50 $p99"
}

echo "## Added latency per command (one connection, no pipelining)"
echo
echo "| command | redis-benchmark p50 / p99 (µs) | through the gateway p50 / p99 (µs) | added p50 / p99 (µs) |"
echo "| --- | --- | --- | --- |"
for cmd in GET SET EVALSHA; do
  case "$cmd" in
    GET) r=$(bench_redis 1 "$lat_requests" -t get) ;;
    SET) r=$(bench_redis 1 "$lat_requests" -t set) ;;
    EVALSHA) r=$(bench_redis 1 "$lat_requests" EVALSHA "$sha" 1 counter:__rand_int__) ;;
  esac
  g=$(bench_gw "$gw_single" 1 "$cmd")
  read -r _ rp50 rp99 <<<"$r"
  read -r _ gp50 gp99 <<<"$g"
  echo "| $cmd | $rp50 / $rp99 | ${gp50%.*} / ${gp99%.*} | $(( ${gp50%.*} - rp50 )) / $(( ${gp99%.*} - rp99 )) |"
done

echo
cpu_us() { # PID: its CPU time so far, in µs
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($14 + $15) * 1000000 / hz }' "/proc/$1/stat"
}
commands() { redis-cli -p "$redis_port" info stats | tr -d '\r' | awk -F: '/^total_commands_processed:/ { print $2 }'; }
redis_pid=${pids[0]}

# measure GATEWAY_PID CMD...: runs CMD (which prints "rps p50 p99"), then
# prints that, Redis's CPU per command processed, and the gateway's CPU
# per request (rps × duration requests; "-" without a gateway).
measure() {
  local gw="$1" r0 n0 g0 out r1 n1 g1
  shift
  r0=$(cpu_us "$redis_pid"); n0=$(commands); [ "$gw" = - ] || g0=$(cpu_us "$gw")
  out=$("$@")
  r1=$(cpu_us "$redis_pid"); n1=$(commands); [ "$gw" = - ] || g1=$(cpu_us "$gw")
  local redis_per; redis_per=$(awk -v c=$(( r1 - r0 )) -v n=$(( n1 - n0 )) 'BEGIN { printf "%.1f", c / n }')
  local gw_per=-
  [ "$gw" = - ] || gw_per=$(awk -v c=$(( g1 - g0 )) -v r="${out%% *}" -v d="$duration" 'BEGIN { printf "%.1f", c / (r * d) }')
  echo "$out $redis_per $gw_per"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "## Throughput ($conns connections, ${duration} s each)"
echo
echo "| what | requests/s | p50 / p99 (µs) | Redis CPU per command (µs) | gateway CPU per request (µs) | ratio |"
echo "| --- | --- | --- | --- | --- | --- |"
read -r p_rps p50 p99 p_cpu _ <<<"$(measure - bench_redis "$conns" $(( conns * 50000 )) -P 16 -t get)"
echo "| Redis ceiling: redis-benchmark GET, pipelined 16 deep | $p_rps | $p50 / $p99 (per batch) | $p_cpu | - | 1 |"
read -r c_rps c50 c99 c_cpu _ <<<"$(measure - bench_redis "$conns" $(( conns * 10000 )) -t get)"
echo "| redis-benchmark GET, no pipelining (one client thread) | $c_rps | $c50 / $c99 | $c_cpu | - | $(ratio "$c_rps" "$p_rps") |"
for cmd in GET SET; do
  read -r rps p50 p99 cpu gcpu <<<"$(measure "$gw_single_pid" bench_gw "$gw_single" "$conns" "$cmd")"
  echo "| gateway, one Redis, $cmd | $rps | ${p50%.*} / ${p99%.*} | $cpu | $gcpu | $(ratio "$rps" "$p_rps") of the ceiling |"
  [ "$cmd" = GET ] && single_get=$rps
done
for cmd in GET EVALSHA; do
  read -r rps p50 p99 _ gcpu <<<"$(measure "$gw_cluster_pid" bench_gw "$gw_cluster" "$conns" "$cmd")"
  echo "| gateway, 3-master cluster, $cmd | $rps | ${p50%.*} / ${p99%.*} | - | $gcpu | $(ratio "$rps" "$single_get") of the gateway on one Redis (GET) |"
done
echo
echo "Pinned: Redis and the cluster's masters on CPU 0, the gateway on CPU 1, redis-benchmark on CPU 1, wrk on CPU 0 (taskset)."
