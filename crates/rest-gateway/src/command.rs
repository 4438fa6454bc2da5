//! Turning request input (JSON bodies, URL paths) into Redis commands, and
//! refusing the commands that cannot work over a stateless REST call.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// One command: the name first, then its arguments, as raw bytes.
///
/// Arguments borrow from the request (body or URI) whenever they need no
/// unescaping, so a large value is copied only once: into the packed command.
pub(crate) type Command<'a> = Vec<Cow<'a, [u8]>>;

/// One argument of a JSON command. Upstash accepts strings and numbers
/// (`["SETEX", "k", 13, "v"]`); numbers travel as their decimal text.
/// Anything else (bool, null, object, nested array) is a client error.
struct Arg<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Arg<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgVisitor;

        impl<'de> Visitor<'de> for ArgVisitor {
            type Value = Arg<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Arg(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Arg(Cow::Owned(v.as_bytes().to_vec())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Arg(Cow::Owned(v.into_bytes())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Arg(Cow::Owned(v.to_string().into_bytes())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Arg(Cow::Owned(v.to_string().into_bytes())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // Display never uses exponent notation, which Redis would not parse.
                Ok(Arg(Cow::Owned(v.to_string().into_bytes())))
            }
        }

        deserializer.deserialize_any(ArgVisitor)
    }
}

/// A JSON command: `["SET", "k", "v"]`.
struct JsonCommand<'a>(Command<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonCommand<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CommandVisitor;

        impl<'de> Visitor<'de> for CommandVisitor {
            type Value = JsonCommand<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a non-empty array of strings or numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut args = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                while let Some(Arg(arg)) = seq.next_element()? {
                    args.push(arg);
                }
                if args.is_empty() {
                    return Err(de::Error::invalid_length(0, &self));
                }
                Ok(JsonCommand(args))
            }
        }

        deserializer.deserialize_seq(CommandVisitor)
    }
}

/// Parses the body of `POST /`: one command as a JSON array.
pub(crate) fn parse_command(body: &[u8]) -> Result<Command<'_>, String> {
    serde_json::from_slice::<JsonCommand>(body)
        .map(|c| c.0)
        .map_err(|e| format!("ERR invalid request body: {e}"))
}

/// Parses the body of `/pipeline` and `/multi-exec`: a non-empty JSON array
/// of commands.
pub(crate) fn parse_batch(body: &[u8]) -> Result<Vec<Command<'_>>, String> {
    let batch: Vec<JsonCommand> =
        serde_json::from_slice(body).map_err(|e| format!("ERR invalid request body: {e}"))?;
    if batch.is_empty() {
        return Err("ERR invalid request body: expected a non-empty array of commands".into());
    }
    Ok(batch.into_iter().map(|c| c.0).collect())
}

/// Parses the path form, `/set/k/v?EX=100`.
///
/// Segments are percent-decoded (not `+`-decoded: that is a query-string
/// convention). A trailing slash is ignored. `body`, when present and
/// non-empty, becomes the argument after the path segments, and the query
/// pairs other than `_token` follow it (`key`, then `value` if non-empty), as
/// Upstash documents for `POST /set/foo?EX=100` with the value in the body.
pub(crate) fn parse_path<'a>(
    path: &'a str,
    query: &'a [(Cow<'a, str>, Cow<'a, str>)],
    body: Option<&'a [u8]>,
) -> Command<'a> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut args: Command<'a> = trimmed
        .split('/')
        .map(|segment| Cow::from(percent_decode_str(segment)))
        .collect();
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        args.push(Cow::Borrowed(body));
    }
    for (key, value) in query.iter().filter(|(k, _)| k.as_ref() != "_token") {
        args.push(Cow::Borrowed(key.as_bytes()));
        if !value.is_empty() {
            args.push(Cow::Borrowed(value.as_bytes()));
        }
    }
    args
}

/// Commands that change or depend on the state of the connection. Requests
/// share one multiplexed connection, so these would leak into other callers'
/// commands, or never answer.
const CONNECTION_STATE: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "AUTH",
    "HELLO",
    "QUIT",
    "RESET",
    "CLIENT",
    "SYNC",
    "PSYNC",
    "SHUTDOWN",
];

