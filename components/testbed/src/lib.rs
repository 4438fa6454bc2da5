//! A test-only component for the runner's end-to-end tests: it reports what
//! the host gave it (Spin headers, variables) and does what it is told
//! (trap, dial a Redis, fetch a URL, with or without request-options
//! timeouts, sleep, run a PostgreSQL script, PING a Redis over a raw
//! wasi:sockets TCP connection, resolve a name). Never deployed.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

fn query(req: &Request, key: &str) -> Option<String> {
    req.query().split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%3A", ":").replace("%2F", "/"))
    })
}

fn json(status: u16, v: serde_json::Value) -> Response {
    Response::builder().status(status).header("content-type", "application/json").body(v.to_string()).build()
}

#[http_component]
async fn handle(req: Request) -> impl IntoResponse {
    let route = req.header("spin-component-route").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let info = req.header("spin-path-info").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    match info.as_str() {
        "/trap" => panic!("trap requested"),
        "/var" => {
            let name = query(&req, "name").unwrap_or_default();
            match spin_sdk::variables::get(&name) {
                Ok(v) => json(200, serde_json::json!({ "name": name, "value": v })),
                Err(e) => json(404, serde_json::json!({ "name": name, "error": e.to_string() })),
            }
        }
        "/dial" => {
            let addr = query(&req, "addr").unwrap_or_default();
            let result = spin_sdk::redis::Connection::open(&addr)
                .and_then(|c| c.execute("PING", &[]).map(|r| format!("{r:?}")));
            match result {
                Ok(r) => json(200, serde_json::json!({ "ok": r })),
                Err(e) => json(502, serde_json::json!({ "error": e.to_string() })),
            }
        }
        "/fetch" => {
            let url = query(&req, "url").unwrap_or_default();
            let result: Result<Response, _> = spin_sdk::http::send(spin_sdk::http::Request::get(url)).await;
            match result {
                Ok(r) => json(200, serde_json::json!({ "status": *r.status() })),
                Err(e) => json(502, serde_json::json!({ "error": e.to_string() })),
            }
        }
        "/sqlite" => {
            use spin_sdk::sqlite::{Connection, Value};
            let result = Connection::open_default().and_then(|db| {
                db.execute("CREATE TABLE IF NOT EXISTS hits (n INTEGER)", &[])?;
                db.execute("INSERT INTO hits (n) VALUES (?)", &[Value::Integer(1)])?;
                db.execute("SELECT COUNT(*) AS c FROM hits", &[])
            });
            match result {
                Ok(r) => json(200, serde_json::json!({ "count": r.rows[0].get::<i64>(0) })),
                Err(e) => json(500, serde_json::json!({ "error": e.to_string() })),
            }
        }
        "/timed-get" => {
            let url = query(&req, "url").unwrap_or_default();
            let ms: u64 = query(&req, "timeout_ms").and_then(|s| s.parse().ok()).unwrap_or(1000);
            match timed_get(&url, ms) {
                Ok((status, len)) => json(200, serde_json::json!({ "status": status, "body_len": len })),
                Err(e) => json(502, serde_json::json!({ "error": e })),
            }
        }
        "/tcp" => match tcp_ping(&query(&req, "addr").unwrap_or_default()) {
            Ok(reply) => json(200, serde_json::json!({ "reply": reply })),
            Err(e) => json(502, serde_json::json!({ "error": e })),
        },
        "/resolve" => match resolve(&query(&req, "name").unwrap_or_default()) {
            Ok(addrs) => json(200, serde_json::json!({ "addresses": addrs })),
            Err(e) => json(502, serde_json::json!({ "error": e })),
        },
        "/eval" => eval(&req).await,
        "/pg" => pg(&req),
        "/sleep" => {
            let ms: u64 = query(&req, "ms").and_then(|s| s.parse().ok()).unwrap_or(10);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            json(200, serde_json::json!({ "slept_ms": ms }))
        }
        _ => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .filter(|(k, _)| k.starts_with("spin-"))
                .map(|(k, v)| (k.to_owned(), v.as_str().unwrap_or("").into()))
                .collect();
            json(200, serde_json::json!({
                "component": spin_sdk::variables::get("who").unwrap_or_default(),
                "route": route,
                "method": req.method().to_string(),
                "path": req.path(),
                "query": req.query(),
                "headers": headers,
                "body_len": req.body().len(),
            }))
        }
    }
}

