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
//! A poll or a stream holds one of the caller's `notify_max_streams` reader
//! leases while it is open, and opening one spends the `notify_stream` rate
//! limit (`spindle::notify::readers`).
//!
//! `/notify/stream` is a streaming route: it writes its body as events
//! arrive. Every other route is parse → library → one buffered response;
//! all logic is in the library, and this file only routes and maps errors.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spindle::caller::Caller;
use spindle::http::router::BodyLimit;
use spindle::http::{Problem, Response};
use spindle::notify::{self, webhooks, NotifyConfig, Publish, Reader, Topic};
use spindle::ratelimit::Throttle;
use spindle::session::to_iso;
use spindle::spin::{serve, Cx, Responder, Routes, WasiSleep};

/// A publish with its data: `notify_max_payload_bytes`.
const PUBLISH_BODY: BodyLimit = BodyLimit::Var { name: "notify_max_payload_bytes", default: 65_536, max: 1 << 20 };
/// `{topic}` and `{topic, url}`.
const SMALL_BODY: BodyLimit = BodyLimit::Bytes(webhooks::MAX_CREATE_BODY);

const ROUTES: Routes = spindle::routes![
    POST "/notify/publish" (PUBLISH_BODY) => publish,
    GET "/notify/poll" => poll,
    GET "/notify/stream" => stream sse,
    GET "/notify/presence" => presence_list,
    POST "/notify/presence" (SMALL_BODY) => presence_beat,
    GET "/notify/webhooks" => webhook_list,
    POST "/notify/webhooks" (SMALL_BODY) => webhook_create,
    GET "/notify/webhooks/dead-letters" => dead_letters,
    POST "/notify/webhooks/redrive" => redrive,
    DELETE "/notify/webhooks/:id" => webhook_delete,
];

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    serve(ROUTES, req, out).await
}

fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response { status, headers: vec![("content-type".into(), "application/json".into())], body: body.into() }
        .with_header("cache-control", "no-store")
}

fn config(cx: &Cx) -> Result<NotifyConfig, Problem> {
    Ok(NotifyConfig::from_vars(cx.vars())?)
}

fn topic_param(cx: &Cx) -> Result<Topic, Problem> {
    let t = cx.req.query_param("topic").ok_or_else(|| Problem::bad_request("the topic query parameter is required"))?;
    Ok(Topic::parse(&t)?)
}

/// `after=` (or, for SSE, `Last-Event-ID`, which wins: it is what a
/// reconnecting EventSource sends along with the original URL).
fn cursor_param(cx: &Cx, header: bool) -> Result<Option<String>, Problem> {
    let from_header =
        if header { cx.req.text_header("last-event-id")?.map(str::to_owned).filter(|s| !s.trim().is_empty()) } else { None };
    match from_header.or_else(|| cx.req.query_param("after")) {
        None => Ok(None),
        Some(c) => Ok(Some(notify::parse_cursor(&c)?)),
    }
}

async fn publish(cx: Cx) -> Result<Response, Problem> {
    let cfg = config(&cx)?;
    let p = Publish::from_request(&cx.req, &cfg)?;
    let throttle = Throttle::notify(cx.vars())?;
    let caller = cx.authenticated_caller(true).await?;
    let done = notify::publish(cx.link()?, cx.clock(), &throttle, &cfg, &caller, &p).await?;
    let body = serde_json::json!({ "id": done.id, "topic": done.topic.as_str(), "duplicate": done.duplicate });
    Ok(caller.apply(done.limited.apply(json(if done.duplicate { 200 } else { 201 }, body.to_string()))))
}

async fn poll(cx: Cx) -> Result<Response, Problem> {
    let cfg = config(&cx)?;
    let topic = topic_param(&cx)?;
    let cursor = cursor_param(&cx, false)?;
    let wait = match cx.req.query_param("wait_ms") {
        None => cfg.poll_timeout_ms,
        Some(w) => w.parse::<u64>().map_err(|_| Problem::bad_request("wait_ms must be a whole number of milliseconds"))?.min(cfg.poll_timeout_ms),
    };
    let caller = cx.authenticated_caller(false).await?;
    caller.check_read(&topic)?;
    let link = cx.link()?;
    let reader = Reader::open(link, cx.clock(), cx.rng(), &Throttle::notify_stream(cx.vars())?, &cfg, &caller, wait).await?;
    let batch = notify::poll(link, &WasiSleep, &cfg, &topic, cursor, wait).await;
    let limited = reader.limited.clone();
    reader.release(link).await;
    Ok(caller.apply(limited.apply(json(200, batch?.to_json(&topic)))))
}

async fn presence_beat(cx: Cx) -> Result<Response, Problem> {
    let cfg = config(&cx)?;
    let topic = notify::beat_topic(&cx.req)?;
    let caller = cx.authenticated_caller(true).await?;
    caller.check_read(&topic)?;
    let Caller::User(session) = &caller else {
        return Err(Problem::forbidden("presence is for logged-in users, not API keys"));
    };
    let n = notify::heartbeat(cx.link()?, cx.clock(), &cfg, &topic, &session.user).await?;
    let body = serde_json::json!({ "topic": topic.as_str(), "present": n, "ttl_ms": cfg.presence_ttl_ms });
    Ok(caller.apply(json(200, body.to_string())))
}