/// Commands that block the connection until data arrives. On a shared
/// multiplexed connection they would stall every other request behind them.
const BLOCKING: &[&str] = &[
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BLMOVE",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
];

/// Whether the command runs a script or function, which may legitimately
/// keep Redis busy for long.
pub(crate) fn is_script(cmd: &[Cow<'_, [u8]>]) -> bool {
    const SCRIPTS: &[&str] = &[
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "FCALL_RO",
    ];
    cmd.first().is_some_and(|name| {
        SCRIPTS
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(name))
    })
}

/// The commands a read-only token may run: exactly those Redis 7.0 flags
/// `readonly` in `COMMAND INFO` (subcommands as `OBJECT ENCODING`), plus
/// PING and ECHO, which touch no data. A static list, so that what a token
/// may do does not change with the server behind the gateway; a command
/// newer than the list is refused (fail closed). The test
/// `read_only_list_is_redis_own` checks it against the live server's flags.
/// EVAL, EVALSHA and FCALL are absent (their scripts may write); their
/// `_RO` forms, which Redis runs read-only, are present.
#[rustfmt::skip]
pub(crate) const READ_ONLY: &[&str] = &[
    "BITCOUNT", "BITFIELD_RO", "BITPOS", "DBSIZE", "DUMP", "EVALSHA_RO", "EVAL_RO", "EXISTS",
    "EXPIRETIME", "FCALL_RO", "GEODIST", "GEOHASH", "GEOPOS", "GEORADIUSBYMEMBER_RO",
    "GEORADIUS_RO", "GEOSEARCH", "GET", "GETBIT", "GETRANGE", "HEXISTS", "HGET", "HGETALL",
    "HKEYS", "HLEN", "HMGET", "HRANDFIELD", "HSCAN", "HSTRLEN", "HVALS", "KEYS", "LCS", "LINDEX",
    "LLEN", "LOLWUT", "LPOS", "LRANGE", "MEMORY USAGE", "MGET", "OBJECT ENCODING", "OBJECT FREQ",
    "OBJECT IDLETIME", "OBJECT REFCOUNT", "PEXPIRETIME", "PFCOUNT", "PTTL", "RANDOMKEY", "SCAN",
    "SCARD", "SDIFF", "SINTER", "SINTERCARD", "SISMEMBER", "SMEMBERS", "SMISMEMBER", "SORT_RO",
    "SRANDMEMBER", "SSCAN", "STRLEN", "SUBSTR", "SUNION", "TOUCH", "TTL", "TYPE",
    "XINFO CONSUMERS", "XINFO GROUPS", "XINFO STREAM", "XLEN", "XPENDING", "XRANGE", "XREAD",
    "XREVRANGE", "ZCARD", "ZCOUNT", "ZDIFF", "ZINTER", "ZINTERCARD", "ZLEXCOUNT", "ZMSCORE",
    "ZRANDMEMBER", "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZRANK", "ZREVRANGE",
    "ZREVRANGEBYLEX", "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN", "ZSCORE", "ZUNION",
    // Not flagged readonly by Redis, but read nothing and write nothing.
    "PING", "ECHO",
];

