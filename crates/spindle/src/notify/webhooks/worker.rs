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

/// Why a trimmed event's delivery was dead-lettered.
pub const TRIMMED: &str = "event trimmed from the stream before delivery";
/// Why a delivery was dead-lettered instead of queued.
pub const CAPPED: &str = "pending cap reached: the owner already had notify_webhook_max_pending deliveries pending";

/// What a claim found for a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Leased, with its event as the stream holds it.
    Due { event: String, published_at_ms: u64, data: String },
    /// Leased, but its event was trimmed from the stream (`MAXLEN`,
    /// retention) before it could be delivered: dead-lettered.
    Trimmed,
    /// Never queued: its owner already had `notify_webhook_max_pending`
    /// pending. Dead-lettered (without the payload; the stream has it).
    Capped { event: String },
}

/// One claimed delivery: an event for a webhook, at an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// `<webhook id>/<event id>`.
    pub id: String,
    /// 1 for the first attempt (0 for a capped one, never attempted).
    pub attempt: u32,
    pub owner: String,
    pub hook: Webhook,
    pub topic: String,
    pub event_id: String,
    pub state: State,
}

impl Delivery {
    /// From a claim's 7 values: kind, id, record, registry value, event, published ms, data.
    fn parse(v: &[Value]) -> Option<Delivery> {
        let s = |i: usize| v.get(i).and_then(Value::as_bytes).and_then(|b| std::str::from_utf8(b).ok());
        let mut f = s(2)?.split('\n');
        let attempt = f.next()?.parse().ok()?;
        let (_hook, _owner) = (f.next()?, f.next()?);
        let (topic, event_id) = (f.next()?.to_owned(), f.next()?.to_owned());
        let (owner, hook) = parse_registry(s(3)?.as_bytes())?;
        let state = match s(0)? {
            "lease" => State::Due { event: s(4)?.to_owned(), published_at_ms: s(5)?.parse().unwrap_or(0), data: s(6)?.to_owned() },
            "gone" => State::Trimmed,
            "capped" => State::Capped { event: s(4)?.to_owned() },
            _ => return None,
        };
        Some(Delivery { id: s(1)?.to_owned(), attempt, owner, hook, topic, event_id, state })
    }

    /// Leased now (due or trimmed), as opposed to refused at the cap.
    fn leased(&self) -> bool {
        !matches!(self.state, State::Capped { .. })
    }

    /// `webhook-id`: the same for every attempt of an event (and for every
    /// webhook it goes to), so receivers can drop duplicates.
    pub fn message_id(&self) -> String {
        format!("msg_{}", keys::hex32(format!("{}\n{}", self.topic, self.event_id).as_bytes()))
    }

    /// The signed body: `{"type","timestamp","data","topic","id"}`, the
    /// payload shape Standard Webhooks recommends, plus where it came from;
    /// `None` without the event (trimmed, or capped).
    pub fn body(&self) -> Option<String> {
        use crate::notify::publish::quote;
        let State::Due { event, published_at_ms, data } = &self.state else { return None };
        Some(format!(
            "{{\"type\":{},\"timestamp\":{},\"data\":{},\"topic\":{},\"id\":{}}}",
            quote(event),
            quote(&to_iso(*published_at_ms)),
            data,
            quote(&self.topic),
            quote(&self.event_id)
        ))
    }

    /// The signed POST, at `now_s` (the `webhook-timestamp`).
    pub fn request(&self, now_s: u64) -> Result<Outgoing, String> {
        let body = self.body().ok_or(TRIMMED)?;
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
    /// Dead-lettered: out of attempts, or their event was trimmed.
    pub dead: usize,
    /// Not queued, at their owner's pending cap (dead-lettered too).
    pub capped: usize,
}

/// The keys a claim and its settle work on: every kicked topic with the
/// single-node layout's shared delivery keys, or one topic with its own
/// (the cluster layout: every key in the topic's slot).
struct Scope {
    due: String,
    pending: String,
    registry: String,
    counts: String,
    topics: Vec<Topic>,
    layout: Layout,
}

impl Scope {
    fn node(topics: Vec<Topic>) -> Scope {
        Scope {
            due: keys::DUE.into(),
            pending: keys::PENDING.into(),
            registry: keys::WEBHOOKS.into(),
            counts: keys::OWNER_PENDING.into(),
            topics,
            layout: Layout::Node,
        }
    }

