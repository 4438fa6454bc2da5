//! `spindle::cache` against a real Redis, natively: the races HTTP cannot
//! schedule deterministically (a write landing between a load and its
//! fill), stale answers, negative caching, jitter, XFetch, epochs, and a
//! Redis that fails during a write.

use spindle::cache::{Cache, CacheConfig, CacheKeys, Invalidated, Mode, Outcome, Source};
use spindle::env::Sleep;
use spindle::env::Rng;
use spindle::redis::native::NativeLink;
use spindle::redis::{Cmd, Error, Link, Reply};
use spindle_e2e::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

struct TokioSleep;

impl Sleep for TokioSleep {
    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn monotonic_ms(&self) -> u64 {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

/// A link that can be cut (every command fails as unreachable) and counts round trips.
#[derive(Clone)]
struct TestLink {
    inner: Inner,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl TestLink {
    async fn new(redis: &Redis) -> TestLink {
        let inner = Inner::Node(NativeLink::connect(&redis.url()).await.unwrap());
        TestLink { inner, down: Arc::default(), calls: Arc::default() }
    }

    /// Over REST through a gateway (on a cluster, as a guest on REST reaches it).
    fn rest(gateway: &Gateway) -> TestLink {
        TestLink { inner: Inner::Rest(RestLink::new(gateway)), down: Arc::default(), calls: Arc::default() }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
enum Inner {
    Node(NativeLink),
    Rest(RestLink),
}

impl Link for TestLink {
    fn transport(&self) -> spindle::redis::Transport {
        match &self.inner {
            Inner::Node(l) => l.transport(),
            Inner::Rest(l) => l.transport(),
        }
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("cut by the test".into()));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        match &self.inner {
            Inner::Node(l) => l.exec(cmd).await,
            Inner::Rest(l) => l.exec(cmd).await,
        }
    }
}

/// The source of truth: rows with versions, an epoch, and counters.
#[derive(Default)]
struct Db {
    rows: RefCell<HashMap<String, i64>>,
    epoch: Cell<i64>,
    loads: Cell<usize>,
    loaded_keys: Cell<usize>,
    epoch_reads: Cell<usize>,
    load_ms: Cell<u64>,
    /// Every call fails (the database is down).
    down: Cell<bool>,
    /// Runs inside the next load, after the rows were read: a write that
    /// lands between a reader's load and its fill.
    during_load: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
}

impl Db {
    fn set(&self, key: &str, version: i64) {
        self.rows.borrow_mut().insert(key.into(), version);
    }
}

impl Source for Db {
    type Error = String;

    async fn load(&self, keys: &[String]) -> Result<Vec<Option<String>>, String> {
        if self.down.get() {
            return Err("database down".into());
        }
        self.loads.set(self.loads.get() + 1);
        self.loaded_keys.set(self.loaded_keys.get() + keys.len());
        let out: Vec<Option<String>> = keys.iter().map(|k| self.rows.borrow().get(k).map(|v| format!("v{v}"))).collect();
        if self.load_ms.get() > 0 {
            tokio::time::sleep(Duration::from_millis(self.load_ms.get())).await;
        }
        let hook = self.during_load.borrow_mut().take();
        if let Some(h) = hook {
            h.await;
        }
        Ok(out)
    }

    async fn epoch(&self) -> Result<i64, String> {
        if self.down.get() {
            return Err("database down".into());
        }
        self.epoch_reads.set(self.epoch_reads.get() + 1);
        Ok(self.epoch.get())
    }

    async fn bump_epoch(&self) -> Result<i64, String> {
        self.epoch.set(self.epoch.get() + 1);
        Ok(self.epoch.get())
    }
}

/// Always the same bytes: u = 2^-53, so XFetch's -ln(u) is ~36.7.
struct ZeroRng;

impl Rng for ZeroRng {
    fn fill(&self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

fn cfg() -> CacheConfig {
    CacheConfig { xfetch_beta: 0.0, ..CacheConfig::default() }
}

/// The test namespace `t`.
fn ns() -> CacheKeys {
    CacheKeys::new("spindle", "t")
}

fn cache<'a>(link: &'a TestLink, cfg: CacheConfig) -> Cache<'a, TestLink, TokioSleep> {
    Cache::new(link, &spindle::env::OsRng, &TokioSleep, ns(), cfg)
}

fn keys(ks: &[&str]) -> Vec<String> {
    ks.iter().map(|k| k.to_string()).collect()
}

async fn get_one(c: &Cache<'_, TestLink, TokioSleep>, db: &Db, key: &str, want_stale: bool) -> (Option<String>, Outcome) {
    let (mut f, _) = c.get_many(&keys(&[key]), db, want_stale).await.unwrap();
    let f = f.remove(0);
    (f.value, f.outcome)
}

async fn redis_get(redis: &Redis, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(&mut redis.conn().await).await.unwrap()
}

async fn redis_set(redis: &Redis, key: &str, value: &str, px: u64) {
    let _: () = redis::cmd("SET").arg(key).arg(value).arg("PX").arg(px).query_async(&mut redis.conn().await).await.unwrap();
}

/// Polls non-`Send` futures together on this task.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// A write (v1 → v2, then invalidate) lands while a reader is between its
/// load of v1 and its fill. With leases the fill is refused and the next
/// read sees v2; plain cache-aside stores v1 after the write — a read that
/// starts after the write was acknowledged goes back in time.
async fn write_during_load(mode: Mode) -> (Option<String>, Outcome) {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { mode, ..cfg() });
    let db = Rc::new(Db::default());
    db.set("k", 1);
    // Another host's write: its own link and cache, the same Redis and source.
    let (writer_link, db2) = (link.clone(), db.clone());
    *db.during_load.borrow_mut() = Some(Box::pin(async move {
        db2.set("k", 2);
        let writer = cache(&writer_link, CacheConfig { mode, ..cfg() });
        let (how, _) = writer.invalidate(&keys(&["k"]), &*db2).await.unwrap();
        assert_eq!(how, Invalidated::Done);
    }));
    let (v, outcome) = get_one(&c, &db, "k", false).await;
    assert_eq!((v.as_deref(), outcome), (Some("v1"), Outcome::Miss), "the racing read itself started before the write");
    get_one(&c, &db, "k", false).await
}

#[tokio::test]
async fn a_fill_that_lost_its_lease_is_refused() {
    assert_eq!(write_during_load(Mode::Leases).await, (Some("v2".into()), Outcome::Miss));
}

#[tokio::test]
async fn naive_cache_aside_fills_the_old_value_after_the_write() {
    assert_eq!(write_during_load(Mode::Naive).await, (Some("v1".into()), Outcome::Hit), "the race this module prevents");
}

#[tokio::test]
async fn concurrent_missers_share_one_load() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, cfg());
    let db = Db::default();
    db.set("hot", 1);
    db.load_ms.set(100);
    let answers = join_all((0..50).map(|_| get_one(&c, &db, "hot", false)).collect()).await;
    assert_eq!(db.loads.get(), 1, "one load for fifty concurrent misses");
    assert_eq!(answers.iter().filter(|a| a.1 == Outcome::Miss).count(), 1);
    assert!(answers.iter().all(|a| a.0.as_deref() == Some("v1")));
    assert_eq!(answers.iter().filter(|a| a.1 == Outcome::Hit).count(), 49);
}

#[tokio::test]
async fn round_trips_hit_one_miss_two_batch_one() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, cfg());
    let db = Db::default();
    for k in ["a", "b", "c"] {
        db.set(k, 1);
    }
    get_one(&c, &db, "warm", false).await; // loads the scripts, sets the epoch key
    let before = link.calls();
    assert_eq!(get_one(&c, &db, "a", false).await.1, Outcome::Miss);
    // EVALSHA per round trip; no EVAL retries once loaded.
    assert_eq!(link.calls() - before, 2, "a miss: lookup + fill");
    let before = link.calls();
    assert_eq!(get_one(&c, &db, "a", false).await.1, Outcome::Hit);
    assert_eq!(link.calls() - before, 1, "a hit: one lookup");
    let (loads, before) = (db.loads.get(), link.calls());
    let (found, _) = c.get_many(&keys(&["a", "b", "c", "nope"]), &db, false).await.unwrap();
    let outcomes: Vec<Outcome> = found.iter().map(|f| f.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Hit, Outcome::Miss, Outcome::Miss, Outcome::Miss]);
    assert_eq!(found[3].value, None);
    assert_eq!((db.loads.get() - loads, link.calls() - before), (1, 2), "three misses: one load, one lookup, one fill");
    let before = link.calls();
    let (found, _) = c.get_many(&keys(&["a", "b", "c", "nope"]), &db, false).await.unwrap();
    assert!(found.iter().all(|f| f.outcome == Outcome::Hit));
    assert_eq!(link.calls() - before, 1, "a batch of hits: one round trip");
}

