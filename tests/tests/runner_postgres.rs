//! The runner's `spin:postgres/postgres@3.0.0` host end to end: testbed's
//! `/tb/pg` script (spin-sdk's `pg3`) through the real runner against a
//! throwaway PostgreSQL.

use serde_json::{json, Value};
use spindle_e2e::*;
use std::time::{Duration, Instant};

fn testbed(redis: &Redis) -> Runner {
    let opts = RunnerOpts {
        variables: vec![
            ("redis_host", redis.authority()),
            ("redis_trigger_url", redis.url()),
            ("secret_thing", "s3cret".into()),
        ],
        ..Default::default()
    };
    Runner::start(&fixture("testbed.toml"), opts)
}

/// Escapes what a query value cannot carry as is.
fn encode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' | '.' | '~' => c.to_string(),
            c => c.to_string().bytes().map(|b| format!("%{b:02X}")).collect(),
        })
        .collect()
}

fn pg_url(rt: &Runner, addr: &str) -> String {
    rt.url(&format!("/tb/pg?addr={}", encode(addr)))
}

async fn get_json(url: String) -> (u16, Value) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn pg_script(rt: &Runner, addr: &str) -> (u16, Value) {
    get_json(pg_url(rt, addr)).await
}

fn assert_error(v: &Value, variant: &str, needle: &str) {
    assert_eq!(v["error"], variant, "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{variant} message should mention {needle:?}: {message}");
}

#[tokio::test]
async fn pg3_round_trips_every_type() {
    let (redis, pg) = (Redis::start(), Postgres::start());
    let rt = testbed(&redis);
    let (status, v) = pg_script(&rt, &pg.url()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["create"], 0);
    assert_eq!(v["inserted"], 2);

    let columns = json!([
        ["id", "Int32"], ["big", "Int64"], ["small", "Int16"], ["name", "Str"], ["label", "Str"],
        ["flag", "Boolean"], ["ratio", "Floating64"], ["weight", "Floating32"], ["data", "Binary"],
        ["missing", "Str"], ["day", "Date"], ["at", "Time"], ["stamp", "Datetime"]
    ]);
    assert_eq!(v["select"]["columns"], columns);
    let nul = json!({ "null": null });
    assert_eq!(
        v["select"]["rows"],
        json!([
            [
                { "int32": 1 }, { "int64": 9_007_199_254_740_993_i64 }, { "int16": -7 },
                { "str": "héllo 'quoted'" }, { "str": "label" }, { "boolean": true },
                { "floating64": 2.5 }, { "floating32": 1.25 }, { "binary": [0, 1, 254, 255] }, nul,
                { "date": [2024, 2, 29] }, { "time": [23, 59, 58, 123_456_000] },
                { "datetime": [1999, 12, 31, 23, 59, 59, 500_000_000] }
            ],
            [
                { "int32": 2 }, nul, nul, { "str": "" }, nul, { "boolean": false },
                { "floating64": -0.5 }, nul, { "binary": [] }, nul, nul, nul, nul
            ]
        ])
    );
    // Parameters of every kind bind, NULL included.
    assert_eq!(v["params"]["columns"], json!([["next", "Int64"], ["nothing", "Str"], ["raw", "Binary"]]));
    assert_eq!(v["params"]["rows"], json!([[{ "int64": 42 }, nul, { "binary": [0, 120] }]]));
    // Types pg3 cannot carry come back as `unsupported` (NULL stays `db-null`).
    assert_eq!(v["unsupported"]["columns"], json!([["dec", "Other"], ["no_dec", "Other"], ["t", "Str"]]));
    assert_eq!(v["unsupported"]["rows"], json!([[{ "unsupported": null }, nul, { "str": "a" }]]));
    // As Spin: no rows, no columns.
    assert_eq!(v["empty"], json!({ "columns": [], "rows": [] }));
    // The errors left the connection usable.
    assert_eq!(v["after_errors"]["rows"], json!([[{ "int64": 2 }]]));
}

#[tokio::test]
async fn a_bad_statement_is_an_error_value_not_a_500() {
    let (redis, pg) = (Redis::start(), Postgres::start());
    let rt = testbed(&redis);
    let (status, v) = pg_script(&rt, &pg.url()).await;
    assert_eq!(status, 200, "{v}");
    assert_error(&v["bad_sql"], "QueryFailed", "syntax error");
    assert_error(&v["bad_sql"], "QueryFailed", "E42601");
    assert_error(&v["bad_execute"], "QueryFailed", "no_such_table");
    assert_error(&v["bad_execute"], "QueryFailed", "E42P01");
    // No implicit widening, as in Spin: an int32 parameter does not bind to int2.
    assert_error(&v["wrong_width"], "QueryFailed", "WrongType");
    assert_error(&v["bad_date"], "BadParameter", "invalid date y=2023, m=2, d=29");
    // Spin cannot read timestamptz through pg3; neither can the runner.
    assert_error(&v["timestamptz"], "QueryFailed", "timestamptz");
    assert!(!rt.log().contains("trap"), "{}", rt.log());
}

