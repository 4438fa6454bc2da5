//! Webhooks: a topic's events POSTed to registered URLs, signed per the
//! [Standard Webhooks](https://www.standardwebhooks.com/) scheme, retried
//! with backoff, and dead-lettered after the last attempt.
//!
//! **Model.** Spin's Redis trigger hands a component only the message
//! payload, one short-lived invocation per message, so nothing can wait in
//! memory. Everything durable is in Redis:
//!
//! - a topic's events are its stream; `…{topic}:webhooks-cursor` is the last
//!   one fanned out;
//! - a delivery (one event × one webhook) is a record in
//!   `deliveries:pending` and a member of `deliveries:due`, scored by when it
//!   is next due;
//! - the worker's pass ([`run`]) is one claim script (fan out new events,
//!   lease up to a batch of due deliveries by pushing their due time past
//!   the send timeout), concurrent signed POSTs, then one settle script
//!   (forget the delivered, reschedule the failed with backoff, dead-letter
//!   the exhausted).
//!
//! Every host's trigger receives every message (pub/sub), so every host's
//! worker runs the pass; the atomic lease gives each delivery to one of
//! them. A worker that dies mid-delivery leaves a lease that simply runs
//! out: the delivery is due again and retried (at-least-once; receivers
//! dedupe by `webhook-id`).
//!
//! **What drives retries.** A publish on a topic with webhooks PUBLISHes the
//! topic to `spindle:notify:deliver`; every pass also re-drives all due
//! retries of every topic. When traffic is idle nothing arrives, so
//! something must tick: `PUBLISH spindle:notify:deliver '*'` from cron (or
//! `POST /notify/webhooks/redrive` from an HTTP scheduler). A tick also
//! catches up every topic whose kick was lost while no trigger was listening.

use super::{keys, Caller, Error, Topic};
use crate::config::{Config, ConfigError, Vars};
use crate::env::{Clock, Rng};
use crate::redis::{Arg, Cmd, Link, Records, Value};
use crate::session::to_iso;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

crate::scripts! {
    CREATE = ("notify/webhook_create", include_str!("webhook_create.lua"));
    LIST = ("notify/webhook_list", include_str!("webhook_list.lua"));
    DELETE = ("notify/webhook_delete", include_str!("webhook_delete.lua"));
    CLAIM = ("notify/delivery_claim", include_str!("delivery_claim.lua"));
    SETTLE = ("notify/delivery_settle", include_str!("delivery_settle.lua"));
}

/// Limits on registrations.
pub const MAX_PER_OWNER: u64 = 25;
pub const MAX_PER_TOPIC: u64 = 100;
pub const MAX_URL_LEN: usize = 2048;
/// Deliveries one pass leases at once, and events one topic fans out per pass.
pub const BATCH: usize = 32;
pub const MAX_EVENTS_PER_PASS: usize = 100;
/// A pass stops taking new batches after this long (Spin runs one trigger
/// message at a time, so a worker must not linger).
pub const PASS_BUDGET_MS: u64 = 10_000;
/// Topics a tick catches up at most.
pub const MAX_TICK_TOPICS: usize = 256;
/// The dead-letter stream of an owner: about this many entries, kept this long.
pub const DEAD_LETTER_MAXLEN: u64 = 1000;
pub const DEAD_LETTER_TTL_MS: u64 = 30 * 86_400_000;
/// The longest backoff between attempts.
pub const MAX_BACKOFF_MS: u64 = 6 * 3_600_000;

// ── URLs and the allow-list ──────────────────────────────────────────────

/// A webhook URL, checked: `http(s)://host[:port][/path][?query]`, ASCII,
/// no user info, no fragment, at most [`MAX_URL_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookUrl {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub url: String,
}

