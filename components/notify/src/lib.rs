//! `/notify/...`: fan-out notifications (see `spindle::notify`).
//!
//! - `POST /notify/publish` `{topic, event, data?, idempotency_key?, socketio_room?}`
//! - `GET /notify/poll?topic=&after=&wait_ms=`: a long poll
//! - `GET /notify/stream?topic=&after=`: Server-Sent Events (`Last-Event-ID` wins over `after`)
//! - `POST /notify/presence {topic}`, `GET /notify/presence?topic=`
//! - `POST /notify/webhooks {topic, url}`, `GET /notify/webhooks`,
//!   `DELETE /notify/webhooks/:id`, `GET /notify/webhooks/dead-letters`,
//!   `POST /notify/webhooks/redrive`
//!
//! This is Spin's streaming handler (`IncomingRequest` + `ResponseOutparam`),
//! because `/notify/stream` writes its body as events arrive. Every other
//! route is parse → library → one buffered response; all logic is in the
//! library, and this file only routes, converts and maps errors.

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spindle::config::{RedisConfig, Vars};
use spindle::env::{OsRng, SystemClock};
use spindle::http::{Problem, Request, Response, NO_BODY_LIMIT};
use spindle::notify::{self, webhooks, Caller, NotifyConfig, Publish, Sink, Topic};
use spindle::session::to_iso;
use spindle::spin::{SpinLink, SpinVars, WasiPause};

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let vars = SpinVars;
    let route = route(&method(&req), &path(&req));
    // Read enough of any body to tell whether it is over its route's limit.
    let limit = NotifyConfig::from_vars(&vars).map(|c| c.max_body_bytes).unwrap_or(0);
    let req = read_request(req, limit.max(NO_BODY_LIMIT).max(webhooks::MAX_CREATE_BODY)).await;
    let prepared = route.and_then(|r| req.check_header_limits().map(|_| r)).and_then(|r| {
        if r.takes_body() {
            Ok(r)
        } else {
            req.check_body_limit(NO_BODY_LIMIT).map(|_| r)
        }
    });
    match prepared {
        Err(p) => send(out, p.to_response()).await,
        Ok(Route::Stream) => stream(&req, out, &vars).await,
        Ok(r) => {
            let resp = buffered(r, &req, &vars).await.unwrap_or_else(|p| p.to_response());
            send(out, resp.with_header("cache-control", "no-store")).await
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Route {
    Publish,
    Poll,
    Stream,
    PresenceBeat,
    PresenceList,
    WebhookCreate,
    WebhookList,
    WebhookDelete(String),
    DeadLetters,
    Redrive,
}

impl Route {
    /// Whether the route reads a body (and bounds it itself); the others
    /// accept at most [`NO_BODY_LIMIT`] bytes, ignored.
    fn takes_body(&self) -> bool {
        matches!(self, Route::Publish | Route::PresenceBeat | Route::WebhookCreate)
    }
}

fn route(method: &str, path: &str) -> Result<Route, Problem> {
    let post = method == "POST";
    let (route, allowed): (Route, &[&str]) = match path {
        "/notify/publish" => (Route::Publish, &["POST"]),
        "/notify/poll" => (Route::Poll, &["GET"]),
        "/notify/stream" => (Route::Stream, &["GET"]),
        "/notify/presence" => (if post { Route::PresenceBeat } else { Route::PresenceList }, &["GET", "POST"]),
        "/notify/webhooks" => (if post { Route::WebhookCreate } else { Route::WebhookList }, &["GET", "POST"]),
        "/notify/webhooks/dead-letters" => (Route::DeadLetters, &["GET"]),
        "/notify/webhooks/redrive" => (Route::Redrive, &["POST"]),
        p => match p.strip_prefix("/notify/webhooks/") {
            Some(id) if !id.is_empty() && !id.contains('/') => (Route::WebhookDelete(id.to_owned()), &["DELETE"]),
            _ => return Err(Problem::not_found(path)),
        },
    };
    if !allowed.contains(&method) {
        return Err(Problem::method_not_allowed(method).with_header("allow", allowed.join(", ")));
    }
    Ok(route)
}

fn method(req: &IncomingRequest) -> String {
    req.method().to_string()
}

fn path(req: &IncomingRequest) -> String {
    let pq = req.path_with_query().unwrap_or_else(|| "/".into());
    pq.split_once('?').map(|(p, _)| p.to_owned()).unwrap_or(pq)
}

/// The request as the library sees it. The body is read up to `limit` + 1
/// bytes only: anything longer is already a 413, so the rest is never buffered.
async fn read_request(req: IncomingRequest, limit: usize) -> Request {
    use futures::StreamExt;
    let method = method(&req);
    let pq = req.path_with_query().unwrap_or_else(|| "/".into());
    let (path, query) = pq.split_once('?').map(|(p, q)| (p.to_owned(), q.to_owned())).unwrap_or((pq, String::new()));
    let headers = req.headers().entries().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let mut body = Vec::new();
    let mut stream = req.into_body_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            break;
        }
    }
    Request { method, path, query, headers, body }
}

