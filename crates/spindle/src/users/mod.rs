//! Users: the `users` table, password hashing, the rules for names and
//! passwords, and the cached, public read path of the `users` component.
//!
//! Storage sits behind [`UserStore`], implemented once ([`SqlUserStore`]) over
//! a [`Sql`] connection in either dialect: Spin SQLite (the default) or
//! PostgreSQL through Spin's outbound PostgreSQL (`pg3`), chosen by the
//! `db_url` variable in ONE place, [`open_store`], which `auth` and `users`
//! both call. Passwords are hashed with Argon2id at OWASP's parameters (19
//! MiB, 2 passes, 1 lane) and stored as PHC strings, which carry their
//! parameters, so they can be raised later without invalidating old hashes.
//!
//! [`cached`] puts `spindle::cache` in front of the store; [`view`] holds the
//! HTTP-facing rules (ids, ETags, what a requester may see, patch validation).

pub mod cached;
mod db;
mod sql;
#[cfg(feature = "spin")]
mod spin_pg;
#[cfg(feature = "spin")]
mod spin_sqlite;
pub mod view;

pub use db::{DbConfig, LazyStore, DEFAULT_DATABASE};
#[cfg(feature = "spin")]
pub use db::{open_store, SpinSql, Store};
pub use sql::{migrate, placeholders, Dialect, Migration, Sql, SqlUserStore, SqlValue, MIGRATIONS};
#[cfg(feature = "spin")]
pub use spin_pg::SpinPg;
#[cfg(feature = "spin")]
pub use spin_sqlite::SpinSqlite;

use crate::env::Rng;
use crate::http::Problem;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::fmt;

/// A user as the API shows it (never the password hash). The cache holds
/// exactly this; [`view`] filters it per requester.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// ISO-8601, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// Bumped by every update (optimistic concurrency for the users API).
    pub version: i64,
}

/// A user row with its password hash, for login.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The database failed or could not be opened.
    Unavailable(String),
    /// A row did not have the expected shape (a schema mismatch).
    Corrupt(String),
    /// `db_url` is not a database address we can use (the message never
    /// repeats it: it may hold a password).
    Misconfigured(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "user store unavailable: {m}"),
            StoreError::Corrupt(m) => write!(f, "user store: unexpected data: {m}"),
            StoreError::Misconfigured(m) => write!(f, "user store misconfigured: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<crate::config::ConfigError> for StoreError {
    fn from(e: crate::config::ConfigError) -> Self {
        StoreError::Misconfigured(e.to_string())
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Misconfigured(m) => Problem::misconfigured(&m),
            // The detail stays generic: database errors may quote data.
            _ => Problem::new(503, "store-unavailable", "Service Unavailable", "the user store is unavailable"),
        }
    }
}

/// A change to a user's profile: `None` leaves a field alone, `Some(None)`
/// clears it. Validated by [`view::parse_patch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patch {
    pub display_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
}

/// What [`UserStore::update`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Updated {
    /// Written; the new row (its version bumped by one).
    Done(User),
    /// The version was not one the caller expected; the current row.
    Conflict(User),
    NotFound,
}

/// Where users live. Async so that network databases fit; the Spin SQLite
/// implementation completes immediately.
#[allow(async_fn_in_trait)]
pub trait UserStore {
    /// Inserts a user. `Ok(None)` when the username is taken (compared case-insensitively).
    async fn insert(&self, username: &str, password_hash: &str, now_iso: &str) -> Result<Option<User>, StoreError>;

    /// A user and their password hash, by username (case-insensitive).
    async fn by_username(&self, username: &str) -> Result<Option<Credentials>, StoreError>;

    async fn by_id(&self, id: i64) -> Result<Option<User>, StoreError>;

    /// The users that exist among `ids`, in any order, in one statement.
    async fn by_ids(&self, ids: &[i64]) -> Result<Vec<User>, StoreError>;

