//! The Upstash REST API over Spin's outbound HTTP (`wasi:http`), which Spin
//! pools across requests and which the guest bounds with request options.

use crate::config::RedisConfig;
use crate::redis::{rest, Cmd, Error, Link, Reply, Transport};
use std::time::Duration;

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
            base: cfg.url().trim_end_matches('/').to_owned(),
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