pub fn parse_url(s: &str) -> Result<WebhookUrl, String> {
    if s.len() > MAX_URL_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("url must be at most {MAX_URL_LEN} printable ASCII characters"));
    }
    let (scheme, rest) = s.split_once("://").ok_or("url must start with http:// or https://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err("url must start with http:// or https://".into()),
    };
    if s.contains('#') {
        return Err("url must not have a fragment".into());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err("url must not carry credentials".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("bad IPv6 host")?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let host = host.to_ascii_lowercase();
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        && !host.starts_with(['.', '-']);
    if !host_ok {
        return Err("url has no valid host".into());
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("url has an invalid port")?,
    };
    Ok(WebhookUrl { scheme, host, port, url: s.to_owned() })
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    Subdomain(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: Option<String>,
    host: HostPattern,
    ports: (u16, u16),
}

/// Where webhooks may point: `scheme://host[:port]` entries in the grammar
/// of Spin's `allowed_outbound_hosts` (`*` for any scheme, host or port,
/// `*.example.com` for subdomains, `8000-8099` for a port range), separated
/// by commas or spaces. Empty allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Origin>);

impl AllowList {
    pub fn parse(list: &str) -> Result<AllowList, String> {
        let mut out = Vec::new();
        for item in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
            let bad = || format!("{item:?} is not scheme://host[:port]");
            let (scheme, rest) = item.split_once("://").ok_or_else(bad)?;
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains(['/', '@', '?', '#']) {
                return Err(bad());
            }
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "*" => None,
                s @ ("http" | "https") => Some(s.to_owned()),
                _ => return Err(format!("{item:?}: webhooks are http or https")),
            };
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
                _ => (rest, None),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
            let host = match host.as_str() {
                "*" => HostPattern::Any,
                h if h.starts_with("*.") && h.len() > 2 && !h[2..].contains('*') => HostPattern::Subdomain(h[2..].to_owned()),
                h if !h.is_empty() && !h.contains('*') => HostPattern::Exact(h.to_owned()),
                _ => return Err(bad()),
            };
            let ports = match port {
                Some("*") => (1, u16::MAX),
                Some(p) => match p.split_once('-') {
                    Some((lo, hi)) => (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?),
                    None => {
                        let n = p.parse().map_err(|_| bad())?;
                        (n, n)
                    }
                },
                None => match scheme.as_deref() {
                    Some("http") => (80, 80),
                    Some(_) => (443, 443),
                    None => return Err(format!("{item:?}: a wildcard scheme needs a port")),
                },
            };
            out.push(Origin { scheme, host, ports });
        }
        Ok(AllowList(out))
    }

    pub fn allows(&self, u: &WebhookUrl) -> bool {
        self.0.iter().any(|o| {
            o.scheme.as_deref().is_none_or(|s| s == u.scheme)
                && match &o.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == u.host,
                    HostPattern::Subdomain(s) => u.host.ends_with(&format!(".{s}")),
                }
                && (o.ports.0..=o.ports.1).contains(&u.port)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// ── Signing ──────────────────────────────────────────────────────────────

/// A fresh signing secret: `whsec_` and 24 CSPRNG bytes in base64.
pub fn new_secret(rng: &impl Rng) -> String {
    let mut b = [0u8; 24];
    rng.fill(&mut b);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(b))
}

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA256 of
/// `{msg_id}.{timestamp}.{body}`, keyed with the base64-decoded part of
/// the secret after `whsec_`.
pub fn sign(secret: &str, msg_id: &str, timestamp_s: u64, body: &[u8]) -> Result<String, String> {
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| "the webhook secret is not base64".to_string())?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| "bad webhook secret".to_string())?;
    mac.update(format!("{msg_id}.{timestamp_s}.").as_bytes());
    mac.update(body);
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}

// ── Configuration ────────────────────────────────────────────────────────

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `notify_webhook_allow`, or when empty `webhook_origin` (the entry the
    /// worker's `allowed_outbound_hosts` is templated from).
    pub allow: AllowList,
    /// One delivery's bound: connect, send and the whole answer.
    pub timeout_ms: u64,
    /// Attempts in all, the first included; then the dead-letter stream.
    pub max_attempts: u32,
    /// The wait after the first failure; ×4 after each further one (±10%), at most 6 h.
    pub backoff_ms: u64,
}

