//! Guest adapters: the only place that touches spin-sdk and WASI.
//!
//! Spin outbound Redis ([`TcpLink`]), the Upstash REST API over outbound HTTP
//! ([`RestLink`]), Spin variables ([`SpinVars`]) and the conversion of library
//! responses into Spin responses.

use crate::config::{RedisConfig, Vars};
use crate::http::Response;
use crate::redis::{rest, Cmd, Error, Link, Reply, Transport, Value};
use std::cell::OnceCell;
use std::time::Duration;

/// Spin application variables, as declared for the component in `spin.toml`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinVars;

impl Vars for SpinVars {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

/// The link a component uses, chosen by `redis_url`'s scheme.
pub enum SpinLink {
    Tcp(TcpLink),
    Rest(RestLink),
}

impl SpinLink {
    pub fn new(cfg: &RedisConfig) -> Self {
        match cfg.transport {
            Transport::Rest => SpinLink::Rest(RestLink::new(cfg)),
            _ => SpinLink::Tcp(TcpLink::new(&cfg.url)),
        }
    }
}

impl Link for SpinLink {
    fn transport(&self) -> Transport {
        match self {
            SpinLink::Tcp(_) => Transport::Tcp,
            SpinLink::Rest(_) => Transport::Rest,
        }
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        match self {
            SpinLink::Tcp(l) => l.exec(cmd).await,
            SpinLink::Rest(l) => l.exec(cmd).await,
        }
    }

    async fn pipeline(&self, cmds: &[Cmd]) -> Result<Vec<Result<Reply, Error>>, Error> {
        match self {
            SpinLink::Tcp(l) => l.pipeline(cmds).await,
            SpinLink::Rest(l) => l.pipeline(cmds).await,
        }
    }
}

/// Spin outbound Redis. The connection opens on first use and serves the rest
/// of the request: Spin dials a new TCP connection for every `open`.
pub struct TcpLink {
    url: String,
    conn: OnceCell<spin_sdk::redis::Connection>,
}

impl TcpLink {
    pub fn new(url: &str) -> Self {
        TcpLink { url: url.to_owned(), conn: OnceCell::new() }
    }

    fn conn(&self) -> Result<&spin_sdk::redis::Connection, Error> {
        if let Some(c) = self.conn.get() {
            return Ok(c);
        }
        let c = spin_sdk::redis::Connection::open(&self.url).map_err(|e| match e {
            spin_sdk::redis::Error::InvalidAddress => Error::Config("invalid redis_url".into()),
            other => Error::Unavailable(describe(&other)),
        })?;
        Ok(self.conn.get_or_init(|| c))
    }
}

fn describe(e: &spin_sdk::redis::Error) -> String {
    match e {
        spin_sdk::redis::Error::InvalidAddress => "invalid address".into(),
        spin_sdk::redis::Error::TooManyConnections => "too many connections".into(),
        spin_sdk::redis::Error::TypeError => "type error".into(),
        spin_sdk::redis::Error::Other(m) => m.clone(),
    }
}

/// Spin reports every failure of `execute` as `other(text)`. Tell server
/// error replies (which carry a Redis error code) from transport failures.
fn classify(msg: String) -> Error {
    let lower = msg.to_ascii_lowercase();
    // redis-rs, which Spin's host uses, renders this one as
    // "... NoScriptError: No matching script ..."; Redis itself says "NOSCRIPT".
    if lower.contains("noscript") {
        return Error::Server(format!("NOSCRIPT {msg}"));
    }
    let transport = ["os error", "connection", "broken pipe", "timed out", "timeout", "refused", "reset", "eof", "i/o"];
    if transport.iter().any(|t| lower.contains(t)) {
        Error::Unavailable(msg)
    } else {
        Error::Server(msg)
    }
}

impl Link for TcpLink {
    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        use spin_sdk::redis::{RedisParameter, RedisResult};
        let conn = self.conn()?;
        let params: Vec<RedisParameter> =
            cmd.args().iter().map(|a| RedisParameter::Binary(a.0.clone())).collect();
        let results = conn.execute(cmd.name(), &params).map_err(|e| match e {
            spin_sdk::redis::Error::Other(m) => classify(m),
            other => Error::Protocol(describe(&other)),
        })?;
        Ok(Reply(
            results
                .into_iter()
                .map(|r| match r {
                    RedisResult::Nil => Value::Nil,
                    RedisResult::Int64(n) => Value::Int(n),
                    RedisResult::Binary(b) => Value::Bytes(b),
                    RedisResult::Status(s) => Value::Bytes(s.into_bytes()),
                })
                .collect(),
        ))
    }
}

/// The Upstash REST API over Spin outbound HTTP (`wasi:http`), with bounded
/// connect, first-byte and between-bytes timeouts.
pub struct RestLink {
    base: String,
    token: String,
    timeout: Duration,
}

impl RestLink {
    pub fn new(cfg: &RedisConfig) -> Self {
        RestLink {
            base: cfg.url.trim_end_matches('/').to_owned(),
            token: cfg.token.clone().unwrap_or_default(),
            timeout: Duration::from_millis(cfg.timeout_ms),
        }
    }

    fn post(&self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>), Error> {
        wasi_post(&format!("{}{}", self.base, path), &self.token, body, self.timeout)
    }
}

