//! `fermyon:spin/sqlite@2.0.0` on rusqlite: a component may open the
//! databases its `sqlite_databases` lists (anything else is
//! `access-denied`); `default` lives in `.spin/sqlite_db.db` next to the
//! manifest unless the runtime config puts it elsewhere. One connection per
//! file, shared by all instances and serialised by a mutex (SQLite
//! serialises writers anyway; statements are short), in WAL mode.

use super::fermyon::spin2_0_0::sqlite as q;
use super::Ctx;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wasmtime::component::Resource;

pub type Connection = Arc<Mutex<rusqlite::Connection>>;

/// The open database files.
#[derive(Default)]
pub struct Databases {
    open: Mutex<HashMap<PathBuf, Connection>>,
}

impl Databases {
    fn get(&self, path: &Path) -> anyhow::Result<Connection> {
        let mut open = self.open.lock().unwrap();
        if let Some(c) = open.get(path) {
            return Ok(c.clone());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let c = Arc::new(Mutex::new(conn));
        open.insert(path.to_owned(), c.clone());
        Ok(c)
    }
}

fn to_sql(v: q::Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        q::Value::Integer(n) => S::Integer(n),
        q::Value::Real(f) => S::Real(f),
        q::Value::Text(t) => S::Text(t),
        q::Value::Blob(b) => S::Blob(b),
        q::Value::Null => S::Null,
    }
}

fn from_sql(v: rusqlite::types::ValueRef<'_>) -> q::Value {
    use rusqlite::types::ValueRef as S;
    match v {
        S::Null => q::Value::Null,
        S::Integer(n) => q::Value::Integer(n),
        S::Real(f) => q::Value::Real(f),
        S::Text(t) => q::Value::Text(String::from_utf8_lossy(t).into_owned()),
        S::Blob(b) => q::Value::Blob(b.to_vec()),
    }
}

fn run_sql(conn: &rusqlite::Connection, sql: &str, params: Vec<q::Value>) -> rusqlite::Result<q::QueryResult> {
    let mut stmt = conn.prepare_cached(sql)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let params: Vec<rusqlite::types::Value> = params.into_iter().map(to_sql).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..columns.len()).map(|i| row.get_ref(i).map(from_sql)).collect::<rusqlite::Result<_>>()?;
        out.push(q::RowResult { values });
    }
    Ok(q::QueryResult { columns, rows: out })
}

impl q::Host for Ctx {}

impl q::HostConnection for Ctx {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<Connection>, q::Error>> {
        let Some(path) = self.env.sqlite.get(&database) else {
            return Ok(Err(q::Error::AccessDenied));
        };
        match self.shared.sqlite.get(path) {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(q::Error::Io(e.to_string()))),
        }
    }

    async fn execute(&mut self, c: Resource<Connection>, statement: String, parameters: Vec<q::Value>) -> wasmtime::Result<Result<q::QueryResult, q::Error>> {
        let conn = self.table.get(&c)?.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            run_sql(&conn, &statement, parameters)
        })
        .await?;
        Ok(result.map_err(|e| q::Error::Io(e.to_string())))
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
