//! `GET /healthz`: is this host up, and can it reach Redis?
//!
//! Opens the Redis link, times one PING, and reports the transport and the
//! round-trip latency. Load balancers take a 503 as "take me out".
//! `GET /openapi.json` serves the API's OpenAPI 3.1 document (`openapi.json`
//! at the repository root, compiled in), with an ETag.
//! This component also owns the catch-all route, so unknown paths get a
//! problem+json 404 from the app itself, identically on Spin and the runner.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spindle::http::{Problem, Response};
use spindle::redis::{Cmd, Link};
use spindle::spin::{serve, Cx, Routes};

/// The OpenAPI document, as committed.
const OPENAPI: &str = include_str!("../../../openapi.json");

const ROUTES: Routes = spindle::routes![
    GET|HEAD "/healthz" => health,
    GET|HEAD "/openapi.json" => openapi,
];

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(ROUTES, req, out).await
}

/// A strong ETag of the document: FNV-1a 64 of its bytes, computed at
/// compile time (hashing 88 KB cost ~0.9M instructions per request).
const OPENAPI_ETAG: &str = match std::str::from_utf8(&etag(OPENAPI.as_bytes())) {
    Ok(s) => s,
    Err(_) => panic!("the ETag is ASCII"),
};

const fn etag(doc: &[u8]) -> [u8; 18] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < doc.len() {
        h = (h ^ doc[i] as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    let mut out = [b'"'; 18];
    let mut d = 0;
    while d < 16 {
        out[1 + d] = b"0123456789abcdef"[(h >> (60 - 4 * d)) as usize & 15];
        d += 1;
    }
    out
}

async fn openapi(cx: Cx) -> Result<Response, Problem> {
    let matches = cx.req.header("if-none-match").is_some_and(|h| {
        h.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == OPENAPI_ETAG)
    });
    let resp = if matches {
        Response::empty(304)
    } else {
        Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: OPENAPI.as_bytes().to_vec(),
        }
    };
    Ok(resp.with_header("etag", OPENAPI_ETAG).with_header("cache-control", "no-cache"))
}

async fn health(cx: Cx) -> Result<Response, Problem> {
    let link = cx.link()?;
    let started = std::time::Instant::now();
    match link.exec(&Cmd::new("PING")).await {
        Ok(_) => {
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let body = serde_json::json!({
                "status": "ok",
                "redis": { "transport": link.transport().as_str(), "latency_ms": (ms * 1000.0).round() / 1000.0 },
            });
            Ok(Response::json(200, &body).with_header("cache-control", "no-store"))
        }
        Err(e) => {
            eprintln!("healthz: {e}");
            Err(Problem::redis_unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_etag_is_fnv1a_64_of_the_document() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in super::OPENAPI.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(super::OPENAPI_ETAG, format!("\"{h:016x}\""));
    }
}