    /// Applies `patch` and bumps `version` in one statement, only if the
    /// current version is one of `expected` (when given).
    async fn update(&self, id: i64, patch: &Patch, expected: Option<&[i64]>, now_iso: &str) -> Result<Updated, StoreError>;

    /// A cache epoch (`spindle::cache`): 0 until first bumped.
    async fn cache_epoch(&self, name: &str) -> Result<i64, StoreError>;

    /// Raises a cache epoch by one and returns it.
    async fn bump_cache_epoch(&self, name: &str) -> Result<i64, StoreError>;
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// 3–32 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit. Unique
/// regardless of case; stored as typed.
pub fn validate_username(name: &str) -> Result<(), Problem> {
    let ok_len = (USERNAME_MIN..=USERNAME_MAX).contains(&name.len());
    let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    let ok_start = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(Problem::bad_request(format!(
            "username must be {USERNAME_MIN}-{USERNAME_MAX} characters of A-Z, a-z, 0-9, '_', '.', '-', starting with a letter or digit"
        )))
    }
}

/// 8–128 characters (Unicode scalar values), any of them, per OWASP/NIST:
/// length is the policy, not composition rules.
pub fn validate_password(password: &str) -> Result<(), Problem> {
    let n = password.chars().count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        Ok(())
    } else {
        Err(Problem::bad_request(format!("password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")))
    }
}

/// OWASP's Argon2id parameters: m = 19456 KiB, t = 2, p = 1.
pub fn hasher() -> Argon2<'static> {
    let params = Params::new(Params::DEFAULT_M_COST, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST, None)
        .expect("OWASP's parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`)
/// with a 16-byte salt from `rng`.
pub fn hash_password(rng: &impl Rng, password: &str) -> Result<String, Problem> {
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| Problem::misconfigured("password salt"))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Problem::misconfigured("password hashing"))
}

/// Verifies a password against a PHC string, with the parameters it names.
/// A malformed hash verifies nothing.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => hasher().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash of a password nobody knows (32 random bytes, discarded), with the
/// same parameters as real ones.
/// Logging in as a user that does not exist verifies against it, so the
/// answer takes as long as a wrong password for a real user.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$r4R9PR5F0fiNWBlZzF+AuQ$dbHC/cgacOB9iOVPavyUfPOMPg8WEHYLjlCpD3cqjEM";

/// Checks a login: the user's credentials if the password is right. Costs
/// one Argon2id verification whether or not the user exists.
pub async fn check_login(store: &impl UserStore, username: &str, password: &str) -> Result<Option<User>, StoreError> {
    // An ill-formed name cannot exist, but gets the same work and answer.
    let found = if validate_username(username).is_ok() { store.by_username(username).await? } else { None };
    match found {
        Some(c) => Ok(verify_password(password, &c.password_hash).then_some(c.user)),
        None => {
            let _ = verify_password(password, DUMMY_HASH);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeqRng;

    #[test]
    fn usernames() {
        for ok in ["abc", "Alice_01", "a.b-c", &"x".repeat(32)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ab", &"x".repeat(33), "_abc", ".abc", "a b", "äbc", "a/b", "a\0b", "ab;c", "a@b"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("ééééééé").is_err(), "7 characters, 14 bytes");
        assert!(validate_password("éééééééé").is_ok());
        assert!(validate_password(&"x".repeat(128)).is_ok());
        assert!(validate_password(&"x".repeat(129)).is_err());
        assert!(validate_password("").is_err());
    }

    #[test]
    fn hashes_are_owasp_argon2id_phc_strings() {
        let h = hash_password(&SeqRng::default(), "correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash_password(&SeqRng::default(), "whatever").unwrap();
        let params = |h: &str| h.split('$').nth(3).unwrap().to_owned();
        assert_eq!(params(DUMMY_HASH), params(&real), "same m, t, p as hash_password");
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password("", DUMMY_HASH));
    }
}