impl WebhookConfig {
    pub fn from_vars(vars: &impl Vars) -> Result<Self, Error> {
        let c = Config::new(vars);
        let (name, list) = match c.text("notify_webhook_allow") {
            Some(l) => ("notify_webhook_allow", l),
            None => ("webhook_origin", c.text("webhook_origin").unwrap_or_default()),
        };
        let allow = AllowList::parse(&list).map_err(|e| ConfigError::new(name, e))?;
        Ok(WebhookConfig {
            allow,
            timeout_ms: c.duration_ms("notify_webhook_timeout", 5_000, 100..=60_000)?,
            max_attempts: c.int("notify_webhook_max_attempts", 6, 1..=20)?,
            backoff_ms: c.duration_ms("notify_webhook_backoff", 5_000, 10..=3_600_000)?,
        })
    }

    /// When a delivery that just failed its `attempt` is due again.
    pub fn backoff(&self, attempt: u32, rng: &impl Rng) -> u64 {
        let base = self.backoff_ms.saturating_mul(4u64.saturating_pow(attempt.saturating_sub(1))).min(MAX_BACKOFF_MS);
        let jitter = (rng.u64() % 201) as i64 - 100; // ±10% in steps of 0.1%
        (base as i64 + base as i64 * jitter / 1000).max(1) as u64
    }
}

// ── Registrations ────────────────────────────────────────────────────────

/// A registered webhook. `secret` is shown once, when it is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub topic: String,
    pub url: String,
    pub secret: String,
    /// ms since the epoch.
    pub created_at: u64,
}

impl Webhook {
    /// `{id, topic, url, created_at}` (ISO), and the secret when asked.
    pub fn to_json(&self, with_secret: bool) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": self.id, "topic": self.topic, "url": self.url, "created_at": to_iso(self.created_at),
        });
        if with_secret {
            v["secret"] = self.secret.clone().into();
        }
        v
    }
}

/// Registry values are `<owner>\n<topic>\n<JSON>`, so scripts can read the
/// owner and topic without a JSON parser.
fn registry_value(owner: &str, w: &Webhook) -> String {
    format!("{owner}\n{}\n{}", w.topic, serde_json::to_string(w).unwrap_or_default())
}

fn parse_registry(v: &[u8]) -> Option<(String, Webhook)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.splitn(3, '\n');
    let owner = parts.next()?.to_owned();
    let _topic = parts.next()?;
    Some((owner, serde_json::from_str(parts.next()?).ok()?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    topic: String,
    url: String,
}

/// Largest `POST /notify/webhooks` body.
pub const MAX_CREATE_BODY: usize = 4096;

/// `POST /notify/webhooks {topic, url}`: the caller must be able to read the
/// topic, and the URL must be allowed. One EVALSHA.
pub async fn create(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    cfg: &WebhookConfig,
    caller: &Caller,
    req: &crate::http::Request,
) -> Result<Webhook, Error> {
    let b: CreateBody = req.json(MAX_CREATE_BODY)?;
    if req.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::Invalid("the body must be a JSON object".into()));
    }
    let topic = Topic::parse(&b.topic)?;
    let url = parse_url(b.url.trim()).map_err(Error::Invalid)?;
    caller.check_read(&topic)?;
    if !cfg.allow.allows(&url) {
        return Err(Error::Invalid(
            "url is not in the allowed webhook origins (notify_webhook_allow / webhook_origin)".into(),
        ));
    }
    let mut id = [0u8; 16];
    rng.fill(&mut id);
    let id: String = format!("wh_{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let hook = Webhook { id, topic: topic.to_string(), url: url.url, secret: new_secret(rng), created_at: clock.now_ms() };
    let owner = caller.owner();
    let k = [
        Arg::from(keys::WEBHOOKS),
        keys::topic_webhooks(&topic).into(),
        keys::owner_webhooks(&owner).into(),
        keys::WEBHOOK_TOPICS.into(),
        keys::webhook_cursor(&topic).into(),
        keys::stream(&topic).into(),
    ];
    let a = [
        Arg::from(hook.id.as_str()),
        registry_value(&owner, &hook).into(),
        topic.as_str().into(),
        MAX_PER_OWNER.into(),
        MAX_PER_TOPIC.into(),
    ];
    match link.eval(&CREATE, &k, &a).await?.int()? {
        1 => Ok(hook),
        -1 => Err(Error::Conflict(format!("at most {MAX_PER_OWNER} webhooks per owner"))),
        -2 => Err(Error::Conflict(format!("at most {MAX_PER_TOPIC} webhooks per topic"))),
        n => Err(Error::Redis(crate::redis::Error::Protocol(format!("webhook create answered {n}")))),
    }
}

