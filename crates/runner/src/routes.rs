//! Spin's HTTP routing: exact routes, `:name` single-segment wildcards and
//! trailing `/...` wildcards. The most specific route wins: more literal
//! segments first, then fewer `:name` captures, then exact over trailing.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct Route {
    pub raw: String,
    segs: Vec<Seg>,
    trailing: bool,
    pub component: String,
}

/// The result of matching a request path.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<'a> {
    pub component: &'a str,
    /// The route as written in the manifest (`/users/:id/...`).
    pub raw_route: &'a str,
    /// The route without its trailing wildcard (`/users/:id`).
    pub component_route: String,
    /// What the trailing wildcard matched, `""` for none (`/edit`).
    pub path_info: String,
    pub params: Vec<(String, String)>,
}

impl Route {
    pub fn parse(raw: &str, component: &str) -> Result<Route> {
        if !raw.starts_with('/') {
            bail!("route {raw:?} must start with /");
        }
        let (body, trailing) = match raw.strip_suffix("/...") {
            Some(b) => (b, true),
            None if raw == "/..." => ("", true),
            None => (raw, false),
        };
        let mut segs = Vec::new();
        for s in body.split('/').filter(|s| !s.is_empty()) {
            if s == "..." {
                bail!("route {raw:?}: `...` is only allowed at the end");
            }
            segs.push(match s.strip_prefix(':') {
                Some(name) if !name.is_empty() => Seg::Param(name.to_owned()),
                Some(_) => bail!("route {raw:?}: empty parameter name"),
                None => Seg::Lit(s.to_owned()),
            });
        }
        Ok(Route { raw: raw.to_owned(), segs, trailing, component: component.to_owned() })
    }

    fn specificity(&self) -> (usize, usize, bool, usize) {
        let lits = self.segs.iter().filter(|s| matches!(s, Seg::Lit(_))).count();
        let params = self.segs.len() - lits;
        (lits, usize::MAX - params, !self.trailing, self.segs.len())
    }

    fn try_match(&self, path: &str) -> Option<Match<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < self.segs.len() || (!self.trailing && parts.len() != self.segs.len()) {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segs.iter().zip(&parts) {
            match seg {
                Seg::Lit(l) if l == part => {}
                Seg::Lit(_) => return None,
                Seg::Param(name) => params.push((name.clone(), (*part).to_owned())),
            }
        }
        let rest = &parts[self.segs.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            let mut s = format!("/{}", rest.join("/"));
            if path.ends_with('/') {
                s.push('/');
            }
            s
        };
        let component_route = if self.trailing {
            self.raw.strip_suffix("/...").unwrap_or("").to_owned()
        } else {
            self.raw.clone()
        };
        Some(Match { component: &self.component, raw_route: &self.raw, component_route, path_info, params })
    }
}

#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(mut routes: Vec<Route>) -> Result<Router> {
        for (i, a) in routes.iter().enumerate() {
            if let Some(b) = routes[i + 1..].iter().find(|b| b.segs == a.segs && b.trailing == a.trailing) {
                bail!("duplicate route {:?} (components {:?} and {:?})", a.raw, a.component, b.component);
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        Ok(Router { routes })
    }

    pub fn route(&self, path: &str) -> Option<Match<'_>> {
        self.routes.iter().find_map(|r| r.try_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        Router::new(routes.iter().map(|(r, c)| Route::parse(r, c).unwrap()).collect()).unwrap()
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[("/...", "root"), ("/api/...", "api"), ("/api/ping", "ping"), ("/api/v1/...", "v1")]);
        assert_eq!(r.route("/api/ping").unwrap().component, "ping");
        assert_eq!(r.route("/api/pong").unwrap().component, "api");
        assert_eq!(r.route("/api").unwrap().component, "api");
        let m = r.route("/api/v1/x/y").unwrap();
        assert_eq!((m.component, m.path_info.as_str(), m.component_route.as_str()), ("v1", "/x/y", "/api/v1"));
        assert_eq!(r.route("/other").unwrap().component, "root");
        assert_eq!(r.route("/").unwrap().path_info, "");
    }

    #[test]
    fn params_capture_one_segment() {
        let r = router(&[("/users/:id", "user"), ("/users/:id/edit", "edit"), ("/users/me", "me"), ("/files/:name/...", "files")]);
        let m = r.route("/users/42").unwrap();
        assert_eq!((m.component, m.params.clone()), ("user", vec![("id".into(), "42".into())]));
        assert_eq!(r.route("/users/me").unwrap().component, "me");
        assert_eq!(r.route("/users/42/edit").unwrap().component, "edit");
        assert!(r.route("/users").is_none());
        assert!(r.route("/users/1/edit/more").is_none());
        let m = r.route("/files/a/b/c").unwrap();
        assert_eq!((m.path_info.as_str(), m.params[0].1.as_str()), ("/b/c", "a"));
    }

    #[test]
    fn rejects_bad_and_duplicate_routes() {
        assert!(Route::parse("nope", "x").is_err());
        assert!(Route::parse("/a/.../b", "x").is_err());
        assert!(Router::new(vec![Route::parse("/a", "x").unwrap(), Route::parse("/a", "y").unwrap()]).is_err());
    }
}
