//! The cache's policy, read from `<prefix>_<setting>` variables.

use super::EPOCH_MARGIN_MS;
use crate::config::{Config, ConfigError, Vars};

/// Which protocol the cache speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Leases, compare-and-set fills, epochs: the real thing.
    Leases,
    /// Plain cache-aside (GET; on a miss load and `SET PX`; on a write
    /// `DEL`). It has the stale-fill race this module exists to prevent and
    /// is here only so a test can show that race: never use it.
    Naive,
}

/// Cache policy. Read from variables with [`CacheConfig::from_vars`].
#[derive(Clone, Debug, PartialEq)]
pub struct CacheConfig {
    pub mode: Mode,
    /// How long an entry is fresh, before jitter.
    pub ttl_ms: u64,
    /// Each fill's freshness is `ttl_ms` scaled by a uniform factor in
    /// `1 ± jitter`, so entries filled together do not expire together.
    pub jitter: f64,
    /// How long a "not found" is cached (0: not at all), before jitter.
    pub negative_ttl_ms: u64,
    /// Grace after freshness, and the life of a write's stale copy.
    pub stale_ms: u64,
    /// How long a lease holder may take to fill.
    pub lease_ms: u64,
    /// How long a caller waits on someone else's lease before it loads from
    /// the source itself (without filling).
    pub wait_ms: u64,
    /// XFetch's beta (0: no early refresh; 1 is the paper's default).
    pub xfetch_beta: f64,
    /// How long Redis trusts the source's epoch before it is read again,
    /// which bounds how long a write that cannot reach Redis takes.
    pub epoch_ms: u64,
    /// Buckets (hash slots) per namespace, 1..=[`MAX_BUCKETS`]: 1 keeps a
    /// batch at one round trip; on Redis Cluster more spread a namespace
    /// over that many slots, and a batch costs one round trip per bucket.
    pub buckets: u32,
    /// Test-only: sleep this long between a load and its fill, to widen the
    /// race a stale fill needs. 0 in production.
    pub fill_delay_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            mode: Mode::Leases,
            ttl_ms: 300_000,
            jitter: 0.1,
            negative_ttl_ms: 5_000,
            stale_ms: 30_000,
            lease_ms: 2_000,
            wait_ms: 3_000,
            xfetch_beta: 1.0,
            epoch_ms: 5_000,
            buckets: 1,
            fill_delay_ms: 0,
        }
    }
}

const DAY_MS: u64 = 86_400_000;
pub use crate::keys::cache::MAX_BUCKETS;

impl CacheConfig {
    /// Reads `<prefix>_mode`, `_ttl_s`, `_jitter_pct`, `_negative_ttl_s`,
    /// `_stale_s`, `_lease_ms`, `_wait_ms`, `_xfetch_beta`, `_epoch_ms` and `_buckets`;
    /// an empty or undeclared one takes its default. Errors name the variable.
    pub fn from_vars(vars: &impl Vars, prefix: &str) -> Result<Self, ConfigError> {
        let d = CacheConfig::default();
        let c = Config::new(vars);
        let name = |suffix: &str| format!("{prefix}_{suffix}");
        let secs = |suffix: &str, default_ms: u64, min: u64| -> Result<u64, ConfigError> {
            Ok(c.int(&name(suffix), default_ms / 1000, min..=DAY_MS / 1000)? * 1000)
        };
        let beta = c.float(&name("xfetch_beta"), d.xfetch_beta, 0.0..=100.0)?;
        Ok(CacheConfig {
            mode: c.choice(&name("mode"), Mode::Leases, &[("leases", Mode::Leases), ("naive", Mode::Naive)])?,
            ttl_ms: secs("ttl_s", d.ttl_ms, 1)?,
            jitter: c.int(&name("jitter_pct"), (d.jitter * 100.0) as u64, 0..=50)? as f64 / 100.0,
            negative_ttl_ms: secs("negative_ttl_s", d.negative_ttl_ms, 0)?,
            stale_ms: secs("stale_s", d.stale_ms, 0)?,
            lease_ms: c.int(&name("lease_ms"), d.lease_ms, 10..=60_000)?,
            wait_ms: c.int(&name("wait_ms"), d.wait_ms, 0..=60_000)?,
            xfetch_beta: beta,
            epoch_ms: c.int(&name("epoch_ms"), d.epoch_ms, 100..=60_000)?,
            buckets: c.int(&name("buckets"), d.buckets as u64, 1..=MAX_BUCKETS as u64)? as u32,
            fill_delay_ms: 0,
        })
    }

    /// How long a caller may block on a write that cannot reach Redis.
    pub fn write_bound_ms(&self) -> u64 {
        self.epoch_ms + EPOCH_MARGIN_MS
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars as vars;


    #[test]
    fn config_from_vars() {
        let c = CacheConfig::from_vars(&vars(&[]), "users_cache").unwrap();
        assert_eq!(c, CacheConfig::default());
        let c = CacheConfig::from_vars(
            &vars(&[
                ("users_cache_mode", "naive"),
                ("users_cache_ttl_s", "60"),
                ("users_cache_jitter_pct", "0"),
                ("users_cache_negative_ttl_s", "0"),
                ("users_cache_xfetch_beta", "2.5"),
                ("users_cache_epoch_ms", "1000"),
                ("users_cache_lease_ms", " "),
            ]),
            "users_cache",
        )
        .unwrap();
        assert_eq!((c.mode, c.ttl_ms, c.jitter, c.negative_ttl_ms, c.xfetch_beta, c.epoch_ms), (Mode::Naive, 60_000, 0.0, 0, 2.5, 1000));
        assert_eq!(c.lease_ms, 2000);
        for (k, v) in [
            ("users_cache_mode", "lru"),
            ("users_cache_ttl_s", "0"),
            ("users_cache_jitter_pct", "51"),
            ("users_cache_xfetch_beta", "NaN"),
            ("users_cache_xfetch_beta", "-1"),
            ("users_cache_epoch_ms", "10"),
            ("users_cache_wait_ms", "x"),
        ] {
            let e = CacheConfig::from_vars(&vars(&[(k, v)]), "users_cache").unwrap_err();
            assert_eq!(e.var, k, "{e}");
        }
    }
}
