//! The rate-limit scripts against a reference model, on a real redis-server,
//! with a controlled clock.
//!
//! Each case draws a policy, a few identities (some hostile) and a start
//! time from a seeded PRNG, then runs a few hundred random steps — clock
//! jumps (small, large, and onto window edges), consumes of cost 1..=limit,
//! refunds, peeks and resets — and after every step compares the decision,
//! the stored state and the TTLs with the model below, which is written
//! independently of the Lua (plain Rust over a map of keys). Keys expire by
//! the model's clock: when the fake time passes a key's expiry, the test
//! deletes it from Redis too, so "expired" is exercised as Redis would do it,
//! and the model checks that a key never expires while it still matters.

use spindle::env::FixedClock;
use spindle::ratelimit::{Algorithm, Decision, Error, FailureMode, Identity, KeyMode, RateLimitKeys, Policy, RateLimiter};
use spindle::redis::native::NativeLink;
use spindle_e2e::Redis;
use std::collections::HashMap;

/// splitmix64: small, deterministic, good enough to draw test cases.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Stored {
    Counter(i64),
    Bucket { refilled_at: i64, tokens: i64 },
}

#[derive(Clone, Debug)]
struct Entry {
    value: Stored,
    expires_at: i64,
    /// When the TTL was last set (model time).
    ttl_set_at: i64,
}

/// What a decision looked like, as the scripts report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Out {
    allowed: bool,
    limit: i64,
    remaining: i64,
    reset: i64,
    retry: i64,
}

/// The reference model: the same algorithms over a map, in plain Rust.
#[derive(Default)]
struct Model {
    keys: HashMap<String, Entry>,
}

/// `(t % w)` as Lua 5.1 computes it on doubles, and upstash's weighting.
fn weighted(t: i64, count: i64, window: i64) -> i64 {
    let (a, b) = (t as f64, window as f64);
    let r = a - (a / b).floor() * b;
    ((1.0 - r / b) * count as f64).floor() as i64
}

impl Model {
    fn counter(&self, key: &str) -> i64 {
        match self.keys.get(key).map(|e| &e.value) {
            Some(Stored::Counter(n)) => *n,
            None => 0,
            other => panic!("{key} holds {other:?}"),
        }
    }

    /// Adds to a counter; a new key gets `ttl`, an existing one keeps its expiry.
    fn incr(&mut self, key: &str, by: i64, now: i64, ttl: i64) -> i64 {
        let e = self.keys.entry(key.to_owned()).or_insert(Entry {
            value: Stored::Counter(0),
            expires_at: now + ttl,
            ttl_set_at: now,
        });
        let Stored::Counter(n) = &mut e.value else { panic!("{key} is not a counter") };
        *n += by;
        *n
    }

