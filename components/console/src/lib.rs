//! `GET /`: the browser console, one self-contained HTML page.
//!
//! The page is `static/index.html` with `static/console.css` and
//! `static/console.js` inlined into it by build.rs, which also computes its
//! CSP and ETag at compile time: no bundler, no external resource.
//! It drives the app's own routes with same-origin `fetch` and `EventSource`
//! (the session cookie is HttpOnly; the page learns who it is from
//! `/auth/me`). The Content-Security-Policy allows exactly that inline script
//! and that inline style, by their SHA-256 hashes, and nothing but the page's
//! own origin to connect to.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spindle::http::{Problem, Response};
use spindle::spin::{serve, Cx, Routes};

/// The page, its CSP and its ETag, made by build.rs from `static/` (the
/// paths are split so that tests/openapi.rs does not take them for routes).
const PAGE: &str = include_str!(concat!(env!("OUT_DIR"), "/", "page.html"));
const CSP: &str = include_str!(concat!(env!("OUT_DIR"), "/", "csp.txt"));
const ETAG: &str = include_str!(concat!(env!("OUT_DIR"), "/", "etag.txt"));

const ROUTES: Routes = spindle::routes![GET|HEAD "/" => console];

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(ROUTES, req, out).await
}

async fn console(cx: Cx) -> Result<Response, Problem> {
    let req = &cx.req;
    let fresh = req.header("if-none-match").is_some_and(|inm| etag_matches(inm, ETAG));
    let status = if fresh { 304 } else { 200 };
    let mut resp = Response::empty(status)
        .with_header("content-type", "text/html; charset=utf-8")
        .with_header("content-security-policy", CSP)
        .with_header("x-content-type-options", "nosniff")
        .with_header("x-frame-options", "DENY")
        .with_header("referrer-policy", "same-origin")
        .with_header("cache-control", "no-cache")
        .with_header("etag", ETAG);
    if status == 200 && req.method == "GET" {
        resp.body = PAGE.as_bytes().to_vec();
    }
    Ok(resp)
}

/// `If-None-Match` against our ETag: weak comparison, a list, or `*`.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::{Digest, Sha256};

    const HTML: &str = include_str!("../static/index.html");
    const CSS: &str = include_str!("../static/console.css");
    const JS: &str = include_str!("../static/console.js");

    fn csp_hash(text: &str) -> String {
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
    }

    #[test]
    fn page_is_self_contained_and_hashed() {
        assert_eq!(PAGE, HTML.replacen("/*{{style}}*/", CSS, 1).replacen("/*{{script}}*/", JS, 1));
        assert!(!PAGE.contains("{{style}}") && !PAGE.contains("{{script}}"));
        for external in ["src=\"http", "href=\"http", "<link", "@import", "url("] {
            assert!(!PAGE.contains(external), "no external resources: {external}");
        }
        assert!(CSP.contains(&format!("script-src '{}'", csp_hash(JS))) && CSP.contains(&format!("style-src '{}'", csp_hash(CSS))));
        let digest = Sha256::digest(PAGE.as_bytes());
        assert_eq!(ETAG, format!("\"c-{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>()));
        assert!(PAGE.len() < 40 * 1024, "page is {} bytes", PAGE.len());
    }

    #[test]
    fn etags_compare_weakly() {
        assert!(etag_matches("W/\"c-1\", \"c-2\"", "\"c-1\""));
        assert!(etag_matches("*", "\"c-1\""));
        assert!(!etag_matches("\"c-2\"", "\"c-1\""));
    }
}
