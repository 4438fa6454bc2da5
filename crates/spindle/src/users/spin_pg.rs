//! [`Sql`] over Spin's outbound PostgreSQL (`spin:postgres/postgres@3.0.0`,
//! spin-sdk's `pg3`). The component must allow the database's address in
//! `allowed_outbound_hosts` (`postgres://host:port`).
//!
//! pg3's quirks, which the statements in `sql.rs` respect: no `timestamptz`
//! columns (timestamps are ISO-8601 text), parameters bind with their exact
//! type (integers are `int8`, so integer columns are `BIGINT`), and a query
//! without rows reports no columns (rows are read by position).

use super::sql::{Dialect, Sql, SqlValue};
use super::StoreError;
use spin_sdk::pg3::{Connection, DbValue, ParameterValue, PgError};

/// A PostgreSQL connection, opened once per request.
pub struct SpinPg {
    conn: Connection,
}

impl SpinPg {
    /// Opens `postgres://user:password@host:port/db`. The address may carry
    /// a password: it is never put into an error or a log line.
    pub fn open(address: &str) -> Result<Self, StoreError> {
        Connection::open(address).map(|conn| SpinPg { conn }).map_err(describe)
    }
}

fn describe(e: PgError) -> StoreError {
    match e {
        PgError::ConnectionFailed(m) => StoreError::Unavailable(format!("connection failed: {m}")),
        PgError::BadParameter(m) => StoreError::Corrupt(format!("bad parameter: {m}")),
        PgError::QueryFailed(m) => StoreError::Unavailable(format!("query failed: {m}")),
        PgError::ValueConversionFailed(m) => StoreError::Corrupt(format!("value conversion failed: {m}")),
        PgError::Other(m) => StoreError::Unavailable(m),
    }
}

fn param(v: &SqlValue) -> ParameterValue {
    match v {
        SqlValue::Null => ParameterValue::DbNull,
        SqlValue::Integer(n) => ParameterValue::Int64(*n),
        SqlValue::Real(f) => ParameterValue::Floating64(*f),
        SqlValue::Text(s) => ParameterValue::Str(s.clone()),
        SqlValue::Blob(b) => ParameterValue::Binary(b.clone()),
    }
}

fn value(v: DbValue) -> Result<SqlValue, StoreError> {
    Ok(match v {
        DbValue::DbNull => SqlValue::Null,
        DbValue::Boolean(b) => SqlValue::Integer(b as i64),
        DbValue::Int8(n) => SqlValue::Integer(n.into()),
        DbValue::Int16(n) => SqlValue::Integer(n.into()),
        DbValue::Int32(n) => SqlValue::Integer(n.into()),
        DbValue::Int64(n) => SqlValue::Integer(n),
        DbValue::Floating32(f) => SqlValue::Real(f.into()),
        DbValue::Floating64(f) => SqlValue::Real(f),
        DbValue::Str(s) => SqlValue::Text(s),
        DbValue::Binary(b) => SqlValue::Blob(b),
        other => return Err(StoreError::Corrupt(format!("a column of a type pg3 cannot carry here: {other:?}"))),
    })
}

impl Sql for SpinPg {
    fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let params: Vec<ParameterValue> = params.iter().map(param).collect();
        let result = self.conn.query(statement, &params).map_err(describe)?;
        result.rows.into_iter().map(|row| row.into_iter().map(value).collect()).collect()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}
