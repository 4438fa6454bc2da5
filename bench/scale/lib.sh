# Processes of the scale-out benchmark: a throwaway Redis, PostgreSQL,
# Spindle runners, the Node baseline's hosts and nginx in front of them, all
# on loopback and free ports, all stopped by `cleanup` (trap EXIT), pass or
# fail. Sourced by bench/scale/run.sh after scripts/harness.sh (`work` is its `workdir`).

declare -A runner_pid runner_port node_pid node_port

# cleanup, free_port, wait_port, wait_http, start_redis and wrk_parse come
# from scripts/harness.sh, which run.sh sources first.

# --- Redis -------------------------------------------------------------------

rcli() { redis-cli -p "$redis_port" "$@"; }

# Commands Redis executed, all kinds but INFO (the commands scripts run inside
# Redis included, as INFO commandstats counts them).
redis_commands() {
    rcli info commandstats | awk -F'[=,]' '/^cmdstat_/ && !/^cmdstat_info:/ {s+=$2} END {print s+0}'
}

# --- PostgreSQL ----------------------------------------------------------------

# A throwaway cluster (trust auth, loopback only, fsync off) with one database,
# as the e2e harness starts it; as the postgres user when we are root.
start_postgres() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    pg_port="$(free_port)"
    mkdir -p "$work/pg"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$work/pg"
        chmod o+x "$work"
        as=(setpriv --reuid=postgres --regid=postgres --init-groups)
    fi
    "${as[@]}" "$bin/initdb" -D "$work/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$work/postgres-initdb.log" 2>&1
    "${as[@]}" "$bin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c shared_buffers=64MB -c max_connections=400 >"$work/postgres.log" 2>&1 &
    pids+=($!)
    local pid=$!
    for _ in $(seq 600); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break
        kill -0 "$pid" 2>/dev/null || { echo "postgres exited" >&2; return 1; }
        sleep 0.05
    done
    "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres spindle_bench
    db_url="postgres://postgres@127.0.0.1:$pg_port/spindle_bench"
    db_origin="postgres://127.0.0.1:$pg_port"
}

# --- Spindle -------------------------------------------------------------------

# The variables every host shares: one Redis, one database, one secret, the
# proxy trusted, limits as the scenarios need them.
spindle_vars() {
    printf '%s\n' \
        "redis_host=127.0.0.1:$redis_port" \
        "db_url=$db_url" "db_origin=$db_origin" \
        "session_secrets=$session_secret" \
        "trusted_proxies=127.0.0.1" \
        "api_rate_limit=$api_rate_limit" \
        "login_rate_limit=sliding_window 1000000/60s" \
        "register_rate_limit=sliding_window 1000000/60s" \
        "notify_rate_limit=fixed_window 1000000000/60s" \
        "notify_stream_rate_limit=fixed_window 1000000000/60s" "notify_max_streams=1000"
}

# start_runner I: host number I on a free port (or the port it had, on a restart).
start_runner() {
    local i="$1" port args=()
    port="${runner_port[$i]:-$(free_port)}"
    while IFS= read -r v; do args+=(--variable "$v"); done < <(spindle_vars)
    "$repo/target/native/spindle-runner" up -f "$repo/spin.toml" --listen "127.0.0.1:$port" "${args[@]}" \
        >>"$work/runner-$i.log" 2>&1 &
    runner_pid[$i]=$!
    runner_port[$i]=$port
    pids+=($!)
    wait_port "$port" "$!" "runner $i"
}

# --- the Node baseline -------------------------------------------------------------

node_baseline_ready() { [ -f "$repo/bench/node/cluster.mjs" ] && [ -f "$repo/bench/node/package-lock.json" ]; }

# start_node_host I: one `node bench/node/cluster.mjs` (a cluster of
# $node_workers workers) on a free port.
start_node_host() {
    local i="$1" port
    port="${node_port[$i]:-$(free_port)}"
    PORT="$port" REDIS_URL="$redis_url" DB_PATH="$work/node-users.db" SESSION_SECRET="$session_secret" \
        API_RATE_LIMIT="$api_rate_limit" WORKERS="$node_workers" HOST_ID="node-$i" NODE_ENV=production \
        TRUST_PROXY=127.0.0.1 LOGIN_RATE_LIMIT="1000000/60s" NOTIFY_RATE_LIMIT="1000000000/60s" \
        node "$repo/bench/node/cluster.mjs" >>"$work/node-$i.log" 2>&1 &
    node_pid[$i]=$!
    node_port[$i]=$port
    pids+=($!)
    wait_port "$port" "$!" "node host $i"
}

# --- nginx -------------------------------------------------------------------------

# start_nginx NAME=PORT:upstream-port,upstream-port ... : one unprivileged nginx
# (Debian's), one server block per NAME listening on PORT, round robin over
# its upstreams, keep-alive to them, X-Forwarded-For set; X-Upstream tells
# which host answered.
start_nginx() {
    local servers="" upstreams="" spec name port ups u
    mkdir -p "$work/nginx"
    for spec in "$@"; do
        name="${spec%%=*}"; spec="${spec#*=}"
        port="${spec%%:*}"; ups="${spec#*:}"
        upstreams+="    upstream $name {"$'\n'
        for u in ${ups//,/ }; do
            upstreams+="        server 127.0.0.1:$u max_fails=1 fail_timeout=1s;"$'\n'
        done
        upstreams+="        keepalive 64;"$'\n'"    }"$'\n'
        servers+="    server {"$'\n'"        listen 127.0.0.1:$port backlog=4096;"$'\n'
        servers+="        location / { proxy_pass http://$name; }"$'\n'"    }"$'\n'
    done
    sed -e "s|@WORK@|$work/nginx|g" "$repo/bench/scale/nginx.conf.in" >"$work/nginx/nginx.conf"
    # the upstreams and servers go where the template says
    awk -v ups="$upstreams" -v srv="$servers" '
        /^@UPSTREAMS@$/ {printf "%s", ups; next}
        /^@SERVERS@$/ {printf "%s", srv; next}
        {print}' "$work/nginx/nginx.conf" >"$work/nginx/nginx.conf.tmp"
    mv "$work/nginx/nginx.conf.tmp" "$work/nginx/nginx.conf"
    [ "$(id -u)" = 0 ] && chmod o+rx "$work" "$work/nginx"
    nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" -t -q 2>>"$work/nginx/error.log" \
        || { cat "$work/nginx/error.log" >&2; return 1; }
    nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/error.log" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    for spec in "$@"; do
        spec="${spec#*=}"
        wait_port "${spec%%:*}" "$nginx_pid" nginx
    done
}

