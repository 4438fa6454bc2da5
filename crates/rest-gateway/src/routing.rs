//! Where a command runs on a Redis Cluster: its hash slot, or every master,
//! or (for the multi-key commands clients expect to just work) one piece per
//! slot whose answers are put back together.
//!
//! Routing is an optimisation, not the source of truth: a command sent to
//! the wrong master gets a MOVED reply and is re-sent (see `cluster`). So
//! only the commands whose first key is not their first argument are listed
//! here; every other command is routed by its first argument, which for a
//! keyless command only picks some master, and Redis does not mind.

use std::borrow::Cow;

/// A command as parsed from the request: name, then arguments.
pub(crate) type Args<'a> = [Cow<'a, [u8]>];

/// Redis Cluster has this many hash slots.
pub(crate) const SLOTS: usize = 16384;

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), as the Redis Cluster
/// specification defines the key hash.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The hash slot of a key: of its hash tag (`{user1}:cart` hashes `user1`)
/// when it has a non-empty one, else of the whole key.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS as u16
}

/// How the answers of a command that ran on every master are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FanOut {
    /// Every master must succeed; the answer is the first master's
    /// (FLUSHALL, SCRIPT LOAD, FUNCTION LOAD …: each gives the same answer).
    AllSucceed,
    /// Integers, summed (DBSIZE).
    Sum,
    /// Arrays, concatenated (KEYS).
    Concat,
    /// Arrays of 0/1, combined element-wise with AND (SCRIPT EXISTS: a
    /// script exists only if every master has it).
    And,
}

/// How the pieces of a multi-key command split across slots are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Split {
    /// MGET: arrays, put back in the order of the keys.
    Mget,
    /// MSET: every piece must answer OK. Not atomic across slots.
    Mset,
    /// DEL, EXISTS, UNLINK, TOUCH: integers, summed.
    Sum,
}

/// Where one command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// No key: any master will do.
    Keyless,
    Slot(u16),
    /// One piece per slot; each piece is the command's name followed by the
    /// arguments at these indices (into the whole command, so ≥ 1).
    Split(Split, Vec<(u16, Vec<usize>)>),
    FanOut(FanOut),
}

fn is(name: &[u8], word: &str) -> bool {
    name.eq_ignore_ascii_case(word.as_bytes())
}

fn arg<'c>(cmd: &'c Args<'_>, i: usize) -> Option<&'c [u8]> {
    cmd.get(i).map(|a| a.as_ref())
}

fn fan_out(cmd: &Args<'_>) -> Option<FanOut> {
    let name = arg(cmd, 0)?;
    let sub = arg(cmd, 1).unwrap_or_default();
    Some(if is(name, "FLUSHALL") || is(name, "FLUSHDB") {
        FanOut::AllSucceed
    } else if is(name, "DBSIZE") {
        FanOut::Sum
    } else if is(name, "KEYS") {
        FanOut::Concat
    } else if is(name, "SCRIPT") && (is(sub, "LOAD") || is(sub, "FLUSH")) {
        FanOut::AllSucceed
    } else if is(name, "SCRIPT") && is(sub, "EXISTS") {
        FanOut::And
    } else if is(name, "FUNCTION") && (is(sub, "LOAD") || is(sub, "DELETE") || is(sub, "FLUSH")) {
        FanOut::AllSucceed
    } else {
        return None;
    })
}

/// Commands without keys (or whose arguments are not keys), sent to any
/// master. The list only needs the ones that take arguments: a command with
/// none is keyless anyway.
#[rustfmt::skip]
const KEYLESS: &[&str] = &[
    "ACL", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "ECHO", "FUNCTION", "INFO", "LATENCY",
    "LOLWUT", "PING", "PUBLISH", "PUBSUB", "SCRIPT", "SLOWLOG", "TIME",
];

