//! The socket options neither `nix` nor `socket2` wrap: TCP MD5 signatures (RFC 2385, Linux `TCP_MD5SIG`) and
//! GTSM's minimum TTL / hop count (RFC 5082, `IP_MINTTL`, `IPV6_MINHOPCOUNT`). The only `unsafe` code of the
//! crate lives here: one `setsockopt` call with a pointer and length that describe a live buffer.
#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Longest key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// Size of `struct tcp_md5sig` (linux/tcp.h): a 128-octet `sockaddr_storage`, flags, prefix length, key
/// length (u16), interface index (i32) and the 80-octet key.
const TCP_MD5SIG_LEN: usize = 128 + 1 + 1 + 2 + 4 + MD5_MAX_KEY_LEN;

fn setsockopt_raw(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option too long"))?;
    // SAFETY: `value` is a live, initialised buffer of exactly `len` bytes for the duration of the call; the
    // kernel copies it and keeps no pointer. `fd` is a borrowed, open socket descriptor.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Encodes `struct tcp_md5sig` for `peer` (port ignored) with `key` (empty: delete the key).
fn md5sig_bytes(peer: IpAddr, key: &[u8]) -> io::Result<[u8; TCP_MD5SIG_LEN]> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key longer than {MD5_MAX_KEY_LEN} octets"),
        ));
    }
    let mut b = [0u8; TCP_MD5SIG_LEN];
    match peer {
        IpAddr::V4(a) => {
            let family = u16::try_from(libc::AF_INET).unwrap_or(2);
            b[0..2].copy_from_slice(&family.to_ne_bytes());
            b[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            let family = u16::try_from(libc::AF_INET6).unwrap_or(10);
            b[0..2].copy_from_slice(&family.to_ne_bytes());
            b[8..24].copy_from_slice(&a.octets());
        }
    }
    // tcpm_flags (128) and tcpm_prefixlen (129) stay 0: the key is for this exact address.
    let keylen = u16::try_from(key.len()).unwrap_or(0);
    b[130..132].copy_from_slice(&keylen.to_ne_bytes());
    // tcpm_ifindex (132..136) stays 0.
    b[136..136 + key.len()].copy_from_slice(key);
    Ok(b)
}

/// Installs (or with an empty key removes) the TCP MD5 key for connections with `peer` on `fd` — a listening
/// socket (before the peer's SYN arrives) or a socket about to connect.
pub fn set_tcp_md5(fd: BorrowedFd<'_>, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    // A v4 peer reaching a dual-stack socket arrives as a v4-mapped v6 address.
    let addr = match (peer.ip(), socket_is_v6(fd)) {
        (IpAddr::V4(a), true) => IpAddr::V6(a.to_ipv6_mapped()),
        (ip, _) => ip,
    };
    let bytes = md5sig_bytes(addr, key)?;
    setsockopt_raw(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &bytes)
}

fn socket_is_v6(fd: BorrowedFd<'_>) -> bool {
    nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd.as_raw_fd())
        .ok()
        .is_some_and(|s| s.as_sockaddr_in6().is_some())
}

/// GTSM (RFC 5082): drop received packets whose TTL (IPv4) or hop limit (IPv6) is below `min`.
pub fn set_min_ttl(fd: BorrowedFd<'_>, v6: bool, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min).to_ne_bytes();
    if v6 {
        setsockopt_raw(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v)
    } else {
        setsockopt_raw(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn md5_struct_layout() {
        let b = md5sig_bytes("198.18.0.1".parse().unwrap(), b"secret").unwrap();
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 2);
        assert_eq!(&b[4..8], &[198, 18, 0, 1]);
        assert_eq!(u16::from_ne_bytes([b[130], b[131]]), 6);
        assert_eq!(&b[136..142], b"secret");
        assert!(md5sig_bytes("::1".parse().unwrap(), &[0; 81]).is_err());
    }

    #[test]
    fn options_apply_to_real_sockets() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_tcp_md5(l.as_fd(), "127.0.0.2:179".parse().unwrap(), b"k").unwrap();
        set_tcp_md5(l.as_fd(), "127.0.0.2:179".parse().unwrap(), b"").unwrap();
        set_min_ttl(l.as_fd(), false, 255).unwrap();
        let l6 = std::net::TcpListener::bind("[::1]:0");
        if let Ok(l6) = l6 {
            set_min_ttl(l6.as_fd(), true, 255).unwrap();
            set_tcp_md5(l6.as_fd(), "127.0.0.2:179".parse().unwrap(), b"k").unwrap();
        }
    }
}
