//! Per-request host state and the Spin interfaces: variables, Redis, SQLite
//! (PostgreSQL lives in `postgres_host`).

use crate::outbound::AllowedHosts;
use crate::redis_pool::{Pooled, RedisPool};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    path: "wit",
    world: "spindle:runner/host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/redis@2.0.0.connection": crate::redis_pool::Pooled,
        "fermyon:spin/sqlite@2.0.0.connection": SqliteConn,
        "spin:postgres/postgres@3.0.0.connection": crate::postgres_host::PgConn,
    },
});

pub mod trigger {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "spindle:runner/redis-handler",
        exports: { default: async },
    });
}

use fermyon::spin2_0_0::{redis as r, sqlite as q, variables as v};

/// What every instance of one component shares: its config, resolved at start.
pub struct ComponentEnv {
    pub id: String,
    pub variables: HashMap<String, String>,
    pub allowed: AllowedHosts,
    pub sqlite: HashMap<String, PathBuf>,
    pub environment: Vec<(String, String)>,
}

/// The shared databases: one SQLite connection per file, serialised by a
/// mutex (SQLite serialises writers anyway; reads are short).
pub type SqliteConn = Arc<Mutex<rusqlite::Connection>>;

#[derive(Default)]
pub struct SqliteDbs {
    open: Mutex<HashMap<PathBuf, SqliteConn>>,
}

impl SqliteDbs {
    fn get(&self, path: &PathBuf) -> anyhow::Result<SqliteConn> {
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
        open.insert(path.clone(), c.clone());
        Ok(c)
    }
}

pub struct Ctx {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub hooks: crate::http_trigger::OutboundHooks,
    pub env: Arc<ComponentEnv>,
    pub redis: Arc<RedisPool>,
    pub dbs: Arc<SqliteDbs>,
    pub pg: Arc<crate::postgres_host::PgPool>,
}

impl WasiView for Ctx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for Ctx {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

pub fn add_to_linker(linker: &mut Linker<Ctx>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Host_::add_to_linker::<Ctx, HasSelf<Ctx>>(linker, |c| c)?;
    Ok(())
}

impl v::Host for Ctx {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v::Error>> {
        if crate::vars::check_name(&name).is_err() {
            return Ok(Err(v::Error::InvalidName(name)));
        }
        Ok(self.env.variables.get(&name).cloned().ok_or(v::Error::Undefined(name)))
    }
}

fn redis_err(e: redis::RedisError) -> r::Error {
    r::Error::Other(e.to_string())
}

/// Flattens a reply the way Spin does: nested arrays become one list; RESP3
/// maps and other types Spin cannot represent are errors.
fn flatten(v: redis::Value, out: &mut Vec<r::RedisResult>) -> Result<(), r::Error> {
    use redis::Value as V;
    match v {
        V::Nil => out.push(r::RedisResult::Nil),
        V::Int(n) => out.push(r::RedisResult::Int64(n)),
        V::BulkString(b) => out.push(r::RedisResult::Binary(b)),
        V::SimpleString(s) => out.push(r::RedisResult::Status(s)),
        V::Okay => out.push(r::RedisResult::Status("OK".into())),
        V::Array(items) => {
            for i in items {
                flatten(i, out)?;
            }
        }
        other => return Err(r::Error::Other(format!("unsupported reply type: {other:?}"))),
    }
    Ok(())
}

impl r::Host for Ctx {}

impl r::HostConnection for Ctx {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<Pooled>, r::Error>> {
        match self.env.allowed.allows_url(&address) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("[{}] outbound redis to {} denied: not in allowed_outbound_hosts", self.env.id, redact(&address));
                return Ok(Err(r::Error::InvalidAddress));
            }
            Err(_) => return Ok(Err(r::Error::InvalidAddress)),
        }
        match self.redis.checkout(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(redis_err(e))),
        }
    }

    async fn publish(&mut self, c: Resource<Pooled>, channel: String, payload: Vec<u8>) -> wasmtime::Result<Result<(), r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query::<i64>(redis::cmd("PUBLISH").arg(channel).arg(payload)).await.map(|_| ()).map_err(redis_err))
    }

    async fn get(&mut self, c: Resource<Pooled>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query(redis::cmd("GET").arg(key)).await.map_err(redis_err))
    }

    async fn set(&mut self, c: Resource<Pooled>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query::<()>(redis::cmd("SET").arg(key).arg(value)).await.map_err(redis_err))
    }

    async fn incr(&mut self, c: Resource<Pooled>, key: String) -> wasmtime::Result<Result<i64, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query(redis::cmd("INCR").arg(key)).await.map_err(|e| match e.kind() {
            redis::ErrorKind::TypeError => r::Error::TypeError,
            _ => redis_err(e),
        }))
    }

    async fn del(&mut self, c: Resource<Pooled>, keys: Vec<String>) -> wasmtime::Result<Result<u32, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query(redis::cmd("DEL").arg(keys)).await.map_err(redis_err))
    }

    async fn sadd(&mut self, c: Resource<Pooled>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query(redis::cmd("SADD").arg(key).arg(values)).await.map_err(redis_err))
    }

    async fn smembers(&mut self, c: Resource<Pooled>, key: String) -> wasmtime::Result<Result<Vec<String>, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query(redis::cmd("SMEMBERS").arg(key)).await.map_err(redis_err))
    }

    async fn srem(&mut self, c: Resource<Pooled>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        Ok(conn.query(redis::cmd("SREM").arg(key).arg(values)).await.map_err(redis_err))
    }

    async fn execute(
        &mut self,
        c: Resource<Pooled>,
        command: String,
        arguments: Vec<r::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<r::RedisResult>, r::Error>> {
        let conn = self.table.get_mut(&c)?;
        let mut cmd = redis::cmd(&command);
        for a in arguments {
            match a {
                r::RedisParameter::Int64(n) => cmd.arg(n),
                r::RedisParameter::Binary(b) => cmd.arg(b),
            };
        }
        let value: redis::Value = match conn.query(&cmd).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(redis_err(e))),
        };
        let mut out = Vec::new();
        Ok(flatten(value, &mut out).map(|_| out))
    }

    async fn drop(&mut self, c: Resource<Pooled>) -> wasmtime::Result<()> {
        let conn = self.table.delete(c)?;
        self.redis.checkin(conn);
        Ok(())
    }
}

/// Hides credentials in a URL before it is logged.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() || !u.username().is_empty() => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<invalid url>".into(),
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
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<SqliteConn>, q::Error>> {
        let Some(path) = self.env.sqlite.get(&database) else {
            return Ok(Err(q::Error::AccessDenied));
        };
        match self.dbs.get(path) {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(q::Error::Io(e.to_string()))),
        }
    }

    async fn execute(
        &mut self,
        c: Resource<SqliteConn>,
        statement: String,
        parameters: Vec<q::Value>,
    ) -> wasmtime::Result<Result<q::QueryResult, q::Error>> {
        let conn = self.table.get(&c)?.clone();
        let result = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            run_sql(&conn, &statement, parameters)
        })
        .await?;
        Ok(result.map_err(|e| q::Error::Io(e.to_string())))
    }

    async fn drop(&mut self, c: Resource<SqliteConn>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