    /// One decision at `now`; with `write == false` nothing changes (peeks and
    /// the "would it pass at t" probe). `keys` are the script's KEYS.
    fn decide(&mut self, alg: Algorithm, keys: &[String], now: i64, cost: i64, write: bool) -> Out {
        let probe = if cost == 0 { 1 } else { cost };
        match alg {
            Algorithm::FixedWindow { limit, window_ms } => {
                let (limit, window) = (limit as i64, window_ms as i64);
                let reset = (now / window + 1) * window;
                let used = self.counter(&keys[0]);
                if probe > 0 && used + probe > limit {
                    return Out { allowed: false, limit, remaining: (limit - used).max(0), reset, retry: reset - now };
                }
                let cost = if cost < 0 { cost.max(-used.max(0)) } else { cost };
                let mut used = used;
                if cost != 0 && write {
                    used = self.incr(&keys[0], cost, now, window);
                    // Needed until its window ends.
                    assert!(self.keys[&keys[0]].expires_at >= reset, "fixed-window key expires inside its window");
                }
                Out { allowed: true, limit, remaining: (limit - used).max(0), reset, retry: 0 }
            }
            Algorithm::SlidingWindow { limit, window_ms } => {
                let (limit, window) = (limit as i64, window_ms as i64);
                let reset = (now / window + 1) * window;
                let current = self.counter(&keys[0]);
                let previous = self.counter(&keys[1]);
                let used = weighted(now, previous, window) + current;
                if probe > 0 && used + probe > limit {
                    let retry = self.sliding_retry(alg, keys, now, probe);
                    return Out { allowed: false, limit, remaining: (limit - used).max(0), reset, retry };
                }
                let cost = if cost < 0 { cost.max(-current.max(0)) } else { cost };
                let mut current = current;
                if cost != 0 && write {
                    current = self.incr(&keys[0], cost, now, window * 2 + 1000);
                    // Needed until it stops being the previous window.
                    assert!(self.keys[&keys[0]].expires_at >= reset + window, "sliding-window key expires too early");
                }
                Out {
                    allowed: true,
                    limit,
                    remaining: (limit - weighted(now, previous, window) - current).max(0),
                    reset,
                    retry: 0,
                }
            }
            Algorithm::TokenBucket { refill, interval_ms, max } => {
                let (refill, interval, max) = (refill as i64, interval_ms as i64, max as i64);
                let (mut refilled_at, mut tokens) = match self.keys.get(&keys[0]).map(|e| &e.value) {
                    Some(Stored::Bucket { refilled_at, tokens }) => (*refilled_at, *tokens),
                    None => (now, max),
                    other => panic!("{} holds {other:?}", keys[0]),
                };
                if now >= refilled_at + interval {
                    let n = (now - refilled_at) / interval;
                    tokens += n * refill;
                    refilled_at += n * interval;
                }
                tokens = tokens.min(max);
                let reset = refilled_at + interval;
                if probe > 0 && tokens < probe {
                    let at = refilled_at + (probe - tokens + refill - 1) / refill * interval;
                    return Out { allowed: false, limit: max, remaining: tokens.max(0), reset, retry: at - now };
                }
                if cost != 0 && write {
                    tokens = (tokens - cost).min(max);
                    if tokens >= max {
                        self.keys.remove(&keys[0]);
                    } else {
                        let ttl = (max - tokens + refill - 1) / refill * interval;
                        self.keys.insert(
                            keys[0].clone(),
                            Entry {
                                value: Stored::Bucket { refilled_at, tokens },
                                expires_at: now + ttl,
                                ttl_set_at: now,
                            },
                        );
                        // Needed until the bucket is full again.
                        let full_at = refilled_at + (max - tokens + refill - 1) / refill * interval;
                        assert!(now + ttl >= full_at, "bucket expires before it is full");
                    }
                } else if cost != 0 {
                    tokens = (tokens - cost).min(max);
                }
                Out { allowed: true, limit: max, remaining: tokens.max(0), reset, retry: 0 }
            }
        }
    }

    /// Whether a request of `cost` would pass at `t`, nothing else happening
    /// first: the model's own read-only decision, with the keys as of `t`.
    fn passes_at(&mut self, alg: Algorithm, keys_at: &dyn Fn(i64) -> Vec<String>, t: i64, cost: i64) -> bool {
        self.decide(alg, &keys_at(t), t, cost, false).allowed
    }

    /// The earliest instant a denied sliding-window request would pass: a
    /// plain search over the model (the weight never rises with time).
    fn sliding_retry(&mut self, alg: Algorithm, keys: &[String], now: i64, cost: i64) -> i64 {
        let Algorithm::SlidingWindow { window_ms, .. } = alg else { unreachable!() };
        let window = window_ms as i64;
        // Keys as of t, derived from the keys at `now` (same base).
        let base = keys[0].rsplit_once(':').unwrap().0.to_owned();
        let keys_at = move |t: i64| vec![format!("{base}:{}", t / window), format!("{base}:{}", t / window - 1)];
        let (mut lo, mut hi) = (now + 1, (now / window + 3) * window);
        assert!(self.passes_at(alg, &keys_at, hi, cost), "never passes");
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.passes_at(alg, &keys_at, mid, cost) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo - now
    }
}

fn out(d: &Decision) -> Out {
    Out {
        allowed: d.allowed,
        limit: d.limit as i64,
        remaining: d.remaining as i64,
        reset: d.reset_ms as i64,
        retry: d.retry_after_ms as i64,
    }
}

async fn cmd<T: redis::FromRedisValue>(conn: &mut spindle_e2e::Conn, c: &mut redis::Cmd) -> T {
    c.query_async(conn).await.unwrap()
}

