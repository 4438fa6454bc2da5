//! The users cache under concurrency, through two runner processes sharing
//! one Redis and one database:
//!
//! - **no stale fill**: readers and writers hammer the same users; once a
//!   write is acknowledged, no read that starts later may return an older
//!   version. The lease protocol passes; plain cache-aside
//!   (`users_cache_mode=naive`, test-only) fails — which shows the check can fail.
//! - **stampede**: 500 concurrent GETs of a cold user cost exactly one
//!   database read, counted by PostgreSQL itself (`pg_stat_statements`) and
//!   by the `X-Cache: MISS` answers (the only answers that read the database).

use serde_json::{json, Value};
use spindle_e2e::*;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SECRET: &str = "users-stress-secret-0123456789";
const PASSWORD: &str = "correct horse battery";


enum Db {
    Sqlite(TempDir),
    Postgres(Postgres),
}

/// One runner of the app on `b` and `db`.
fn start(b: &Backend, db: &Db, extra: &[(&'static str, &str)]) -> Runner {
    let mut variables = b.variables();
    variables.push(("session_secrets", SECRET.to_string()));
    variables.push(("login_rate_limit", "fixed_window 100000/1s".to_string()));
    let mut runtime_config = None;
    match db {
        Db::Sqlite(dir) => runtime_config = Some(dir.0.join("runtime-config.toml")),
        Db::Postgres(pg) => {
            variables.push(("db_url", pg.url()));
            variables.push(("db_origin", format!("postgres://127.0.0.1:{}", pg.port)));
        }
    }
    variables.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Runner::start(&app_manifest(), RunnerOpts { variables, runtime_config, ..Default::default() })
}

async fn register_and_login(client: &reqwest::Client, rt: &Runner, name: &str) -> (i64, String) {
    let r = client.post(rt.url("/auth/register")).json(&json!({ "username": name, "password": PASSWORD })).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["user"]["id"].as_i64().unwrap();
    let r = client.post(rt.url("/auth/login")).json(&json!({ "username": name, "password": PASSWORD })).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    (id, cookie)
}

/// What one no-stale-fill run saw.
#[derive(Debug, Default)]
struct Run {
    reads: usize,
    writes: usize,
    misses: usize,
    /// Reads that returned a version older than one already acknowledged
    /// when the read started.
    violations: usize,
    worst: Option<(i64, i64, i64)>,
}

const USERS: usize = 3;
const READERS: usize = 8;
const READS_EACH: usize = 300;
const WRITES_EACH: usize = 120;

/// Readers and writers on the same users across two runners. Each user has
/// one writer (only the owner may PATCH); readers pick users and runners at
/// random. Every write's acknowledged version raises that user's floor; a
/// read compares what it got with the floor it saw before it started.
async fn no_stale_fill(b: &Backend, mode: &str) -> Run {
    let db = Db::Sqlite(TempDir::new());
    // users_test_delay_ms widens the window between a read of the database
    // and its fill, where a write can slip in (test-only; default 0).
    let extra = [("users_cache_mode", mode), ("users_test_delay_ms", "15")];
    let runners = Arc::new([start(b, &db, &extra), start(b, &db, &extra)]);
    let client = http();
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(register_and_login(&client, &runners[i % 2], &format!("user{i}")).await);
    }
    let floors: Arc<Vec<AtomicI64>> = Arc::new((0..USERS).map(|_| AtomicI64::new(1)).collect());
    let stats = Arc::new(std::sync::Mutex::new(Run::default()));
    let seed = AtomicUsize::new(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as usize);

    let mut tasks = Vec::new();
    for (u, (id, cookie)) in users.iter().cloned().enumerate() {
        let (runners, floors, stats, client) = (runners.clone(), floors.clone(), stats.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..WRITES_EACH {
                let rt = &runners[n % 2];
                let r = client
                    .patch(rt.url(&format!("/users/{id}")))
                    .header("cookie", &cookie)
                    .json(&json!({ "display_name": format!("w{n}") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let v = r.json::<Value>().await.unwrap()["user"]["version"].as_i64().unwrap();
                floors[u].fetch_max(v, Ordering::SeqCst);
                stats.lock().unwrap().writes += 1;
            }
        }));
    }
    for reader in 0..READERS {
        let (runners, floors, stats, client, users) = (runners.clone(), floors.clone(), stats.clone(), client.clone(), users.clone());
        let mut rnd = seed.fetch_add(7919 * (reader + 1), Ordering::SeqCst) as u64 | 1;
        tasks.push(tokio::spawn(async move {
            for _ in 0..READS_EACH {
                rnd ^= rnd << 13;
                rnd ^= rnd >> 7;
                rnd ^= rnd << 17;
                let u = (rnd % USERS as u64) as usize;
                let rt = &runners[((rnd >> 8) % 2) as usize];
                let floor = floors[u].load(Ordering::SeqCst);
                let r = client.get(rt.url(&format!("/users/{}", users[u].0))).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let miss = r.headers()["x-cache"] == "MISS";
                let got = r.json::<Value>().await.unwrap()["user"]["version"].as_i64().unwrap();
                let mut s = stats.lock().unwrap();
                s.reads += 1;
                s.misses += miss as usize;
                if got < floor {
                    s.violations += 1;
                    s.worst.get_or_insert((users[u].0, got, floor));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut run = std::mem::take(&mut *stats.lock().unwrap());
    // After the dust settles every user reads at its final version.
    for (u, (id, _)) in users.iter().enumerate() {
        for rt in runners.iter() {
            let r = client.get(rt.url(&format!("/users/{id}"))).send().await.unwrap();
            let got = r.json::<Value>().await.unwrap()["user"]["version"].as_i64().unwrap();
            let floor = floors[u].load(Ordering::SeqCst);
            if got < floor {
                run.violations += 1;
                run.worst.get_or_insert((*id, got, floor));
            }
        }
    }
    println!("{mode}: {run:?}");
    run
}

both_transports!(leases_never_fill_stale_values, |b: Backend| async move {
    let run = no_stale_fill(&b, "leases").await;
    assert_eq!(run.reads, READERS * READS_EACH);
    assert_eq!(run.writes, USERS * WRITES_EACH);
    assert!(run.misses > 50, "the writes kept invalidating: {run:?}");
    assert_eq!(run.violations, 0, "a read went back in time: {run:?}");
});

both_transports!(naive_cache_aside_fails_the_same_check, |b: Backend| async move {
    let run = no_stale_fill(&b, "naive").await;
    assert_eq!(run.reads, READERS * READS_EACH);
    assert!(run.violations > 0, "plain cache-aside should fill stale values under this load: {run:?}");
});

/// Sends `n` concurrent GETs of `path`, round-robin over `runners`, and
/// returns every answer's (status, X-Cache, version).
async fn burst(runners: &[Runner], path: &str, n: usize) -> Vec<(u16, String, i64)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).pool_max_idle_per_host(n).build().unwrap();
    let gate = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let (url, client, gate) = (runners[i % runners.len()].url(path), client.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            gate.wait().await;
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let x_cache = r.headers().get("x-cache").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            let version = r.json::<Value>().await.unwrap()["user"]["version"].as_i64().unwrap_or(-1);
            (status, x_cache, version)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn forget_cache(redis: &Redis) {
    let mut conn = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("spindle:cache*").query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

const STAMPEDE: usize = 500;

/// The stampede tests check the lease protocol, not the wait budget: on a
/// loaded 2-core machine a 500-request burst takes over 3 s (the default
/// `users_cache_wait_ms`), and a waiter past its budget loads from the
/// database by design. So the budget (and the holder's lease) is long here,
/// and so is the bound on one Redis exchange: a request whose exchange
/// passes `redis_timeout_ms` (2 s by default; seen once in CI on a machine
/// busy with other work) answers BYPASS from the database, by design too.
const STAMPEDE_VARS: &[(&str, &str)] = &[("users_cache_wait_ms", "30000"), ("users_cache_lease_ms", "30000"), ("redis_timeout_ms", "30000")];

/// The DB reads of `users` by id PostgreSQL executed, by its own count.
fn pg_user_reads(pg: &Postgres) -> (u64, u64) {
    let count = |like: &str| -> u64 {
        pg.psql(&format!("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '{like}'")).parse().unwrap()
    };
    (count("%SELECT id, username%FROM users WHERE id IN%"), count("%SELECT epoch FROM cache_epochs%"))
}

both_transports!(a_stampede_on_a_cold_key_reads_postgres_once, |b: Backend| async move {
    let mut pg = Postgres::start();
    // pg_stat_statements counts every statement as it finishes: the
    // database's own record of how many reads reached it.
    pg.psql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
    pg.restart();
    pg.psql("CREATE EXTENSION pg_stat_statements");
    let db = Db::Postgres(pg);
    let runners = [start(&b, &db, STAMPEDE_VARS), start(&b, &db, STAMPEDE_VARS)];
    let (id, _) = register_and_login(&http(), &runners[0], "alice").await;
    let Db::Postgres(pg) = &db else { unreachable!() };
    let path = format!("/users/{id}");

    for round in 0..2 {
        forget_cache(&b.redis).await;
        pg.psql("SELECT pg_stat_statements_reset()");
        let started = Instant::now();
        let answers = burst(&runners, &path, STAMPEDE).await;
        let took = started.elapsed();
        let (reads, epoch_reads) = pg_user_reads(pg);
        let count = |x: &str| answers.iter().filter(|a| a.1 == x).count();
        println!(
            "stampede {round} ({}): {STAMPEDE} GETs in {took:?}; MISS {}, HIT {}; users reads {reads}, epoch reads {epoch_reads}",
            b.transport.name(),
            count("MISS"),
            count("HIT")
        );
        assert!(answers.iter().all(|a| a.0 == 200 && a.2 == 1), "{answers:?}");
        assert_eq!(count("MISS"), 1, "exactly one request read the database");
        assert_eq!(count("HIT"), STAMPEDE - 1, "the others waited for its fill: {:?}", answers.iter().filter(|a| a.1 != "HIT").collect::<Vec<_>>());
        assert_eq!(reads, 1, "PostgreSQL saw exactly one read of the user");
        assert!(epoch_reads <= 1, "and at most one of the cache epoch: {epoch_reads}");
    }
});

both_transports!(a_stampede_on_a_cold_key_reads_sqlite_once, |b: Backend| async move {
    let db = Db::Sqlite(TempDir::new());
    let runners = [start(&b, &db, STAMPEDE_VARS), start(&b, &db, STAMPEDE_VARS)];
    let (id, _) = register_and_login(&http(), &runners[0], "alice").await;
    forget_cache(&b.redis).await;
    let answers = burst(&runners, &format!("/users/{id}"), STAMPEDE).await;
    let count = |x: &str| answers.iter().filter(|a| a.1 == x).count();
    assert!(answers.iter().all(|a| a.0 == 200 && a.2 == 1));
    // SQLite keeps no statistics; a MISS is the only answer that read it
    // (BYPASS would too, and there is none).
    assert_eq!((count("MISS"), count("HIT"), count("BYPASS")), (1, STAMPEDE - 1, 0));
});