async fn send(out: ResponseOutparam, r: Response) {
    let r = spindle::spin::with_host(r);
    let headers: Vec<(String, Vec<u8>)> = r.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let resp = OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = resp.set_status_code(r.status);
    let _ = out.set_with_body(resp, r.body).await;
}

fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response { status, headers: vec![("content-type".into(), "application/json".into())], body: body.into() }
}

fn link(vars: &impl Vars) -> Result<SpinLink, Problem> {
    let cfg = RedisConfig::from_vars(vars).map_err(|e| Problem::misconfigured(&e.to_string()))?;
    Ok(SpinLink::new(&cfg))
}

fn topic_param(req: &Request) -> Result<Topic, Problem> {
    let t = req.query_param("topic").ok_or_else(|| Problem::bad_request("the topic query parameter is required"))?;
    Ok(Topic::parse(&t)?)
}

/// `after=` (or, for SSE, `Last-Event-ID`, which wins: it is what a
/// reconnecting EventSource sends along with the original URL).
fn cursor_param(req: &Request, header: bool) -> Result<Option<String>, Problem> {
    let from_header = if header { req.text_header("last-event-id")?.map(str::to_owned).filter(|s| !s.trim().is_empty()) } else { None };
    match from_header.or_else(|| req.query_param("after")) {
        None => Ok(None),
        Some(c) => Ok(Some(notify::parse_cursor(&c)?)),
    }
}

async fn buffered(route: Route, req: &Request, vars: &SpinVars) -> Result<Response, Problem> {
    let cfg = NotifyConfig::from_vars(vars)?;
    let clock = SystemClock;
    match route {
        Route::Publish => {
            let p = Publish::from_request(req, &cfg)?;
            let throttle = notify::throttle(vars)?;
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, true).await?;
            let done = notify::publish(&link, &clock, &throttle, &cfg, &caller, &p).await?;
            let body = serde_json::json!({ "id": done.id, "topic": done.topic.as_str(), "duplicate": done.duplicate });
            let resp = json(if done.duplicate { 200 } else { 201 }, body.to_string());
            Ok(caller.apply(done.limited.apply(resp)))
        }
        Route::Poll => {
            let topic = topic_param(req)?;
            let cursor = cursor_param(req, false)?;
            let wait = match req.query_param("wait_ms") {
                None => cfg.poll_timeout_ms,
                Some(w) => w
                    .parse::<u64>()
                    .map_err(|_| Problem::bad_request("wait_ms must be a whole number of milliseconds"))?
                    .min(cfg.poll_timeout_ms),
            };
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, false).await?;
            caller.check_read(&topic)?;
            let batch = notify::poll(&link, &WasiPause, &clock, &cfg, &topic, cursor, wait).await?;
            Ok(caller.apply(json(200, batch.to_json(&topic))))
        }
        Route::Stream => Err(Problem::not_found(&req.path)),
        Route::PresenceBeat => {
            let topic = notify::beat_topic(req)?;
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, true).await?;
            caller.check_read(&topic)?;
            let Caller::User(session) = &caller else {
                return Err(Problem::forbidden("presence is for logged-in users, not API keys"));
            };
            let n = notify::heartbeat(&link, &clock, &cfg, &topic, &session.user).await?;
            let body = serde_json::json!({ "topic": topic.as_str(), "present": n, "ttl_ms": cfg.presence_ttl_ms });
            Ok(caller.apply(json(200, body.to_string())))
        }
        Route::PresenceList => {
            let topic = topic_param(req)?;
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, false).await?;
            caller.check_read(&topic)?;
            let present = notify::present(&link, &clock, &cfg, &topic).await?;
            let list: Vec<_> = present
                .iter()
                .map(|p| serde_json::json!({ "id": p.id, "username": p.username, "last_seen": to_iso(p.last_seen_ms) }))
                .collect();
            let body = serde_json::json!({ "topic": topic.as_str(), "ttl_ms": cfg.presence_ttl_ms, "present": list });
            Ok(caller.apply(json(200, body.to_string())))
        }
        Route::WebhookCreate => {
            let wcfg = webhooks::WebhookConfig::from_vars(vars)?;
            if req.body.len() > webhooks::MAX_CREATE_BODY {
                return Err(Problem::payload_too_large(webhooks::MAX_CREATE_BODY));
            }
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, true).await?;
            let hook = webhooks::create(&link, &clock, &OsRng, &wcfg, &caller, req).await?;
            Ok(caller.apply(json(201, hook.to_json(true).to_string())))
        }
        Route::WebhookList => {
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, false).await?;
            let hooks: Vec<_> = webhooks::list(&link, &caller).await?.iter().map(|w| w.to_json(false)).collect();
            Ok(caller.apply(json(200, serde_json::json!({ "webhooks": hooks }).to_string())))
        }
        Route::WebhookDelete(id) => {
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, true).await?;
            if webhooks::delete(&link, &caller, &id).await? {
                Ok(caller.apply(Response::empty(204)))
            } else {
                Err(Problem::new(404, "not-found", "Not Found", "you have no webhook by that id"))
            }
        }
        Route::DeadLetters => {
            let limit = match req.query_param("limit") {
                None => 100,
                Some(l) => l
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| Problem::bad_request("limit must be 1-1000"))?,
            };
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, false).await?;
            let letters = webhooks::dead_letters(&link, &caller, limit).await?;
            Ok(caller.apply(json(200, format!("{{\"dead_letters\":[{}]}}", letters.join(",")))))
        }
        Route::Redrive => {
            let link = link(vars)?;
            let caller = notify::authenticate(&link, &clock, vars, req, true).await?;
            let n = webhooks::redrive(&link).await?;
            Ok(caller.apply(json(202, serde_json::json!({ "receivers": n }).to_string())))
        }
    }
}

