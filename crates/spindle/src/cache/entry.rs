//! What the cache stores, and what its lookup script answers.

use crate::redis::{self, FromReply, Value};

/// An entry as stored: epoch, load time and payload (`None`: not found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub epoch: i64,
    pub delta_ms: u64,
    pub value: Option<String>,
}

impl Entry {
    pub fn encode(&self) -> String {
        match &self.value {
            Some(v) => format!("{}:{}:V{v}", self.epoch, self.delta_ms),
            None => format!("{}:{}:N", self.epoch, self.delta_ms),
        }
    }

    pub fn decode(raw: &[u8]) -> Option<Entry> {
        let s = std::str::from_utf8(raw).ok()?;
        let (epoch, rest) = s.split_once(':')?;
        let (delta, rest) = rest.split_once(':')?;
        let value = match rest.as_bytes().first()? {
            b'V' => Some(rest[1..].to_owned()),
            b'N' if rest.len() == 1 => None,
            _ => return None,
        };
        Some(Entry { epoch: epoch.parse().ok()?, delta_ms: delta.parse().ok()?, value })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Hit,
    Lease,
    Refresh,
    Stale,
    Wait,
}

impl Status {
    pub(super) fn from_int(n: i64) -> Option<Status> {
        Some(match n {
            1 => Status::Hit,
            2 => Status::Lease,
            3 => Status::Refresh,
            4 => Status::Stale,
            5 => Status::Wait,
            _ => return None,
        })
    }
}

/// What one lookup script call said.
pub(super) struct Lookup {
    pub(super) epoch: Option<i64>,
    pub(super) refresh_epoch: bool,
    pub(super) keys: Vec<(Status, Option<Entry>)>,
}

pub(super) fn parse_lookup(values: &[Value], n: usize) -> Result<Lookup, redis::Error> {
    let bad = || redis::Error::Protocol("cache lookup: unexpected reply".into());
    // epoch (or nil), refresh flag, then (status, entry or nil) per key.
    if values.len() != 2 + 2 * n {
        return Err(bad());
    }
    let (epoch, refresh_epoch) = <(Option<i64>, bool)>::from_reply(&values[..2]).ok_or_else(bad)?;
    let keys = values[2..]
        .chunks(2)
        .map(|pair| {
            let (status, entry) = <(i64, Option<Vec<u8>>)>::from_reply(pair).ok_or_else(bad)?;
            let status = Status::from_int(status).ok_or_else(bad)?;
            let entry = entry.map(|b| Entry::decode(&b).ok_or_else(bad)).transpose()?;
            Ok((status, entry))
        })
        .collect::<Result<Vec<_>, redis::Error>>()?;
    Ok(Lookup { epoch, refresh_epoch, keys })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for e in [
            Entry { epoch: 3, delta_ms: 12, value: Some(r#"{"id":1}"#.into()) },
            Entry { epoch: 0, delta_ms: 1, value: None },
            Entry { epoch: -1, delta_ms: 1, value: Some(String::new()) },
            Entry { epoch: 7, delta_ms: 2, value: Some("a:b:Vc".into()) },
        ] {
            assert_eq!(Entry::decode(e.encode().as_bytes()), Some(e.clone()));
        }
        assert_eq!(Entry::encode(&Entry { epoch: 2, delta_ms: 5, value: None }), "2:5:N");
        for bad in ["", "1:2", "1:2:", "1:2:X", "x:2:V", "1:-2:V", "1:2:Nx", "\u{ff}"] {
            assert_eq!(Entry::decode(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn lookup_replies_parse() {
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let l = parse_lookup(&[b("4"), Value::Int(1), Value::Int(1), b("4:3:V{}"), Value::Int(5), Value::Nil], 2).unwrap();
        assert_eq!((l.epoch, l.refresh_epoch), (Some(4), true));
        assert_eq!(l.keys[0], (Status::Hit, Some(Entry { epoch: 4, delta_ms: 3, value: Some("{}".into()) })));
        assert_eq!(l.keys[1], (Status::Wait, None));
        assert!(parse_lookup(&[Value::Nil, Value::Int(0)], 1).is_err());
        assert!(parse_lookup(&[Value::Nil, Value::Int(0), Value::Int(9), Value::Nil], 1).is_err());
        assert!(parse_lookup(&[Value::Nil, Value::Int(0), Value::Int(1), b("junk")], 1).is_err());
    }
}
