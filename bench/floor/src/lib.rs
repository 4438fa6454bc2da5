//! The floor of the stacks benchmark (bench/stacks/run.sh): what a minimal
//! spin-sdk 5.2 component costs on a host, per route, so Spindle's routes
//! can be read against it.
//!
//! - `GET /ok`: 200 "ok", no Redis, no variables.
//! - `GET /get`: one `GET floor:key` over Spin's outbound Redis
//!   (`spin_sdk::redis`, which Spin dials anew on every request).
//! - `GET /get-socket`: the same GET as RESP over `wasi:sockets` TCP to
//!   `redis_host` (an IP address), a new connection per request: what
//!   Spindle's TCP transport does (crates/spindle/src/spin/socket.rs).
//! - `GET /get-rest`: one Upstash REST `["GET","floor:key"]` POSTed to the
//!   gateway over outbound HTTP (`wasi:http`), with the headers, encoding and
//!   request options of Spindle's REST transport (crates/spindle/src/spin/rest.rs).
//!
//! Anything else is 404. Errors are 503 with the host's error text.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;
use spin_sdk::variables;

/// The key every Redis route reads (bench/stacks/run.sh sets it).
const KEY: &str = "floor:key";

#[http_component]
fn handle(req: Request) -> Response {
    let result = match req.path() {
        "/ok" => Ok(b"ok".to_vec()),
        "/get" => get_tcp(),
        "/get-socket" => get_socket(),
        "/get-rest" => get_rest(),
        _ => return text(404, b"not found".to_vec()),
    };
    match result {
        Ok(body) => text(200, body),
        Err(e) => text(503, e.into_bytes()),
    }
}

fn text(status: u16, body: Vec<u8>) -> Response {
    Response::builder().status(status).header("content-type", "text/plain").body(body).build()
}

fn var(name: &str) -> Result<String, String> {
    variables::get(name).map_err(|e| format!("variable {name}: {e}"))
}

/// One GET over `fermyon:spin/redis` (a new connection per request on Spin).
fn get_tcp() -> Result<Vec<u8>, String> {
    let conn = spin_sdk::redis::Connection::open(&format!("redis://{}", var("redis_host")?))
        .map_err(|e| format!("redis open: {e}"))?;
    let value = conn.get(KEY).map_err(|e| format!("redis GET: {e}"))?;
    Ok(value.unwrap_or_default())
}

/// One Upstash REST GET through the gateway, shaped as Spindle's RestLink sends it.
fn get_rest() -> Result<Vec<u8>, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme};

    let authority = var("rest_host")?;
    let token = var("redis_token")?;
    let body = format!("[\"GET\",\"{KEY}\"]");
    let headers = Fields::new();
    for (name, value) in [
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
        ("upstash-encoding", "base64".to_owned()),
        ("content-length", body.len().to_string()),
    ] {
        headers.append(&name.to_owned(), &value.into_bytes()).map_err(|e| format!("header {name}: {e:?}"))?;
    }
    let req = OutgoingRequest::new(headers);
    req.set_method(&Method::Post).map_err(|_| "method")?;
    req.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    req.set_authority(Some(&authority)).map_err(|_| "authority")?;
    req.set_path_with_query(Some("/")).map_err(|_| "path")?;
    let out_body = req.body().map_err(|_| "request body taken")?;
    let options = RequestOptions::new();
    let ns = 2_000_000_000; // Spindle's default redis_timeout_ms, 2 s
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));

    let future = outgoing_handler::handle(req, Some(options)).map_err(|e| format!("REST refused: {e:?}"))?;
    {
        let stream = out_body.write().map_err(|_| "request stream taken")?;
        stream.blocking_write_and_flush(body.as_bytes()).map_err(|e| format!("REST write: {e:?}"))?;
    }
    OutgoingBody::finish(out_body, None).map_err(|e| format!("REST finish: {e:?}"))?;
    future.subscribe().block();
    let resp = match future.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(format!("REST failed: {code:?}")),
        _ => return Err("REST: no response".into()),
    };
    let status = resp.status();
    let in_body = resp.consume().map_err(|_| "response body taken")?;
    let mut bytes = Vec::new();
    {
        let stream = in_body.stream().map_err(|_| "response stream taken")?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(format!("REST read: {e:?}")),
            }
        }
    }
    // {"result":"<base64>"}: the value stays encoded (decoding is not the
    // transport's cost, and the floor must not do more than the route).
    if status != 200 {
        return Err(format!("REST HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
    }
    Ok(bytes)
}

/// One GET as RESP over a `wasi:sockets` TCP connection opened for it, as
/// Spindle's TCP transport sends it (its timeouts are waits on the same
/// pollables, so blocking on them costs the floor no less).
fn get_socket() -> Result<Vec<u8>, String> {
    use wasi::io::streams::StreamError;
    use wasi::sockets::instance_network::instance_network;
    use wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasi::sockets::tcp_create_socket::create_tcp_socket;

    let addr: std::net::SocketAddrV4 = var("redis_host")?.parse().map_err(|e| format!("redis_host: {e}"))?;
    let [a0, a1, a2, a3] = addr.ip().octets();
    let remote = IpSocketAddress::Ipv4(Ipv4SocketAddress { port: addr.port(), address: (a0, a1, a2, a3) });
    let socket = create_tcp_socket(IpAddressFamily::Ipv4).map_err(|e| format!("socket: {e:?}"))?;
    socket.start_connect(&instance_network(), remote).map_err(|e| format!("connect: {e:?}"))?;
    let (input, output) = loop {
        socket.subscribe().block();
        match socket.finish_connect() {
            Ok(streams) => break streams,
            Err(ErrorCode::WouldBlock) => continue,
            Err(e) => return Err(format!("connect: {e:?}")),
        }
    };
    let cmd = format!("*2\r\n$3\r\nGET\r\n${}\r\n{KEY}\r\n", KEY.len());
    output.blocking_write_and_flush(cmd.as_bytes()).map_err(|e| format!("write: {e:?}"))?;
    // A bulk reply, "$<n>\r\n<n bytes>\r\n" (or "$-1\r\n"): read until it is whole.
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let len: i64 = std::str::from_utf8(&buf[1..end]).ok().and_then(|n| n.parse().ok()).ok_or("not a bulk reply")?;
            if len < 0 {
                return Ok(Vec::new());
            }
            let start = end + 2;
            if buf.len() >= start + len as usize + 2 {
                return Ok(buf[start..start + len as usize].to_vec());
            }
        }
        match input.blocking_read(16 * 1024) {
            Ok(chunk) => buf.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Err("Redis closed the connection".into()),
            Err(e) => return Err(format!("read: {e:?}")),
        }
    }
}