/// The index of the first key, for the commands where it is not 1.
/// `None`: the command has no key.
fn first_key_index(cmd: &Args<'_>) -> Option<usize> {
    let name = arg(cmd, 0)?;
    let numkeys =
        |at: usize| -> Option<usize> { std::str::from_utf8(arg(cmd, at)?).ok()?.parse().ok() };
    let index = if [
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "FCALL_RO",
    ]
    .iter()
    .any(|n| is(name, n))
    {
        // EVAL script numkeys key...
        (numkeys(2)? > 0).then_some(3)?
    } else if [
        "ZUNION",
        "ZINTER",
        "ZDIFF",
        "ZINTERCARD",
        "SINTERCARD",
        "LMPOP",
        "ZMPOP",
    ]
    .iter()
    .any(|n| is(name, n))
    {
        // ZUNION numkeys key...
        (numkeys(1)? > 0).then_some(2)?
    } else if is(name, "XREAD") || is(name, "XREADGROUP") {
        // ... STREAMS key... id...
        1 + cmd.iter().position(|a| is(a, "STREAMS"))?
    } else if is(name, "XINFO") || is(name, "XGROUP") || is(name, "OBJECT") || is(name, "BITOP") {
        // XINFO STREAM key, BITOP AND dest key...; `XINFO HELP` has none.
        if is(arg(cmd, 1)?, "HELP") {
            return None;
        }
        2
    } else if is(name, "MEMORY") {
        // Only MEMORY USAGE has a key.
        if !is(arg(cmd, 1)?, "USAGE") {
            return None;
        }
        2
    } else if KEYLESS.iter().any(|n| is(name, n)) {
        return None;
    } else {
        1
    };
    (index < cmd.len()).then_some(index)
}

/// The multi-key commands that are split across slots rather than refused
/// with CROSSSLOT, and the step between their keys.
fn splittable(name: &[u8]) -> Option<(Split, usize)> {
    if is(name, "MGET") {
        Some((Split::Mget, 1))
    } else if is(name, "MSET") {
        Some((Split::Mset, 2))
    } else if ["DEL", "EXISTS", "UNLINK", "TOUCH"]
        .iter()
        .any(|n| is(name, n))
    {
        Some((Split::Sum, 1))
    } else {
        None
    }
}

/// Where `cmd` runs. Commands with several keys that are not splittable
/// are routed by their first key: Redis itself answers CROSSSLOT if the
/// others hash elsewhere.
pub(crate) fn route(cmd: &Args<'_>) -> Route {
    if let Some(kind) = fan_out(cmd) {
        return Route::FanOut(kind);
    }
    if let Some((kind, step)) = cmd.first().and_then(|n| splittable(n)) {
        let mut parts: Vec<(u16, Vec<usize>)> = Vec::new();
        let mut i = 1;
        while i < cmd.len() {
            let s = slot(&cmd[i]);
            let indices = match parts.iter_mut().find(|(p, _)| *p == s) {
                Some((_, indices)) => indices,
                None => {
                    parts.push((s, Vec::new()));
                    &mut parts.last_mut().expect("just pushed").1
                }
            };
            // An odd MSET (a key without a value) keeps its last key alone,
            // so that Redis reports the arity error.
            indices.extend(i..(i + step).min(cmd.len()));
            i += step;
        }
        return match parts.len() {
            0 => Route::Keyless,
            1 => Route::Slot(parts[0].0),
            _ => Route::Split(kind, parts),
        };
    }
    match first_key_index(cmd) {
        Some(i) => Route::Slot(slot(&cmd[i])),
        None => Route::Keyless,
    }
}

