//! A Redis Cluster's slot map: which master serves each hash slot, read
//! from `CLUSTER SLOTS`. Immutable: a change (a refresh, or one slot moved by
//! a MOVED reply) makes a new map, so a request plans against one
//! consistent view.

use redis::Value;

use crate::routing::SLOTS;

/// No master serves the slot.
const UNASSIGNED: u16 = u16::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Topology {
    /// `host:port` of each master, sorted.
    masters: Vec<String>,
    /// For each slot, an index into `masters`, or `UNASSIGNED`.
    owner: Vec<u16>,
    /// How many replicas the cluster reported (for health reports).
    replicas: usize,
}

impl Topology {
    /// No masters, no slots: before the first refresh.
    pub(crate) fn empty() -> Self {
        Topology {
            masters: Vec::new(),
            owner: vec![UNASSIGNED; SLOTS],
            replicas: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.masters.is_empty()
    }

    pub(crate) fn masters(&self) -> &[String] {
        &self.masters
    }

    pub(crate) fn replicas(&self) -> usize {
        self.replicas
    }

    pub(crate) fn master_of(&self, slot: u16) -> Option<&str> {
        let i = *self.owner.get(usize::from(slot))?;
        self.masters.get(usize::from(i)).map(String::as_str)
    }

    /// How many slots have a master.
    pub(crate) fn covered(&self) -> usize {
        self.owner.iter().filter(|&&o| o != UNASSIGNED).count()
    }

    /// This map with `slot` served by `addr`, as a MOVED reply reports.
    pub(crate) fn with_moved(&self, slot: u16, addr: &str) -> Topology {
        let mut next = self.clone();
        let index = match next.masters.iter().position(|m| m == addr) {
            Some(i) => i,
            None => {
                next.masters.push(addr.to_owned());
                next.masters.len() - 1
            }
        };
        if let Some(o) = next.owner.get_mut(usize::from(slot)) {
            *o = index as u16;
        }
        next
    }

    /// Parses a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, …],
    /// replica…], …]`. An empty host means the node that answered
    /// (`asked_host`), as Redis documents; a `?` host (endpoint unknown)
    /// leaves the range unassigned.
    pub(crate) fn parse(reply: &Value, asked_host: &str) -> Result<Topology, String> {
        let bad = |what: &str| format!("unexpected CLUSTER SLOTS reply: {what}");
        let Value::Array(ranges) = reply else {
            return Err(bad("not an array"));
        };
        let mut topology = Topology::empty();
        let node_addr = |node: &Value| -> Result<Option<String>, String> {
            let Value::Array(fields) = node else {
                return Err(bad("node is not an array"));
            };
            let host = match fields.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                _ => return Err(bad("node without a host")),
            };
            let Some(Value::Int(port)) = fields.get(1) else {
                return Err(bad("node without a port"));
            };
            Ok(match host.as_str() {
                "?" => None,
                "" => Some(format!("{asked_host}:{port}")),
                // An IPv6 address needs brackets to be followed by a port.
                h if h.contains(':') => Some(format!("[{h}]:{port}")),
                h => Some(format!("{h}:{port}")),
            })
        };
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(bad("range is not an array"));
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(master)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad("range without start, end and master"));
            };
            let (start, end) = (*start, *end);
            if !(0..SLOTS as i64).contains(&start) || !(start..SLOTS as i64).contains(&end) {
                return Err(bad("slot out of range"));
            }
            topology.replicas += fields.len().saturating_sub(3);
            let Some(addr) = node_addr(master)? else {
                continue;
            };
            for replica in &fields[3..] {
                node_addr(replica)?;
            }
            let index = match topology.masters.iter().position(|m| *m == addr) {
                Some(i) => i,
                None => {
                    topology.masters.push(addr);
                    topology.masters.len() - 1
                }
            };
            for slot in start..=end {
                topology.owner[slot as usize] = index as u16;
            }
        }
        topology.sort_masters();
        Ok(topology)
    }

    /// Sorts `masters` (so two refreshes of the same cluster compare equal)
    /// and renumbers `owner` to match.
    fn sort_masters(&mut self) {
        let mut order: Vec<usize> = (0..self.masters.len()).collect();
        order.sort_by(|&a, &b| self.masters[a].cmp(&self.masters[b]));
        let mut renumber = vec![0u16; self.masters.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old] = new as u16;
        }
        self.masters = order.iter().map(|&i| self.masters[i].clone()).collect();
        for o in &mut self.owner {
            if *o != UNASSIGNED {
                *o = renumber[usize::from(*o)];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Int(start), Value::Int(end)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    #[test]
    fn parses_ranges_and_replicas() {
        let reply = Value::Array(vec![
            range(
                5461,
                16383,
                vec![node("10.0.0.2", 7001), node("10.0.0.5", 7004)],
            ),
            range(0, 5460, vec![node("", 7000)]),
        ]);
        let t = Topology::parse(&reply, "seed").unwrap();
        assert_eq!(t.masters(), ["10.0.0.2:7001", "seed:7000"]);
        assert_eq!(t.master_of(0), Some("seed:7000"));
        assert_eq!(t.master_of(5460), Some("seed:7000"));
        assert_eq!(t.master_of(5461), Some("10.0.0.2:7001"));
        assert_eq!(t.master_of(16383), Some("10.0.0.2:7001"));
        assert_eq!(t.covered(), SLOTS);
        assert_eq!(t.replicas(), 1);
        // The same cluster described in another order is the same map.
        let again = Value::Array(vec![
            range(0, 5460, vec![node("", 7000)]),
            range(5461, 16383, vec![node("10.0.0.2", 7001)]),
        ]);
        let mut t2 = Topology::parse(&again, "seed").unwrap();
        t2.replicas = 1;
        assert_eq!(t, t2);
    }

    #[test]
    fn moved_updates_one_slot() {
        let reply = Value::Array(vec![range(0, 16383, vec![node("a", 1)])]);
        let t = Topology::parse(&reply, "x").unwrap();
        let moved = t.with_moved(42, "b:2");
        assert_eq!(moved.master_of(42), Some("b:2"));
        assert_eq!(moved.master_of(41), Some("a:1"));
        assert_eq!(t.master_of(42), Some("a:1"));
    }

    #[test]
    fn unknown_endpoints_and_bad_replies() {
        let reply = Value::Array(vec![range(0, 99, vec![node("?", 1)])]);
        let t = Topology::parse(&reply, "x").unwrap();
        assert_eq!(t.covered(), 0);
        assert!(t.is_empty());
        let ipv6 = Value::Array(vec![range(0, 0, vec![node("::1", 7000)])]);
        assert_eq!(
            Topology::parse(&ipv6, "x").unwrap().masters(),
            ["[::1]:7000"]
        );
        assert!(Topology::parse(&Value::Okay, "x").is_err());
        let out_of_range = Value::Array(vec![range(0, 16384, vec![node("a", 1)])]);
        assert!(Topology::parse(&out_of_range, "x").is_err());
    }
}