/// What Redis holds for `key`, in the model's terms.
async fn stored(conn: &mut spindle_e2e::Conn, key: &str) -> Option<Stored> {
    let kind: String = cmd(conn, redis::cmd("TYPE").arg(key)).await;
    match kind.as_str() {
        "none" => None,
        "string" => {
            let s: String = cmd(conn, redis::cmd("GET").arg(key)).await;
            Some(Stored::Counter(s.parse().unwrap_or_else(|_| panic!("{key} = {s:?}"))))
        }
        "hash" => {
            let (r, t): (String, String) =
                cmd(conn, redis::cmd("HMGET").arg(key).arg("refilledAt").arg("tokens")).await;
            Some(Stored::Bucket { refilled_at: r.parse().unwrap(), tokens: t.parse().unwrap() })
        }
        other => panic!("{key} is a {other}"),
    }
}

const IDENTITY_ALPHABET: &[u8] = b"ab:9.-_@/ *?[]{}!\\\r\n\0\x7f";

fn identity(rng: &mut Prng) -> Identity {
    match rng.range(0, 4) {
        0 => Identity::Ip(format!("203.0.113.{}", rng.range(0, 255)).parse().unwrap()),
        1 => Identity::Ip(format!("2001:db8:{:x}::{:x}", rng.range(0, 3), rng.range(0, 99)).parse().unwrap()),
        2 => Identity::User(format!("u{}", rng.range(0, 999))),
        _ => {
            let len = if rng.chance(5) { 200 } else { rng.range(1, 12) as usize };
            let raw: Vec<u8> = (0..len)
                .map(|_| IDENTITY_ALPHABET[rng.range(0, IDENTITY_ALPHABET.len() as u64 - 1) as usize])
                .collect();
            Identity::Name(String::from_utf8(raw).unwrap())
        }
    }
}

fn algorithm(kind: &str, rng: &mut Prng) -> Algorithm {
    // Windows of at least a minute: real Redis TTLs must outlast a test case,
    // since expiry here follows the model's clock.
    let window_ms = [60_000, 90_000, 61_237, 300_000, 3_600_000][rng.range(0, 4) as usize];
    match kind {
        "fixed" => Algorithm::FixedWindow { limit: rng.range(1, 12), window_ms },
        "sliding" => Algorithm::SlidingWindow { limit: rng.range(1, 30), window_ms },
        _ => {
            let refill = rng.range(1, 4);
            Algorithm::TokenBucket { refill, interval_ms: window_ms, max: refill + rng.range(0, 8) }
        }
    }
}

