//! RESP2, the Redis wire protocol, as pure functions: commands out, [`Reply`]s in.
//!
//! The guest speaks it itself over `wasi:sockets` (`spin::socket`), because
//! Spin's outbound Redis has no timeout; keeping the codec here makes it
//! testable natively and fuzzable. Replies are flattened exactly as Spin's
//! outbound Redis flattens them (nested arrays become one list, a nil array
//! is one nil), so every transport hands callers identical replies.

use super::{Cmd, Error, Reply, Value};

/// The largest reply the guest accepts, in bytes: a bound on guest memory
/// (a session, a cache entry or a page of events is far smaller).
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// Appends `cmd` as a RESP array of bulk strings.
pub fn encode(cmd: &Cmd, out: &mut Vec<u8>) {
    fn bulk(out: &mut Vec<u8>, b: &[u8]) {
        out.push(b'$');
        out.extend_from_slice(b.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }
    out.push(b'*');
    out.extend_from_slice((cmd.args().len() + 1).to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    bulk(out, cmd.name().as_bytes());
    for a in cmd.args() {
        bulk(out, &a.0);
    }
}

/// One decoded reply: a value, or the error reply Redis sent for it.
pub type Decoded = Result<Reply, Error>;

/// Decodes the first complete reply in `buf`.
///
/// `Ok(None)` means more bytes are needed; `Ok(Some((reply, used)))` gives
/// the reply and how many bytes it took. An error reply (`-ERR …`) is a
/// decoded [`Error::Server`], not a failure of the stream; bytes that are not
/// RESP2 are `Err(Error::Protocol)`, after which the connection is unusable.
pub fn decode(buf: &[u8]) -> Result<Option<(Decoded, usize)>, Error> {
    let mut pos = 0;
    let mut out = Vec::new();
    // Elements still to read at each open array level (iterative: a deeply
    // nested reply costs no stack).
    let mut pending: Vec<i64> = Vec::new();
    loop {
        let Some((line, next)) = line(buf, pos)? else { return Ok(None) };
        let (kind, rest) = (line[0], &line[1..]);
        pos = next;
        match kind {
            b'+' => out.push(Value::Bytes(rest.to_vec())),
            b':' => out.push(Value::Int(int(rest)?)),
            b'-' => {
                if !pending.is_empty() {
                    // An error inside an array (EXEC, a script's table): Spin
                    // fails the whole call, and so do we.
                    return Err(Error::Protocol("error reply inside an array".into()));
                }
                return Ok(Some((Err(Error::Server(String::from_utf8_lossy(rest).into_owned())), pos)));
            }
            b'$' => match int(rest)? {
                -1 => out.push(Value::Nil),
                n if n < 0 || n as usize > MAX_REPLY_BYTES => return Err(Error::Protocol(format!("bulk length {n}"))),
                n => {
                    let n = n as usize;
                    if buf.len() < pos + n + 2 {
                        return Ok(None);
                    }
                    if &buf[pos + n..pos + n + 2] != b"\r\n" {
                        return Err(Error::Protocol("bulk string not followed by CRLF".into()));
                    }
                    out.push(Value::Bytes(buf[pos..pos + n].to_vec()));
                    pos += n + 2;
                }
            },
            b'*' => match int(rest)? {
                -1 => out.push(Value::Nil),
                n if n < 0 => return Err(Error::Protocol(format!("array length {n}"))),
                0 => {}
                n => {
                    pending.push(n);
                    continue;
                }
            },
            other => return Err(Error::Protocol(format!("unexpected RESP type byte {other:#04x}"))),
        }
        if pos > MAX_REPLY_BYTES {
            return Err(Error::Protocol(format!("reply over {MAX_REPLY_BYTES} bytes")));
        }
        // One element done: close every array it completes.
        while let Some(left) = pending.last_mut() {
            *left -= 1;
            if *left > 0 {
                break;
            }
            pending.pop();
        }
        if pending.is_empty() {
            return Ok(Some((Ok(Reply(out)), pos)));
        }
    }
}

/// The line starting at `pos`, without its CRLF, and where the next begins.
fn line(buf: &[u8], pos: usize) -> Result<Option<(&[u8], usize)>, Error> {
    let Some(i) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
        if buf.len() - pos > 64 * 1024 {
            return Err(Error::Protocol("RESP line too long".into()));
        }
        return Ok(None);
    };
    if i == 0 {
        return Err(Error::Protocol("empty RESP line".into()));
    }
    Ok(Some((&buf[pos..pos + i], pos + i + 2)))
}

fn int(b: &[u8]) -> Result<i64, Error> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Protocol(format!("bad RESP integer {:?}", String::from_utf8_lossy(b))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(wire: &[u8]) -> Decoded {
        let (r, used) = decode(wire).unwrap().expect("complete");
        assert_eq!(used, wire.len());
        r
    }

    fn vals(wire: &[u8]) -> Vec<Value> {
        one(wire).unwrap().into_values()
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&Cmd::new("SET").arg("k").arg(&b"a\r\nb"[..]), &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn scalars_are_one_value() {
        assert_eq!(vals(b"+OK\r\n"), vec![Value::Bytes(b"OK".to_vec())]);
        assert_eq!(vals(b":-42\r\n"), vec![Value::Int(-42)]);
        assert_eq!(vals(b"$-1\r\n"), vec![Value::Nil]);
        assert_eq!(vals(b"$0\r\n\r\n"), vec![Value::Bytes(vec![])]);
        assert_eq!(vals(b"$4\r\na\r\nb\r\n"), vec![Value::Bytes(b"a\r\nb".to_vec())]);
    }

    #[test]
    fn arrays_flatten_as_spin_does() {
        assert_eq!(vals(b"*0\r\n"), vec![]);
        assert_eq!(vals(b"*-1\r\n"), vec![Value::Nil]);
        let nested = b"*3\r\n:1\r\n*2\r\n$1\r\na\r\n*0\r\n$-1\r\n";
        assert_eq!(vals(nested), vec![Value::Int(1), Value::Bytes(b"a".to_vec()), Value::Nil]);
        let deep = format!("{}:7\r\n", "*1\r\n".repeat(10_000));
        assert_eq!(vals(deep.as_bytes()), vec![Value::Int(7)]);
    }

    #[test]
    fn error_replies_are_server_errors() {
        let e = one(b"-NOSCRIPT No matching script. Please use EVAL.\r\n").unwrap_err();
        assert!(e.is_noscript());
        assert!(decode(b"*2\r\n:1\r\n-ERR x\r\n").is_err());
    }

    #[test]
    fn partial_input_asks_for_more() {
        let wire = b"*2\r\n$5\r\nhello\r\n:3\r\n";
        for cut in 0..wire.len() {
            assert_eq!(decode(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut two = wire.to_vec();
        two.extend_from_slice(b"+PONG\r\n");
        let (_, used) = decode(&two).unwrap().unwrap();
        assert_eq!(used, wire.len());
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [&b"?x\r\n"[..], b"$abc\r\n", b"*-2\r\n", b"$3\r\nabcd\r\n", b"\r\n", b":1.5\r\n"] {
            assert!(matches!(decode(bad), Err(Error::Protocol(_))), "{bad:?}");
        }
        assert!(decode(format!("${}\r\n", MAX_REPLY_BYTES + 1).as_bytes()).is_err());
        assert!(decode(&vec![b'+'; 70_000]).is_err());
    }
}