/// The caller's webhooks, oldest first, without secrets. One EVALSHA.
pub async fn list(link: &impl Link, caller: &Caller) -> Result<Vec<Webhook>, Error> {
    let k = [Arg::from(keys::owner_webhooks(&caller.owner())), keys::WEBHOOKS.into()];
    let reply = link.eval(&LIST, &k, &[]).await?;
    let mut out: Vec<Webhook> =
        reply.values().iter().filter_map(|v| v.as_bytes()).filter_map(parse_registry).map(|(_, w)| w).collect();
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

/// Deletes one of the caller's webhooks: `false` (404) when the caller has
/// none by that id. One EVALSHA.
pub async fn delete(link: &impl Link, caller: &Caller, id: &str) -> Result<bool, Error> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Ok(false);
    }
    let k = [Arg::from(keys::WEBHOOKS), keys::owner_webhooks(&caller.owner()).into(), keys::WEBHOOK_TOPICS.into()];
    let a = [Arg::from(id), caller.owner().into(), keys::PREFIX.into()];
    Ok(link.eval(&DELETE, &k, &a).await?.int()? == 1)
}

/// The caller's dead letters, newest first, as JSON objects (`id` is the
/// dead-letter entry's). One XREVRANGE.
pub async fn dead_letters(link: &impl Link, caller: &Caller, limit: u64) -> Result<Vec<String>, Error> {
    let cmd = Cmd::new("XREVRANGE").arg(keys::dead_letters(&caller.owner())).arg("+").arg("-").arg("COUNT").arg(limit);
    // Entries are `id, "j", json`.
    let Records(entries): Records<(String, Value, String)> = link.exec(&cmd).await?.parse("the dead-letter stream")?;
    Ok(entries.iter().filter_map(|(id, _, json)| Some(format!("{{\"id\":{},{}", super::publish::quote(id), json.strip_prefix('{')?))).collect())
}

/// Asks every listening worker to run a pass now (the idle-time driver of
/// retries). One PUBLISH; answers how many triggers heard it.
pub async fn redrive(link: &impl Link) -> Result<i64, Error> {
    Ok(link.exec(&Cmd::new("PUBLISH").arg(keys::DELIVER_CHANNEL).arg(keys::TICK)).await?.int()?)
}

// ── The worker ───────────────────────────────────────────────────────────

/// What a trigger message asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kick {
    /// A publish on this topic: fan out its new events, then every due delivery.
    Topic(Topic),
    /// Anything else (`*` by convention): catch up every topic with webhooks,
    /// and every due delivery.
    Tick,
}

impl Kick {
    pub fn parse(payload: &[u8]) -> Kick {
        std::str::from_utf8(payload).ok().and_then(|s| Topic::parse(s).ok()).map(Kick::Topic).unwrap_or(Kick::Tick)
    }
}

/// One claimed delivery: an event for a webhook, at an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `<webhook id>/<event id>`.
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub owner: String,
    pub hook: Webhook,
    pub topic: String,
    pub event_id: String,
    pub event: String,
    pub published_at_ms: u64,
    /// JSON text.
    pub data: String,
}

impl Delivery {
    fn parse(id: &[u8], record: &[u8], registry: &[u8]) -> Option<Delivery> {
        let rec = std::str::from_utf8(record).ok()?;
        let mut f = rec.splitn(7, '\n');
        let attempt = f.next()?.parse().ok()?;
        let _hook = f.next()?;
        let (topic, event_id, event) = (f.next()?.to_owned(), f.next()?.to_owned(), f.next()?.to_owned());
        let published_at_ms = f.next()?.parse().unwrap_or(0);
        let data = f.next()?.to_owned();
        let (owner, hook) = parse_registry(registry)?;
        Some(Delivery {
            id: String::from_utf8_lossy(id).into_owned(),
            attempt,
            owner,
            hook,
            topic,
            event_id,
            event,
            published_at_ms,
            data,
        })
    }

