#!/usr/bin/env bash
# Spindle on a 3-master, 3-replica Redis Cluster against one Redis node, in
# one run (issue 18): both over REST through spindle-rest-gateway (--cluster
# for the cluster), on real Spin and on the runner, with the cluster-safe key
# layouts (rate_limit_keys=cluster; sessions and the cache always are). The
# cells alternate node / cluster per route, so only the ratios mean anything.
#
#   bench/cluster/run.sh                 # 10 s cells, both hosts
#   DURATION=5s HOSTS=runner bench/cluster/run.sh
#
# Env: DURATION [10s], CONNECTIONS [50], HOSTS ["spin runner"], SPIN_BIN,
# RUNNER_BIN (default target/runner/spindle-runner, what scripts/up.sh serves).
# Prints a markdown table. Build first (scripts/up.sh or scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNNER_BIN="${RUNNER_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/runner/spindle-runner}"
. scripts/harness.sh
cd "$repo"
duration="${DURATION:-10s}" conns="${CONNECTIONS:-50}" hosts="${HOSTS:-spin runner}"
secret="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"

start_redis
start_gateway
node_gw=("$gateway_host" "$gateway_token")
start_cluster
start_gateway --cluster "${cluster_seeds[@]}"
cluster_gw=("$gateway_host" "$gateway_token")

printf '| host | route | node req/s | node p50 / p99 ms | cluster req/s | cluster p50 / p99 ms | cluster ÷ node | errors |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for host in $hosts; do
  spindle_host="$host"
  declare -A url=()
  for backend in node cluster; do
    if [ "$backend" = node ]; then gateway_host="${node_gw[0]}" gateway_token="${node_gw[1]}"; else gateway_host="${cluster_gw[0]}" gateway_token="${cluster_gw[1]}"; fi
    name="${host}_$backend"
    printf '[sqlite_database.default]\ntype = "spin"\npath = "%s"\n' "$workdir/$name.db" >"$workdir/$name.toml"
    start_app "$name" rest --runtime-config-file "$workdir/$name.toml" \
      --variable "session_secrets=$secret" --variable "trusted_proxies=127.0.0.1" --variable rate_limit_keys=cluster \
      --variable "api_rate_limit=sliding_window 20/10s" --variable "login_rate_limit=sliding_window 1000000/60s"
    eval "url[$backend]=\$url_$name"
    wait_http "${url[$backend]}/healthz" "$name"
  done
  declare -A cookie=() uid=()
  for backend in node cluster; do
    acct="$(BASE="${url[$backend]}" node bench/scale/setup.mjs "c$RANDOM$RANDOM" 1)"
    cookie[$backend]="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].cookie)' "$acct")"
    uid[$backend]="$(node -e 'console.log(JSON.parse(process.argv[1]).users[0].id)' "$acct")"
    curl -sf -o /dev/null -H "Cookie: ${cookie[$backend]}" "${url[$backend]}/auth/me"
    curl -sf -o /dev/null "${url[$backend]}/users/${uid[$backend]}"
  done
  for route in /healthz /auth/me /api/ping /users/:id; do
    declare -A res=()
    for backend in node cluster; do
      case "$route" in
        /healthz) args=("${url[$backend]}/healthz") ;;
        /auth/me) args=(-s bench/scale/wrk/me.lua "${url[$backend]}") ;;
        /api/ping) args=(-s bench/scale/wrk/ping.lua "${url[$backend]}") ;;
        /users/:id) args=(-s bench/scale/wrk/user_read.lua "${url[$backend]}") ;;
      esac
      COOKIE="${cookie[$backend]}" USER_ID="${uid[$backend]}" wrk -t2 -c"$conns" -d"$duration" --latency "${args[@]}" >"$workdir/cell.wrk"
      res[$backend]="$(wrk_parse "$workdir/cell.wrk")"
    done
    read -r n_rps _ n_p50 n_p99 n_non n_err <<<"${res[node]}"
    read -r c_rps _ c_p50 c_p99 c_non c_err <<<"${res[cluster]}"
    printf '| %s | `%s` | %.0f | %.1f / %.1f | %.0f | %.1f / %.1f | %.2f× | %d / %d |\n' "$host" "$route" \
      "$n_rps" "$n_p50" "$n_p99" "$c_rps" "$c_p50" "$c_p99" "$(echo "$c_rps / $n_rps" | bc -l)" \
      $((n_non + n_err)) $((c_non + c_err))
  done
done