/// Whether a read-only token may run `cmd` (see [`READ_ONLY`]).
pub(crate) fn is_read_only(cmd: &[Cow<'_, [u8]>]) -> bool {
    let Some(name) = cmd.first() else {
        return false;
    };
    let sub = cmd.get(1).map(|s| s.as_ref()).unwrap_or_default();
    READ_ONLY.iter().any(|entry| match entry.split_once(' ') {
        Some((container, subcommand)) => {
            container.as_bytes().eq_ignore_ascii_case(name)
                && subcommand.as_bytes().eq_ignore_ascii_case(sub)
        }
        None => entry.as_bytes().eq_ignore_ascii_case(name),
    })
}

/// The command's name as shown in error messages: `SET`, `OBJECT ENCODING`.
pub(crate) fn shown_name(cmd: &[Cow<'_, [u8]>]) -> String {
    let name = cmd
        .first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_uppercase())
        .unwrap_or_default();
    let container = [
        "OBJECT", "MEMORY", "XINFO", "SCRIPT", "CONFIG", "CLIENT", "FUNCTION", "XGROUP",
    ];
    match cmd.get(1) {
        Some(sub) if container.contains(&name.as_str()) => {
            format!(
                "{name} {}",
                String::from_utf8_lossy(sub).to_ascii_uppercase()
            )
        }
        _ => name,
    }
}

/// Refuses commands that cannot run over the gateway, with an error that
/// names the command. Names are compared case-insensitively, as Redis does.
pub(crate) fn check_supported(cmd: &[Cow<'_, [u8]>]) -> Result<(), String> {
    let Some(name) = cmd.first() else {
        return Err("ERR empty command".into());
    };
    let is = |list: &[&str]| list.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name));
    let shown = || String::from_utf8_lossy(name).to_ascii_uppercase();
    if is(CONNECTION_STATE) {
        return Err(format!(
            "ERR command '{}' is not supported by the REST gateway: it depends on connection state",
            shown()
        ));
    }
    if is(BLOCKING) || is_blocking_stream_read(name, &cmd[1..]) {
        return Err(format!(
            "ERR command '{}' is not supported by the REST gateway: blocking commands are not allowed",
            shown()
        ));
    }
    Ok(())
}