/// One algorithm, `cases` seeded cases of `steps` steps each, both key modes.
async fn run_model(kind: &str, seed: u64, cases: u64, steps: u64) {
    let redis = Redis::start();
    let mut conn = redis.conn().await;
    let link = NativeLink::connect(&redis.url()).await.unwrap();
    let mut rng = Prng(seed);
    let (mut allowed, mut denied, mut refunds, mut peeks, mut resets) = (0, 0, 0, 0, 0);

    for case in 0..cases {
        let _: () = cmd(&mut conn, &mut redis::cmd("FLUSHALL")).await;
        let alg = algorithm(kind, &mut rng);
        let mode = if case % 2 == 0 { KeyMode::Upstash } else { KeyMode::Cluster };
        let keyspace = RateLimitKeys::new("@upstash/ratelimit", mode).unwrap();
        let policy = Policy::new("m", alg, FailureMode::Closed).unwrap();
        let clock = FixedClock(std::cell::Cell::new(1_700_000_000_000 + rng.range(0, 10_000_000_000)));
        let limiter = RateLimiter::new(&link, &clock, &keyspace);
        let who: Vec<Identity> = (0..rng.range(1, 3)).map(|_| identity(&mut rng)).collect();
        let window = match alg {
            Algorithm::FixedWindow { window_ms, .. } | Algorithm::SlidingWindow { window_ms, .. } => window_ms,
            Algorithm::TokenBucket { interval_ms, .. } => interval_ms,
        };
        let mut model = Model::default();
        let ctx = |step: u64| format!("{kind} case {case} step {step}: {alg} {mode:?}");

        for step in 0..steps {
            // The clock: mostly small steps, sometimes onto or across a window edge.
            let now = clock.0.get();
            let edge = (now / window + 1) * window;
            let next = match rng.range(0, 9) {
                0 => edge,
                1 => edge - 1,
                2 => edge + window * rng.range(0, 2),
                3 => now + rng.range(window / 2, window * 3),
                4 | 5 => now,
                _ => now + rng.range(0, window / 8),
            };
            clock.0.set(next.max(now));
            let now = clock.0.get() as i64;

            // Keys the model's clock has expired are gone from Redis too.
            let expired: Vec<String> =
                model.keys.iter().filter(|(_, e)| e.expires_at <= now).map(|(k, _)| k.clone()).collect();
            for k in expired {
                model.keys.remove(&k);
                let _: i64 = cmd(&mut conn, redis::cmd("DEL").arg(&k)).await;
            }

            let id = &who[rng.range(0, who.len() as u64 - 1) as usize];
            let keys = limiter.keys(&policy, id, now as u64);
            check_layout(&keys, &policy, id, mode, now as u64);
            let capacity = alg.capacity() as i64;
            let op = rng.range(0, 99);
            if op < 4 {
                // Reset: exactly the keys a decision reads go.
                limiter.reset(&policy, id).await.unwrap();
                for k in &keys {
                    model.keys.remove(k);
                }
                resets += 1;
            } else if op < 6 {
                // Costs the policy can never allow, and a zero cost, are refused before Redis.
                let before = spindle_e2e::command_count(&redis).await;
                assert_eq!(
                    limiter.limit(&policy, id, capacity + 1).await,
                    Err(Error::CostExceedsLimit { cost: capacity as u64 + 1, limit: capacity as u64 })
                );
                assert_eq!(limiter.limit(&policy, id, 0).await, Err(Error::InvalidCost(0)));
                assert_eq!(spindle_e2e::command_count(&redis).await, before, "no command reached Redis");
            } else {
                let cost = match op {
                    6..=15 => 0,
                    16..=27 => -(rng.range(1, 3) as i64),
                    28..=45 => rng.range(1, capacity as u64) as i64,
                    _ => 1,
                };
                let got =
                    if cost == 0 { limiter.peek(&policy, id).await } else { limiter.limit(&policy, id, cost).await }
                        .unwrap_or_else(|e| panic!("{}: {e}", ctx(step)));
                assert_eq!(got.now_ms, now as u64);
                let want = model.decide(alg, &keys, now, cost, true);
                assert_eq!(out(&got), want, "{}: cost {cost}", ctx(step));
                if !got.allowed {
                    // The retry instant is exact: the request passes then and not a millisecond before.
                    let probe = if cost == 0 { 1 } else { cost };
                    let limiter_keys = |t: i64| limiter.keys(&policy, id, t as u64);
                    assert!(model.passes_at(alg, &limiter_keys, now + want.retry, probe), "{}", ctx(step));
                    assert!(want.retry >= 1);
                    if want.retry > 1 {
                        assert!(!model.passes_at(alg, &limiter_keys, now + want.retry - 1, probe), "{}", ctx(step));
                    }
                    denied += 1;
                } else if cost < 0 {
                    refunds += 1;
                } else if cost == 0 {
                    peeks += 1;
                } else {
                    allowed += 1;
                }
            }

            // The stored state matches the model, and every key has the TTL the
            // model set (less the real time spent since: Redis keeps real time).
            for k in &keys {
                let want = model.keys.get(k);
                assert_eq!(stored(&mut conn, k).await, want.map(|e| e.value.clone()), "{}: key {k}", ctx(step));
                let pttl: i64 = cmd(&mut conn, redis::cmd("PTTL").arg(k)).await;
                match want {
                    None => assert_eq!(pttl, -2),
                    Some(e) => {
                        let model_ttl = e.expires_at - e.ttl_set_at;
                        assert!(
                            pttl > 0 && pttl <= model_ttl && model_ttl - pttl < 10_000,
                            "{}: {k} pttl {pttl}, model {model_ttl}",
                            ctx(step)
                        );
                    }
                }
            }
        }

        // Nothing in Redis is left without a TTL, and nothing the model does not know.
        let all: Vec<String> = cmd(&mut conn, redis::cmd("KEYS").arg("*")).await;
        for k in &all {
            let pttl: i64 = cmd(&mut conn, redis::cmd("PTTL").arg(k)).await;
            assert!(pttl > 0, "{k} has no TTL ({pttl})");
            assert!(model.keys.contains_key(k), "{k} is not in the model");
        }
        assert_eq!(all.len(), model.keys.len(), "{}", ctx(steps));
    }
    println!("{kind}: {allowed} allowed, {denied} denied, {refunds} refunds, {peeks} peeks, {resets} resets");
    assert!(
        allowed > 100 && denied > 100 && refunds > 50 && peeks > 50 && resets > 10,
        "the cases exercise every path"
    );
}

