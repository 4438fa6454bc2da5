//! `spin:postgres/postgres@3.0.0` (spin-sdk's `pg3`) on tokio-postgres.
//!
//! The behaviour the component sees follows Spin's `factor-outbound-pg`:
//! the same `allowed_outbound_hosts` check (scheme `postgres`, default port
//! 5432), the same value conversions and the same error variants — including
//! its quirks, so that nothing works here that fails on Spin:
//! - a query that returns no rows returns no columns either;
//! - a `timestamptz` column cannot be read (Spin decodes every timestamp as
//!   `timestamp` and fails): the query fails with `query-failed`;
//! - parameters bind with their exact Rust type, so `int8(s8)` fits only the
//!   one-byte `"char"` type and `floating32` only `real` (`float4`).
//!
//! Connections are pooled per address, as Spin does: `open` hands out a
//! private connection (no other request uses it until the guest drops it),
//! and a connection goes back to the pool only after its session state is
//! reset (open transaction rolled back, temp tables, settings, listeners and
//! advisory locks cleared), so each `open` looks like a fresh session. A
//! connection that broke is dropped, and a pooled one found dead on its first
//! use (PostgreSQL restarted while it idled) is redialled once.

use super::allowed_hosts::AllowedHosts;
use super::spin::postgres::postgres as pg;
use super::Ctx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row};
use wasmtime::component::Resource;

/// How long `open` may take to connect (TCP and the startup handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_IDLE_PER_ADDRESS: usize = 64;
const DEFAULT_PORT: u16 = 5432;

/// What a pooled connection runs before it is reused: the session state a
/// fresh connection would not have. (Not `DISCARD ALL`: it would also drop
/// the statements tokio-postgres prepares and caches for type lookups.)
const RESET_SESSION: &str = "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// One guest connection: a client that no other request uses until dropped.
pub struct PgConn {
    address: String,
    config: Config,
    client: Client,
    /// Taken from the pool and not yet used by this request: if it turns out
    /// dead, the statement never reached a live server, so redialling once is
    /// what a fresh connection would have done.
    stale_candidate: bool,
}

/// Idle connections per address (the full address, credentials included).
#[derive(Default)]
pub struct PgPool {
    idle: Mutex<HashMap<String, Vec<Client>>>,
}

impl PgPool {
    async fn checkout(&self, address: &str, config: Config) -> Result<PgConn, pg::Error> {
        loop {
            let idle = self.idle.lock().unwrap().get_mut(address).and_then(Vec::pop);
            match idle {
                Some(client) if client.is_closed() => continue,
                Some(client) => return Ok(PgConn { address: address.to_owned(), config, client, stale_candidate: true }),
                None => break,
            }
        }
        let client = dial(&config).await?;
        Ok(PgConn { address: address.to_owned(), config, client, stale_candidate: false })
    }

    /// Resets the session in the background and keeps the connection if that
    /// works; the guest's `drop` does not wait for it.
    fn checkin(self: &Arc<Self>, conn: PgConn) {
        if conn.client.is_closed() {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            if conn.client.batch_execute(RESET_SESSION).await.is_err() || conn.client.is_closed() {
                return;
            }
            let mut idle = pool.idle.lock().unwrap();
            let list = idle.entry(conn.address).or_default();
            if list.len() < MAX_IDLE_PER_ADDRESS {
                list.push(conn.client);
            }
        });
    }
}

async fn dial(config: &Config) -> Result<Client, pg::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls)).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => Err(pg::Error::ConnectionFailed(with_causes(&e))),
        Err(_) => Err(pg::Error::ConnectionFailed(format!("timed out after {}s connecting", CONNECT_TIMEOUT.as_secs()))),
    }
}

/// An error and its causes on one line ("error connecting to server:
/// Connection refused (os error 111)").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.ends_with(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    text
}

