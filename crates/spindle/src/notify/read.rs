//! Reading a topic after a cursor: long polls and Server-Sent Events.
//!
//! A cursor is a stream id (`<ms>-<seq>`): the last event the reader has
//! seen. Every read returns the events after it, in stream order, so a
//! reader that keeps its cursor sees each retained event once, whichever
//! host serves it and however often it reconnects (at-least-once delivery
//! becomes exactly-once per cursor). Without a cursor a reader starts at
//! the stream's current end (`$`), which is pinned first so the answer
//! always carries a usable `next`; `0` starts at the oldest retained event.
//!
//! Over Spin TCP a long poll is one `XREAD BLOCK`. Over REST the gateway,
//! like Upstash, refuses blocking commands, so the same bounded wait is
//! made of non-blocking `XREAD`s `notify_rest_poll_interval` apart.

use super::config::MAX_EVENTS_PER_READ;
use super::{keys, Error, NotifyConfig, Topic};
use crate::env::Sleep;
use crate::redis::{self, Cmd, Link, Transport, Value};
use crate::date::to_iso;

/// The cursor before the oldest event (`after=0`).
pub const ZERO_CURSOR: &str = "0-0";

/// Validates a cursor: `0`, or a stream id `<ms>-<seq>` (decimal, each
/// fitting 64 bits). 400 otherwise.
pub fn parse_cursor(s: &str) -> Result<String, Error> {
    let s = s.trim();
    if s == "0" {
        return Ok(ZERO_CURSOR.into());
    }
    // `parse::<u64>` bounds the value; leading zeros do not change it.
    let num = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u64>().is_ok();
    match s.split_once('-') {
        Some((ms, seq)) if num(ms) && num(seq) => Ok(format!("{}-{}", ms.parse::<u64>().unwrap_or(0), seq.parse::<u64>().unwrap_or(0))),
        _ => Err(Error::Invalid("a cursor is 0 or an event id such as 1767225600000-0".into())),
    }
}

/// One event as readers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub event: String,
    /// The data as compact JSON text, members in the publisher's order.
    pub data: String,
    pub published_at_ms: u64,
}

impl Event {
    /// `{"id","event","data","published_at"}`, the date in ISO-8601.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"id\":{},\"event\":{},\"data\":{},\"published_at\":{}}}",
            super::publish::quote(&self.id),
            super::publish::quote(&self.event),
            self.data,
            super::publish::quote(&to_iso(self.published_at_ms))
        )
    }

    /// One SSE message: `id`, `event` and the event JSON as one `data` line.
    pub fn to_sse(&self) -> String {
        format!("id: {}\nevent: {}\ndata: {}\n\n", self.id, self.event, self.to_json())
    }
}

/// A poll's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub events: Vec<Event>,
    /// The cursor for the next poll: the last event's id, or the cursor
    /// the poll started from when nothing arrived.
    pub next: String,
}

impl Batch {
    pub fn to_json(&self, topic: &Topic) -> String {
        let events: Vec<String> = self.events.iter().map(Event::to_json).collect();
        format!(
            "{{\"topic\":{},\"events\":[{}],\"next\":{}}}",
            super::publish::quote(topic.as_str()),
            events.join(","),
            super::publish::quote(&self.next)
        )
    }
}

fn text(v: &Value) -> Result<String, redis::Error> {
    match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).map_err(|_| redis::Error::Protocol("non-UTF-8 stream field".into())),
        Value::Int(n) => Ok(n.to_string()),
        Value::Nil => Err(redis::Error::Protocol("unexpected nil in a stream entry".into())),
    }
}