    /// `webhook-id`: the same for every attempt of an event (and for every
    /// webhook it goes to), so receivers can drop duplicates.
    pub fn message_id(&self) -> String {
        format!("msg_{}", keys::hex32(format!("{}\n{}", self.topic, self.event_id).as_bytes()))
    }

    /// The signed body: `{"type","timestamp","data","topic","id"}`, the
    /// payload shape Standard Webhooks recommends, plus where it came from.
    pub fn body(&self) -> String {
        use super::publish::quote;
        format!(
            "{{\"type\":{},\"timestamp\":{},\"data\":{},\"topic\":{},\"id\":{}}}",
            quote(&self.event),
            quote(&to_iso(self.published_at_ms)),
            self.data,
            quote(&self.topic),
            quote(&self.event_id)
        )
    }

    /// The signed POST, at `now_s` (the `webhook-timestamp`).
    pub fn request(&self, now_s: u64) -> Result<Outgoing, String> {
        let body = self.body();
        let msg_id = self.message_id();
        let signature = sign(&self.hook.secret, &msg_id, now_s, body.as_bytes())?;
        Ok(Outgoing {
            url: self.hook.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("user-agent".into(), "spindle-notify-worker".into()),
                ("webhook-id".into(), msg_id),
                ("webhook-timestamp".into(), now_s.to_string()),
                ("webhook-signature".into(), signature),
            ],
            body: body.into_bytes(),
        })
    }
}

/// A POST to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What became of a POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered(u16),
    /// Any other answer, a timeout or a transport error.
    Failed { status: Option<u16>, error: String },
}

/// Sends POSTs. The worker component sends a batch concurrently (spin-sdk
/// futures joined), each bounded by `timeout_ms`; answers come back in
/// order.
#[allow(async_fn_in_trait)]
pub trait Deliver {
    async fn deliver_all(&self, batch: Vec<Outgoing>, timeout_ms: u64) -> Vec<Outcome>;
}

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub delivered: usize,
    pub retrying: usize,
    pub dead: usize,
}

async fn claim(link: &impl Link, now: u64, lease_ms: u64, topics: &[Topic]) -> Result<Vec<Delivery>, Error> {
    let mut k = vec![Arg::from(keys::DUE), keys::PENDING.into(), keys::WEBHOOKS.into()];
    let mut a = vec![Arg::from(now), lease_ms.into(), BATCH.into(), MAX_EVENTS_PER_PASS.into()];
    for t in topics {
        k.extend([Arg::from(keys::stream(t)), keys::topic_webhooks(t).into(), keys::webhook_cursor(t).into()]);
        a.push(t.as_str().into());
    }
    let reply = link.eval(&CLAIM, &k, &a).await?;
    let mut out = Vec::new();
    for c in reply.values().chunks(3) {
        let parsed = match c {
            [Value::Bytes(id), Value::Bytes(rec), Value::Bytes(reg)] => Delivery::parse(id, rec, reg),
            _ => None,
        };
        match parsed {
            Some(d) => out.push(d),
            // Unreadable records stay leased and come back after the lease;
            // they are logged, never allowed to stop the batch.
            None => eprintln!("notify-worker: skipping an unreadable delivery record"),
        }
    }
    Ok(out)
}

fn dead_letter_json(d: &Delivery, outcome: &Outcome, now: u64) -> String {
    use super::publish::quote;
    let (status, error) = match outcome {
        Outcome::Failed { status, error } => (status.map(|s| s.to_string()).unwrap_or_else(|| "null".into()), error.as_str()),
        Outcome::Delivered(s) => (s.to_string(), ""),
    };
    format!(
        "{{\"delivery\":{},\"webhook_id\":{},\"url\":{},\"topic\":{},\"event_id\":{},\"event\":{},\"attempts\":{},\"last_status\":{status},\"last_error\":{},\"failed_at\":{},\"payload\":{}}}",
        quote(&d.id),
        quote(&d.hook.id),
        quote(&d.hook.url),
        quote(&d.topic),
        quote(&d.event_id),
        quote(&d.event),
        d.attempt,
        quote(error),
        quote(&to_iso(now)),
        d.body()
    )
}