async fn presence_list(cx: Cx) -> Result<Response, Problem> {
    let cfg = config(&cx)?;
    let topic = topic_param(&cx)?;
    let caller = cx.authenticated_caller(false).await?;
    caller.check_read(&topic)?;
    let present = notify::present(cx.link()?, cx.clock(), &cfg, &topic).await?;
    let list: Vec<_> = present
        .iter()
        .map(|p| serde_json::json!({ "id": p.id, "username": p.username, "last_seen": to_iso(p.last_seen_ms) }))
        .collect();
    let body = serde_json::json!({ "topic": topic.as_str(), "ttl_ms": cfg.presence_ttl_ms, "present": list });
    Ok(caller.apply(json(200, body.to_string())))
}

async fn webhook_create(cx: Cx) -> Result<Response, Problem> {
    config(&cx)?;
    let allow = webhooks::allow_list(cx.vars())?;
    let caller = cx.authenticated_caller(true).await?;
    let layout = webhooks::Layout::from_vars(cx.vars())?;
    let hook = webhooks::create(cx.link()?, cx.clock(), cx.rng(), &allow, layout, &caller, &cx.req).await?;
    Ok(caller.apply(json(201, hook.to_json(true).to_string())))
}

async fn webhook_list(cx: Cx) -> Result<Response, Problem> {
    config(&cx)?;
    let layout = webhooks::Layout::from_vars(cx.vars())?;
    let caller = cx.authenticated_caller(false).await?;
    let hooks: Vec<_> = webhooks::list(cx.link()?, layout, &caller).await?.iter().map(|w| w.to_json(false)).collect();
    Ok(caller.apply(json(200, serde_json::json!({ "webhooks": hooks }).to_string())))
}

async fn webhook_delete(cx: Cx) -> Result<Response, Problem> {
    config(&cx)?;
    let layout = webhooks::Layout::from_vars(cx.vars())?;
    let caller = cx.authenticated_caller(true).await?;
    if webhooks::delete(cx.link()?, layout, &caller, cx.param("id")).await? {
        Ok(caller.apply(Response::empty(204).with_header("cache-control", "no-store")))
    } else {
        Err(Problem::new(404, "not-found", "Not Found", "you have no webhook by that id"))
    }
}

async fn dead_letters(cx: Cx) -> Result<Response, Problem> {
    config(&cx)?;
    let limit = match cx.req.query_param("limit") {
        None => 100,
        Some(l) => l.parse::<u64>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| Problem::bad_request("limit must be 1-1000"))?,
    };
    let caller = cx.authenticated_caller(false).await?;
    let letters = webhooks::dead_letters(cx.link()?, &caller, limit).await?;
    Ok(caller.apply(json(200, format!("{{\"dead_letters\":[{}]}}", letters.join(",")))))
}

async fn redrive(cx: Cx) -> Result<Response, Problem> {
    config(&cx)?;
    let caller = cx.authenticated_caller(true).await?;
    let link = cx.link()?;
    let limited = Throttle::redrive(cx.vars())?.check(link, cx.clock(), &caller.identity(), 1).await?;
    let n = webhooks::redrive(link).await?;
    Ok(caller.apply(limited.apply(json(202, serde_json::json!({ "receivers": n }).to_string()))))
}

/// `GET /notify/stream`: everything that can fail with a status is checked
/// first; then a 200 `text/event-stream` whose body the library writes.
async fn sse(cx: Cx, out: Responder) {
    let prepared = async {
        let cfg = config(&cx)?;
        let topic = topic_param(&cx)?;
        let cursor = cursor_param(&cx, true)?;
        let caller = cx.authenticated_caller(false).await?;
        caller.check_read(&topic)?;
        let link = cx.link()?;
        let throttle = Throttle::notify_stream(cx.vars())?;
        let reader = Reader::open(link, cx.clock(), cx.rng(), &throttle, &cfg, &caller, cfg.sse_lifetime_ms).await?;
        let cursor = match cursor {
            Some(c) => Ok(c),
            None => notify::tail(link, &topic).await,
        };
        let cursor = match cursor {
            Ok(c) => c,
            Err(e) => {
                reader.release(link).await;
                return Err(e.into());
            }
        };
        Ok::<_, Problem>((cfg, topic, cursor, caller, reader))
    };
    let (cfg, topic, cursor, caller, reader) = match prepared.await {
        Ok(p) => p,
        Err(p) => return out.send(p.to_response()).await,
    };
    let Ok(link) = cx.link() else { return };
    let head = caller.apply(reader.limited.apply(Response {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/event-stream".into()),
            ("cache-control".into(), "no-store".into()),
            ("x-accel-buffering".into(), "no".into()),
        ],
        body: Vec::new(),
    }));
    let mut sink = out.stream(head);
    if let Err(e) = notify::stream_events(link, &WasiSleep, &cfg, &mut sink, &topic, cursor).await {
        // The client reconnects with Last-Event-ID and resumes; just note why it ended.
        eprintln!("notify stream ended early: {e}");
    }
    reader.release(link).await;
}