/// GETs `url` through wasi:http with every request-options timeout set to
/// `ms` (spin-sdk's `send` cannot set them); returns the status and the body
/// length, or the error code (`where: code`) of the response or of its body.
fn timed_get(url: &str, ms: u64) -> Result<(u16, usize), String> {
    use wasi::http::types::{Fields, OutgoingRequest, RequestOptions, Scheme};
    use wasi::http::{outgoing_handler, types::http_error_code};
    use wasi::io::streams::StreamError;
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    req.set_authority(Some(authority)).map_err(|_| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let options = RequestOptions::new();
    let ns = ms * 1_000_000;
    options.set_connect_timeout(Some(ns)).map_err(|_| "connect timeout refused")?;
    options.set_first_byte_timeout(Some(ns)).map_err(|_| "first-byte timeout refused")?;
    options.set_between_bytes_timeout(Some(ns)).map_err(|_| "between-bytes timeout refused")?;
    let future = outgoing_handler::handle(req, Some(options)).map_err(|e| format!("handle: {e:?}"))?;
    future.subscribe().block();
    let resp = match future.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(format!("response: {code:?}")),
        other => return Err(format!("response: {other:?}")),
    };
    let body = resp.consume().map_err(|_| "body taken")?;
    let stream = body.stream().map_err(|_| "stream taken")?;
    let mut len = 0;
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => len += chunk.len(),
            Err(StreamError::Closed) => return Ok((resp.status(), len)),
            Err(StreamError::LastOperationFailed(e)) => return Err(format!("body: {:?}", http_error_code(&e))),
        }
    }
}

/// Connects to `ip:port` over wasi:sockets TCP, sends `PING` and returns the
/// first line of the reply; an error is the wasi error code's name.
fn tcp_ping(addr: &str) -> Result<String, String> {
    use wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasi::sockets::{instance_network, tcp_create_socket};
    let addr: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("bad address: {e}"))?;
    let [a, b, c, d] = addr.ip().octets();
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: addr.port(), address: (a, b, c, d) });
    let socket = tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4).map_err(|e| e.name().to_owned())?;
    socket.start_connect(&instance_network::instance_network(), remote).map_err(|e| e.name().to_owned())?;
    let ready = socket.subscribe();
    let (input, output) = loop {
        match socket.finish_connect() {
            Ok(streams) => break streams,
            Err(ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(e.name().to_owned()),
        }
    };
    output.blocking_write_and_flush(b"PING\r\n").map_err(|e| format!("write: {e:?}"))?;
    let reply = input.blocking_read(64).map_err(|e| format!("read: {e:?}"))?;
    Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
}

/// Resolves a name with wasi:sockets ip-name-lookup.
fn resolve(name: &str) -> Result<Vec<String>, String> {
    use wasi::sockets::network::{ErrorCode, IpAddress};
    use wasi::sockets::{instance_network, ip_name_lookup};
    let stream = ip_name_lookup::resolve_addresses(&instance_network::instance_network(), name).map_err(|e| e.name().to_owned())?;
    let mut out = Vec::new();
    loop {
        match stream.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4((a, b, c, d)))) => out.push(format!("{a}.{b}.{c}.{d}")),
            Ok(Some(IpAddress::Ipv6(v6))) => out.push(format!("{v6:?}")),
            Ok(None) => return Ok(out),
            Err(ErrorCode::WouldBlock) => stream.subscribe().block(),
            Err(e) => return Err(e.name().to_owned()),
        }
    }
}