/// `XREAD`/`XREADGROUP` block only with a `BLOCK` option. Options are scanned
/// up to `STREAMS` only, so a key or group called "block" is not mistaken for
/// the option.
fn is_blocking_stream_read(name: &[u8], args: &[Cow<'_, [u8]>]) -> bool {
    let eq = |arg: &[u8], word: &str| arg.eq_ignore_ascii_case(word.as_bytes());
    let mut i = if eq(name, "XREAD") {
        0
    } else if eq(name, "XREADGROUP") {
        // GROUP <group> <consumer>
        if args.first().is_some_and(|a| eq(a, "GROUP")) {
            3
        } else {
            0
        }
    } else {
        return false;
    };
    while let Some(arg) = args.get(i) {
        if eq(arg, "BLOCK") {
            return true;
        }
        if eq(arg, "STREAMS") {
            return false;
        }
        // COUNT takes a value; skip it so `COUNT block` is not misread.
        i += if eq(arg, "COUNT") { 2 } else { 1 };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(cmd: &Command<'_>) -> Vec<String> {
        cmd.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }

    #[test]
    fn json_command_accepts_strings_and_numbers() {
        let cmd = parse_command(br#"["SETEX","k",13,"v\n",1.5,-2]"#).unwrap();
        assert_eq!(owned(&cmd), ["SETEX", "k", "13", "v\n", "1.5", "-2"]);
    }

    #[test]
    fn json_command_rejects_other_types_and_empty() {
        assert!(parse_command(br#"["SET","k",true]"#).is_err());
        assert!(parse_command(br#"["SET","k",null]"#).is_err());
        assert!(parse_command(br#"["SET",["k"]]"#).is_err());
        assert!(parse_command(br#"{"cmd":"GET"}"#).is_err());
        assert!(parse_command(b"[]").is_err());
        assert!(parse_command(b"[\"GET\"").is_err());
        assert!(parse_batch(b"[]").is_err());
        assert!(parse_batch(br#"[["GET","a"],[]]"#).is_err());
    }

    #[test]
    fn path_form_decodes_and_appends_body_then_query() {
        let query = vec![
            (Cow::from("_token"), Cow::from("secret")),
            (Cow::from("EX"), Cow::from("100")),
            (Cow::from("NX"), Cow::from("")),
        ];
        let cmd = parse_path("/set/a%2Fb/", &query, Some(b"v a l"));
        assert_eq!(owned(&cmd), ["set", "a/b", "v a l", "EX", "100", "NX"]);
        let cmd = parse_path("/get/k", &[], Some(b""));
        assert_eq!(owned(&cmd), ["get", "k"]);
    }

    /// The read-only list is exactly what the Redis here flags `readonly`
    /// (plus PING and ECHO): a real `redis-server`, asked with `COMMAND`.
    #[test]
    fn read_only_list_is_redis_own() {
        use std::process::{Command as Process, Stdio};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port()
            .to_string();
        let mut server = Process::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        let table = (0..500)
            .find_map(|_| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                let out = Process::new("redis-cli")
                    .args(["-p", &port, "--json", "COMMAND"])
                    .output()
                    .ok()?;
                serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
            })
            .expect("COMMAND from redis-server");
        let _ = server.kill();
        let _ = server.wait();

        // [name, arity, flags, first, last, step, acl, tips, key specs, subcommands]
        fn collect(entry: &serde_json::Value, container: Option<&str>, out: &mut Vec<String>) {
            let name = entry[0].as_str().unwrap().to_ascii_uppercase();
            let subs = entry
                .get(9)
                .and_then(|s| s.as_array())
                .filter(|s| !s.is_empty());
            if let (Some(subs), None) = (subs, container) {
                for sub in subs {
                    collect(sub, Some(&name), out);
                }
                return;
            }
            let flags = entry[2].as_array().unwrap();
            if flags.iter().any(|f| f == "readonly") {
                out.push(name.replace('|', " "));
            }
        }
        let mut flagged = Vec::new();
        for entry in table.as_array().unwrap() {
            collect(entry, None, &mut flagged);
        }
        flagged.sort();
        let mut ours: Vec<String> = READ_ONLY
            .iter()
            .filter(|n| !["PING", "ECHO"].contains(n))
            .map(|n| n.to_string())
            .collect();
        ours.sort();
        assert_eq!(ours, flagged);
    }

    #[test]
    fn read_only_commands() {
        let c = |s: &[&'static str]| -> Command<'static> {
            s.iter().map(|a| Cow::Borrowed(a.as_bytes())).collect()
        };
        assert!(is_read_only(&c(&["get", "k"])));
        assert!(is_read_only(&c(&["Object", "encoding", "k"])));
        assert!(is_read_only(&c(&["EVALSHA_RO", "x", "0"])));
        assert!(is_read_only(&c(&["PING"])));
        assert!(!is_read_only(&c(&["OBJECT", "HELP"])));
        assert!(!is_read_only(&c(&["SET", "k", "v"])));
        assert!(!is_read_only(&c(&["EVAL", "return 1", "0"])));
        assert!(!is_read_only(&c(&["EVALSHA", "x", "0"])));
        assert!(!is_read_only(&c(&["FCALL", "f", "0"])));
        assert!(!is_read_only(&c(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "STREAMS",
            "s",
            ">"
        ])));
        assert_eq!(
            shown_name(&c(&["object", "encoding", "k"])),
            "OBJECT ENCODING"
        );
        assert_eq!(shown_name(&c(&["set", "k", "v"])), "SET");
    }

    #[test]
    fn unsupported_commands_are_named() {
        let c = |s: &[&'static str]| -> Command<'static> {
            s.iter().map(|a| Cow::Borrowed(a.as_bytes())).collect()
        };
        let err = check_supported(&c(&["subscribe", "ch"])).unwrap_err();
        assert!(err.contains("'SUBSCRIBE'"), "{err}");
        assert!(check_supported(&c(&["BLPOP", "l", "0"]))
            .unwrap_err()
            .contains("BLPOP"));
        assert!(check_supported(&c(&["xread", "block", "0", "STREAMS", "s", "$"])).is_err());
        assert!(check_supported(&c(&["XREAD", "COUNT", "block", "STREAMS", "block", "0"])).is_ok());
        assert!(check_supported(&c(&["XREAD", "STREAMS", "block", "0"])).is_ok());
        assert!(check_supported(&c(&[
            "XREADGROUP",
            "GROUP",
            "block",
            "c",
            "BLOCK",
            "10",
            "STREAMS",
            "s",
            ">"
        ]))
        .is_err());
        assert!(check_supported(&c(&[
            "XREADGROUP",
            "GROUP",
            "block",
            "c",
            "STREAMS",
            "s",
            ">"
        ]))
        .is_ok());
        assert!(check_supported(&c(&["GET", "k"])).is_ok());
    }
}
