//! The `spin-*` request headers, as Spin 4.0.2's `trigger-http` sets them
//! (`headers.rs` and the wasi-http executor's `prepare_request`):
//! the client's headers are kept, in order, and the host's are appended
//! after them. A client that sends `spin-client-addr` itself therefore
//! reaches the component with two values, its own first; spin-sdk keeps the
//! last one of a name, which is the host's. A header value that is not
//! UTF-8 makes the request fail (500), as on Spin.

use super::routes::Match;
use anyhow::{Context, Result};
use http::{HeaderName, HeaderValue};
use std::net::SocketAddr;

/// The headers the host adds for a routed request, in Spin's order.
/// `uri` is the request URI with its scheme and authority filled in.
pub fn default_headers(uri: &http::Uri, host: &str, m: &Match<'_>, client: SocketAddr) -> Vec<(String, String)> {
    let path_and_query = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let scheme = uri.scheme_str().unwrap_or("http");
    let mut headers = vec![
        ("spin-path-info".to_owned(), m.trailing_wildcard.clone()),
        ("spin-full-url".to_owned(), format!("{scheme}://{host}{path_and_query}")),
        ("spin-matched-route".to_owned(), m.based_route.to_owned()),
        ("spin-base-path".to_owned(), "/".to_owned()),
        ("spin-raw-component-route".to_owned(), m.raw_route.to_owned()),
        ("spin-component-route".to_owned(), m.raw_route_or_prefix.to_owned()),
        ("spin-client-addr".to_owned(), client.to_string()),
    ];
    for (name, value) in &m.named_wildcards {
        headers.push((format!("spin-path-match-{}", name.to_ascii_lowercase()), value.clone()));
    }
    headers
}

/// Rewrites the request's headers to what the component sees.
pub fn prepare(headers: &mut http::HeaderMap, uri: &http::Uri, m: &Match<'_>, client: SocketAddr) -> Result<()> {
    let mut all = Vec::with_capacity(headers.len() + 8);
    for (name, value) in headers.iter() {
        let value = std::str::from_utf8(value.as_bytes()).with_context(|| format!("header {name} is not UTF-8"))?;
        all.push((name.to_string(), value.to_owned()));
    }
    let host = headers.get(http::header::HOST).map(|h| std::str::from_utf8(h.as_bytes())).transpose()?.unwrap_or("localhost").to_owned();
    all.extend(default_headers(uri, &host, m, client));
    headers.clear();
    // Spin skips, silently, a name or value that is not a valid header.
    headers.extend(all.into_iter().filter_map(|(n, v)| Some((n.parse::<HeaderName>().ok()?, HeaderValue::from_bytes(v.as_bytes()).ok()?))));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::routes::Router;
    use super::*;

    fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    // Spin's `test_default_headers` and `test_default_headers_with_named_wildcards`.

    #[test]
    fn default_headers_match_spin() {
        let (r, _) = Router::build([("DUMMY", "/foo/...")]).unwrap();
        let m = r.route("/foo/bar").unwrap();
        let uri: http::Uri = "https://fermyon.dev/foo/bar?key1=value1&key2=value2".parse().unwrap();
        let h = default_headers(&uri, "fermyon.dev", &m, "127.0.0.1:8777".parse().unwrap());
        assert_eq!(get(&h, "spin-full-url"), Some("https://fermyon.dev/foo/bar?key1=value1&key2=value2"));
        assert_eq!(get(&h, "spin-path-info"), Some("/bar"));
        assert_eq!(get(&h, "spin-matched-route"), Some("/foo/..."));
        assert_eq!(get(&h, "spin-base-path"), Some("/"));
        assert_eq!(get(&h, "spin-raw-component-route"), Some("/foo/..."));
        assert_eq!(get(&h, "spin-component-route"), Some("/foo"));
        assert_eq!(get(&h, "spin-client-addr"), Some("127.0.0.1:8777"));
        assert_eq!(h.len(), 7);
    }

    #[test]
    fn default_headers_with_named_wildcards_match_spin() {
        let (r, _) = Router::build([("DUMMY", "/foo/:userid/...")]).unwrap();
        let m = r.route("/foo/42/bar").unwrap();
        let uri: http::Uri = "https://fermyon.dev/foo/42/bar?key1=value1&key2=value2".parse().unwrap();
        let h = default_headers(&uri, "fermyon.dev", &m, "127.0.0.1:8777".parse().unwrap());
        assert_eq!(get(&h, "spin-full-url"), Some("https://fermyon.dev/foo/42/bar?key1=value1&key2=value2"));
        assert_eq!(get(&h, "spin-path-info"), Some("/bar"));
        assert_eq!(get(&h, "spin-matched-route"), Some("/foo/:userid/..."));
        assert_eq!(get(&h, "spin-raw-component-route"), Some("/foo/:userid/..."));
        assert_eq!(get(&h, "spin-component-route"), Some("/foo/:userid"));
        assert_eq!(get(&h, "spin-path-match-userid"), Some("42"));
    }

    #[test]
    fn client_headers_are_kept_and_the_hosts_come_last() {
        let (r, _) = Router::build([("tb", "/tb/...")]).unwrap();
        let m = r.route("/tb/").unwrap();
        let uri: http::Uri = "http://127.0.0.1:3000/tb/".parse().unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("host", "127.0.0.1:3000".parse().unwrap());
        h.insert("spin-client-addr", "6.6.6.6:1".parse().unwrap());
        h.insert("spin-path-match-zz", "forged".parse().unwrap());
        prepare(&mut h, &uri, &m, "127.0.0.1:5555".parse().unwrap()).unwrap();
        let addrs: Vec<_> = h.get_all("spin-client-addr").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(addrs, ["6.6.6.6:1", "127.0.0.1:5555"]);
        assert_eq!(h["spin-path-match-zz"], "forged");
        assert_eq!(h["spin-path-info"], "/");
        assert_eq!(h["spin-full-url"], "http://127.0.0.1:3000/tb/");
        assert_eq!(h["host"], "127.0.0.1:3000");
    }

    #[test]
    fn a_header_that_is_not_utf8_fails_the_request() {
        let (r, _) = Router::build([("tb", "/tb/...")]).unwrap();
        let m = r.route("/tb/x").unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("x-bin", HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        assert!(prepare(&mut h, &"http://a/tb/x".parse().unwrap(), &m, "127.0.0.1:1".parse().unwrap()).is_err());
    }
}