/// `GET /notify/stream`: everything that can fail with a status is checked
/// first; then a 200 `text/event-stream` whose body the library writes.
async fn stream(req: &Request, out: ResponseOutparam, vars: &SpinVars) {
    let clock = SystemClock;
    let prepared = async {
        let cfg = NotifyConfig::from_vars(vars)?;
        let topic = topic_param(req)?;
        let cursor = cursor_param(req, true)?;
        let link = link(vars)?;
        let caller = notify::authenticate(&link, &clock, vars, req, false).await?;
        caller.check_read(&topic)?;
        let cursor = match cursor {
            Some(c) => c,
            None => notify::tail(&link, &topic).await?,
        };
        Ok::<_, Problem>((cfg, topic, cursor, link, caller))
    };
    let (cfg, topic, cursor, link, caller) = match prepared.await {
        Ok(p) => p,
        Err(p) => return send(out, p.to_response().with_header("cache-control", "no-store")).await,
    };
    let head = spindle::spin::with_host(caller.apply(Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/event-stream".into()),
            ("cache-control".into(), "no-store".into()),
            ("x-accel-buffering".into(), "no".into()),
        ],
        body: Vec::new(),
    }));
    let headers: Vec<(String, Vec<u8>)> = head.headers.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    let resp = OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = resp.set_status_code(200);
    let mut sink = BodySink(Box::pin(resp.take_body()));
    out.set(resp);
    if let Err(e) = notify::stream_events(&link, &WasiPause, &clock, &cfg, &mut sink, &topic, cursor).await {
        // The client reconnects with Last-Event-ID and resumes; just note why it ended.
        eprintln!("notify stream ended early: {e}");
    }
}

struct BodySink<S>(std::pin::Pin<Box<S>>);

impl<S: futures::Sink<Vec<u8>>> Sink for BodySink<S> {
    async fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.0.send(chunk).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/notify/publish").unwrap(), Route::Publish);
        assert_eq!(route("GET", "/notify/presence").unwrap(), Route::PresenceList);
        assert_eq!(route("POST", "/notify/presence").unwrap(), Route::PresenceBeat);
        assert_eq!(route("DELETE", "/notify/webhooks/wh_1").unwrap(), Route::WebhookDelete("wh_1".into()));
        assert_eq!(route("GET", "/notify/webhooks/dead-letters").unwrap(), Route::DeadLetters);
        assert_eq!(route("GET", "/notify/nope").unwrap_err().status, 404);
        assert_eq!(route("GET", "/notify/webhooks/a/b").unwrap_err().status, 404);
        let p = route("GET", "/notify/publish").unwrap_err();
        assert_eq!((p.status, p.headers[0].1.as_str()), (405, "POST"));
    }
}
