//! A read-through cache in Redis, shared by the whole fleet, with leases
//! against stale fills (Facebook's memcache leases, NSDI 2013).
//!
//! A lookup is one script call ([`GET`]) for any number of keys. On a miss
//! the same script takes a lease (`SET NX PX` of a random token); only the
//! holder loads from the source and fills, and the fill is a compare-and-set
//! ([`FILL`]): it lands only if the token is still the current lease. A
//! write calls [`Cache::invalidate`] after its commit, which deletes the
//! value and the lease ([`INVALIDATE`]), so a fill that read the old row
//! before the write is refused. Concurrent missers wait on the lease and
//! retry, or take a stale copy where that is safe (below).
//!
//! **Entries** are `<epoch>:<delta ms>:<V|N><payload>`: `V` a value, `N` a
//! cached "not found"; `delta` is how long the load took, for XFetch. A
//! value key lives for its freshness (the TTL with jitter, or the negative
//! TTL) plus a grace period (`stale_ms`); in the grace period it is stale.
//!
//! **Stale answers.** Two kinds, with different guarantees:
//! - an entry past its freshness that no write has invalidated is still the
//!   newest version: while the lease holder refreshes it, others get it as
//!   [`Outcome::Stale`] at once (stale-while-revalidate);
//! - a write keeps the value it invalidates as a stale copy for `stale_ms`.
//!   It is older than that write, so it is served only to callers that say
//!   they accept it (`want_stale`), never by default: a read that starts
//!   after a write was acknowledged never sees an older version.
//!
//! **Epochs: writes while Redis is unreachable.** A write that cannot
//! invalidate (Redis down or partitioned from this host, but perhaps still
//! holding the old value) bumps an epoch in the source of truth instead.
//! Entries carry the epoch they were filled under, and a hit requires it to
//! equal Redis's epoch key, which holds the source's epoch for at most
//! `epoch_ms` after it was read. So once the bump is `epoch_ms` (plus a
//! margin) old, no host trusts an entry filled before it, and the write is
//! acknowledged then — or sooner, if Redis comes back and takes the new
//! epoch. The epoch key is refreshed ahead of expiry by one request at a
//! time (an epoch lease), and when it is missing, entries are revalidated
//! against the source's epoch instead of reloaded.
//!
//! **XFetch** (Vattani et al., "Optimal probabilistic cache stampede
//! prevention", VLDB 2015): a hit refreshes early with probability growing
//! as expiry nears, `left <= delta * beta * -ln(u)`, decided inside the script.
//!
//! **Round trips.** A hit is 1; a miss is 2 (lookup, fill) plus the load; a
//! caller waiting on someone else's lease adds one per retry.


pub use crate::keys::cache::{CacheKeys, DEFAULT_PREFIX};

/// The positions of `keys` per bucket, in the order the buckets first appear.
fn by_bucket(ks: &CacheKeys, keys: &[String]) -> Vec<(u32, Vec<usize>)> {
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let b = ks.bucket(k);
        match groups.iter_mut().find(|(g, _)| *g == b) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((b, vec![i])),
        }
    }
    groups
}

use crate::env::{Rng, Sleep};
use crate::redis::{self, Arg, Cmd, Link};
use std::fmt;

mod config;
mod entry;
mod naive;

pub use config::{CacheConfig, Mode};
pub use entry::Entry;
use entry::{parse_lookup, Lookup, Status};

crate::scripts! {
    GET = ("cache/get", include_str!("get.lua"));
    FILL = ("cache/fill", include_str!("fill.lua"));
    INVALIDATE = ("cache/invalidate", include_str!("invalidate.lua"));
}

/// How a write that could not reach Redis is bounded: this long after the
/// epoch bump on top of `epoch_ms`, for a fill that read the old epoch to
/// reach Redis.
pub const EPOCH_MARGIN_MS: u64 = 1000;
/// The longest sleep between two lookups of a key someone else is loading.
pub const MAX_BACKOFF_MS: u64 = 50;
/// How often a write that could not invalidate retries while it waits.
pub const INVALIDATE_RETRY_MS: u64 = 250;