/// A command that cannot run correctly through the gateway on a cluster,
/// with the reason; `None` if it can.
pub(crate) fn cluster_refusal(cmd: &Args<'_>) -> Option<String> {
    let name = cmd.first()?;
    (is(name, "SCAN")).then(|| {
        "ERR command 'SCAN' is not supported by the REST gateway on a Redis Cluster: its cursor \
         belongs to one node; use SSCAN/HSCAN/ZSCAN on a key, or KEYS"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(args: &[&'static str]) -> Vec<Cow<'static, [u8]>> {
        args.iter().map(|a| Cow::Borrowed(a.as_bytes())).collect()
    }

    #[test]
    fn slots_match_the_specification() {
        // The specification's test vector, and slots `redis-cli CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"a"), 15495);
        assert_eq!(slot(b"b"), 3300);
        assert_eq!(slot(b"foo"), 12182);
        // Hash tags: only the first {...}, and only if non-empty.
        assert_eq!(slot(b"{a}x"), slot(b"a"));
        assert_eq!(slot(b"x{a}y{b}"), slot(b"a"));
        assert_eq!(slot(b"{}a"), crc16(b"{}a") % 16384);
        assert_eq!(slot(b"{a"), crc16(b"{a") % 16384);
    }

    #[test]
    fn routes() {
        assert_eq!(route(&c(&["GET", "a"])), Route::Slot(15495));
        assert_eq!(route(&c(&["PING"])), Route::Keyless);
        assert_eq!(route(&c(&["echo", "a"])), Route::Keyless);
        assert_eq!(route(&c(&["EVAL", "s", "0"])), Route::Keyless);
        assert_eq!(
            route(&c(&["evalsha", "s", "2", "b", "a"])),
            Route::Slot(3300)
        );
        assert_eq!(route(&c(&["EVAL", "s", "x"])), Route::Keyless);
        assert_eq!(route(&c(&["ZUNION", "2", "b", "a"])), Route::Slot(3300));
        assert_eq!(
            route(&c(&["XREAD", "COUNT", "2", "streams", "b", "0"])),
            Route::Slot(3300)
        );
        assert_eq!(route(&c(&["XINFO", "STREAM", "b"])), Route::Slot(3300));
        assert_eq!(route(&c(&["XINFO", "HELP"])), Route::Keyless);
        assert_eq!(route(&c(&["MEMORY", "USAGE", "b"])), Route::Slot(3300));
        assert_eq!(route(&c(&["MEMORY", "STATS"])), Route::Keyless);
        assert_eq!(
            route(&c(&["SCRIPT", "load", "x"])),
            Route::FanOut(FanOut::AllSucceed)
        );
        assert_eq!(
            route(&c(&["SCRIPT", "EXISTS", "x"])),
            Route::FanOut(FanOut::And)
        );
        assert_eq!(route(&c(&["SCRIPT", "KILL"])), Route::Keyless);
        assert_eq!(route(&c(&["DBSIZE"])), Route::FanOut(FanOut::Sum));
        // Same slot: not split.
        assert_eq!(route(&c(&["MGET", "{a}1", "{a}2"])), Route::Slot(15495));
        assert_eq!(
            route(&c(&["MGET", "a", "b", "{a}x"])),
            Route::Split(Split::Mget, vec![(15495, vec![1, 3]), (3300, vec![2])])
        );
        assert_eq!(
            route(&c(&["MSET", "a", "1", "b", "2"])),
            Route::Split(Split::Mset, vec![(15495, vec![1, 2]), (3300, vec![3, 4])])
        );
        assert_eq!(
            route(&c(&["MSET", "a", "1", "b"])),
            Route::Split(Split::Mset, vec![(15495, vec![1, 2]), (3300, vec![3])])
        );
        assert_eq!(route(&c(&["DEL"])), Route::Keyless);
        // Not splittable: routed by the first key, Redis answers CROSSSLOT.
        assert_eq!(route(&c(&["SUNION", "b", "a"])), Route::Slot(3300));
    }

    #[test]
    fn scan_is_refused_on_a_cluster() {
        assert!(cluster_refusal(&c(&["scan", "0"]))
            .unwrap()
            .contains("'SCAN'"));
        assert!(cluster_refusal(&c(&["SSCAN", "k", "0"])).is_none());
    }
}