/// Parses the address (URL or `key=value` form) and checks every host it
/// names against the allow-list, as Spin does. Errors are what Spin returns.
pub fn check_address(allowed: &AllowedHosts, address: &str) -> Result<Config, pg::Error> {
    let config: Config = address.parse().map_err(|e| pg::Error::ConnectionFailed(format!("invalid address: {e}")))?;
    let ports = config.get_ports();
    let port_for = |i: usize| match ports {
        [] => DEFAULT_PORT,
        [only] => *only,
        many => many.get(i).copied().unwrap_or(DEFAULT_PORT),
    };
    let mut hosts: Vec<(String, u16)> = Vec::new();
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            Host::Tcp(h) => hosts.push((h.clone(), port_for(i))),
            #[cfg(unix)]
            Host::Unix(_) => return Err(pg::Error::ConnectionFailed("Unix sockets are not supported on WebAssembly".into())),
        }
    }
    // `hostaddr` is where tokio-postgres actually connects when it is given.
    for (i, ip) in config.get_hostaddrs().iter().enumerate() {
        hosts.push((ip.to_string(), port_for(i)));
    }
    if hosts.is_empty() {
        return Err(pg::Error::ConnectionFailed("the address names no host".into()));
    }
    for (host, port) in &hosts {
        let shown = if host.contains(':') { format!("[{host}]") } else { host.clone() };
        let url = format!("postgres://{shown}:{port}");
        if !allowed.check_url(&url, "postgres") {
            return Err(pg::Error::ConnectionFailed(format!("address {url} is not permitted")));
        }
    }
    if config.get_ssl_mode() == SslMode::Require {
        return Err(pg::Error::ConnectionFailed(
            "sslmode=require is not supported by the local runner (it has no TLS for PostgreSQL); \
             use sslmode=disable or prefer locally"
                .into(),
        ));
    }
    Ok(config)
}

impl PgConn {
    async fn run(&mut self, statement: &str, params: &[Box<dyn ToSql + Send + Sync>]) -> Result<Vec<Row>, pg::Error> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let mut r = self.client.query(statement, &refs).await;
        if std::mem::take(&mut self.stale_candidate) && r.is_err() && self.client.is_closed() {
            self.client = dial(&self.config).await?;
            r = self.client.query(statement, &refs).await;
        }
        r.map_err(query_failed)
    }

    async fn exec(&mut self, statement: &str, params: &[Box<dyn ToSql + Send + Sync>]) -> Result<u64, pg::Error> {
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let mut r = self.client.execute(statement, &refs).await;
        if std::mem::take(&mut self.stale_candidate) && r.is_err() && self.client.is_closed() {
            self.client = dial(&self.config).await?;
            r = self.client.execute(statement, &refs).await;
        }
        r.map_err(query_failed)
    }
}

/// Spin reports a failed statement as `query-failed` with the driver's
/// debug text (which carries the SQLSTATE code, message and detail).
fn query_failed(e: tokio_postgres::Error) -> pg::Error {
    pg::Error::QueryFailed(format!("{e:?}"))
}

/// Binds SQL NULL whatever the parameter's type (tokio-postgres would check
/// the Rust type of a `None` against the column).
#[derive(Debug)]
struct PgNull;

impl ToSql for PgNull {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(tokio_postgres::types::IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Reads any column just to tell NULL from a value of a type pg3 cannot carry.
struct AnyValue;

impl<'a> FromSql<'a> for AnyValue {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyValue)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn invalid(what: &str) -> String {
    format!("invalid {what}")
}

pub fn date_to_pg((y, m, d): (i32, u8, u8)) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into()).ok_or_else(|| invalid(&format!("date y={y}, m={m}, d={d}")))
}

pub fn time_to_pg((h, min, s, ns): (u8, u8, u8, u32)) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), min.into(), s.into(), ns).ok_or_else(|| invalid(&format!("time {h}:{min}:{s}:{ns}")))
}

pub fn datetime_to_pg((y, mo, d, h, mi, s, ns): (i32, u8, u8, u8, u8, u8, u32)) -> Result<chrono::NaiveDateTime, String> {
    Ok(chrono::NaiveDateTime::new(date_to_pg((y, mo, d))?, time_to_pg((h, mi, s, ns))?))
}

pub fn date_to_wit(v: chrono::NaiveDate) -> (i32, u8, u8) {
    use chrono::Datelike;
    (v.year(), v.month() as u8, v.day() as u8)
}

pub fn time_to_wit(v: chrono::NaiveTime) -> (u8, u8, u8, u32) {
    use chrono::Timelike;
    (v.hour() as u8, v.minute() as u8, v.second() as u8, v.nanosecond())
}

