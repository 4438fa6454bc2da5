//! The console page, built once at compile time instead of on every request
//! (Spin instantiates the component per request): `static/index.html` with
//! `static/console.css` and `static/console.js` inlined, its
//! Content-Security-Policy (the SHA-256 hashes of exactly that script and
//! that style) and its ETag, written to `OUT_DIR` for `src/lib.rs` to include.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::path::Path;

fn main() {
    let read = |f: &str| {
        println!("cargo:rerun-if-changed={f}");
        std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    let (html, css, js) = (read("static/index.html"), read("static/console.css"), read("static/console.js"));
    let page = html.replacen("/*{{style}}*/", &css, 1).replacen("/*{{script}}*/", &js, 1);
    let csp = format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        csp_hash(&js),
        csp_hash(&css)
    );
    let digest = Sha256::digest(page.as_bytes());
    let etag = format!("\"c-{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>());
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    for (name, text) in [("page.html", &page), ("csp.txt", &csp), ("etag.txt", &etag)] {
        std::fs::write(Path::new(&out).join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// `sha256-<base64>` of an inline element's exact text, as CSP hashes it.
fn csp_hash(text: &str) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
}