#[tokio::test]
async fn a_writes_stale_copy_goes_only_to_those_who_accept_it() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { wait_ms: 150, ..cfg() });
    let db = Db::default();
    db.set("k", 1);
    get_one(&c, &db, "k", false).await;
    db.set("k", 2);
    c.invalidate(&keys(&["k"]), &db).await.unwrap();
    assert!(redis_get(&redis, &ns().stale("k")).await.unwrap().ends_with(":Vv1"));
    // Someone else is loading it.
    redis_set(&redis, &ns().lease("k"), "other", 5000).await;
    assert_eq!(get_one(&c, &db, "k", true).await, (Some("v1".into()), Outcome::Stale));
    let started = Instant::now();
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v2".into()), Outcome::Miss), "waited, then read the source");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(redis_get(&redis, &ns().lease("k")).await.as_deref(), Some("other"), "no fill without the lease");
}

#[tokio::test]
async fn past_freshness_one_refreshes_and_the_others_get_it_stale() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { ttl_ms: 100, jitter: 0.0, stale_ms: 10_000, ..cfg() });
    let db = Db::default();
    db.set("k", 1);
    get_one(&c, &db, "k", false).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    redis_set(&redis, &ns().lease("k"), "other", 5000).await;
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v1".into()), Outcome::Stale), "stale-while-revalidate");
    let _: () = redis::cmd("DEL").arg(&ns().lease("k")).query_async(&mut redis.conn().await).await.unwrap();
    db.set("k", 2);
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v2".into()), Outcome::Miss));
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v2".into()), Outcome::Hit));
}