pub fn datetime_to_wit(v: chrono::NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let (y, mo, d) = date_to_wit(v.date());
    let (h, mi, s, ns) = time_to_wit(v.time());
    (y, mo, d, h, mi, s, ns)
}

/// A parameter as tokio-postgres binds it: each variant as its exact Rust
/// type, `timestamp` (seconds since the epoch) as a `timestamptz`.
pub fn to_sql(v: &pg::ParameterValue) -> Result<Box<dyn ToSql + Send + Sync>, String> {
    use pg::ParameterValue as P;
    Ok(match v {
        P::Boolean(b) => Box::new(*b),
        P::Int8(n) => Box::new(*n),
        P::Int16(n) => Box::new(*n),
        P::Int32(n) => Box::new(*n),
        P::Int64(n) => Box::new(*n),
        P::Floating32(f) => Box::new(*f),
        P::Floating64(f) => Box::new(*f),
        P::Str(s) => Box::new(s.clone()),
        P::Binary(b) => Box::new(b.clone()),
        P::Date(d) => Box::new(date_to_pg(*d)?),
        P::Time(t) => Box::new(time_to_pg(*t)?),
        P::Datetime(dt) => Box::new(datetime_to_pg(*dt)?),
        P::Timestamp(secs) => {
            Box::new(chrono::DateTime::<chrono::Utc>::from_timestamp(*secs, 0).ok_or_else(|| invalid(&format!("epoch timestamp {secs}")))?)
        }
        P::DbNull => Box::new(PgNull),
    })
}

fn to_sql_all(params: &[pg::ParameterValue]) -> Result<Vec<Box<dyn ToSql + Send + Sync>>, String> {
    params.iter().map(to_sql).collect()
}

/// A column's type as pg3 names it (what Spin 3.4 and later report).
pub fn data_type(t: &Type) -> pg::DbDataType {
    use pg::DbDataType as D;
    match *t {
        Type::BOOL => D::Boolean,
        Type::BYTEA => D::Binary,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => D::Str,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => D::Datetime,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        _ => D::Other,
    }
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize, f: impl FnOnce(T) -> pg::DbValue) -> Result<pg::DbValue, tokio_postgres::Error> {
    Ok(row.try_get::<_, Option<T>>(i)?.map_or(pg::DbValue::DbNull, f))
}

