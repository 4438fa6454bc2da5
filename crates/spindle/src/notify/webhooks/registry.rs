//! Registrations: who wants which topic's events at which URL, and what
//! was dead-lettered for them.

use super::super::{keys, Caller, Error, Topic};
use super::{new_secret, parse_url, AllowList, Layout, ADD, CREATE, DELETE, LIST, MAX_PER_OWNER, MAX_PER_TOPIC, REMOVE, RESERVE};
use crate::date::to_iso;
use crate::env::{Clock, Rng};
use crate::redis::{Arg, Cmd, Link, Records, Value};
use serde::{Deserialize, Serialize};

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
pub(super) fn registry_value(owner: &str, w: &Webhook) -> String {
    format!("{owner}\n{}\n{}", w.topic, serde_json::to_string(w).unwrap_or_default())
}

pub(super) fn parse_registry(v: &[u8]) -> Option<(String, Webhook)> {
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
/// topic, and the URL must be in `allow` (`notify_webhook_allow`); while
/// that is empty, webhooks are off (403 `webhooks-disabled`). One EVALSHA;
/// in the cluster layout three steps, each in one slot: the owner's entry
/// (its cap), the tick's topic list, then the topic's entry (its cap; the
/// owner's entry is removed again when the topic refuses, or when the list's
/// step fails before the topic's ran).
#[allow(clippy::too_many_arguments)]
pub async fn create(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    allow: &AllowList,
    layout: Layout,
    caller: &Caller,
    req: &crate::http::Request,
) -> Result<Webhook, Error> {
    if allow.is_empty() {
        return Err(Error::Problem(crate::http::Problem::new(
            403,
            "webhooks-disabled",
            "Webhooks Disabled",
            "webhooks are off on this deployment: the operator must set notify_webhook_allow to where they may point",
        )));
    }
    let b: CreateBody = req.json(MAX_CREATE_BODY)?;
    if req.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::Invalid("the body must be a JSON object".into()));
    }
    let topic = Topic::parse(&b.topic)?;
    let url = parse_url(b.url.trim()).map_err(Error::Invalid)?;
    caller.check_read(&topic)?;
    if !allow.allows(&url) {
        return Err(Error::Invalid("url is not in the allowed webhook origins (notify_webhook_allow)".into()));
    }
    let mut id = [0u8; 16];
    rng.fill(&mut id);
    let id: String = format!("wh_{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let hook = Webhook { id, topic: topic.to_string(), url: url.url, secret: new_secret(rng), created_at: clock.now_ms() };
    let owner = caller.owner();
    let per_owner = || Error::Conflict(format!("at most {MAX_PER_OWNER} webhooks per owner"));
    let per_topic = || Error::Conflict(format!("at most {MAX_PER_TOPIC} webhooks per topic"));
    let value = registry_value(&owner, &hook);
    if layout == Layout::Cluster {
        let defs = keys::owner_webhook_defs(&owner);
        let a = [Arg::from(hook.id.as_str()), value.as_str().into(), MAX_PER_OWNER.into()];
        match link.eval(&RESERVE, &[Arg::from(defs.as_str())], &a).await?.int()? {
            1 => {}
            -1 => return Err(per_owner()),
            n => return Err(unexpected("reserve", n)),
        }
        // The tick's topic list before the topic: a tick drops only topics
        // whose entry is older than its grace, so the new webhook's topic
        // stays listed whichever step runs first; if the next step fails,
        // the extra entry is dropped by a later tick.
        let zadd = Cmd::new("ZADD").arg(keys::WEBHOOK_TOPICS_BY_TIME).arg(hook.created_at).arg(topic.as_str());
        if let Err(e) = link.exec(&zadd).await {
            let _ = link.exec(&Cmd::new("HDEL").arg(defs.as_str()).arg(hook.id.as_str())).await;
            return Err(e.into());
        }
        let k = [
            Arg::from(keys::topic_registry(&topic)),
            keys::topic_webhooks(&topic).into(),
            keys::webhook_cursor(&topic).into(),
            keys::stream(&topic).into(),
        ];
        let a = [Arg::from(hook.id.as_str()), value.as_str().into(), MAX_PER_TOPIC.into()];
        // An error here leaves the outcome unknown (the step may have run):
        // the owner's entry stays, so the webhook is listed and its owner can
        // delete it, which is safe to repeat. Only a refusal removes it.
        return match link.eval(&ADD, &k, &a).await?.int()? {
            1 => Ok(hook),
            -2 => {
                let _ = link.exec(&Cmd::new("HDEL").arg(defs.as_str()).arg(hook.id.as_str())).await;
                Err(per_topic())
            }
            n => Err(unexpected("add", n)),
        };
    }
    let k = [
        Arg::from(keys::WEBHOOKS),
        keys::topic_webhooks(&topic).into(),
        keys::owner_webhooks(&owner).into(),
        keys::WEBHOOK_TOPICS.into(),
        keys::webhook_cursor(&topic).into(),
        keys::stream(&topic).into(),
    ];
    let a = [Arg::from(hook.id.as_str()), value.into(), topic.as_str().into(), MAX_PER_OWNER.into(), MAX_PER_TOPIC.into()];
    match link.eval(&CREATE, &k, &a).await?.int()? {
        1 => Ok(hook),
        -1 => Err(per_owner()),
        -2 => Err(per_topic()),
        n => Err(unexpected("create", n)),
    }
}

