//! The worker's pass: claim due deliveries (one script), POST them
//! concurrently, settle the outcomes (one script).

use super::super::{keys, Error, Topic};
use super::registry::parse_registry;
use super::*;
use crate::date::to_iso;
use crate::env::{Clock, Rng};
use crate::redis::{Arg, Cmd, Link, Value};

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
        use crate::notify::publish::quote;
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
    use crate::notify::publish::quote;
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
    use super::super::registry::registry_value;
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
