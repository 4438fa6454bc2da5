//! Spin's HTTP routing: a port of Spin 4.0.2's `spin-routes` crate on the same
//! matcher it uses (`routefinder` 0.5), so the same path reaches the same
//! component with the same captures:
//! - exact routes, `:name` captures (one segment, or up to a `.`) and a
//!   trailing `/...` (or `/*`) wildcard; the most specific route wins, segment
//!   by segment: exact beats `:name` beats the wildcard;
//! - a route without a leading `/` gets one, and one trailing `/` is dropped;
//! - a duplicate route (the same text twice) is not an error: the last one
//!   wins, as in Spin, and the runner says so at start-up;
//! - the trailing wildcard's capture keeps a trailing slash (`/test/...`
//!   on `/test/` captures `/`), unlike routefinder's own behaviour.

use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;

/// Routes reserved for the host, never reaching a component.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

#[derive(Debug)]
struct Handler {
    component: String,
    /// The route as written in the manifest (`/users/:id/...`).
    raw: String,
    /// The route as the router sees it (`/users/:id/...`, `/` added or trimmed).
    based: String,
    /// What the start-up listing shows: the path, without its wildcard.
    display: String,
    wildcard: bool,
}

pub struct Router {
    inner: routefinder::Router<Handler>,
}

/// A route that a later route with the same text replaced.
#[derive(Debug, PartialEq)]
pub struct Duplicate {
    pub route: String,
    pub replaced: String,
    pub effective: String,
}

/// The result of matching a request path.
#[derive(Debug, PartialEq)]
pub struct Match<'a> {
    pub component: &'a str,
    /// `spin-matched-route`: the route with the app's base (always `/`).
    pub based_route: &'a str,
    /// `spin-raw-component-route`: the route as written in the manifest.
    pub raw_route: &'a str,
    /// `spin-component-route`: the route without its trailing `/...`.
    pub raw_route_or_prefix: &'a str,
    /// `spin-path-info`: what the trailing wildcard matched, `""` for none.
    pub trailing_wildcard: String,
    /// `spin-path-match-<name>`: the `:name` captures.
    pub named_wildcards: HashMap<String, String>,
}

impl Router {
    /// Builds the router from `(component, route)` pairs in manifest order.
    pub fn build<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(Router, Vec<Duplicate>)> {
        let mut entries: Vec<Handler> = Vec::new();
        let mut duplicates = Vec::new();
        for (component, raw) in routes {
            let based = sanitize(raw);
            let h = Handler { component: component.to_owned(), raw: raw.to_owned(), display: String::new(), wildcard: false, based };
            // As Spin's IndexMap: a repeated route keeps its place and takes the new component.
            match entries.iter_mut().find(|e| e.raw == raw) {
                Some(old) => {
                    let old = std::mem::replace(old, h);
                    duplicates.push(Duplicate { route: if old.based.is_empty() { "/".into() } else { old.based }, replaced: old.component, effective: component.to_owned() });
                }
                None => entries.push(h),
            }
        }
        let mut inner = routefinder::Router::new();
        for mut h in entries {
            let (spec, prefix, wildcard) = if let Some(prefix) = h.based.strip_suffix("/...") {
                (format!("{prefix}/*"), prefix.to_owned(), true)
            } else if let Some(prefix) = h.based.strip_suffix("/*") {
                (h.based.clone(), prefix.to_owned(), true)
            } else {
                (h.based.clone(), h.based.clone(), false)
            };
            h.display = if prefix.is_empty() { "/".into() } else { prefix };
            h.wildcard = wildcard;
            let error = |e: String| anyhow!("Error parsing route {} associated with component {}: {e}", h.based, h.component);
            let spec: routefinder::RouteSpec = spec.as_str().try_into().map_err(error)?;
            inner.add(spec, h).map_err(|e| anyhow!("{e:?}"))?;
        }
        Ok((Router { inner }, duplicates))
    }

    /// Builds the router from the manifest's HTTP triggers (private routes skipped).
    pub fn from_manifest(m: &crate::manifest::Manifest) -> Result<(Router, Vec<Duplicate>)> {
        let mut routes = Vec::new();
        for t in &m.trigger.http {
            match &t.route {
                crate::manifest::Route::Path(p) => routes.push((t.component.as_str(), p.as_str())),
                crate::manifest::Route::Private(p) if p.private => {}
                crate::manifest::Route::Private(_) => {
                    bail!("route must be a string pattern or '{{ private = true }}': '{}' has {{ private = false }}", t.component)
                }
            }
        }
        Router::build(routes)
    }

    /// The routes in the order the router tries them: `(component, path, wildcard)`.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.inner.iter().map(|(_, h)| (h.component.as_str(), h.display.as_str(), h.wildcard))
    }

    /// Whether a route lies under the host's reserved prefix (and so is never reached).
    pub fn has_reserved_route(&self) -> bool {
        self.inner.iter().any(|(_, h)| h.based.starts_with(WELL_KNOWN_PREFIX))
    }

    pub fn route<'a>(&'a self, path: &str) -> Option<Match<'a>> {
        let m = self.inner.best_match(path)?;
        let h = m.handler();
        let captures = m.captures();
        let trailing_wildcard = match captures.wildcard() {
            None => String::new(),
            Some(s) => match (s.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".into(),
                (false, false) => format!("/{s}"),
                (false, true) => format!("/{s}/"),
            },
        };
        Some(Match {
            component: &h.component,
            based_route: &h.based,
            raw_route: &h.raw,
            raw_route_or_prefix: h.raw.strip_suffix("/...").unwrap_or(&h.raw),
            trailing_wildcard,
            named_wildcards: captures.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        })
    }
}