    fn topic(t: Topic) -> Scope {
        Scope {
            due: keys::topic_due(&t),
            pending: keys::topic_pending(&t),
            registry: keys::topic_registry(&t),
            counts: keys::topic_owner_pending(&t),
            topics: vec![t],
            layout: Layout::Cluster,
        }
    }
}

/// One claim: whether fan-out work is left, and the deliveries.
async fn claim(link: &impl Link, cfg: &WebhookConfig, now: u64, lease_ms: u64, scope: &Scope) -> Result<(bool, Vec<Delivery>), Error> {
    let mut k = vec![Arg::from(scope.due.as_str()), scope.pending.as_str().into(), scope.registry.as_str().into(), scope.counts.as_str().into()];
    let mut a = vec![
        Arg::from(now),
        lease_ms.into(),
        BATCH.into(),
        MAX_EVENTS_PER_PASS.into(),
        cfg.claim_budget.into(),
        cfg.max_pending.into(),
        keys::PREFIX.into(),
    ];
    for t in &scope.topics {
        k.extend([Arg::from(keys::stream(t)), keys::topic_webhooks(t).into(), keys::webhook_cursor(t).into()]);
        a.push(t.as_str().into());
    }
    let reply = link.eval(&CLAIM, &k, &a).await?;
    let values = reply.values();
    let more = values.first().and_then(Value::as_int).unwrap_or(0) == 1;
    let mut out = Vec::new();
    for c in values.get(1..).unwrap_or_default().chunks(7) {
        match Delivery::parse(c) {
            Some(d) => out.push(d),
            // Unreadable records stay leased and come back after the lease;
            // they are logged, never allowed to stop the batch.
            None => eprintln!("notify-worker: skipping an unreadable delivery record"),
        }
    }
    Ok((more, out))
}

fn dead_letter_json(d: &Delivery, outcome: &Outcome, now: u64) -> String {
    use crate::notify::publish::quote;
    let (status, error) = match outcome {
        Outcome::Failed { status, error } => (status.map(|s| s.to_string()).unwrap_or_else(|| "null".into()), error.as_str()),
        Outcome::Delivered(s) => (s.to_string(), ""),
    };
    // Attempts made: a trimmed event's lease made none, a capped delivery none at all.
    let (event, attempts) = match &d.state {
        State::Due { event, .. } => (quote(event), d.attempt),
        State::Trimmed => ("null".into(), d.attempt.saturating_sub(1)),
        State::Capped { event } => (quote(event), 0),
    };
    format!(
        "{{\"delivery\":{},\"webhook_id\":{},\"url\":{},\"topic\":{},\"event_id\":{},\"event\":{event},\"attempts\":{attempts},\"last_status\":{status},\"last_error\":{},\"failed_at\":{},\"payload\":{}}}",
        quote(&d.id),
        quote(&d.hook.id),
        quote(&d.hook.url),
        quote(&d.topic),
        quote(&d.event_id),
        quote(error),
        quote(&to_iso(now)),
        d.body().unwrap_or_else(|| "null".into())
    )
}

/// Settles a batch (one script). In the cluster layout the dead letters are
/// not the script's (their streams are in the owners' slots): those whose
/// outcome applied are written after it, one script per owner.
async fn settle(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    cfg: &WebhookConfig,
    scope: &Scope,
    results: &[(Delivery, Outcome)],
    report: &mut Report,
) -> Result<(), Error> {
    if results.is_empty() {
        return Ok(());
    }
    let now = clock.now_ms();
    let mut k = vec![Arg::from(scope.due.as_str()), scope.pending.as_str().into(), scope.counts.as_str().into()];
    let mut dead_keys: Vec<String> = Vec::new();
    // Per delivery, in the cluster layout: its dead letter (owner's stream, JSON), if any.
    let mut letters: Vec<Option<(String, String)>> = Vec::with_capacity(results.len());
    let mut a = vec![Arg::from(DEAD_LETTER_MAXLEN), DEAD_LETTER_TTL_MS.into()];
    for (d, outcome) in results {
        let mut dead_letter = |what: &'static str| {
            let key = keys::dead_letters(&d.owner);
            let json = dead_letter_json(d, outcome, now);
            if scope.layout == Layout::Cluster {
                return (what, 0, 0, String::new(), Some((key, json)));
            }
            let i = match dead_keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    dead_keys.push(key);
                    dead_keys.len() - 1
                }
            };
            (what, 0, 4 + i, json, None)
        };
        let (what, due, index, json, letter) = match (outcome, &d.state) {
            (_, State::Capped { .. }) => {
                report.capped += 1;
                dead_letter("dropped")
            }
            (Outcome::Delivered(_), _) => {
                report.delivered += 1;
                ("ok", 0, 0, String::new(), None)
            }
            (Outcome::Failed { .. }, State::Due { .. }) if d.attempt < cfg.max_attempts => {
                report.retrying += 1;
                ("retry", now + cfg.backoff(d.attempt, rng), 0, String::new(), None)
            }
            (Outcome::Failed { .. }, _) => {
                report.dead += 1;
                dead_letter("dead")
            }
        };
        letters.push(letter);
        a.extend([Arg::from(d.id.as_str()), d.attempt.into(), what.into(), due.into(), index.into(), json.into()]);
    }
    k.extend(dead_keys.into_iter().map(Arg::from));
    let reply = link.eval(&SETTLE, &k, &a).await?;
    // The cluster layout's dead letters, grouped per owner, for the
    // deliveries whose outcome applied (flag 1 after the count).
    let applied = reply.values().get(1..).unwrap_or_default();
    let mut per_owner: Vec<(String, Vec<Arg>)> = Vec::new();
    for (letter, flag) in letters.into_iter().zip(applied) {
        let Some((key, json)) = letter else { continue };
        if flag.as_int() != Some(1) {
            continue;
        }
        match per_owner.iter_mut().find(|(k, _)| *k == key) {
            Some((_, args)) => args.push(json.into()),
            None => per_owner.push((key, vec![Arg::from(DEAD_LETTER_MAXLEN), DEAD_LETTER_TTL_MS.into(), json.into()])),
        }
    }
    for (key, args) in per_owner {
        link.eval(&DEAD_LETTER, &[Arg::from(key)], &args).await?;
    }
    Ok(())
}