/// Where an answer came from: the `X-Cache` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// From the cache (possibly after waiting for another request's fill).
    Hit,
    /// Past its freshness, or (when asked for) older than the last write;
    /// someone else is refreshing it.
    Stale,
    /// Loaded from the source by this request (and filled).
    Miss,
    /// Redis failed: loaded from the source, the cache untouched.
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Stale => "STALE",
            Outcome::Miss => "MISS",
            Outcome::Bypass => "BYPASS",
        }
    }
}

/// One answer: the value (`None`: the source has no such key), and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub value: Option<String>,
    pub outcome: Outcome,
}

/// How an invalidation went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidated {
    /// At once, in one round trip.
    Done,
    /// Redis failed; the epoch was bumped, and Redis came back and took it
    /// before the bound.
    AfterOutage,
    /// Redis failed; the epoch was bumped and the write waited out
    /// [`CacheConfig::write_bound_ms`]: no host trusts an older entry now.
    Bounded,
    /// Naive mode and Redis failed: nothing was done (the race this mode shows).
    Skipped,
}

/// The source of truth behind the cache.
#[allow(async_fn_in_trait)]
pub trait Source {
    type Error;

    /// The values of `keys`, in order; `None` where the source has none.
    /// Values must be UTF-8 (they may travel over REST).
    async fn load(&self, keys: &[String]) -> Result<Vec<Option<String>>, Self::Error>;

    /// The source's current cache epoch.
    async fn epoch(&self) -> Result<i64, Self::Error>;

    /// Raises the epoch by one, durably, and returns it.
    async fn bump_epoch(&self) -> Result<i64, Self::Error>;
}

/// The cache, for one request: a link, randomness, sleep (and the
/// monotonic clock it measures waits on), a keyspace and a policy.
pub struct Cache<'a, L: Link, S: Sleep> {
    link: &'a L,
    rng: &'a dyn Rng,
    sleep: &'a S,
    keys: CacheKeys,
    cfg: CacheConfig,
}

/// Why a lookup did not use the cache; logged by the caller, never shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Degraded(pub redis::Error);

impl fmt::Display for Degraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache bypassed: {}", self.0)
    }
}

