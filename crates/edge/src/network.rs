//! BGP sockets: the passive listener (with every peer's MD5 key installed before SYNs arrive) and outgoing
//! connections (bound source, MD5, GTSM: TTL 255 out and a minimum TTL of 255 in).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::sockopt;

/// Per-peer transport security.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    /// TCP MD5 key (RFC 2385).
    pub md5_key: Option<Vec<u8>>,
    /// GTSM (RFC 5082).
    pub ttl_security: bool,
}

/// Applies GTSM to a connected or connecting socket.
pub fn apply_gtsm(s: &impl AsFd, v6: bool) -> io::Result<()> {
    let sock = socket2::SockRef::from(s);
    if v6 {
        sock.set_unicast_hops_v6(255)?;
    } else {
        sock.set_ttl_v4(255)?;
    }
    sockopt::set_min_ttl(s.as_fd(), v6, 255)
}

/// Connects to `peer` from `local` (if given) within `timeout`.
pub async fn connect(
    peer: SocketAddr,
    local: Option<IpAddr>,
    transport: &Transport,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let v6 = peer.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()?
    } else {
        TcpSocket::new_v4()?
    };
    if let Some(l) = local {
        socket.bind(SocketAddr::new(l, 0))?;
    }
    if let Some(key) = &transport.md5_key {
        sockopt::set_tcp_md5(socket.as_fd(), peer, key)?;
    }
    if transport.ttl_security {
        apply_gtsm(&socket, v6)?;
    }
    socket.set_nodelay(true)?;
    match tokio::time::timeout(timeout, socket.connect(peer)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}

/// Binds a BGP listener on `addr` (an unspecified IPv6 address also accepts IPv4).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

/// Installs (or removes, with `None`) a peer's MD5 key on a listener.
pub fn set_listener_md5(l: &TcpListener, peer: IpAddr, key: Option<&[u8]>) -> io::Result<()> {
    sockopt::set_tcp_md5(l.as_fd(), SocketAddr::new(peer, 0), key.unwrap_or_default())
}

/// The address a peer connected from, with IPv4-mapped IPv6 addresses unmapped.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The session's local addresses as next-hop candidates.
pub fn local_next_hops(local: IpAddr) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    match canonical(local) {
        IpAddr::V4(a) => (Some(a), None),
        IpAddr::V6(a) => (None, Some(a)),
    }
}
