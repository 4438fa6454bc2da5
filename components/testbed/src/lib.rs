//! A test-only component for the runner's end-to-end tests: it reports what
//! the host gave it (Spin headers, variables) and does what it is told
//! (trap, dial a Redis, fetch a URL, sleep). Never deployed.

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
        "/eval" => eval(&req).await,
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
    let cfg = match spindle::config::RedisConfig::from_vars(&spindle::spin::SpinVars) {
        Ok(c) => c,
        Err(e) => return json(500, serde_json::json!({ "error": e.to_string() })),
    };
    let link = spindle::spin::SpinLink::new(&cfg);
    // Leaked on purpose: a test-only component, one script per request.
    let script = Script::new(Box::leak(case.script.into_boxed_str()));
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