async fn settle(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    cfg: &WebhookConfig,
    results: &[(Delivery, Outcome)],
    report: &mut Report,
) -> Result<(), Error> {
    let now = clock.now_ms();
    let mut k = vec![Arg::from(keys::DUE), keys::PENDING.into()];
    let mut dead_keys: Vec<String> = Vec::new();
    let mut a = vec![Arg::from(DEAD_LETTER_MAXLEN), DEAD_LETTER_TTL_MS.into()];
    for (d, outcome) in results {
        let (what, due, index, json) = match outcome {
            Outcome::Delivered(_) => {
                report.delivered += 1;
                ("ok", 0, 0, String::new())
            }
            Outcome::Failed { .. } if d.attempt < cfg.max_attempts => {
                report.retrying += 1;
                ("retry", now + cfg.backoff(d.attempt, rng), 0, String::new())
            }
            Outcome::Failed { .. } => {
                report.dead += 1;
                let key = keys::dead_letters(&d.owner);
                let i = match dead_keys.iter().position(|k| *k == key) {
                    Some(i) => i,
                    None => {
                        dead_keys.push(key);
                        dead_keys.len() - 1
                    }
                };
                ("dead", 0, 3 + i, dead_letter_json(d, outcome, now))
            }
        };
        a.extend([Arg::from(d.id.as_str()), d.attempt.into(), what.into(), due.into(), index.into(), json.into()]);
    }
    k.extend(dead_keys.into_iter().map(Arg::from));
    link.eval(&SETTLE, &k, &a).await?;
    Ok(())
}