impl Link for RestLink {
    fn transport(&self) -> Transport {
        Transport::Rest
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        let body = rest::encode_command(cmd)?.to_string();
        let (status, resp) = self.post("/", body.as_bytes())?;
        rest::decode_single(status, &resp)
    }

    async fn pipeline(&self, cmds: &[Cmd]) -> Result<Vec<Result<Reply, Error>>, Error> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let body = rest::encode_pipeline(cmds)?.to_string();
        let (status, resp) = self.post("/pipeline", body.as_bytes())?;
        rest::decode_pipeline(status, &resp, cmds.len())
    }
}

/// One blocking POST through `wasi:http/outgoing-handler`. spin-sdk's `send`
/// cannot set request options, and the timeouts are the point here.
fn wasi_post(url: &str, token: &str, body: &[u8], timeout: Duration) -> Result<(u16, Vec<u8>), Error> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

    let (scheme, rest) = url.split_once("://").ok_or_else(|| Error::Config("bad REST URL".into()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers = Fields::new();
    let set = |name: &str, value: &[u8]| {
        headers.append(&name.to_string(), &value.to_vec()).map_err(|e| Error::Config(format!("header {name}: {e:?}")))
    };
    set("authorization", format!("Bearer {token}").as_bytes())?;
    set("content-type", b"application/json")?;
    set(rest::ENCODING_HEADER.0, rest::ENCODING_HEADER.1.as_bytes())?;
    set("content-length", body.len().to_string().as_bytes())?;

    let req = OutgoingRequest::new(headers);
    let bad = |_| Error::Config("bad REST URL".into());
    req.set_method(&Method::Post).map_err(|_| Error::Config("method".into()))?;
    req.set_scheme(Some(&match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    }))
    .map_err(bad)?;
    req.set_authority(Some(authority)).map_err(bad)?;
    req.set_path_with_query(Some(path)).map_err(bad)?;

    let out_body = req.body().map_err(|_| Error::Protocol("request body taken".into()))?;
    let options = RequestOptions::new();
    let ns = timeout.as_nanos() as u64;
    // Hosts that do not support an option answer Err; the others still apply.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));

    let future = outgoing_handler::handle(req, Some(options))
        .map_err(|e| Error::Unavailable(format!("REST request refused: {e:?}")))?;
    {
        let stream = out_body.write().map_err(|_| Error::Protocol("request stream taken".into()))?;
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| Error::Unavailable(format!("REST write: {e:?}")))?;
        }
    }
    OutgoingBody::finish(out_body, None).map_err(|e| Error::Unavailable(format!("REST finish: {e:?}")))?;

    future.subscribe().block();
    let resp = match future.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(Error::Unavailable(format!("REST request failed: {code:?}"))),
        _ => return Err(Error::Unavailable("REST request produced no response".into())),
    };
    let status = resp.status();
    let in_body = resp.consume().map_err(|_| Error::Protocol("response body taken".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = in_body.stream().map_err(|_| Error::Protocol("response stream taken".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(Error::Unavailable(format!("REST read: {e:?}"))),
            }
        }
    }
    Ok((status, bytes))
}

/// Converts a Spin request into the library's request.
pub fn from_spin(req: &spin_sdk::http::Request) -> crate::http::Request {
    let path_and_query = req.path_and_query().unwrap_or("/");
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    crate::http::Request {
        method: req.method().to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: req.headers().map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec())).collect(),
        body: req.body().to_vec(),
    }
}

/// Runs a handler on a Spin request: converts it, enforces the header
/// limits, and turns a `Problem` into its problem+json response.
pub async fn serve<F, Fut>(req: spin_sdk::http::Request, handler: F) -> spin_sdk::http::Response
where
    F: FnOnce(crate::http::Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response, crate::http::Problem>>,
{
    let req = from_spin(&req);
    let resp = match req.check_header_limits() {
        Err(p) => p.to_response(),
        Ok(()) => handler(req).await.unwrap_or_else(|p| p.to_response()),
    };
    into_response(resp)
}

/// Converts a library response into a Spin response, adding `Spindle-Host`.
pub fn into_response(r: Response) -> spin_sdk::http::Response {
    let r = with_host(r);
    let mut b = spin_sdk::http::Response::builder();
    b.status(r.status);
    for (k, v) in r.headers {
        b.header(k, v);
    }
    b.body(r.body).build()
}

/// The `host_id` variable, when the component declares it and it is set to
/// 1–64 visible ASCII characters (anything else is ignored: no header).
pub fn host_id() -> Option<String> {
    spin_sdk::variables::get("host_id")
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
}

/// Adds `Spindle-Host: <host_id>` (which host answered) when `host_id` is set.
/// [`into_response`] does it for every component served through [`serve`];
/// a component that builds its own response calls this first.
pub fn with_host(r: Response) -> Response {
    match host_id() {
        Some(h) if r.header("spindle-host").is_none() => r.with_header("spindle-host", h),
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_spin_error_text() {
        assert!(classify("NOSCRIPT: No matching script".into()).is_noscript());
        let spin = "An error was signalled by the server - NoScriptError: No matching script. Please use EVAL.";
        assert!(classify(spin.into()).is_noscript());
        assert!(classify("Connection refused (os error 111)".into()).is_unavailable());
        assert!(!classify("WRONGTYPE Operation against a key".into()).is_unavailable());
    }
}
