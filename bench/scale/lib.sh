# Processes of the scale-out benchmark: a throwaway Redis, PostgreSQL,
# Spindle runners, the Node baseline's hosts and nginx in front of them, all
# on loopback and free ports, all stopped by `cleanup` (trap EXIT), pass or
# fail. Sourced by bench/scale/run.sh after `repo` and `work` are set.

pids=()          # everything started, stopped in reverse order
declare -A runner_pid runner_port node_pid node_port

cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
    done
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        # bounded: a process that ignores TERM gets KILL after 10 s
        for _ in $(seq 100); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
        kill -9 "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    if [ "$status" != 0 ] && [ -d "$work" ]; then
        for f in "$work"/*.log "$work"/nginx/error.log; do
            [ -s "$f" ] && { echo "--- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
    exit "$status"
}

free_port() {
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() { # $1 port, $2 pid, $3 what [, $4 tries of 50 ms]
    local tries="${4:-600}"
    for _ in $(seq 1 "$tries"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening on $1" >&2; return 1; }
        sleep 0.05
    done
    echo "$3 did not listen on $1" >&2
    return 1
}

wait_http() { # $1 url, $2 what: until it answers 200 (30 s)
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null --max-time 2 "$1" && return 0
        sleep 0.05
    done
    echo "$2: $1 did not answer 200" >&2
    return 1
}

# --- Redis -------------------------------------------------------------------

# One redis-server for everything; its data dir is kept, so a restart with
# appendonly loads what it wrote (the fault run).
start_redis() { # [extra redis-server args...]
    redis_port="${redis_port:-$(free_port)}"
    mkdir -p "$work/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --dir "$work/redis" \
        --logfile "$work/redis.log" --maxclients 10000 "$@" &
    redis_pid=$!
    pids+=("$redis_pid")
    wait_port "$redis_port" "$redis_pid" redis-server
    for _ in $(seq 200); do
        [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
        sleep 0.05  # LOADING while the AOF is read
    done
    redis_url="redis://127.0.0.1:$redis_port"
}

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

# --- wrk ----------------------------------------------------------------------

# wrk_parse FILE: "rps requests p50_ms p99_ms non2xx socket_errors"
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