#[tokio::test]
async fn not_found_is_cached_briefly_or_not_at_all() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { negative_ttl_ms: 200, jitter: 0.0, ..cfg() });
    let db = Db::default();
    assert_eq!(get_one(&c, &db, "ghost", false).await, (None, Outcome::Miss));
    assert_eq!(get_one(&c, &db, "ghost", false).await, (None, Outcome::Hit));
    let pttl: i64 = redis::cmd("PTTL").arg(&ns().value("ghost")).query_async(&mut redis.conn().await).await.unwrap();
    assert!(pttl <= 200 + 30_000, "fresh for 200 ms, then the stale grace: {pttl}");
    let off = cache(&link, CacheConfig { negative_ttl_ms: 0, ..cfg() });
    assert_eq!(get_one(&off, &db, "none", false).await, (None, Outcome::Miss));
    assert_eq!(get_one(&off, &db, "none", false).await, (None, Outcome::Miss), "negative caching off");
    assert_eq!(redis_get(&redis, &ns().lease("none")).await, None, "the lease was given back");
}

#[tokio::test]
async fn ttls_are_jittered() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { ttl_ms: 100_000, jitter: 0.1, stale_ms: 0, ..cfg() });
    let db = Db::default();
    let names: Vec<String> = (0..40).map(|i| format!("j{i}")).collect();
    for n in &names {
        db.set(n, 1);
    }
    c.get_many(&names, &db, false).await.unwrap();
    let mut ttls = Vec::new();
    for n in &names {
        let pttl: i64 = redis::cmd("PTTL").arg(ns().value(n)).query_async(&mut redis.conn().await).await.unwrap();
        assert!((89_000..=110_000).contains(&pttl), "{pttl}");
        ttls.push(pttl / 1000);
    }
    ttls.sort();
    ttls.dedup();
    assert!(ttls.len() > 5, "spread over the ±10% band: {ttls:?}");
}

#[tokio::test]
async fn xfetch_refreshes_early_near_expiry() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let db = Db::default();
    db.set("k", 1);
    db.load_ms.set(20);
    // Fresh for 1 s, loads take ≥ 20 ms; with u = 2^-53, beta * delta * -ln(u) ≥ 730 ms.
    let base = CacheConfig { ttl_ms: 1000, jitter: 0.0, stale_ms: 0, ..cfg() };
    let plain = Cache::new(&link, &ZeroRng, &TokioSleep, ns(), base.clone());
    let xfetch = Cache::new(&link, &ZeroRng, &TokioSleep, ns(), CacheConfig { xfetch_beta: 1.0, ..base });
    get_one(&plain, &db, "k", false).await;
    assert_eq!(get_one(&plain, &db, "k", false).await.1, Outcome::Hit, "beta 0: no early refresh");
    tokio::time::sleep(Duration::from_millis(400)).await;
    db.set("k", 2);
    assert_eq!(get_one(&xfetch, &db, "k", false).await, (Some("v2".into()), Outcome::Miss), "refreshed before expiry");
    assert_eq!(get_one(&plain, &db, "k", false).await, (Some("v2".into()), Outcome::Hit));
}

