//! Users through `spindle::cache`: the full record (never password
//! material) cached under `spindle:cache:{users:<bucket>}:<id>`, loaded from the
//! [`UserStore`] on a miss, invalidated after every committed update.
//! Requesters are filtered afterwards ([`super::view`]): the cache holds one
//! copy per user, whoever asks.

use super::{Patch, StoreError, Updated, User, UserStore};
use crate::cache::{Cache, CacheConfig, CacheKeys, Degraded, Invalidated, Outcome, Source, DEFAULT_PREFIX};
use crate::env::Sleep;
use crate::config::{Config, ConfigError, Vars};
use crate::env::Rng;
use crate::redis::Link;
use std::collections::HashMap;

/// The cache namespace, and the epoch's name in `cache_epochs`.
pub const NAMESPACE: &str = "users";
/// Cache variables are `users_cache_<setting>` ([`crate::cache::CacheConfig::from_vars`]).
pub const VARIABLE_PREFIX: &str = "users_cache";
pub const DEFAULT_BATCH_MAX: usize = 100;
pub const MAX_BATCH_MAX: usize = 1000;

/// The users component's settings, validated at the start of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub cache: CacheConfig,
    /// Most ids in one `GET /users?ids=`.
    pub batch_max: usize,
    /// Test-only: widens race windows (between a load and its fill, and
    /// between a PATCH's session check and its write). 0 in production.
    pub test_delay_ms: u64,
}

impl Settings {
    pub fn from_vars(vars: &impl Vars) -> Result<Settings, ConfigError> {
        let mut cache = CacheConfig::from_vars(vars, VARIABLE_PREFIX)?;
        let c = Config::new(vars);
        let batch_max = c.int("users_batch_max", DEFAULT_BATCH_MAX, 1..=MAX_BATCH_MAX)?;
        let test_delay_ms = c.int("users_test_delay_ms", 0, 0..=10_000)?;
        cache.fill_delay_ms = test_delay_ms;
        Ok(Settings { cache, batch_max, test_delay_ms })
    }
}

/// The store as the cache's source of truth: values are users as JSON.
pub struct StoreSource<'a, S>(pub &'a S);

impl<S: UserStore> Source for StoreSource<'_, S> {
    type Error = StoreError;

    async fn load(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let ids = keys
            .iter()
            .map(|k| k.parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| StoreError::Corrupt("a users cache key is not an id".into()))?;
        let mut found: HashMap<i64, User> = self.0.by_ids(&ids).await?.into_iter().map(|u| (u.id, u)).collect();
        ids.iter()
            .map(|id| {
                found
                    .remove(id)
                    .map(|u| serde_json::to_string(&u).map_err(|e| StoreError::Corrupt(e.to_string())))
                    .transpose()
            })
            .collect()
    }

    async fn epoch(&self) -> Result<i64, StoreError> {
        self.0.cache_epoch(NAMESPACE).await
    }

    async fn bump_epoch(&self) -> Result<i64, StoreError> {
        self.0.bump_cache_epoch(NAMESPACE).await
    }
}

/// One user looked up: `None` when there is no such user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub id: i64,
    pub user: Option<User>,
    pub outcome: Outcome,
}

/// What a batch says in `X-Cache`: the worst of its answers (HIT < STALE < MISS < BYPASS).
pub fn summary(found: &[Found]) -> Outcome {
    found.iter().map(|f| f.outcome).max().unwrap_or(Outcome::Hit)
}

/// Users, read through the cache and written through the store.
pub struct CachedUsers<'a, L: Link, S: UserStore, W: Sleep> {
    cache: Cache<'a, L, W>,
    store: &'a S,
}

impl<'a, L: Link, S: UserStore, W: Sleep> CachedUsers<'a, L, S, W> {
    pub fn new(link: &'a L, rng: &'a dyn Rng, sleep: &'a W, cfg: CacheConfig, store: &'a S) -> Self {
        CachedUsers { cache: Cache::new(link, rng, sleep, CacheKeys::new(DEFAULT_PREFIX, NAMESPACE).with_buckets(cfg.buckets), cfg), store }
    }

    pub fn cache(&self) -> &Cache<'a, L, W> {
        &self.cache
    }

    /// Distinct ids, in order. One round trip when all are cached.
    pub async fn get_many(&self, ids: &[i64], want_stale: bool) -> Result<(Vec<Found>, Option<Degraded>), StoreError> {
        let keys: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let (fetched, degraded) = self.cache.get_many(&keys, &StoreSource(self.store), want_stale).await?;
        let found = ids
            .iter()
            .zip(fetched)
            .map(|(&id, f)| {
                let user = f
                    .value
                    .map(|json| serde_json::from_str::<User>(&json).map_err(|e| StoreError::Corrupt(format!("cached user: {e}"))))
                    .transpose()?;
                Ok(Found { id, user, outcome: f.outcome })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((found, degraded))
    }

    pub async fn get(&self, id: i64, want_stale: bool) -> Result<(Found, Option<Degraded>), StoreError> {
        let (mut found, degraded) = self.get_many(&[id], want_stale).await?;
        let one = found.pop().unwrap_or(Found { id, user: None, outcome: Outcome::Bypass });
        Ok((one, degraded))
    }

    /// Updates in the store (one statement: version check and bump), then
    /// invalidates the cache. The write is committed before the
    /// invalidation, so a fill racing it is refused ([`Cache::invalidate`]).
    pub async fn update(
        &self,
        id: i64,
        patch: &Patch,
        expected: Option<&[i64]>,
        now_iso: &str,
    ) -> Result<(Updated, Option<Invalidated>, Option<Degraded>), StoreError> {
        let updated = self.store.update(id, patch, expected, now_iso).await?;
        if !matches!(updated, Updated::Done(_)) {
            return Ok((updated, None, None));
        }
        let (how, degraded) = self.cache.invalidate(&[id.to_string()], &StoreSource(self.store)).await?;
        Ok((updated, Some(how), degraded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap as Map;

    #[test]
    fn settings() {
        let s = Settings::from_vars(&Map::<String, String>::new()).unwrap();
        assert_eq!((s.batch_max, s.test_delay_ms, s.cache.fill_delay_ms), (100, 0, 0));
        let v: Map<String, String> =
            [("users_batch_max".into(), "5".into()), ("users_test_delay_ms".into(), "20".into())].into();
        let s = Settings::from_vars(&v).unwrap();
        assert_eq!((s.batch_max, s.cache.fill_delay_ms), (5, 20));
        let v: Map<String, String> = [("users_cache_ttl_s".into(), "soon".into())].into();
        assert_eq!(Settings::from_vars(&v).unwrap_err().var, "users_cache_ttl_s");
    }

    #[test]
    fn batch_summary() {
        let f = |outcome| Found { id: 1, user: None, outcome };
        assert_eq!(summary(&[f(Outcome::Hit), f(Outcome::Hit)]), Outcome::Hit);
        assert_eq!(summary(&[f(Outcome::Hit), f(Outcome::Stale)]), Outcome::Stale);
        assert_eq!(summary(&[f(Outcome::Stale), f(Outcome::Miss), f(Outcome::Hit)]), Outcome::Miss);
        assert_eq!(summary(&[f(Outcome::Miss), f(Outcome::Bypass)]), Outcome::Bypass);
    }
}
