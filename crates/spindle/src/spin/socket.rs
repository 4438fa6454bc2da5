//! RESP over `wasi:sockets`: the bounded TCP path.
//!
//! Spin's outbound Redis has no timeout: a Redis that accepts connections
//! and never answers holds a request for as long as its client waits. Here
//! the guest speaks RESP itself (codec in [`crate::redis::resp`]) on a TCP
//! socket Spin grants by address (`tcp://<ip>:<port>` in
//! `allowed_outbound_hosts`), so every exchange (connect, send, answer)
//! ends by `redis_timeout_ms`, plus the wait a blocking command asks for.
//! Waits go through spin-sdk's executor, so other futures of the request
//! run meanwhile.
//!
//! One connection per request, opened on first use, as with Spin's own
//! outbound Redis. `AUTH`, when configured, rides in the same write as the
//! first command: still one round trip.

use super::time::{deadline_after_ms, ready_before};
use crate::config::RedisConfig;
use crate::redis::resp::{self, Decoded, MAX_REPLY_BYTES};
use crate::redis::{Cmd, Error, Link, Reply, Transport};
use std::cell::RefCell;
use std::net::SocketAddr;
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress};
use wasi::sockets::tcp::TcpSocket;

/// How much one read asks the host for.
const READ_CHUNK: u64 = 16 * 1024;

pub struct SocketLink {
    addr: SocketAddr,
    /// `AUTH [user] password`, sent first on every new connection.
    auth: Option<Cmd>,
    timeout_ms: u64,
    /// Taken out for the length of an exchange: a concurrent caller (none
    /// today) opens its own connection rather than interleave on this one.
    conn: RefCell<Option<Conn>>,
}

/// Fields drop in order: the streams are children of the socket.
struct Conn {
    input: InputStream,
    output: OutputStream,
    _socket: TcpSocket,
    /// Bytes read past the last complete reply.
    buf: Vec<u8>,
}

impl SocketLink {
    pub fn new(addr: SocketAddr, cfg: &RedisConfig) -> Self {
        let auth = cfg.password.as_ref().map(|p| {
            let cmd = Cmd::new("AUTH");
            match &cfg.username {
                Some(u) => cmd.arg(u).arg(p),
                None => cmd.arg(p),
            }
        });
        SocketLink { addr, auth, timeout_ms: cfg.timeout_ms, conn: RefCell::new(None) }
    }

    /// Sends `cmd` (after `AUTH` on a new connection) and reads its reply.
    async fn round_trip(&self, cmd: &Cmd) -> Result<Reply, Error> {
        let deadline = deadline_after_ms(self.timeout_ms.saturating_add(cmd.block_ms()));
        let reused = self.conn.borrow_mut().take();
        let fresh = reused.is_none();
        let mut conn = match reused {
            Some(c) => c,
            None => self.connect(deadline).await?,
        };
        let auth = self.auth.as_ref().filter(|_| fresh);
        let mut out = Vec::new();
        for c in auth.into_iter().chain([cmd]) {
            resp::encode(c, &mut out);
        }
        let mut replies = conn.exchange(&out, 1 + auth.is_some() as usize, deadline).await?;
        if auth.is_some() {
            if let Err(e) = replies.remove(0) {
                return Err(Error::Config(format!("Redis refused redis_username/redis_password: {e}")));
            }
        }
        *self.conn.borrow_mut() = Some(conn);
        replies.pop().unwrap_or_else(|| Err(Error::Protocol("no reply".into())))
    }

    async fn connect(&self, deadline: u64) -> Result<Conn, Error> {
        use wasi::sockets::{instance_network::instance_network, tcp_create_socket::create_tcp_socket};
        let (family, remote) = match self.addr {
            SocketAddr::V4(a) => {
                let [a0, a1, a2, a3] = a.ip().octets();
                (IpAddressFamily::Ipv4, IpSocketAddress::Ipv4(Ipv4SocketAddress { port: a.port(), address: (a0, a1, a2, a3) }))
            }
            SocketAddr::V6(a) => {
                let s = a.ip().segments();
                let address = (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
                (IpAddressFamily::Ipv6, IpSocketAddress::Ipv6(Ipv6SocketAddress { port: a.port(), flow_info: 0, address, scope_id: 0 }))
            }
        };
        let socket = create_tcp_socket(family).map_err(|e| self.refused(e))?;
        socket.start_connect(&instance_network(), remote).map_err(|e| self.refused(e))?;
        loop {
            if !ready_before(|| socket.subscribe(), Some(deadline)).await {
                return Err(Error::Unavailable(format!("no connection to {} within the timeout", self.addr)));
            }
            match socket.finish_connect() {
                Ok((input, output)) => return Ok(Conn { input, output, _socket: socket, buf: Vec::new() }),
                Err(ErrorCode::WouldBlock) => continue,
                Err(e) => return Err(self.refused(e)),
            }
        }
    }

    fn refused(&self, e: ErrorCode) -> Error {
        match e {
            ErrorCode::AccessDenied => {
                Error::Config(format!("allowed_outbound_hosts does not grant tcp://{} (add \"tcp://{{{{ redis_host }}}}\")", self.addr))
            }
            other => Error::Unavailable(format!("connecting to {}: {}", self.addr, other.name())),
        }
    }
}

impl Conn {
    /// Writes `out`, then reads `expect` replies, all before `deadline`.
    async fn exchange(&mut self, out: &[u8], expect: usize, deadline: u64) -> Result<Vec<Decoded>, Error> {
        let timed_out = || Error::Unavailable("Redis did not answer within the timeout".into());
        let mut off = 0;
        while off < out.len() {
            let room = self.output.check_write().map_err(stream_err)? as usize;
            if room == 0 {
                if !ready_before(|| self.output.subscribe(), Some(deadline)).await {
                    return Err(timed_out());
                }
                continue;
            }
            let n = room.min(out.len() - off);
            self.output.write(&out[off..off + n]).map_err(stream_err)?;
            off += n;
        }
        self.output.flush().map_err(stream_err)?;

        let mut replies = Vec::with_capacity(expect);
        loop {
            while replies.len() < expect {
                let Some((reply, used)) = resp::decode(&self.buf)? else { break };
                replies.push(reply);
                self.buf.drain(..used);
            }
            if replies.len() == expect {
                return Ok(replies);
            }
            if self.buf.len() > MAX_REPLY_BYTES {
                return Err(Error::Protocol(format!("reply over {MAX_REPLY_BYTES} bytes")));
            }
            let chunk = self.input.read(READ_CHUNK).map_err(stream_err)?;
            if chunk.is_empty() {
                if !ready_before(|| self.input.subscribe(), Some(deadline)).await {
                    return Err(timed_out());
                }
                continue;
            }
            self.buf.extend_from_slice(&chunk);
        }
    }
}

fn stream_err(e: StreamError) -> Error {
    match e {
        StreamError::Closed => Error::Unavailable("Redis closed the connection".into()),
        StreamError::LastOperationFailed(e) => Error::Unavailable(format!("Redis connection failed: {}", e.to_debug_string())),
    }
}

impl Link for SocketLink {
    fn transport(&self) -> Transport {
        Transport::Tcp
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        self.round_trip(cmd).await
    }
}
