//! `wasi:sockets`, with Spin 4.0.2's rules (factor-outbound-networking and
//! factor-wasi):
//! - a TCP `connect` is allowed when `allowed_outbound_hosts` allows
//!   `tcp://<ip>:<port>`: the address the guest connects to, matched as an
//!   IP literal or against a CIDR, never as a name;
//! - UDP needs `udp://<ip>:<port>` likewise, for a `bind` to a given
//!   address and for each datagram sent;
//! - listening is refused, and so is a TCP `bind` to a given address;
//! - name lookup (`ip-name-lookup`) is refused: even `localhost` answers
//!   `permanent-resolver-failure`, so a component connects to addresses.
//!
//! wasmtime 48 (Spin 4.0.2 has wasmtime 44) also asks before the implicit
//! bind a `connect` or `send` makes, with the unspecified address and port 0;
//! that check passes, so `connect` works as on Spin. It cannot tell that
//! from a guest's own `bind` to `0.0.0.0:0`, which therefore succeeds here
//! (and on Spin fails); listening from there is still refused.

use super::allowed_hosts::AllowedHosts;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime_wasi::sockets::SocketAddrUse;

pub fn configure(wasi: &mut wasmtime_wasi::WasiCtxBuilder, allowed: &Arc<AllowedHosts>) {
    let allowed = allowed.clone();
    wasi.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(false).socket_addr_check(move |addr, addr_use| {
        let allowed = allowed.clone();
        Box::pin(async move { permitted(&allowed, addr, addr_use) })
    });
}

fn permitted(allowed: &AllowedHosts, addr: SocketAddr, addr_use: SocketAddrUse) -> bool {
    let implicit_bind = addr.ip().is_unspecified() && addr.port() == 0;
    match addr_use {
        SocketAddrUse::TcpBind => implicit_bind,
        SocketAddrUse::TcpConnect => allowed.check_url(&addr.to_string(), "tcp"),
        SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
        SocketAddrUse::UdpBind => implicit_bind || allowed.check_url(&addr.to_string(), "udp"),
        SocketAddrUse::UdpSend => allowed.check_url(&addr.to_string(), "udp"),
        // Spin does not filter what arrives on a socket it let the guest open.
        SocketAddrUse::UdpReceive => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_is_checked_on_the_address_and_bind_listen_are_refused() {
        let a = AllowedHosts::parse(&["tcp://127.0.0.1:6379".into(), "udp://10.0.0.53:53".into()]).unwrap();
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(permitted(&a, at("127.0.0.1:6379"), SocketAddrUse::TcpConnect));
        assert!(!permitted(&a, at("127.0.0.1:6380"), SocketAddrUse::TcpConnect));
        assert!(!permitted(&a, at("127.0.0.1:6379"), SocketAddrUse::UdpSend), "tcp:// does not cover UDP");
        assert!(permitted(&a, at("0.0.0.0:0"), SocketAddrUse::TcpBind), "the implicit bind of a connect");
        assert!(permitted(&a, at("[::]:0"), SocketAddrUse::TcpBind));
        assert!(!permitted(&a, at("127.0.0.1:6379"), SocketAddrUse::TcpBind));
        assert!(!permitted(&a, at("0.0.0.0:8080"), SocketAddrUse::TcpBind));
        assert!(!permitted(&a, at("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert!(permitted(&a, at("10.0.0.53:53"), SocketAddrUse::UdpSend));
        assert!(!permitted(&a, at("10.0.0.54:53"), SocketAddrUse::UdpSend));
        assert!(permitted(&a, at("0.0.0.0:0"), SocketAddrUse::UdpBind));
        assert!(!permitted(&a, at("0.0.0.0:5353"), SocketAddrUse::UdpBind));
    }
}