#[tokio::test]
async fn a_postgres_outside_allowed_outbound_hosts_is_refused() {
    let (redis, pg) = (Redis::start(), Postgres::start());
    let rt = testbed(&redis);

    // tb may reach postgres://127.0.0.1:* only.
    let other_host = format!("postgres://postgres@127.0.0.2:{}/{}", pg.port, pg.db);
    let (status, v) = pg_script(&rt, &other_host).await;
    assert_eq!(status, 502, "{v}");
    assert_error(&v, "ConnectionFailed", &format!("address postgres://127.0.0.2:{} is not permitted", pg.port));
    // Logged in Spin's words.
    assert!(rt.log().contains(&format!("disallowed destination 'postgres://127.0.0.2:{}'", pg.port)), "{}", rt.log());

    // A second app whose component may reach another port only: the server
    // is up and reachable, and still refused.
    let manifest = std::env::temp_dir().join(format!("spindle-pg-deny-{}.toml", pg.port));
    let wasm = root().join("target/wasm32-wasip2/release/testbed.wasm");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"deny\"\n\
             [[trigger.http]]\nroute = \"/tb/...\"\ncomponent = \"tb\"\n\
             [component.tb]\nsource = {:?}\nallowed_outbound_hosts = [\"postgres://127.0.0.1:{}\"]\n",
            wasm.display().to_string(),
            pg.port.wrapping_add(1)
        ),
    )
    .unwrap();
    let deny = Runner::start(&manifest, RunnerOpts::default());
    let (status, v) = pg_script(&deny, &pg.url()).await;
    let _ = std::fs::remove_file(&manifest);
    assert_eq!(status, 502, "{v}");
    assert_error(&v, "ConnectionFailed", &format!("address postgres://127.0.0.1:{} is not permitted", pg.port));
    assert_eq!(pg.psql("SELECT count(*) FROM pg_stat_activity WHERE client_addr IS NOT NULL AND pid <> pg_backend_pid()"), "0");

    // TLS is not available locally: said plainly rather than failing later.
    let (status, v) = pg_script(&rt, &format!("{}?sslmode=require", pg.url())).await;
    assert_eq!(status, 502, "{v}");
    assert_error(&v, "ConnectionFailed", "sslmode=require");
}

#[tokio::test]
async fn an_unreachable_postgres_fails_fast() {
    let redis = Redis::start();
    let mut pg = Postgres::start();
    let rt = testbed(&redis);
    let (status, _) = pg_script(&rt, &pg.url()).await;
    assert_eq!(status, 200);

    // Refused: the server is gone (and the pooled connection with it).
    pg.stop();
    let started = Instant::now();
    let (status, v) = pg_script(&rt, &pg.url()).await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!(status, 502, "{v}");
    assert_error(&v, "ConnectionFailed", "refused");

    // A server that accepts TCP but never answers: bounded by the 2 s connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("postgres://postgres@127.0.0.1:{}/x", silent.local_addr().unwrap().port());
    let started = Instant::now();
    let (status, v) = pg_script(&rt, &addr).await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(status, 502, "{v}");
    assert_error(&v, "ConnectionFailed", "timed out");
}

#[tokio::test]
async fn pooled_connections_are_reused_reset_and_replaced_after_a_restart() {
    let redis = Redis::start();
    let mut pg = Postgres::start();
    let rt = testbed(&redis);

    // Each request creates the same temp table: it works only if a reused
    // connection comes back as a fresh session.
    for i in 0..12 {
        let (status, v) = pg_script(&rt, &pg.url()).await;
        assert_eq!((status, &v["create"]), (200, &json!(0)), "request {i}: {v}");
    }
    let backends: u32 = pg
        .psql("SELECT count(*) FROM pg_stat_activity WHERE client_addr IS NOT NULL AND pid <> pg_backend_pid()")
        .parse()
        .unwrap();
    assert!((1..=4).contains(&backends), "12 sequential requests should share a few connections, not {backends}");

    // Concurrent requests each get a private connection.
    let runs = (0..16).map(|_| get_json(pg_url(&rt, &pg.url())));
    for (status, v) in futures_join_all(runs).await {
        assert_eq!((status, &v["create"], &v["inserted"]), (200, &json!(0), &json!(2)), "{v}");
    }

    // A restart kills the pooled connections; the next requests dial anew.
    pg.stop();
    pg.restart();
    for _ in 0..3 {
        let (status, v) = pg_script(&rt, &pg.url()).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["inserted"], 2, "{v}");
    }
}

/// Polls futures concurrently (the harness has no `futures` dependency).
async fn futures_join_all<F: std::future::Future + Send + 'static>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
