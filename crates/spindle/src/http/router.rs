//! Route tables: a component declares its routes once (method, path
//! pattern, largest body, handler), and the table answers 404, and 405 with
//! `Allow`, in one place.
//!
//! Paths are matched segment by segment: a literal matches itself, `:name`
//! matches one non-empty segment (the handler reads it by name); where
//! several patterns match, the most literal ones win (`/webhooks/dead-letters`
//! over `/webhooks/:id`). A route names every method it answers (`HEAD` is
//! not implied: a long poll has no cheap HEAD). The body limit is applied before the handler
//! runs, while the body is read (`spin::serve`): a body over it is a 413 and
//! is never buffered whole.

use super::Problem;
use crate::config::{Config, ConfigError, Vars};

/// One route of a table.
#[derive(Debug)]
pub struct Route<H> {
    pub methods: &'static [&'static str],
    pub path: &'static str,
    /// The largest body the route reads; a route that takes no body has
    /// [`super::NO_BODY_LIMIT`] (a client's stray `{}` is ignored).
    pub body_limit: BodyLimit,
    pub handler: H,
}

/// A route's body limit: fixed, or a variable (with its default and the
/// most it may be set to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLimit {
    Bytes(usize),
    Var { name: &'static str, default: usize, max: usize },
}

impl BodyLimit {
    pub fn resolve(&self, vars: &impl Vars) -> Result<usize, ConfigError> {
        match *self {
            BodyLimit::Bytes(n) => Ok(n),
            BodyLimit::Var { name, default, max } => Config::new(vars).int(name, default, 1..=max),
        }
    }
}

/// The `:name` segments of a matched path, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

fn matches(pattern: &'static str, path: &str) -> Option<Params> {
    let (mut want, mut have) = (pattern.split('/'), path.split('/'));
    let mut params = Vec::new();
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(Params(params)),
            (Some(w), Some(h)) => match w.strip_prefix(':') {
                Some(name) if !h.is_empty() => params.push((name, h.to_owned())),
                Some(_) => return None,
                None if w == h => {}
                None => return None,
            },
            _ => return None,
        }
    }
}

/// The route for `method` and `path`, with its path parameters; else 404,
/// or 405 listing in `Allow` what the path does accept (in table order).
pub fn dispatch<'r, H>(routes: &'r [Route<H>], method: &str, path: &str) -> Result<(&'r Route<H>, Params), Problem> {
    let matched: Vec<(&Route<H>, Params)> = routes.iter().filter_map(|r| matches(r.path, path).map(|p| (r, p))).collect();
    let fewest = matched.iter().map(|(_, p)| p.0.len()).min();
    let best = matched.into_iter().filter(|(_, p)| Some(p.0.len()) == fewest);
    let mut allowed: Vec<&str> = Vec::new();
    for (r, params) in best {
        if r.methods.contains(&method) {
            return Ok((r, params));
        }
        for m in r.methods {
            if !allowed.contains(m) {
                allowed.push(m);
            }
        }
    }
    if allowed.is_empty() {
        Err(Problem::not_found(path))
    } else {
        Err(Problem::method_not_allowed(method).with_header("allow", allowed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: BodyLimit = BodyLimit::Bytes(0);
    const ROUTES: &[Route<u8>] = &[
        Route { methods: &["GET", "HEAD"], path: "/auth/sessions", body_limit: NONE, handler: 1 },
        Route { methods: &["DELETE"], path: "/auth/sessions", body_limit: NONE, handler: 2 },
        Route { methods: &["DELETE"], path: "/auth/sessions/:handle", body_limit: NONE, handler: 3 },
        Route { methods: &["POST"], path: "/auth/login", body_limit: BodyLimit::Bytes(4096), handler: 4 },
        Route { methods: &["GET"], path: "/auth/sessions/current", body_limit: NONE, handler: 5 },
    ];

    #[test]
    fn exact_routes_and_params() {
        let (r, p) = dispatch(ROUTES, "DELETE", "/auth/sessions/abc").unwrap();
        assert_eq!((r.handler, p.get("handle")), (3, Some("abc")));
        assert_eq!(dispatch(ROUTES, "GET", "/auth/sessions").unwrap().0.handler, 1);
        assert_eq!(dispatch(ROUTES, "HEAD", "/auth/sessions").unwrap().0.handler, 1);
        assert_eq!(dispatch(ROUTES, "GET", "/auth/sessions/current").unwrap().0.handler, 5, "a literal beats :handle");
        let p = dispatch(ROUTES, "DELETE", "/auth/sessions/current").unwrap_err();
        assert_eq!((p.status, p.headers[0].1.as_str()), (405, "GET"));
        assert_eq!(dispatch(ROUTES, "HEAD", "/auth/sessions/current").unwrap_err().status, 405, "no implied HEAD");
        assert_eq!(dispatch(ROUTES, "POST", "/auth/login").unwrap().0.body_limit, BodyLimit::Bytes(4096));
    }

    #[test]
    fn limits_from_variables() {
        let vars = |v: &str| std::collections::HashMap::from([("max".to_string(), v.to_string())]);
        let l = BodyLimit::Var { name: "max", default: 10, max: 100 };
        assert_eq!(l.resolve(&vars("")).unwrap(), 10);
        assert_eq!(l.resolve(&vars("50")).unwrap(), 50);
        assert_eq!(l.resolve(&vars("101")).unwrap_err().var, "max");
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        for path in ["/auth/sessions/", "/auth/sessions/a/b", "/auth", "/auth/login/", "", "/nope"] {
            assert_eq!(dispatch(ROUTES, "DELETE", path).unwrap_err().status, 404, "{path:?}");
        }
        let p = dispatch(ROUTES, "POST", "/auth/sessions").unwrap_err();
        assert_eq!((p.status, p.headers[0].1.as_str()), (405, "GET, HEAD, DELETE"));
        let p = dispatch(ROUTES, "GET", "/auth/login").unwrap_err();
        assert_eq!((p.status, p.headers[0].1.as_str()), (405, "POST"));
    }
}
