//! Which database holds `users`: THE store selection, shared by `auth` and
//! `users` so both always use the same one.
//!
//! `db_url` empty (the default): Spin SQLite, database `default` (the
//! component lists it in `sqlite_databases`). `db_url = "postgres://…"`:
//! PostgreSQL through Spin's outbound PostgreSQL, so many hosts share one
//! database (the component allows `{{ db_origin }}` in `allowed_outbound_hosts`).

use super::{Credentials, Patch, StoreError, Updated, User, UserStore};
use crate::config::{Config, Vars};
use std::cell::OnceCell;
use std::fmt;

/// The Spin SQLite database label used when `db_url` is empty.
pub const DEFAULT_DATABASE: &str = "default";
/// Where users live.
#[derive(Clone, PartialEq, Eq)]
pub enum DbConfig {
    Sqlite { database: String },
    Postgres { url: String },
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbConfig::Sqlite { database } => write!(f, "Sqlite({database})"),
            // The URL may carry a password.
            DbConfig::Postgres { .. } => write!(f, "Postgres(<db_url>)"),
        }
    }
}

impl DbConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<DbConfig, StoreError> {
        match Config::new(vars).url("db_url", &["postgres", "postgresql"])? {
            None => Ok(DbConfig::Sqlite { database: DEFAULT_DATABASE.into() }),
            Some(url) => Ok(DbConfig::Postgres { url }),
        }
    }
}

/// A [`UserStore`] that opens (and migrates) on first use, so requests
/// answered from the cache never touch the database.
pub struct LazyStore<S, F> {
    open: F,
    store: OnceCell<S>,
}

impl<S: UserStore, F: Fn() -> Result<S, StoreError>> LazyStore<S, F> {
    pub fn new(open: F) -> Self {
        LazyStore { open, store: OnceCell::new() }
    }

    pub fn get(&self) -> Result<&S, StoreError> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let s = (self.open)()?;
        Ok(self.store.get_or_init(|| s))
    }

    /// Whether this request has opened the database.
    pub fn is_open(&self) -> bool {
        self.store.get().is_some()
    }
}

impl<S: UserStore, F: Fn() -> Result<S, StoreError>> UserStore for LazyStore<S, F> {
    async fn insert(&self, username: &str, password_hash: &str, now_iso: &str) -> Result<Option<User>, StoreError> {
        self.get()?.insert(username, password_hash, now_iso).await
    }

    async fn by_username(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.get()?.by_username(username).await
    }

    async fn by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.get()?.by_id(id).await
    }

    async fn by_ids(&self, ids: &[i64]) -> Result<Vec<User>, StoreError> {
        self.get()?.by_ids(ids).await
    }

    async fn update(&self, id: i64, patch: &Patch, expected: Option<&[i64]>, now_iso: &str) -> Result<Updated, StoreError> {
        self.get()?.update(id, patch, expected, now_iso).await
    }

    async fn cache_epoch(&self, name: &str) -> Result<i64, StoreError> {
        self.get()?.cache_epoch(name).await
    }

    async fn bump_cache_epoch(&self, name: &str) -> Result<i64, StoreError> {
        self.get()?.bump_cache_epoch(name).await
    }
}

#[cfg(feature = "spin")]
mod guest {
    use super::super::sql::{Dialect, Sql, SqlUserStore, SqlValue};
    use super::super::{SpinPg, SpinSqlite, StoreError};
    use super::DbConfig;
    use crate::config::Vars;
    use crate::env::{Clock, SystemClock};

    /// Spin SQLite or PostgreSQL, as `db_url` says.
    pub enum SpinSql {
        Sqlite(SpinSqlite),
        Postgres(SpinPg),
    }

    impl Sql for SpinSql {
        fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StoreError> {
            match self {
                SpinSql::Sqlite(s) => s.execute(statement, params),
                SpinSql::Postgres(p) => p.execute(statement, params),
            }
        }

        fn dialect(&self) -> Dialect {
            match self {
                SpinSql::Sqlite(_) => Dialect::Sqlite,
                SpinSql::Postgres(_) => Dialect::Postgres,
            }
        }
    }

    /// The user store every component uses.
    pub type Store = SqlUserStore<SpinSql>;

    /// Opens the store `db_url` selects and brings its schema up to date.
    /// The one place that decides between SQLite and PostgreSQL.
    pub fn open_store(vars: &impl Vars) -> Result<Store, StoreError> {
        let now = crate::date::to_iso(SystemClock.now_ms());
        let sql = match DbConfig::from_vars(vars)? {
            DbConfig::Sqlite { database } => SpinSql::Sqlite(SpinSqlite::open(&database)?),
            DbConfig::Postgres { url } => SpinSql::Postgres(SpinPg::open(&url)?),
        };
        SqlUserStore::open(sql, &now)
    }
}

#[cfg(feature = "spin")]
pub use guest::{open_store, SpinSql, Store};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(url: &str) -> HashMap<String, String> {
        [("db_url".to_string(), url.to_string())].into()
    }

    #[test]
    fn db_url_selects_the_store() {
        assert_eq!(DbConfig::from_vars(&HashMap::new()).unwrap(), DbConfig::Sqlite { database: "default".into() });
        assert_eq!(DbConfig::from_vars(&vars(" ")).unwrap(), DbConfig::Sqlite { database: "default".into() });
        for pg in ["postgres://u:p@db:5432/app", "POSTGRESQL://db/app"] {
            assert!(matches!(DbConfig::from_vars(&vars(pg)).unwrap(), DbConfig::Postgres { .. }));
        }
        let secret = "mysql://root:hunter2@db/app";
        let e = DbConfig::from_vars(&vars(secret)).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(!format!("{:?}", DbConfig::from_vars(&vars("postgres://u:hunter2@h/d")).unwrap()).contains("hunter2"));
    }
}