#[tokio::test]
async fn a_missing_epoch_key_revalidates_instead_of_reloading() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, cfg());
    let db = Db::default();
    db.set("k", 1);
    get_one(&c, &db, "k", false).await;
    let _: () = redis::cmd("DEL").arg(&ns().epoch(0)).query_async(&mut redis.conn().await).await.unwrap();
    let (loads, epoch_reads) = (db.loads.get(), db.epoch_reads.get());
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v1".into()), Outcome::Hit));
    assert_eq!((db.loads.get() - loads, db.epoch_reads.get() - epoch_reads), (0, 1), "one epoch read, no reload");
    assert_eq!(redis_get(&redis, &ns().epoch(0)).await.as_deref(), Some("0"));
    // The epoch is refreshed ahead of expiry by one request, under traffic.
    let short = cache(&link, CacheConfig { epoch_ms: 400, ..cfg() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    redis_set(&redis, &ns().epoch(0), "0", 150).await;
    let epoch_reads = db.epoch_reads.get();
    assert_eq!(get_one(&short, &db, "k", false).await.1, Outcome::Hit);
    assert_eq!(db.epoch_reads.get() - epoch_reads, 1);
    let pttl: i64 = redis::cmd("PTTL").arg(&ns().epoch(0)).query_async(&mut redis.conn().await).await.unwrap();
    assert!(pttl > 200, "extended from the database's value: {pttl}");
}

#[tokio::test]
async fn hits_do_not_need_the_database() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { epoch_ms: 400, ..cfg() });
    let db = Db::default();
    db.set("k", 1);
    get_one(&c, &db, "k", false).await;
    db.down.set(true);
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v1".into()), Outcome::Hit));
    // Even when this request is the one due to refresh the epoch.
    redis_set(&redis, &ns().epoch(0), "0", 100).await;
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v1".into()), Outcome::Hit));
    assert!(c.get_many(&keys(&["other"]), &db, false).await.is_err(), "a miss does");
}

#[tokio::test]
async fn with_redis_down_reads_bypass() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, cfg());
    let db = Db::default();
    db.set("k", 1);
    link.down.store(true, Ordering::SeqCst);
    let (found, degraded) = c.get_many(&keys(&["k", "x"]), &db, false).await.unwrap();
    assert_eq!(found.iter().map(|f| (f.value.clone(), f.outcome)).collect::<Vec<_>>(), vec![(Some("v1".into()), Outcome::Bypass), (None, Outcome::Bypass)]);
    assert!(degraded.is_some());
}

/// A write whose invalidation cannot reach Redis — which still holds v1, as
/// after a partition or a restart with persistence — bumps the epoch and
/// answers once no host can trust v1 any more.
#[tokio::test]
async fn a_write_that_cannot_invalidate_waits_out_the_epoch() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { epoch_ms: 300, ..cfg() });
    let db = Db::default();
    db.set("k", 1);
    get_one(&c, &db, "k", false).await;
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v1".into()), Outcome::Hit));

    link.down.store(true, Ordering::SeqCst);
    db.set("k", 2);
    let started = Instant::now();
    let (how, degraded) = c.invalidate(&keys(&["k"]), &db).await.unwrap();
    let took = started.elapsed();
    assert_eq!(how, Invalidated::Bounded);
    assert!(degraded.is_some());
    assert!(took >= Duration::from_millis(1300) && took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(db.epoch.get(), 1);

    link.down.store(false, Ordering::SeqCst);
    assert!(redis_get(&redis, &ns().value("k")).await.unwrap().ends_with(":Vv1"), "v1 survived in Redis");
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v2".into()), Outcome::Miss), "but is never served again");
}

#[tokio::test]
async fn a_write_finishes_early_when_redis_comes_back() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, CacheConfig { epoch_ms: 5000, ..cfg() });
    let db = Db::default();
    db.set("k", 1);
    get_one(&c, &db, "k", false).await;
    link.down.store(true, Ordering::SeqCst);
    db.set("k", 2);
    let started = Instant::now();
    let down = link.down.clone();
    let ((how, _), ()) = tokio::join!(async { c.invalidate(&keys(&["k"]), &db).await.unwrap() }, async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        down.store(false, Ordering::SeqCst);
    });
    assert_eq!(how, Invalidated::AfterOutage);
    assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());
    assert_eq!(redis_get(&redis, &ns().epoch(0)).await.as_deref(), Some("1"), "Redis took the new epoch");
    assert_eq!(redis_get(&redis, &ns().value("k")).await, None);
    assert_eq!(get_one(&c, &db, "k", false).await, (Some("v2".into()), Outcome::Miss));
}