impl<'a, L: Link, S: Sleep> Cache<'a, L, S> {
    pub fn new(link: &'a L, rng: &'a dyn Rng, sleep: &'a S, keys: CacheKeys, cfg: CacheConfig) -> Self {
        Cache { link, rng, sleep, keys, cfg }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    pub fn keyspace(&self) -> &CacheKeys {
        &self.keys
    }

    fn token(&self) -> String {
        let mut b = [0u8; 16];
        self.rng.fill(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// A uniform number in (0, 1].
    fn unit(&self) -> f64 {
        ((self.rng.u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// A freshness with jitter applied, at least 1 ms.
    fn jittered(&self, ms: u64) -> u64 {
        let j = self.cfg.jitter.clamp(0.0, 0.5);
        let factor = 1.0 + j * (2.0 * self.unit() - 1.0);
        ((ms as f64 * factor).round() as u64).max(1)
    }

    /// PTTL of an entry: freshness, then the stale grace. `None`: do not cache.
    fn entry_px(&self, found: bool) -> Option<u64> {
        let fresh = if found { self.cfg.ttl_ms } else { self.cfg.negative_ttl_ms };
        (fresh > 0).then(|| self.jittered(fresh) + self.cfg.stale_ms)
    }

    /// Monotonic ms: for waits and local durations (see [`Sleep`]).
    fn mono(&self) -> u64 {
        self.sleep.monotonic_ms()
    }

    /// Looks up `keys` (distinct), loading what is missing from `src`.
    /// A Redis failure degrades to loading from the source
    /// ([`Outcome::Bypass`]), reported in the second value for logging; a
    /// source failure is the error.
    pub async fn get_many<Src: Source>(
        &self,
        keys: &[String],
        src: &Src,
        want_stale: bool,
    ) -> Result<(Vec<Fetched>, Option<Degraded>), Src::Error> {
        match self.cfg.mode {
            Mode::Leases => self.get_buckets(keys, src, want_stale).await,
            Mode::Naive => self.get_naive(keys, src).await,
        }
    }

    /// One lookup per bucket the keys fall in (a script touches one slot):
    /// one round trip for a single key, and for a batch one per bucket it
    /// touches (with the default single bucket, one).
    async fn get_buckets<Src: Source>(
        &self,
        keys: &[String],
        src: &Src,
        want_stale: bool,
    ) -> Result<(Vec<Fetched>, Option<Degraded>), Src::Error> {
        let groups = by_bucket(&self.keys, keys);
        if let [(bucket, _)] = groups.as_slice() {
            return self.get_leases(*bucket, keys, src, want_stale).await;
        }
        let mut out: Vec<Option<Fetched>> = vec![None; keys.len()];
        let mut degraded = None;
        for (bucket, idx) in groups {
            let names: Vec<String> = idx.iter().map(|&i| keys[i].clone()).collect();
            let (fetched, d) = self.get_leases(bucket, &names, src, want_stale).await?;
            for (i, f) in idx.into_iter().zip(fetched) {
                out[i] = Some(f);
            }
            degraded = degraded.or(d);
        }
        let fetched = out.into_iter().map(|f| f.unwrap_or(Fetched { value: None, outcome: Outcome::Bypass })).collect();
        Ok((fetched, degraded))
    }

    /// The lookup of keys that are all in `bucket`.
    async fn get_leases<Src: Source>(
        &self,
        bucket: u32,
        keys: &[String],
        src: &Src,
        want_stale: bool,
    ) -> Result<(Vec<Fetched>, Option<Degraded>), Src::Error> {
        let mut out: Vec<Option<Fetched>> = vec![None; keys.len()];
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        let token = self.token();
        let deadline = self.mono() + self.cfg.wait_ms;
        let mut backoff = 2;
        let mut degraded = None;
        while !pending.is_empty() {
            let lookup = match self.lookup(bucket, &pending, keys, &token, want_stale).await {
                Ok(l) => l,
                Err(e) => {
                    // Redis is not usable: the source answers, the cache is left alone.
                    let names: Vec<String> = pending.iter().map(|&i| keys[i].clone()).collect();
                    for (&i, value) in pending.iter().zip(src.load(&names).await?) {
                        out[i] = Some(Fetched { value, outcome: Outcome::Bypass });
                    }
                    degraded = Some(Degraded(e));
                    break;
                }
            };
            let mut mine: Vec<(usize, Option<Entry>)> = Vec::new();
            let mut waiting = Vec::new();
            for (&i, (status, entry)) in pending.iter().zip(lookup.keys) {
                match (status, entry) {
                    (Status::Hit, Some(e)) => out[i] = Some(Fetched { value: e.value, outcome: Outcome::Hit }),
                    (Status::Stale, Some(e)) => out[i] = Some(Fetched { value: e.value, outcome: Outcome::Stale }),
                    (Status::Lease, candidate) => mine.push((i, candidate)),
                    (Status::Refresh, _) => mine.push((i, None)),
                    _ => waiting.push(i),
                }
            }
            if !mine.is_empty() || lookup.refresh_epoch {
                self.load_and_fill(bucket, keys, src, &token, lookup.epoch, lookup.refresh_epoch, mine, &mut out).await?;
            }
            if waiting.is_empty() {
                break;
            }
            let now = self.mono();
            if now >= deadline {
                // Waited long enough on someone else's lease: load, do not fill.
                let names: Vec<String> = waiting.iter().map(|&i| keys[i].clone()).collect();
                for (&i, value) in waiting.iter().zip(src.load(&names).await?) {
                    out[i] = Some(Fetched { value, outcome: Outcome::Miss });
                }
                break;
            }
            self.sleep.sleep_ms(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF_MS);
            pending = waiting;
        }
        let fetched = out.into_iter().map(|f| f.unwrap_or(Fetched { value: None, outcome: Outcome::Bypass })).collect();
        Ok((fetched, degraded))
    }

    fn triple(&self, key: &str) -> [Arg; 3] {
        [self.keys.value(key).into(), self.keys.lease(key).into(), self.keys.stale(key).into()]
    }

    async fn lookup(&self, bucket: u32, pending: &[usize], keys: &[String], token: &str, want_stale: bool) -> Result<Lookup, redis::Error> {
        let mut k: Vec<Arg> = vec![self.keys.epoch(bucket).into(), self.keys.epoch_lease(bucket).into()];
        for &i in pending {
            k.extend(self.triple(&keys[i]));
        }
        let xf = if self.cfg.xfetch_beta > 0.0 { self.cfg.xfetch_beta * -self.unit().ln() } else { 0.0 };
        let args: Vec<Arg> = vec![
            token.into(),
            self.cfg.lease_ms.into(),
            self.cfg.stale_ms.into(),
            (self.cfg.epoch_ms / 2).into(),
            format!("{xf:.6}").into(),
            if want_stale { "1" } else { "0" }.into(),
        ];
        let reply = self.link.eval(&GET, &k, &args).await?;
        parse_lookup(reply.values(), pending.len())
    }

    /// Loads what this request holds leases for and fills it in one round
    /// trip; refreshes the epoch key when asked to.
    #[allow(clippy::too_many_arguments)]
    async fn load_and_fill<Src: Source>(
        &self,
        bucket: u32,
        keys: &[String],
        src: &Src,
        token: &str,
        redis_epoch: Option<i64>,
        refresh_epoch: bool,
        mine: Vec<(usize, Option<Entry>)>,
        out: &mut [Option<Fetched>],
    ) -> Result<(), Src::Error> {
        // The epoch is read before the rows, so an entry never carries an
        // epoch newer than its data.
        let db_epoch = match (redis_epoch, refresh_epoch) {
            (Some(_), false) => None,
            // A refresh ahead of expiry is best effort: Redis's epoch is
            // still good, and a hit must not fail because the source did.
            (Some(_), true) => src.epoch().await.ok().map(|e| (e, self.mono())),
            (None, _) => Some((src.epoch().await?, self.mono())),
        };
        if mine.is_empty() && db_epoch.is_none() {
            return Ok(());
        }
        let epoch = db_epoch.map(|(e, _)| e).or(redis_epoch).unwrap_or(0);
        let (revalidated, to_load): (Vec<_>, Vec<_>) =
            mine.into_iter().partition(|(_, candidate)| candidate.as_ref().is_some_and(|c| c.epoch == epoch));
        let names: Vec<String> = to_load.iter().map(|(i, _)| keys[*i].clone()).collect();
        let started = self.mono();
        let loaded = if names.is_empty() { Vec::new() } else { src.load(&names).await? };
        let delta = self.mono().saturating_sub(started).max(1);
        if self.cfg.fill_delay_ms > 0 && !names.is_empty() {
            self.sleep.sleep_ms(self.cfg.fill_delay_ms).await;
        }

        let mut k: Vec<Arg> = vec![self.keys.epoch(bucket).into(), self.keys.epoch_lease(bucket).into()];
        let mut args: Vec<Arg> = vec![token.into()];
        match db_epoch {
            Some((e, read_at)) => {
                // Trust it for epoch_ms from when it was read; skip when most
                // of that is gone (the key's life must not outrun the read).
                let left = self.cfg.epoch_ms.saturating_sub(self.mono().saturating_sub(read_at));
                if left >= self.cfg.epoch_ms / 2 {
                    args.push(e.into());
                    args.push(left.into());
                } else {
                    args.push("".into());
                    args.push("0".into());
                }
            }
            None => {
                args.push("".into());
                args.push("0".into());
            }
        }
        for (i, candidate) in &revalidated {
            k.extend(self.triple(&keys[*i]));
            args.push("".into());
            args.push("0".into());
            let value = candidate.as_ref().and_then(|c| c.value.clone());
            out[*i] = Some(Fetched { value, outcome: Outcome::Hit });
        }
        for ((i, _), value) in to_load.iter().zip(loaded) {
            match self.entry_px(value.is_some()) {
                Some(px) => {
                    k.extend(self.triple(&keys[*i]));
                    args.push(Entry { epoch, delta_ms: delta, value: value.clone() }.encode().into());
                    args.push(px.into());
                }
                None => {
                    // Not cached (negative caching off): just give the lease back.
                    k.extend(self.triple(&keys[*i]));
                    args.push("".into());
                    args.push("0".into());
                }
            }
            out[*i] = Some(Fetched { value, outcome: Outcome::Miss });
        }
        // A failed fill costs nothing but a later miss; leases expire anyway.
        let _ = self.link.eval(&FILL, &k, &args).await;
        Ok(())
    }

    async fn bypass<Src: Source>(&self, keys: &[String], src: &Src, e: redis::Error) -> Result<(Vec<Fetched>, Option<Degraded>), Src::Error> {
        let loaded = src.load(keys).await?;
        Ok((loaded.into_iter().map(|value| Fetched { value, outcome: Outcome::Bypass }).collect(), Some(Degraded(e))))
    }

    /// Call after the write committed. One round trip; when Redis fails, the
    /// epoch is bumped in the source and the call returns once no host can
    /// trust an older entry (at most [`CacheConfig::write_bound_ms`]).
    pub async fn invalidate<Src: Source>(&self, keys: &[String], src: &Src) -> Result<(Invalidated, Option<Degraded>), Src::Error> {
        if self.cfg.mode == Mode::Naive {
            let names: Vec<Arg> = keys.iter().map(|k| self.keys.value(k).into()).collect();
            return Ok(match self.link.exec(&Cmd::new("DEL").args_from(names)).await {
                Ok(_) => (Invalidated::Done, None),
                Err(e) => (Invalidated::Skipped, Some(Degraded(e))),
            });
        }
        let first = match self.invalidate_once(keys).await {
            Ok(()) => return Ok((Invalidated::Done, None)),
            Err(e) => e,
        };
        let started = self.mono();
        let epoch = src.bump_epoch().await?;
        let bound = self.cfg.write_bound_ms();
        loop {
            let elapsed = self.mono().saturating_sub(started);
            if elapsed >= bound {
                return Ok((Invalidated::Bounded, Some(Degraded(first))));
            }
            self.sleep.sleep_ms(INVALIDATE_RETRY_MS.min(bound - elapsed)).await;
            if self.invalidate_once(keys).await.is_ok() && self.raise_epoch(keys, epoch).await.is_ok() {
                return Ok((Invalidated::AfterOutage, Some(Degraded(first))));
            }
        }
    }

    /// One script per bucket of `keys`.
    async fn invalidate_once(&self, keys: &[String]) -> Result<(), redis::Error> {
        for (_, idx) in by_bucket(&self.keys, keys) {
            let k: Vec<Arg> = idx.iter().flat_map(|&i| self.triple(&keys[i])).collect();
            self.link.eval(&INVALIDATE, &k, &[self.cfg.stale_ms.into()]).await?;
        }
        Ok(())
    }

    /// Makes the buckets of `keys` take a (newer) epoch at once, through the
    /// fill script with no entries. (The other buckets take it within
    /// `epoch_ms`, which is all the write needs: none of their keys changed.)
    async fn raise_epoch(&self, keys: &[String], epoch: i64) -> Result<(), redis::Error> {
        for (bucket, _) in by_bucket(&self.keys, keys) {
            let k: Vec<Arg> = vec![self.keys.epoch(bucket).into(), self.keys.epoch_lease(bucket).into()];
            let args: Vec<Arg> = vec!["-".into(), epoch.into(), self.cfg.epoch_ms.into()];
            self.link.eval(&FILL, &k, &args).await?;
        }
        Ok(())
    }
}