/// Parses flattened stream entries: `id, "e", event, "d", data, "t", ms` each
/// (the layout the publish script writes, in its order).
fn entries(values: &[Value]) -> Result<Vec<Event>, redis::Error> {
    if !values.len().is_multiple_of(7) {
        return Err(redis::Error::Protocol(format!("{} values do not make stream entries", values.len())));
    }
    values
        .chunks(7)
        .map(|c| {
            let names = (text(&c[1])?, text(&c[3])?, text(&c[5])?);
            if names != ("e".into(), "d".into(), "t".into()) {
                return Err(redis::Error::Protocol(format!("unexpected stream fields {names:?}")));
            }
            Ok(Event {
                id: text(&c[0])?,
                event: text(&c[2])?,
                data: text(&c[4])?,
                published_at_ms: text(&c[6])?.parse().unwrap_or(0),
            })
        })
        .collect()
}

/// The id of the topic's newest event, or `0-0` when it has none: the
/// cursor of a reader that starts "from now". One XREVRANGE.
pub async fn tail(link: &impl Link, topic: &Topic) -> Result<String, Error> {
    let reply = link.exec(&Cmd::new("XREVRANGE").arg(keys::stream(topic)).arg("+").arg("-").arg("COUNT").arg(1u64)).await?;
    match reply.values().first() {
        Some(v @ Value::Bytes(_)) => Ok(text(v)?),
        _ => Ok(ZERO_CURSOR.into()),
    }
}

/// Up to [`MAX_EVENTS_PER_READ`] events after `cursor`; with `block_ms`,
/// waits that long for the first (XREAD BLOCK: never over REST).
pub async fn read(link: &impl Link, topic: &Topic, cursor: &str, block_ms: Option<u64>) -> Result<Vec<Event>, Error> {
    let mut cmd = Cmd::new("XREAD").arg("COUNT").arg(MAX_EVENTS_PER_READ);
    if let Some(ms) = block_ms {
        cmd = cmd.block(ms.max(1));
    }
    let reply = link.exec(&cmd.arg("STREAMS").arg(keys::stream(topic)).arg(cursor)).await?;
    match reply.values() {
        [] | [Value::Nil] => Ok(Vec::new()),
        [_key, rest @ ..] => Ok(entries(rest)?),
    }
}

/// Where an SSE response body goes. `false`: the client is gone.
#[allow(async_fn_in_trait)]
pub trait Sink {
    async fn send(&mut self, chunk: Vec<u8>) -> bool;
}

/// `GET /notify/poll`: the events after `cursor` (or after the current
/// end), waiting up to `wait_ms` for the first. Returns as soon as any
/// arrive. TCP: one XREAD BLOCK (+1 XREVRANGE without a cursor); REST:
/// non-blocking reads every `rest_poll_interval_ms` within the same bound.
pub async fn poll(
    link: &impl Link,
    sleep: &impl Sleep,
    cfg: &NotifyConfig,
    topic: &Topic,
    cursor: Option<String>,
    wait_ms: u64,
) -> Result<Batch, Error> {
    let cursor = match cursor {
        Some(c) => c,
        None => tail(link, topic).await?,
    };
    let events = if link.transport() == Transport::Rest {
        let deadline = sleep.monotonic_ms() + wait_ms;
        loop {
            let events = read(link, topic, &cursor, None).await?;
            let now = sleep.monotonic_ms();
            if !events.is_empty() || now >= deadline {
                break events;
            }
            sleep.sleep_ms(cfg.rest_poll_interval_ms.min(deadline - now)).await;
        }
    } else {
        read(link, topic, &cursor, (wait_ms > 0).then_some(wait_ms)).await?
    };
    let next = events.last().map(|e| e.id.clone()).unwrap_or(cursor);
    Ok(Batch { events, next })
}