fn value(row: &Row, i: usize) -> Result<pg::DbValue, tokio_postgres::Error> {
    use pg::DbValue as V;
    match *row.columns()[i].type_() {
        Type::BOOL => get(row, i, V::Boolean),
        Type::BYTEA => get(row, i, V::Binary),
        Type::FLOAT4 => get(row, i, V::Floating32),
        Type::FLOAT8 => get(row, i, V::Floating64),
        Type::INT2 => get(row, i, V::Int16),
        Type::INT4 => get(row, i, V::Int32),
        Type::INT8 => get(row, i, V::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => get(row, i, V::Str),
        // As Spin: read as `timestamp`, which fails for `timestamptz`.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => get(row, i, |v: chrono::NaiveDateTime| V::Datetime(datetime_to_wit(v))),
        Type::DATE => get(row, i, |v: chrono::NaiveDate| V::Date(date_to_wit(v))),
        Type::TIME => get(row, i, |v: chrono::NaiveTime| V::Time(time_to_wit(v))),
        _ => get(row, i, |_: AnyValue| V::Unsupported),
    }
}

fn row_set(rows: &[Row]) -> Result<pg::RowSet, pg::Error> {
    // As Spin: the columns are taken from the first row, so none without rows.
    let Some(first) = rows.first() else {
        return Ok(pg::RowSet { columns: vec![], rows: vec![] });
    };
    let columns = first
        .columns()
        .iter()
        .map(|c| pg::Column { name: c.name().to_owned(), data_type: data_type(c.type_()) })
        .collect();
    let rows = rows
        .iter()
        .map(|row| (0..row.len()).map(|i| value(row, i)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            let mut text = format!("{e:?}");
            if text.contains("Timestamptz") {
                text.push_str(
                    " (Spin's spin:postgres@3.0.0 cannot read timestamptz columns: select `col AT TIME ZONE 'UTC'` \
                     or `extract(epoch from col)::int8` instead)",
                );
            }
            pg::Error::QueryFailed(text)
        })?;
    Ok(pg::RowSet { columns, rows })
}

impl pg::Host for Ctx {}

impl pg::HostConnection for Ctx {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<PgConn>, pg::Error>> {
        let config = match check_address(&self.env.allowed, &address) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match self.shared.postgres.checkout(&address, config).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(
        &mut self,
        c: Resource<PgConn>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        let params = match to_sql_all(&params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(pg::Error::BadParameter(e))),
        };
        let conn = self.table.get_mut(&c)?;
        Ok(match conn.run(&statement, &params).await {
            Ok(rows) => row_set(&rows),
            Err(e) => Err(e),
        })
    }

    async fn execute(
        &mut self,
        c: Resource<PgConn>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, pg::Error>> {
        let params = match to_sql_all(&params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(pg::Error::ValueConversionFailed(e))),
        };
        let conn = self.table.get_mut(&c)?;
        Ok(conn.exec(&statement, &params).await)
    }

    async fn drop(&mut self, c: Resource<PgConn>) -> wasmtime::Result<()> {
        let conn = self.table.delete(c)?;
        self.shared.postgres.checkin(conn);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pg::ParameterValue as P;

    fn allowed(e: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn conn_failed(r: Result<Config, pg::Error>) -> String {
        match r {
            Err(pg::Error::ConnectionFailed(m)) => m,
            other => panic!("expected connection-failed, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn addresses_are_checked_like_spin() {
        let a = allowed(&["postgres://127.0.0.1:*", "postgres://db.internal"]);
        assert!(check_address(&a, "postgres://postgres@127.0.0.1:5999/app").is_ok());
        assert!(check_address(&a, "host=127.0.0.1 port=6000 user=postgres dbname=app").is_ok());
        assert!(check_address(&a, "postgres://u:pw@db.internal/app").is_ok(), "default port 5432");
        assert_eq!(conn_failed(check_address(&a, "postgres://db.internal:5433/app")), "address postgres://db.internal:5433 is not permitted");
        assert_eq!(conn_failed(check_address(&a, "postgres://127.0.0.2:5432/app")), "address postgres://127.0.0.2:5432 is not permitted");
        // Every host of a multi-host address, and hostaddr, must be allowed.
        assert!(check_address(&a, "host=127.0.0.1,evil.example port=1,2").is_err());
        assert!(check_address(&a, "host=127.0.0.1 hostaddr=10.0.0.1").is_err());
        assert!(conn_failed(check_address(&a, "host=/var/run/postgresql")).contains("Unix sockets"));
        assert!(conn_failed(check_address(&a, "postgres://127.0.0.1/app?sslmode=require")).contains("sslmode=require"));
        assert!(check_address(&a, "postgres://127.0.0.1/app?sslmode=disable").is_ok());
        assert!(conn_failed(check_address(&a, "not a url at all ===")).starts_with("invalid address"));
        assert!(check_address(&AllowedHosts::default(), "postgres://127.0.0.1/app").is_err());
        // Another scheme's rule does not cover postgres.
        assert!(check_address(&allowed(&["redis://127.0.0.1:*"]), "postgres://127.0.0.1/app").is_err());
    }

    fn encodes(v: &P, ty: &Type) -> Result<bool, String> {
        let p = to_sql(v)?;
        let mut buf = BytesMut::new();
        p.to_sql_checked(ty, &mut buf)
            .map(|n| matches!(n, tokio_postgres::types::IsNull::No))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parameters_bind_with_their_exact_types() {
        assert_eq!(encodes(&P::Boolean(true), &Type::BOOL), Ok(true));
        assert_eq!(encodes(&P::Int16(-2), &Type::INT2), Ok(true));
        assert_eq!(encodes(&P::Int32(7), &Type::INT4), Ok(true));
        assert_eq!(encodes(&P::Int64(1 << 40), &Type::INT8), Ok(true));
        assert_eq!(encodes(&P::Floating32(1.5), &Type::FLOAT4), Ok(true));
        assert_eq!(encodes(&P::Floating64(2.5), &Type::FLOAT8), Ok(true));
        assert_eq!(encodes(&P::Str("x".into()), &Type::TEXT), Ok(true));
        assert_eq!(encodes(&P::Str("x".into()), &Type::VARCHAR), Ok(true));
        assert_eq!(encodes(&P::Binary(vec![0, 255]), &Type::BYTEA), Ok(true));
        assert_eq!(encodes(&P::Date((2024, 2, 29)), &Type::DATE), Ok(true));
        assert_eq!(encodes(&P::Time((23, 59, 58, 5)), &Type::TIME), Ok(true));
        assert_eq!(encodes(&P::Datetime((2024, 1, 2, 3, 4, 5, 6)), &Type::TIMESTAMP), Ok(true));
        assert_eq!(encodes(&P::Timestamp(0), &Type::TIMESTAMPTZ), Ok(true));
        // NULL fits any type.
        assert_eq!(encodes(&P::DbNull, &Type::INT4), Ok(false));
        assert_eq!(encodes(&P::DbNull, &Type::BYTEA), Ok(false));
        // As in Spin, no widening: these are errors from the driver, reported as query-failed.
        assert!(encodes(&P::Int8(1), &Type::INT2).is_err());
        assert!(encodes(&P::Int8(1), &Type::CHAR).is_ok());
        assert!(encodes(&P::Int32(1), &Type::INT8).is_err());
        assert!(encodes(&P::Floating32(1.0), &Type::FLOAT8).is_err());
        assert!(encodes(&P::Timestamp(0), &Type::TIMESTAMP).is_err());
    }

    #[test]
    fn invalid_dates_and_times_are_conversion_errors() {
        assert!(to_sql(&P::Date((2023, 2, 29))).is_err());
        assert!(to_sql(&P::Date((2023, 13, 1))).is_err());
        assert!(to_sql(&P::Time((24, 0, 0, 0))).is_err());
        assert!(to_sql(&P::Datetime((2024, 1, 1, 0, 60, 0, 0))).is_err());
        assert!(to_sql(&P::Timestamp(i64::MAX)).is_err());
        assert_eq!(to_sql(&P::Date((2023, 2, 30))).err().unwrap(), "invalid date y=2023, m=2, d=30");
    }

    #[test]
    fn chrono_values_become_wit_tuples_and_back() {
        let dt = chrono::NaiveDate::from_ymd_opt(1999, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 123_456_000).unwrap();
        let t = datetime_to_wit(dt);
        assert_eq!(t, (1999, 12, 31, 23, 59, 59, 123_456_000));
        assert_eq!(datetime_to_pg(t).unwrap(), dt);
        assert_eq!(date_to_wit(dt.date()), (1999, 12, 31));
        assert_eq!(date_to_pg((1999, 12, 31)).unwrap(), dt.date());
        assert_eq!(time_to_wit(dt.time()), (23, 59, 59, 123_456_000));
        assert_eq!(time_to_pg((23, 59, 59, 123_456_000)).unwrap(), dt.time());
        let bc = chrono::NaiveDate::from_ymd_opt(-44, 3, 15).unwrap();
        assert_eq!(date_to_pg(date_to_wit(bc)).unwrap(), bc);
    }

    #[test]
    fn column_types_map_as_spin_reports_them() {
        use pg::DbDataType as D;
        let cases = [
            (Type::BOOL, D::Boolean),
            (Type::INT2, D::Int16),
            (Type::INT4, D::Int32),
            (Type::INT8, D::Int64),
            (Type::FLOAT4, D::Floating32),
            (Type::FLOAT8, D::Floating64),
            (Type::TEXT, D::Str),
            (Type::VARCHAR, D::Str),
            (Type::BPCHAR, D::Str),
            (Type::BYTEA, D::Binary),
            (Type::DATE, D::Date),
            (Type::TIME, D::Time),
            (Type::TIMESTAMP, D::Datetime),
            (Type::TIMESTAMPTZ, D::Datetime),
            (Type::NUMERIC, D::Other),
            (Type::UUID, D::Other),
            (Type::JSONB, D::Other),
            (Type::INT4_ARRAY, D::Other),
        ];
        for (t, want) in cases {
            assert_eq!(data_type(&t), want, "{t}");
        }
    }
}