/// Runs a Lua script through the library's link (whichever transport
/// `redis_url` selects) and returns the normalised reply, for the golden tests.
async fn eval(req: &Request) -> Response {
    use spindle::redis::{Arg, Link, Script, Value};
    #[derive(serde::Deserialize)]
    struct Case {
        script: String,
        keys: Vec<String>,
        args: Vec<String>,
    }
    let case: Case = match serde_json::from_slice(req.body()) {
        Ok(c) => c,
        Err(e) => return json(400, serde_json::json!({ "error": e.to_string() })),
    };
    let cfg = match spindle::config::RedisConfig::from_vars(&spindle::spin::SpinVars::default()) {
        Ok(c) => c,
        Err(e) => return json(500, serde_json::json!({ "error": e.to_string() })),
    };
    let link = spindle::spin::SpinLink::new(&cfg);
    // Leaked on purpose: a test-only component, one script per request.
    let script = Script::new("golden", Box::leak(case.script.into_boxed_str()));
    let keys: Vec<Arg> = case.keys.into_iter().map(Arg::from).collect();
    let args: Vec<Arg> = case.args.into_iter().map(Arg::from).collect();
    match link.eval(&script, &keys, &args).await {
        Ok(reply) => {
            let values: Vec<serde_json::Value> = reply
                .values()
                .iter()
                .map(|v| match v {
                    Value::Nil => serde_json::Value::Null,
                    Value::Int(n) => serde_json::json!(n),
                    Value::Bytes(b) => serde_json::json!({ "bytes": b }),
                })
                .collect();
            json(200, serde_json::json!({ "ok": values, "transport": link.transport().as_str() }))
        }
        Err(e) => json(200, serde_json::json!({ "error": format!("{e:?}").split('(').next().unwrap_or(""), "message": e.to_string() })),
    }
}

/// Decodes `%XX` escapes in a query value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn pg_error(e: &spin_sdk::pg3::PgError) -> serde_json::Value {
    use spin_sdk::pg3::PgError as E;
    let (variant, message) = match e {
        E::ConnectionFailed(m) => ("ConnectionFailed", m),
        E::BadParameter(m) => ("BadParameter", m),
        E::QueryFailed(m) => ("QueryFailed", m),
        E::ValueConversionFailed(m) => ("ValueConversionFailed", m),
        E::Other(m) => ("Other", m),
    };
    serde_json::json!({ "error": variant, "message": message })
}

fn pg_value(v: &spin_sdk::pg3::DbValue) -> serde_json::Value {
    use spin_sdk::pg3::DbValue as V;
    match v {
        V::Boolean(b) => serde_json::json!({ "boolean": b }),
        V::Int8(n) => serde_json::json!({ "int8": n }),
        V::Int16(n) => serde_json::json!({ "int16": n }),
        V::Int32(n) => serde_json::json!({ "int32": n }),
        V::Int64(n) => serde_json::json!({ "int64": n }),
        V::Floating32(f) => serde_json::json!({ "floating32": f }),
        V::Floating64(f) => serde_json::json!({ "floating64": f }),
        V::Str(s) => serde_json::json!({ "str": s }),
        V::Binary(b) => serde_json::json!({ "binary": b }),
        V::Date((y, m, d)) => serde_json::json!({ "date": [y, m, d] }),
        V::Time((h, m, s, ns)) => serde_json::json!({ "time": [h, m, s, ns] }),
        V::Datetime((y, mo, d, h, mi, s, ns)) => serde_json::json!({ "datetime": [y, mo, d, h, mi, s, ns] }),
        V::Timestamp(t) => serde_json::json!({ "timestamp": t }),
        V::DbNull => serde_json::json!({ "null": null }),
        V::Unsupported => serde_json::json!({ "unsupported": null }),
    }
}

