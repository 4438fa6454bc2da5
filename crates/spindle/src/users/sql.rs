//! The `users` table over any SQL connection that speaks SQLite's dialect,
//! and its migrations.
//!
//! Migrations are explicit and idempotent: each statement may run any number
//! of times (`IF NOT EXISTS`, `INSERT OR IGNORE`), and `schema_migrations`
//! records the versions applied. No statement relies on a transaction that
//! spans calls: Spin gives no such guarantee across requests.

use super::{Credentials, StoreError, User, UserStore};

/// One SQL value (Spin SQLite's value type, minus the host's types).
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A SQL connection: one statement per call, rows as values.
pub trait Sql {
    fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StoreError>;
}

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

/// The schema, in order. Append; never edit an applied migration.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "create users",
    statements: &[
        "CREATE TABLE IF NOT EXISTS users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            display_name TEXT,
            email TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1
        )",
    ],
}];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)";

const USER_COLUMNS: &str = "id, username, display_name, email, created_at, updated_at, version";

/// Brings the schema up to date: two cheap statements when it already is.
pub fn migrate(sql: &impl Sql, now_iso: &str) -> Result<(), StoreError> {
    sql.execute(CREATE_MIGRATIONS_TABLE, &[])?;
    let rows = sql.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])?;
    let current = match rows.first().and_then(|r| r.first()) {
        Some(SqlValue::Integer(n)) => *n,
        _ => 0,
    };
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        for s in m.statements {
            sql.execute(s, &[])?;
        }
        sql.execute(
            "INSERT OR IGNORE INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            &[SqlValue::Integer(m.version), SqlValue::Text(m.name.into()), SqlValue::Text(now_iso.into())],
        )?;
    }
    Ok(())
}

/// [`UserStore`] over a [`Sql`] connection.
pub struct SqlUserStore<S: Sql> {
    sql: S,
}

impl<S: Sql> SqlUserStore<S> {
    /// Wraps a connection, migrating the schema first.
    pub fn open(sql: S, now_iso: &str) -> Result<Self, StoreError> {
        migrate(&sql, now_iso)?;
        Ok(SqlUserStore { sql })
    }
}

fn text(v: &SqlValue, col: &str) -> Result<String, StoreError> {
    match v {
        SqlValue::Text(s) => Ok(s.clone()),
        _ => Err(StoreError::Corrupt(format!("{col} is not text"))),
    }
}

fn opt_text(v: &SqlValue, col: &str) -> Result<Option<String>, StoreError> {
    match v {
        SqlValue::Null => Ok(None),
        v => text(v, col).map(Some),
    }
}

fn int(v: &SqlValue, col: &str) -> Result<i64, StoreError> {
    match v {
        SqlValue::Integer(n) => Ok(*n),
        _ => Err(StoreError::Corrupt(format!("{col} is not an integer"))),
    }
}

/// A row of [`USER_COLUMNS`], from index `at`.
fn user_from(row: &[SqlValue], at: usize) -> Result<User, StoreError> {
    let col = |i: usize| row.get(at + i).ok_or_else(|| StoreError::Corrupt("short row".into()));
    Ok(User {
        id: int(col(0)?, "id")?,
        username: text(col(1)?, "username")?,
        display_name: opt_text(col(2)?, "display_name")?,
        email: opt_text(col(3)?, "email")?,
        created_at: text(col(4)?, "created_at")?,
        updated_at: text(col(5)?, "updated_at")?,
        version: int(col(6)?, "version")?,
    })
}

impl<S: Sql> UserStore for SqlUserStore<S> {
    async fn insert(&self, username: &str, password_hash: &str, now_iso: &str) -> Result<Option<User>, StoreError> {
        // OR IGNORE + RETURNING: no row back when the name is taken, without
        // matching error text.
        let rows = self.sql.execute(
            &format!(
                "INSERT OR IGNORE INTO users (username, password_hash, created_at, updated_at, version)
                 VALUES (?, ?, ?, ?, 1) RETURNING {USER_COLUMNS}"
            ),
            &[
                SqlValue::Text(username.into()),
                SqlValue::Text(password_hash.into()),
                SqlValue::Text(now_iso.into()),
                SqlValue::Text(now_iso.into()),
            ],
        )?;
        rows.first().map(|r| user_from(r, 0)).transpose()
    }

    async fn by_username(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        let rows = self.sql.execute(
            &format!("SELECT password_hash, {USER_COLUMNS} FROM users WHERE username = ?"),
            &[SqlValue::Text(username.into())],
        )?;
        rows.first()
            .map(|r| Ok(Credentials { password_hash: text(r.first().unwrap_or(&SqlValue::Null), "password_hash")?, user: user_from(r, 1)? }))
            .transpose()
    }

    async fn by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let rows = self.sql.execute(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"), &[SqlValue::Integer(id)])?;
        rows.first().map(|r| user_from(r, 0)).transpose()
    }
}
