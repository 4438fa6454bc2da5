//! [`Sql`] over Spin SQLite (`fermyon:spin/sqlite@2.0.0`). The component must
//! list the database in `sqlite_databases` (`["default"]`).

use super::sql::{Sql, SqlValue};
use super::StoreError;
use spin_sdk::sqlite::{Connection, Error, Value};

/// A Spin SQLite connection, opened once per request.
pub struct SpinSqlite {
    conn: Connection,
}

impl SpinSqlite {
    /// Opens a database by its label (`"default"`).
    pub fn open(database: &str) -> Result<Self, StoreError> {
        Connection::open(database).map(|conn| SpinSqlite { conn }).map_err(describe)
    }
}

fn describe(e: Error) -> StoreError {
    StoreError::Unavailable(match e {
        Error::NoSuchDatabase => "no such database".into(),
        Error::AccessDenied => "access denied (is the database in sqlite_databases?)".into(),
        Error::InvalidConnection => "invalid connection".into(),
        Error::DatabaseFull => "database full".into(),
        Error::Io(m) => m,
    })
}

impl Sql for SpinSqlite {
    fn execute(&self, statement: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let params: Vec<Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(n) => Value::Integer(*n),
                SqlValue::Real(f) => Value::Real(*f),
                SqlValue::Text(s) => Value::Text(s.clone()),
                SqlValue::Blob(b) => Value::Blob(b.clone()),
            })
            .collect();
        let result = self.conn.execute(statement, &params).map_err(describe)?;
        Ok(result
            .rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v {
                        Value::Null => SqlValue::Null,
                        Value::Integer(n) => SqlValue::Integer(n),
                        Value::Real(f) => SqlValue::Real(f),
                        Value::Text(s) => SqlValue::Text(s),
                        Value::Blob(b) => SqlValue::Blob(b),
                    })
                    .collect()
            })
            .collect())
    }
}