/// The keys are exactly @upstash/ratelimit's, or the same with a hash tag.
fn check_layout(keys: &[String], policy: &Policy, id: &Identity, mode: KeyMode, now: u64) {
    let ident = id.identifier();
    if let Identity::Name(raw) = id {
        let ordinary = !raw.is_empty()
            && raw.len() <= 128
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:@/+=".contains(&b));
        assert_eq!(ident == *raw, ordinary, "{raw:?} -> {ident}");
    }
    assert!(!ident.contains(['{', '}', '*', '?', '[', ']', '\\', ' ', '\r', '\n', '\0']), "{ident:?}");
    let base = match mode {
        KeyMode::Upstash => format!("@upstash/ratelimit:{}:{ident}", policy.name),
        KeyMode::Cluster => format!("@upstash/ratelimit:{}:{{{ident}}}", policy.name),
    };
    let want = match policy.algorithm {
        Algorithm::FixedWindow { window_ms, .. } => vec![format!("{base}:{}", now / window_ms)],
        Algorithm::SlidingWindow { window_ms, .. } => {
            vec![format!("{base}:{}", now / window_ms), format!("{base}:{}", now / window_ms - 1)]
        }
        Algorithm::TokenBucket { .. } => vec![base],
    };
    assert_eq!(keys, want);
    if mode == KeyMode::Cluster {
        let slots: Vec<u16> = keys.iter().map(|k| slot(k)).collect();
        assert!(slots.windows(2).all(|w| w[0] == w[1]), "{keys:?} span slots {slots:?}");
    }
}

/// The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, mod 16384.
fn slot(key: &str) -> u16 {
    let b = key.as_bytes();
    let tagged = b.iter().position(|&c| c == b'{').and_then(|s| {
        let e = b[s + 1..].iter().position(|&c| c == b'}')?;
        (e > 0).then(|| &b[s + 1..s + 1 + e])
    });
    let mut crc: u16 = 0;
    for &byte in tagged.unwrap_or(b) {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

#[test]
fn crc16_matches_the_cluster_spec() {
    // The spec's check value, and tags.
    assert_eq!(slot("123456789"), 0x31C3);
    assert_eq!(slot("a{user1000}.following"), slot("b{user1000}.followers"));
    assert_eq!(slot("{}x"), slot("{}x"));
}

#[tokio::test]
async fn fixed_window_matches_the_model() {
    run_model("fixed", 0xF1CED, 40, 250).await;
}

#[tokio::test]
async fn sliding_window_matches_the_model() {
    run_model("sliding", 0x511DE, 40, 250).await;
}

#[tokio::test]
async fn token_bucket_matches_the_model() {
    run_model("token", 0x70CE2, 40, 250).await;
}

/// Hand-worked sliding-window numbers, as @upstash/ratelimit computes them.
#[tokio::test]
async fn sliding_window_weights_the_previous_window() {
    let redis = Redis::start();
    let link = NativeLink::connect(&redis.url()).await.unwrap();
    let keyspace = RateLimitKeys::default();
    let policy = Policy::new("w", Algorithm::parse("sliding_window 10/60s").unwrap(), FailureMode::Open).unwrap();
    let start = 1_700_000_040_000u64; // 60_000 * 28_333_334: a window edge
    assert_eq!(start % 60_000, 0);
    let clock = FixedClock(std::cell::Cell::new(start + 1_000));
    let rl = RateLimiter::new(&link, &clock, &keyspace);
    let me = Identity::Name("me".into());

    // Ten in the first window; the eleventh is denied and not counted.
    for i in 0..10 {
        let d = rl.limit(&policy, &me, 1).await.unwrap();
        assert!(d.allowed && d.remaining == 9 - i);
    }
    let d = rl.limit(&policy, &me, 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.reset_ms, start + 60_000);
    // It would pass once the previous window weighs 9 or less: floor((1 - r/60000) * 10) <= 9,
    // i.e. just after the edge (r = 1 ms).
    assert_eq!(d.retry_after_ms, 60_000 - 1_000 + 1);

    // A quarter into the next window, the previous ten weigh floor(0.75 * 10) = 7.
    clock.0.set(start + 60_000 + 15_000);
    let d = rl.peek(&policy, &me).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 3));
    // Cost 3 fits exactly; then cost 1 does not, until 18 s in:
    // floor((1 - r/60000) * 10) + 3 + 1 <= 10  ⇔  (1 - r/60000) * 10 < 7  ⇔  r > 18 000 ms.
    let d = rl.limit(&policy, &me, 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0));
    let d = rl.limit(&policy, &me, 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after_ms, 18_001 - 15_000);
    // A refund of 2 makes room for 2.
    let d = rl.limit(&policy, &me, -2).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 2));
    // Cost 3 does not fit, and is not half-served.
    let d = rl.limit(&policy, &me, 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (false, 2));
    let d = rl.peek(&policy, &me).await.unwrap();
    assert_eq!(d.remaining, 2);
}