#[tokio::test]
async fn keys_from_users_are_escaped() {
    let redis = Redis::start();
    let link = TestLink::new(&redis).await;
    let c = cache(&link, cfg());
    let db = Db::default();
    let hostile = "a}b {x} *:?\u{0}é";
    db.set(hostile, 1);
    assert_eq!(get_one(&c, &db, hostile, false).await, (Some("v1".into()), Outcome::Miss));
    assert_eq!(get_one(&c, &db, hostile, false).await, (Some("v1".into()), Outcome::Hit));
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis.conn().await).await.unwrap();
    for k in &all {
        assert!(k.bytes().all(|b| b.is_ascii_graphic()), "{k:?}");
        assert_eq!(k.matches('{').count(), k.matches('}').count(), "{k}");
    }
    assert!(all.iter().any(|k| k.starts_with("spindle:cache:{t:") && k.contains("}:!")), "{all:?}");
}

#[tokio::test]
async fn on_a_cluster_each_bucket_is_one_slot() {
    // A real 3-master cluster through the gateway: every script of a lookup,
    // a fill and an invalidation touches one bucket's slot, or the cluster
    // answers CROSSSLOT and the cache would only ever bypass.
    let cluster = Cluster::start();
    let gateway = Gateway::start_cluster(&cluster);
    let link = TestLink::rest(&gateway);
    let cfg = CacheConfig { buckets: 16, ..cfg() };
    let ks = ns().with_buckets(16);
    let c = Cache::new(&link, &spindle::env::OsRng, &TokioSleep, ks.clone(), cfg);
    let db = Db::default();
    let names: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
    for n in &names {
        db.set(n, 1);
    }
    let mut buckets: Vec<u32> = names.iter().map(|n| ks.bucket(n)).collect();
    buckets.sort();
    buckets.dedup();
    assert!(buckets.len() > 8, "40 keys over many buckets: {buckets:?}");

    let before = link.calls();
    let (found, degraded) = c.get_many(&names, &db, false).await.unwrap();
    assert_eq!(degraded, None);
    assert!(found.iter().all(|f| f.outcome == Outcome::Miss && f.value.as_deref() == Some("v1")));
    // A lookup and a fill per bucket, and at first an EVAL after each
    // master's NOSCRIPT (two scripts, three masters).
    let n = link.calls() - before;
    assert!((2 * buckets.len()..=2 * buckets.len() + 6).contains(&n), "{n} round trips for {} buckets", buckets.len());
    let before = link.calls();
    let (found, degraded) = c.get_many(&names, &db, false).await.unwrap();
    assert_eq!(degraded, None);
    assert!(found.iter().all(|f| f.outcome == Outcome::Hit), "{:?}", found.iter().map(|f| f.outcome).collect::<Vec<_>>());
    assert_eq!(link.calls() - before, buckets.len(), "a batch of hits: one round trip per bucket");

    // A write to two keys in (most likely) two buckets.
    db.set("user3", 2);
    db.set("user17", 2);
    let (done, degraded) = c.invalidate(&keys(&["user3", "user17"]), &db).await.unwrap();
    assert_eq!((done, degraded), (Invalidated::Done, None));
    let before = link.calls();
    let (found, _) = c.get_many(&keys(&["user3", "user17", "user5"]), &db, false).await.unwrap();
    let touched = {
        let mut b: Vec<u32> = ["user3", "user17", "user5"].iter().map(|n| ks.bucket(n)).collect();
        b.sort();
        b.dedup();
        b.len()
    };
    let misses = ["user3", "user17"].iter().map(|n| ks.bucket(n)).collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(link.calls() - before, touched + misses, "a lookup per bucket, a fill per bucket with a miss");
    let got: Vec<_> = found.iter().map(|f| (f.value.clone(), f.outcome)).collect();
    assert_eq!(got, vec![(Some("v2".into()), Outcome::Miss), (Some("v2".into()), Outcome::Miss), (Some("v1".into()), Outcome::Hit)]);
}