/// The SSE body of `GET /notify/stream`, from `cursor` (already resolved:
/// `Last-Event-ID`, `after`, or [`tail`]). It opens with a `retry:` hint and
/// `id: <cursor>` (which sets the client's last event id even before any
/// event, so a reconnect resumes where this response started rather than at
/// the new end), sends every event with its `id:`, a comment after
/// `sse_heartbeat_ms` of silence, and ends after `sse_lifetime_ms`, or when
/// the client goes away or Redis fails; the client then reconnects with
/// `Last-Event-ID` and loses nothing. Returns why it ended.
pub async fn stream_events(
    link: &impl Link,
    sleep: &impl Sleep,
    cfg: &NotifyConfig,
    sink: &mut impl Sink,
    topic: &Topic,
    mut cursor: String,
) -> Result<(), Error> {
    let start = sleep.monotonic_ms();
    let deadline = start + cfg.sse_lifetime_ms;
    if !sink.send(format!("retry: {}\nid: {cursor}\n\n", cfg.sse_retry_ms).into_bytes()).await {
        return Ok(());
    }
    let rest = link.transport() == Transport::Rest;
    let mut last_write = start;
    loop {
        let now = sleep.monotonic_ms();
        if now >= deadline {
            return Ok(());
        }
        let heartbeat_at = last_write + cfg.sse_heartbeat_ms;
        let wait = deadline.min(heartbeat_at).saturating_sub(now).max(1);
        let events = if rest {
            let events = read(link, topic, &cursor, None).await?;
            if events.is_empty() {
                sleep.sleep_ms(cfg.rest_poll_interval_ms.min(wait)).await;
            }
            events
        } else {
            read(link, topic, &cursor, Some(wait)).await?
        };
        let now = sleep.monotonic_ms();
        if let Some(last) = events.last() {
            cursor = last.id.clone();
            let chunk: String = events.iter().map(Event::to_sse).collect();
            if !sink.send(chunk.into_bytes()).await {
                return Ok(());
            }
            last_write = now;
        } else if now >= heartbeat_at {
            if !sink.send(b": keep-alive\n\n".to_vec()).await {
                return Ok(());
            }
            last_write = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor("0").unwrap(), "0-0");
        assert_eq!(parse_cursor("1767225600000-3").unwrap(), "1767225600000-3");
        assert_eq!(parse_cursor("007-01").unwrap(), "7-1");
        for bad in ["", "$", "-", "1-", "-1", "1-2-3", "a-1", "1767225600000", "99999999999999999999-0", "1 -1", ">"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    /// Found by fuzzing (tests/fuzz_topic_cursor.rs): leading zeros were
    /// refused past 20 digits, though `007-01` is accepted and the value fits.
    #[test]
    fn fuzz_regression_leading_zeros_past_20_digits() {
        assert_eq!(parse_cursor(" 0000-010000000000000000000\t").unwrap(), "0-10000000000000000000");
        assert_eq!(parse_cursor("000000000000000000000000001-0").unwrap(), "1-0");
        assert!(parse_cursor("018446744073709551616-0").is_err(), "still 64 bits");
    }

    #[test]
    fn parses_flattened_entries() {
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let vals = vec![b("1-0"), b("e"), b("hi"), b("d"), b(r#"{"b":1,"a":2}"#), b("t"), b("1767225600000")];
        let ev = entries(&vals).unwrap();
        assert_eq!(ev[0].data, r#"{"b":1,"a":2}"#);
        assert_eq!(
            ev[0].to_json(),
            r#"{"id":"1-0","event":"hi","data":{"b":1,"a":2},"published_at":"2026-01-01T00:00:00.000Z"}"#
        );
        assert!(ev[0].to_sse().starts_with("id: 1-0\nevent: hi\ndata: {"));
        assert!(entries(&vals[..6]).is_err());
        let mut wrong = vals.clone();
        wrong[1] = b("x");
        assert!(entries(&wrong).is_err());
        let batch = Batch { events: ev, next: "1-0".into() };
        let v: serde_json::Value = serde_json::from_str(&batch.to_json(&Topic::parse("t").unwrap())).unwrap();
        assert_eq!(v["next"], "1-0");
        assert_eq!(v["events"][0]["data"]["a"], 2);
    }
}