fn pg_rows(r: &spin_sdk::pg3::RowSet) -> serde_json::Value {
    serde_json::json!({
        "columns": r.columns.iter().map(|c| serde_json::json!([c.name, format!("{:?}", c.data_type).trim_start_matches("DbDataType::")])).collect::<Vec<_>>(),
        "rows": r.rows.iter().map(|row| row.iter().map(pg_value).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

/// Runs a fixed script through `spin_sdk::pg3` against `?addr=`: a temp
/// table written and read back with every type pg3 carries, and the errors a
/// component must get as values (a bad statement, a timestamptz column, a
/// parameter of the wrong width). Opening failures answer 502.
fn pg(req: &Request) -> Response {
    use spin_sdk::pg3::{Connection, ParameterValue as P};
    let addr = req
        .query()
        .split('&')
        .find_map(|kv| kv.strip_prefix("addr="))
        .map(percent_decode)
        .unwrap_or_default();
    let db = match Connection::open(&addr) {
        Ok(db) => db,
        Err(e) => return json(502, pg_error(&e)),
    };
    let step = |r: Result<serde_json::Value, spin_sdk::pg3::PgError>| r.unwrap_or_else(|e| pg_error(&e));
    let create = step(
        db.execute(
            "CREATE TEMP TABLE tb_pg (id int4, big int8, small int2, name text, label varchar(20), flag bool, \
             ratio float8, weight float4, data bytea, missing text, day date, at time, stamp timestamp)",
            &[],
        )
        .map(|n| serde_json::json!(n)),
    );
    let insert = "INSERT INTO tb_pg VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    let row1 = [
        P::Int32(1),
        P::Int64(9_007_199_254_740_993),
        P::Int16(-7),
        P::Str("héllo 'quoted'".into()),
        P::Str("label".into()),
        P::Boolean(true),
        P::Floating64(2.5),
        P::Floating32(1.25),
        P::Binary(vec![0, 1, 254, 255]),
        P::DbNull,
        P::Date((2024, 2, 29)),
        P::Time((23, 59, 58, 123_456_000)),
        P::Datetime((1999, 12, 31, 23, 59, 59, 500_000_000)),
    ];
    let row2 = [
        P::Int32(2),
        P::DbNull,
        P::DbNull,
        P::Str(String::new()),
        P::DbNull,
        P::Boolean(false),
        P::Floating64(-0.5),
        P::DbNull,
        P::Binary(vec![]),
        P::DbNull,
        P::DbNull,
        P::DbNull,
        P::DbNull,
    ];
    let inserted = step(
        db.execute(insert, &row1)
            .and_then(|a| Ok(a + db.execute(insert, &row2)?))
            .map(|n| serde_json::json!(n)),
    );
    let select = step(db.query("SELECT * FROM tb_pg ORDER BY id", &[]).map(|r| pg_rows(&r)));
    let params = step(
        db.query("SELECT $1::int8 + 1 AS next, $2::text AS nothing, $3::bytea AS raw", &[P::Int64(41), P::DbNull, P::Binary(b"\x00x".to_vec())])
            .map(|r| pg_rows(&r)),
    );
    let unsupported = step(db.query("SELECT 1.5::numeric AS dec, NULL::numeric AS no_dec, 'a'::text AS t", &[]).map(|r| pg_rows(&r)));
    let empty = step(db.query("SELECT id FROM tb_pg WHERE false", &[]).map(|r| pg_rows(&r)));
    let bad_sql = step(db.query("SELEKT nonsense FROM nowhere", &[]).map(|r| pg_rows(&r)));
    let bad_execute = step(db.execute("INSERT INTO no_such_table VALUES (1)", &[]).map(|n| serde_json::json!(n)));
    let wrong_width = step(db.execute("UPDATE tb_pg SET small = $1", &[P::Int32(1)]).map(|n| serde_json::json!(n)));
    let bad_date = step(db.query("SELECT $1::date AS d", &[P::Date((2023, 2, 29))]).map(|r| pg_rows(&r)));
    let timestamptz = step(db.query("SELECT now() AS at", &[]).map(|r| pg_rows(&r)));
    let after_errors = step(db.query("SELECT count(*) AS n FROM tb_pg", &[]).map(|r| pg_rows(&r)));
    json(
        200,
        serde_json::json!({
            "create": create,
            "inserted": inserted,
            "select": select,
            "params": params,
            "unsupported": unsupported,
            "empty": empty,
            "bad_sql": bad_sql,
            "bad_execute": bad_execute,
            "wrong_width": wrong_width,
            "bad_date": bad_date,
            "timestamptz": timestamptz,
            "after_errors": after_errors,
        }),
    )
}