/// A fixed window and a token bucket, by hand, at their edges.
#[tokio::test]
async fn fixed_window_and_token_bucket_edges() {
    let redis = Redis::start();
    let link = NativeLink::connect(&redis.url()).await.unwrap();
    let keyspace = RateLimitKeys::default();
    let me = Identity::Name("me".into());
    let edge = 1_700_000_040_000u64;
    let clock = FixedClock(std::cell::Cell::new(edge - 2));
    let rl = RateLimiter::new(&link, &clock, &keyspace);

    let fixed = Policy::new("f", Algorithm::parse("fixed_window 3/60s").unwrap(), FailureMode::Open).unwrap();
    assert!(rl.limit(&fixed, &me, 3).await.unwrap().allowed);
    let d = rl.limit(&fixed, &me, 1).await.unwrap();
    assert_eq!((d.allowed, d.retry_after_ms, d.reset_ms), (false, 2, edge));
    clock.0.set(edge - 1);
    assert!(!rl.limit(&fixed, &me, 1).await.unwrap().allowed);
    clock.0.set(edge);
    let d = rl.limit(&fixed, &me, 1).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 2));
    // A refund larger than what was used gives back only that.
    let d = rl.limit(&fixed, &me, -5).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 3));

    // 2 tokens every 10 s, up to 5.
    let bucket = Policy::new("t", Algorithm::parse("token_bucket 2/10s burst 5").unwrap(), FailureMode::Open).unwrap();
    clock.0.set(edge);
    let d = rl.limit(&bucket, &me, 4).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.reset_ms), (true, 1, edge + 10_000));
    // Needs 4, has 1: two refills, at +10 s and +20 s.
    clock.0.set(edge + 3_000);
    let d = rl.limit(&bucket, &me, 4).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.retry_after_ms), (false, 1, 17_000));
    clock.0.set(edge + 19_999);
    assert!(!rl.limit(&bucket, &me, 4).await.unwrap().allowed);
    clock.0.set(edge + 20_000);
    let d = rl.limit(&bucket, &me, 4).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 1));
    // Refunding up to the top deletes the bucket: full and missing are the same.
    rl.limit(&bucket, &me, -9).await.unwrap();
    let mut conn = redis.conn().await;
    let exists: i64 = redis::cmd("EXISTS").arg("@upstash/ratelimit:t:me").query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0);
    // A refund on an empty bucket writes nothing either.
    assert_eq!(rl.limit(&bucket, &Identity::Name("new".into()), -1).await.unwrap().remaining, 5);
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(n, 2, "only the two fixed-window counters are left");
}
