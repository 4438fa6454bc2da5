//! [`SpinLink`]: the one Redis link type components use.

use super::{OutboundLink, RestLink, SocketLink};
use crate::config::RedisConfig;
use crate::redis::{Cmd, Error, Link, Reply, Transport};

/// The link a component uses, chosen by [`RedisConfig`]: RESP over
/// `wasi:sockets` where Spin allows it (plain `redis` to an IP address,
/// bounded by `redis_timeout_ms`), Spin's outbound Redis otherwise (TLS, or a
/// host name; Spin gives it no timeout), or REST for `https` / `http`.
pub enum SpinLink {
    Socket(SocketLink),
    Outbound(OutboundLink),
    Rest(RestLink),
}

impl SpinLink {
    pub fn new(cfg: &RedisConfig) -> Self {
        match (cfg.transport, cfg.socket_addr()) {
            (Transport::Rest, _) => SpinLink::Rest(RestLink::new(cfg)),
            (_, Some(addr)) => SpinLink::Socket(SocketLink::new(addr, cfg)),
            _ => SpinLink::Outbound(OutboundLink::new(&cfg.url())),
        }
    }
}

impl Link for SpinLink {
    fn transport(&self) -> Transport {
        match self {
            SpinLink::Socket(_) | SpinLink::Outbound(_) => Transport::Tcp,
            SpinLink::Rest(_) => Transport::Rest,
        }
    }

    async fn exec(&self, cmd: &Cmd) -> Result<Reply, Error> {
        match self {
            SpinLink::Socket(l) => l.exec(cmd).await,
            SpinLink::Outbound(l) => l.exec(cmd).await,
            SpinLink::Rest(l) => l.exec(cmd).await,
        }
    }
}