/// Spin's `sanitize_with_base("/", route)`: a leading `/` added, one trailing `/` dropped.
fn sanitize(route: &str) -> String {
    let route = if route.starts_with('/') { route.to_owned() } else { format!("/{route}") };
    route.strip_suffix('/').map(str::to_owned).unwrap_or(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::build(routes.iter().copied()).unwrap().0
    }

    fn component(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component.to_owned())
    }

    // Spin's own cases (crates/routes/src/lib.rs), ported.

    #[test]
    fn exact_routes() {
        let r = router(&[("foo", "/foo"), ("foobar", "/foo/bar")]);
        assert_eq!(component(&r, "/foo").unwrap(), "foo");
        assert_eq!(component(&r, "/foo/bar").unwrap(), "foobar");
    }

    #[test]
    fn wildcard_matches_everything() {
        let r = router(&[("all", "/...")]);
        for path in ["/foo/bar", "/abc/", "/", "/this/should/be/captured?abc=def"] {
            assert_eq!(component(&r, path).unwrap(), "all", "{path}");
        }
    }

    #[test]
    fn longest_prefix_wins_in_any_order() {
        let a = [("one_wildcard", "/one/..."), ("onetwo_wildcard", "/one/two/..."), ("onetwothree_wildcard", "/one/two/three/...")];
        let mut b = a;
        b.reverse();
        for routes in [a, b] {
            assert_eq!(component(&router(&routes), "/one/two/three/four").unwrap(), "onetwothree_wildcard");
        }
    }

    #[test]
    fn exact_beats_wildcard() {
        let r = router(&[("one_exact", "/one"), ("wildcard", "/...")]);
        assert_eq!(component(&r, "/one").unwrap(), "one_exact");
    }

    #[test]
    fn duplicates_last_one_wins_in_place() {
        let (r, dups) =
            Router::build([("comp-/", "/"), ("comp-first /foo", "/foo"), ("comp-second /foo", "/foo"), ("comp-/whee/...", "/whee/...")]).unwrap();
        assert_eq!(r.routes().count(), 3);
        assert_eq!(component(&r, "/foo").unwrap(), "comp-second /foo");
        assert_eq!(dups, vec![Duplicate { route: "/foo".into(), replaced: "comp-first /foo".into(), effective: "comp-second /foo".into() }]);
        let (_, dups) = Router::build([("a", "/"), ("b", "/"), ("a", "/..."), ("b", "/...")]).unwrap();
        assert_eq!(dups.iter().map(|d| d.route.as_str()).collect::<Vec<_>>(), ["/", "/..."]);
    }

    #[test]
    fn trailing_wildcard_is_captured_with_its_trailing_slash() {
        assert_eq!(router(&[("comp", "/...")]).route("/1/2/3").unwrap().trailing_wildcard, "/1/2/3");
        assert_eq!(router(&[("comp", "/1/...")]).route("/1/2/3").unwrap().trailing_wildcard, "/2/3");
        let r = router(&[("comp", "/test/...")]);
        for (path, info) in [("/test", ""), ("/test/", "/"), ("/test/hello", "/hello"), ("/test/hello/", "/hello/")] {
            assert_eq!(r.route(path).unwrap().trailing_wildcard, info, "{path}");
        }
    }

    #[test]
    fn named_wildcards_are_captured() {
        let m = router(&[("comp", "/1/:two/3")]).route("/1/2/3").map(|m| m.named_wildcards["two"].clone());
        assert_eq!(m.unwrap(), "2");
        let m = router(&[("comp", "/1/:two/...")]).route("/1/2/3").map(|m| m.named_wildcards["two"].clone());
        assert_eq!(m.unwrap(), "2");
    }

    #[test]
    fn reserved_routes_are_detected() {
        assert!(router(&[("comp", "/.well-known/spin/...")]).has_reserved_route());
        assert!(router(&[("comp", "/.well-known/spin/fie")]).has_reserved_route());
        assert!(!router(&[("comp", "/.well-known/spindle/...")]).has_reserved_route());
        assert!(!router(&[("comp", "/.well-known/spin")]).has_reserved_route());
    }

    #[test]
    fn wildcard_routes_display_without_the_wildcard() {
        let r = router(&[("comp", "/whee/..."), ("root", "/...")]);
        let shown: Vec<_> = r.routes().collect();
        assert!(shown.contains(&("comp", "/whee", true)) && shown.contains(&("root", "/", true)), "{shown:?}");
    }

    // The testbed fixture's routes, as the end-to-end tests and Spin see them.

    #[test]
    fn params_and_wildcards_combine() {
        let r = router(&[("tb", "/tb/..."), ("exact", "/tb/exact"), ("user", "/users/:id"), ("files", "/users/:id/files/..."), ("me", "/users/me")]);
        assert_eq!(component(&r, "/tb/exact").unwrap(), "exact");
        assert_eq!(component(&r, "/tb").unwrap(), "tb");
        assert_eq!(component(&r, "/users/me").unwrap(), "me");
        let m = r.route("/users/42").unwrap();
        assert_eq!((m.component, m.named_wildcards["id"].as_str()), ("user", "42"));
        let m = r.route("/users/7/files/x/y.txt").unwrap();
        assert_eq!((m.component, m.trailing_wildcard.as_str(), m.raw_route_or_prefix), ("files", "/x/y.txt", "/users/:id/files"));
        assert!(r.route("/users").is_none());
        assert!(r.route("/users/1/edit").is_none());
        assert!(r.route("/tbx").is_none());
    }

    #[test]
    fn routes_are_sanitized() {
        let r = router(&[("a", "a/b/")]);
        let m = r.route("/a/b").unwrap();
        assert_eq!((m.based_route, m.raw_route), ("/a/b", "a/b/"));
    }
}