fn unexpected(step: &str, n: i64) -> Error {
    Error::Redis(crate::redis::Error::Protocol(format!("webhook {step} answered {n}")))
}

/// The caller's webhooks, oldest first, without secrets. One EVALSHA (in
/// the cluster layout one HVALS of the owner's definitions).
pub async fn list(link: &impl Link, layout: Layout, caller: &Caller) -> Result<Vec<Webhook>, Error> {
    let reply = match layout {
        Layout::Cluster => link.exec(&Cmd::new("HVALS").arg(keys::owner_webhook_defs(&caller.owner()))).await?,
        Layout::Node => {
            let k = [Arg::from(keys::owner_webhooks(&caller.owner())), keys::WEBHOOKS.into()];
            link.eval(&LIST, &k, &[]).await?
        }
    };
    let mut out: Vec<Webhook> =
        reply.values().iter().filter_map(|v| v.as_bytes()).filter_map(parse_registry).map(|(_, w)| w).collect();
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

/// Deletes one of the caller's webhooks: `false` (404) when the caller has
/// none by that id. One EVALSHA; in the cluster layout the owner's entry is
/// read, the topic's step removes the webhook there, and then the owner's
/// entry goes (so a deletion cut short is finished by repeating it).
pub async fn delete(link: &impl Link, layout: Layout, caller: &Caller, id: &str) -> Result<bool, Error> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Ok(false);
    }
    if layout == Layout::Cluster {
        let defs = keys::owner_webhook_defs(&caller.owner());
        let Some(value) = link.exec(&Cmd::new("HGET").arg(defs.as_str()).arg(id)).await?.opt_bytes()? else {
            return Ok(false);
        };
        if let Some(topic) = parse_registry(&value).and_then(|(_, w)| Topic::parse(&w.topic).ok()) {
            let k = [Arg::from(keys::topic_registry(&topic)), keys::topic_webhooks(&topic).into(), keys::webhook_cursor(&topic).into()];
            link.eval(&REMOVE, &k, &[Arg::from(id)]).await?;
        }
        link.exec(&Cmd::new("HDEL").arg(defs.as_str()).arg(id)).await?;
        return Ok(true);
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
    Ok(entries.iter().filter_map(|(id, _, json)| Some(format!("{{\"id\":{},{}", crate::notify::publish::quote(id), json.strip_prefix('{')?))).collect())
}

/// Asks every listening worker to run a pass now (the idle-time driver of
/// retries). One PUBLISH; answers how many triggers heard it.
pub async fn redrive(link: &impl Link) -> Result<i64, Error> {
    Ok(link.exec(&Cmd::new("PUBLISH").arg(keys::DELIVER_CHANNEL).arg(keys::TICK)).await?.int()?)
}