/// One worker invocation: claim, deliver concurrently, settle; again while
/// full batches keep coming, within [`PASS_BUDGET_MS`].
pub async fn run(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    deliver: &impl Deliver,
    cfg: &WebhookConfig,
    kick: &Kick,
) -> Result<Report, Error> {
    let topics: Vec<Topic> = match kick {
        Kick::Topic(t) => vec![t.clone()],
        Kick::Tick => {
            let reply = link.exec(&Cmd::new("SMEMBERS").arg(keys::WEBHOOK_TOPICS)).await?;
            reply
                .values()
                .iter()
                .filter_map(|v| v.as_bytes())
                .filter_map(|b| std::str::from_utf8(b).ok().and_then(|s| Topic::parse(s).ok()))
                .take(MAX_TICK_TOPICS)
                .collect()
        }
    };
    let started = clock.now_ms();
    let lease = cfg.timeout_ms + 30_000;
    let mut report = Report::default();
    loop {
        let now = clock.now_ms();
        let batch = claim(link, now, lease, &topics).await?;
        if batch.is_empty() {
            break;
        }
        let full = batch.len() >= BATCH;
        let mut sendable = Vec::new();
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
        for d in &batch {
            let allowed = parse_url(&d.hook.url).map(|u| cfg.allow.allows(&u)).unwrap_or(false);
            match (allowed, d.request(now / 1000)) {
                (false, _) => outcomes.push(Some(Outcome::Failed {
                    status: None,
                    error: "the url is no longer in the allowed webhook origins".into(),
                })),
                (true, Err(e)) => outcomes.push(Some(Outcome::Failed { status: None, error: e })),
                (true, Ok(req)) => {
                    sendable.push(req);
                    outcomes.push(None);
                }
            }
        }
        let mut sent = deliver.deliver_all(sendable, cfg.timeout_ms).await.into_iter();
        let results: Vec<(Delivery, Outcome)> = batch
            .into_iter()
            .zip(outcomes)
            .map(|(d, o)| {
                let o = o.or_else(|| sent.next()).unwrap_or(Outcome::Failed { status: None, error: "not sent".into() });
                (d, o)
            })
            .collect();
        settle(link, clock, rng, cfg, &results, &mut report).await?;
        if !full || clock.now_ms().saturating_sub(started) > PASS_BUDGET_MS {
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SeqRng;

    #[test]
    fn signs_like_the_standard_webhooks_reference() {
        // The vector of standard-webhooks' own libraries.
        let sig = sign(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(sign("whsec_!!!", "m", 1, b"").is_err());
        let s = new_secret(&SeqRng::default());
        assert!(s.starts_with("whsec_") && s.len() == 6 + 32);
    }

    #[test]
    fn urls_are_checked() {
        let u = parse_url("https://hooks.example.com/a/b?x=1").unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str(), u.port), ("https", "hooks.example.com", 443));
        assert_eq!(parse_url("http://127.0.0.1:8080/h").unwrap().port, 8080);
        assert_eq!(parse_url("http://[::1]:9/").unwrap().host, "::1");
        for bad in ["ftp://x/", "http://", "http://u:p@x/", "http://x/#f", "http://x:0/", "http://x:99999/", "http://a b/", "https://-x/", "x"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://x/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn the_allow_list_uses_spins_grammar() {
        let a = AllowList::parse("https://*.example.com, http://127.0.0.1:8000-8099 *://localhost:*").unwrap();
        let ok = |s: &str| a.allows(&parse_url(s).unwrap());
        assert!(ok("https://hooks.example.com/x"));
        assert!(!ok("https://example.com/x"));
        assert!(!ok("http://hooks.example.com/x"));
        assert!(ok("http://127.0.0.1:8042/"));
        assert!(!ok("http://127.0.0.1:9000/"));
        assert!(ok("https://localhost:1/"));
        assert!(!AllowList::parse("").unwrap().allows(&parse_url("https://x/").unwrap()));
        for bad in ["hooks.example.com", "ftp://x", "https://x/path", "*://x", "https://a*b"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = WebhookConfig { allow: AllowList::default(), timeout_ms: 1000, max_attempts: 6, backoff_ms: 5000 };
        let rng = SeqRng::default();
        let b: Vec<u64> = (1..=6).map(|n| cfg.backoff(n, &rng)).collect();
        for (n, want) in [5_000u64, 20_000, 80_000, 320_000, 1_280_000, 5_120_000].iter().enumerate() {
            assert!(b[n].abs_diff(*want) <= want / 10, "attempt {}: {} vs {want}", n + 1, b[n]);
        }
        assert!(cfg.backoff(30, &rng) <= MAX_BACKOFF_MS * 11 / 10);
    }

    #[test]
    fn deliveries_parse_and_sign() {
        let hook = Webhook {
            id: "wh_1".into(),
            topic: "t".into(),
            url: "http://127.0.0.1:9/h".into(),
            secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into(),
            created_at: 1,
        };
        let reg = registry_value("user:1", &hook);
        let d = Delivery::parse(b"wh_1/5-0", b"2\nwh_1\nt\n5-0\nping\n1767225600000\n{\"b\":1,\"a\":\"x\\ny\"}", reg.as_bytes())
            .unwrap();
        assert_eq!((d.attempt, d.owner.as_str(), d.event.as_str()), (2, "user:1", "ping"));
        assert_eq!(
            d.body(),
            r#"{"type":"ping","timestamp":"2026-01-01T00:00:00.000Z","data":{"b":1,"a":"x\ny"},"topic":"t","id":"5-0"}"#
        );
        let r = d.request(1767225601).unwrap();
        let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(h("webhook-id"), d.message_id());
        assert_eq!(h("webhook-timestamp"), "1767225601");
        assert_eq!(h("webhook-signature"), sign(&hook.secret, &d.message_id(), 1767225601, &r.body).unwrap());
        let dead: serde_json::Value = serde_json::from_str(&dead_letter_json(
            &d,
            &Outcome::Failed { status: Some(500), error: "HTTP 500".into() },
            1767225600000,
        ))
        .unwrap();
        assert_eq!(dead["attempts"], 2);
        assert_eq!(dead["last_status"], 500);
        assert_eq!(dead["payload"]["data"]["a"], "x\ny");
        assert!(dead.get("secret").is_none() && !dead.to_string().contains("whsec_"));
    }

    #[test]
    fn kicks() {
        assert_eq!(Kick::parse(b"orders"), Kick::Topic(Topic::parse("orders").unwrap()));
        assert_eq!(Kick::parse(b"*"), Kick::Tick);
        assert_eq!(Kick::parse(b""), Kick::Tick);
        assert_eq!(Kick::parse(&[0xff]), Kick::Tick);
    }
}
