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

/// Spin 4.0.2's outbound PostgreSQL never answers a `query` whose result
/// has no rows: the host waits for the column list, which it learns from the
/// first row (crates/factor-outbound-pg/src/client.rs, `query_stream`). The
/// statement runs; the call hangs. So a statement that can return no rows
/// is wrapped to return at least one: a marker column, then the columns,
/// all null when there was nothing (a data-modifying CTE keeps INSERT …
/// RETURNING atomic). A `DO` block returns nothing and goes to `execute`.
fn at_least_one_row(statement: &str) -> String {
    format!(
        "WITH spindle_q AS ({statement}) SELECT spindle_t.* FROM (VALUES (1)) AS spindle_one(x) \
         LEFT JOIN (SELECT 1 AS spindle_row, spindle_q.* FROM spindle_q) AS spindle_t ON true"
    )
}

impl Sql for SpinPg {
    fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let params: Vec<ParameterValue> = params.iter().map(param).collect();
        if statement.starts_with("DO ") {
            self.conn.execute(statement, &params).map_err(describe)?;
            return Ok(Vec::new());
        }
        let result = self.conn.query(&at_least_one_row(statement), &params).map_err(describe)?;
        let mut rows = Vec::with_capacity(result.rows.len());
        for row in result.rows {
            let mut values = row.into_iter();
            match values.next() {
                Some(DbValue::DbNull) | None => continue,
                Some(_) => rows.push(values.map(value).collect::<Result<Vec<_>, _>>()?),
            }
        }
        Ok(rows)
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}