/// One worker invocation: claim, deliver concurrently, settle; again while
/// full batches keep coming or fan-out is left, within [`PASS_BUDGET_MS`].
/// In the cluster layout that is done per topic (each claim is one slot):
/// a kick's topic, or a tick's topics one after another; a kick then
/// re-drives only its own topic's retries, a tick every topic's.
pub async fn run(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    deliver: &impl Deliver,
    cfg: &WebhookConfig,
    kick: &Kick,
) -> Result<Report, Error> {
    let mut topics: Vec<Topic> = match kick {
        Kick::Topic(t) => vec![t.clone()],
        Kick::Tick => {
            // The cluster layout's list is a zset: a random sample of it, so
            // past MAX_TICK_TOPICS every topic still comes up.
            let list = match cfg.layout {
                Layout::Node => Cmd::new("SMEMBERS").arg(keys::WEBHOOK_TOPICS),
                Layout::Cluster => Cmd::new("ZRANDMEMBER").arg(keys::WEBHOOK_TOPICS_BY_TIME).arg(MAX_TICK_TOPICS),
            };
            link.exec(&list)
                .await?
                .values()
                .iter()
                .filter_map(|v| v.as_bytes())
                .filter_map(|b| std::str::from_utf8(b).ok().and_then(|s| Topic::parse(s).ok()))
                .take(MAX_TICK_TOPICS)
                .collect()
        }
    };
    let started = clock.now_ms();
    let mut report = Report::default();
    match cfg.layout {
        Layout::Node => {
            drain(link, clock, rng, deliver, cfg, &mut Scope::node(topics), started, &mut report).await?;
        }
        Layout::Cluster => {
            // Each tick starts at another topic, so none waits behind a busy one.
            if topics.len() > 1 {
                let n = (rng.u64() % topics.len() as u64) as usize;
                topics.rotate_left(n);
            }
            // A topic whose master is down fails alone: the others go on,
            // and the pass reports the first failure at its end.
            let mut failed = None;
            for t in topics {
                if clock.now_ms().saturating_sub(started) > PASS_BUDGET_MS {
                    break;
                }
                let step = match drain(link, clock, rng, deliver, cfg, &mut Scope::topic(t.clone()), started, &mut report).await {
                    Ok(true) if *kick == Kick::Tick => forget_idle_topic(link, clock, &t).await,
                    other => other.map(drop),
                };
                if let Err(e) = step {
                    eprintln!("notify-worker: topic {t}: {e}");
                    failed.get_or_insert(e);
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    Ok(report)
}

/// How old a registration must be before a tick may drop its topic.
const TOPIC_GRACE_MS: u64 = 60_000;

/// Cluster layout: drops a topic from the tick's list when it has no
/// webhooks and no deliveries pending (a step on its slot, then one on the
/// list's: [`PRUNE_TOPIC`] keeps a topic registered on since the grace).
async fn forget_idle_topic(link: &impl Link, clock: &impl Clock, t: &Topic) -> Result<(), Error> {
    let exists = Cmd::new("EXISTS").arg(keys::topic_webhooks(t)).arg(keys::topic_pending(t));
    if link.exec(&exists).await?.int()? == 0 {
        let cutoff = clock.now_ms().saturating_sub(TOPIC_GRACE_MS);
        link.eval(&PRUNE_TOPIC, &[Arg::from(keys::WEBHOOK_TOPICS_BY_TIME)], &[Arg::from(t.as_str()), cutoff.into()]).await?;
    }
    Ok(())
}

/// Claims, delivers and settles `scope` until nothing is left or the pass's
/// budget is spent; `true` when the first claim found nothing to do.
#[allow(clippy::too_many_arguments)]
async fn drain(
    link: &impl Link,
    clock: &impl Clock,
    rng: &impl Rng,
    deliver: &impl Deliver,
    cfg: &WebhookConfig,
    scope: &mut Scope,
    started: u64,
    report: &mut Report,
) -> Result<bool, Error> {
    let lease = cfg.timeout_ms + 30_000;
    let mut first = true;
    loop {
        let now = clock.now_ms();
        // Each claim starts its budget at another topic, so none waits behind a busy one.
        if scope.topics.len() > 1 {
            let n = (rng.u64() % scope.topics.len() as u64) as usize;
            scope.topics.rotate_left(n);
        }
        let (more, batch) = claim(link, cfg, now, lease, scope).await?;
        if batch.is_empty() && !more {
            return Ok(first);
        }
        first = false;
        let full = batch.iter().filter(|d| d.leased()).count() >= BATCH;
        let mut sendable = Vec::new();
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
        for d in &batch {
            let failed = |error: &str| Some(Outcome::Failed { status: None, error: error.into() });
            match &d.state {
                State::Trimmed => outcomes.push(failed(TRIMMED)),
                State::Capped { .. } => outcomes.push(failed(CAPPED)),
                State::Due { .. } => {
                    let allowed = parse_url(&d.hook.url).map(|u| cfg.allow.allows(&u)).unwrap_or(false);
                    match (allowed, d.request(now / 1000)) {
                        (false, _) => outcomes.push(failed("the url is not in the allowed webhook origins (notify_webhook_allow)")),
                        (true, Err(e)) => outcomes.push(failed(&e)),
                        (true, Ok(req)) => {
                            sendable.push(req);
                            outcomes.push(None);
                        }
                    }
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
        settle(link, clock, rng, cfg, scope, &results, report).await?;
        if !(full || more) || clock.now_ms().saturating_sub(started) > PASS_BUDGET_MS {
            return Ok(false);
        }
    }
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
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let claimed = |kind: &str, rec: &str, e: &str, t: &str, data: &str| {
            Delivery::parse(&[b(kind), b("wh_1/5-0"), b(rec), b(&reg), b(e), b(t), b(data)])
        };
        let d = claimed("lease", "2\nwh_1\nuser:1\nt\n5-0", "ping", "1767225600000", "{\"b\":1,\"a\":\"x\\ny\"}").unwrap();
        assert_eq!((d.attempt, d.owner.as_str(), d.event_id.as_str()), (2, "user:1", "5-0"));
        assert_eq!(
            d.body().unwrap(),
            r#"{"type":"ping","timestamp":"2026-01-01T00:00:00.000Z","data":{"b":1,"a":"x\ny"},"topic":"t","id":"5-0"}"#
        );
        let r = d.request(1767225601).unwrap();
        let h = |n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(h("webhook-id"), d.message_id());
        assert_eq!(h("webhook-timestamp"), "1767225601");
        assert_eq!(h("webhook-signature"), sign(&hook.secret, &d.message_id(), 1767225601, &r.body).unwrap());
        let failed = |error: &str, status| Outcome::Failed { status, error: error.into() };
        let json = |d: &Delivery, o: &Outcome| -> serde_json::Value { serde_json::from_str(&dead_letter_json(d, o, 1767225600000)).unwrap() };
        let dead = json(&d, &failed("HTTP 500", Some(500)));
        assert_eq!(dead["attempts"], 2);
        assert_eq!(dead["last_status"], 500);
        assert_eq!(dead["payload"]["data"]["a"], "x\ny");
        assert!(dead.get("secret").is_none() && !dead.to_string().contains("whsec_"));

        // Without the event: trimmed (its lease made no attempt), or capped (never queued).
        let gone = claimed("gone", "3\nwh_1\nuser:1\nt\n5-0", "", "", "").unwrap();
        assert!(gone.body().is_none() && gone.request(1).is_err());
        let dead = json(&gone, &failed(TRIMMED, None));
        assert_eq!((dead["attempts"].clone(), dead["event"].clone(), dead["payload"].clone()), (2.into(), serde_json::Value::Null, serde_json::Value::Null));
        assert_eq!(dead["last_error"], TRIMMED);
        let capped = claimed("capped", "0\nwh_1\nuser:1\nt\n5-0", "ping", "", "").unwrap();
        let dead = json(&capped, &failed(CAPPED, None));
        assert_eq!((dead["attempts"].clone(), dead["event"].clone(), dead["payload"].clone()), (0.into(), "ping".into(), serde_json::Value::Null));
        assert!(claimed("other", "0\nwh_1\nuser:1\nt\n5-0", "", "", "").is_none());
        assert!(claimed("lease", "2\nwh_1\nt\n5-0", "ping", "1", "1").is_none(), "a record without its owner");
    }

    #[test]
    fn kicks() {
        assert_eq!(Kick::parse(b"orders"), Kick::Topic(Topic::parse("orders").unwrap()));
        assert_eq!(Kick::parse(b"*"), Kick::Tick);
        assert_eq!(Kick::parse(b""), Kick::Tick);
        assert_eq!(Kick::parse(&[0xff]), Kick::Tick);
    }
}
