//! BFD over UDP (RFC 5880 asynchronous mode, RFC 5881 single hop): one receive socket per address family on
//! port 3784 that checks TTL/hop limit 255 on every packet and hands it to the session for its source address,
//! and one task per session that owns a `yagura_bfd::fsm::Session`, sends from a port in 49152-65535 with TTL
//! 255, runs the transmit and detection timers, and publishes the session state on a `watch` channel that the
//! BGP session follows.
//!
//! ```text
//!  UDP :3784 (v4, v6) ──recv loop──► by source address ──mpsc──► session task ──watch──► BGP peer task
//!                                                                    │ tx socket (TTL 255, port 49152+)
//! ```

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrStorage};
use rand::Rng;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use yagura_bfd::fsm::{jittered, Session, Timing};
use yagura_bfd::packet::{ControlPacket, Diagnostic, State, SINGLE_HOP_PORT};

use crate::config::BfdConfig;
use crate::metrics::Metrics;
use crate::network::canonical;

/// What the BGP side and the status API see of a BFD session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdStatus {
    /// Local session state.
    pub state: State,
    /// When the state last changed.
    pub since: SystemTime,
    /// When a detection timeout (or the neighbour signalling down) last took an Up session down.
    pub last_down: Option<SystemTime>,
    /// The detection time in force, if known.
    pub detection_time: Option<Duration>,
}

/// Sessions by peer address: (the session's discriminator, its packet queue).
type Sessions = Arc<Mutex<HashMap<IpAddr, (u32, mpsc::Sender<ControlPacket>)>>>;

/// The BFD service: receive sockets and the table of sessions.
#[derive(Clone)]
pub struct Bfd {
    sessions: Sessions,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Bfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bfd").finish_non_exhaustive()
    }
}

impl Bfd {
    /// Binds UDP 3784 for IPv4 and IPv6 (a family that cannot be bound is skipped with a warning) and starts
    /// the receive loops, which stop with `shutdown`.
    pub fn start(metrics: Arc<Metrics>, shutdown: CancellationToken) -> io::Result<Self> {
        let sessions: Sessions = Arc::default();
        let mut bound = 0;
        for v6 in [false, true] {
            match bind_rx(v6) {
                Ok(sock) => {
                    bound += 1;
                    let s = sessions.clone();
                    let m = metrics.clone();
                    let t = shutdown.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = rx_loop(sock, v6, s, m) => {}
                            () = t.cancelled() => {}
                        }
                    });
                }
                Err(e) => warn!(ipv6 = v6, error = %e, "BFD: cannot bind UDP port 3784"),
            }
        }
        if bound == 0 {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "BFD: could not bind UDP port 3784 for IPv4 or IPv6",
            ));
        }
        Ok(Self { sessions, metrics })
    }

    /// Starts a session with `peer` (sending from `local` when given). The session runs until `stop` is
    /// cancelled, then sends AdminDown once and ends.
    pub fn session(
        &self,
        name: &str,
        peer: IpAddr,
        local: Option<IpAddr>,
        timing: BfdConfig,
        stop: CancellationToken,
    ) -> io::Result<watch::Receiver<BfdStatus>> {
        let tx_sock = bind_tx(peer, local)?;
        let (ptx, prx) = mpsc::channel(64);
        let peer = canonical(peer);
        let discr = loop {
            let d: u32 = rand::rng().random();
            if d != 0 {
                break d;
            }
        };
        // A session replaced by a reload may still be ending; its removal checks the discriminator.
        self.sessions
            .lock()
            .map_err(|_| io::Error::other("BFD session table poisoned"))?
            .insert(peer, (discr, ptx));
        let (stx, srx) = watch::channel(BfdStatus {
            state: State::Down,
            since: SystemTime::now(),
            last_down: None,
            detection_time: None,
        });
        let task = SessionTask {
            discr,
            name: name.to_string(),
            peer,
            sock: tx_sock,
            rx: prx,
            status: stx,
            timing,
            metrics: self.metrics.clone(),
            sessions: self.sessions.clone(),
        };
        tokio::spawn(task.run(stop));
        Ok(srx)
    }
}

fn bind_rx(v6: bool) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let (domain, addr) = if v6 {
        (
            Domain::IPV6,
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), SINGLE_HOP_PORT),
        )
    } else {
        (
            Domain::IPV4,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), SINGLE_HOP_PORT),
        )
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if v6 {
        s.set_only_v6(true)?;
        socket::setsockopt(&s, socket::sockopt::Ipv6RecvHopLimit, &true)
            .map_err(io::Error::from)?;
    } else {
        socket::setsockopt(&s, socket::sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn bind_tx(peer: IpAddr, local: Option<IpAddr>) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let v6 = peer.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let local = local.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free BFD source port");
    // RFC 5881 §4: the source port is in 49152-65535.
    for _ in 0..64 {
        let port = rand::rng().random_range(49152..=65535u16);
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if v6 {
            s.set_unicast_hops_v6(255)?;
        } else {
            s.set_ttl_v4(255)?;
        }
        s.set_nonblocking(true)?;
        match s.bind(&SocketAddr::new(local, port).into()) {
            Ok(()) => {
                s.connect(&SocketAddr::new(peer, SINGLE_HOP_PORT).into())
                    .or_else(|e| {
                        // Connecting fails while there is no route (link down); the session retries sending.
                        debug!(error = %e, "BFD: connect");
                        Ok::<(), io::Error>(())
                    })?;
                return UdpSocket::from_std(s.into());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn recv_with_ttl(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, IpAddr, Option<i32>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let msg = socket::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let mut ttl = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                    ttl = Some(t)
                }
                _ => {}
            }
        }
    }
    let from = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    Ok((msg.bytes, canonical(from), ttl))
}

async fn rx_loop(sock: UdpSocket, v6: bool, sessions: Sessions, metrics: Arc<Metrics>) {
    let mut buf = [0u8; 512];
    loop {
        let r = sock
            .async_io(Interest::READABLE, || recv_with_ttl(&sock, &mut buf))
            .await;
        let (n, from, ttl) = match r {
            Ok(v) => v,
            Err(e) => {
                warn!(ipv6 = v6, error = %e, "BFD: receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // RFC 5881 §5: single-hop packets must arrive with TTL / hop limit 255 (GTSM).
        if ttl != Some(255) {
            metrics.dropped("bfd_ttl");
            continue;
        }
        let packet = match ControlPacket::decode(buf.get(..n).unwrap_or_default()) {
            Ok(p) => p,
            Err(_) => {
                metrics.dropped("bfd_malformed");
                continue;
            }
        };
        let tx = sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&from).map(|(_, tx)| tx.clone()));
        match tx {
            Some(tx) => {
                if tx.try_send(packet).is_err() {
                    metrics.dropped("bfd_queue_full");
                }
            }
            None => metrics.dropped("bfd_unknown_peer"),
        }
    }
}

struct SessionTask {
    discr: u32,
    name: String,
    peer: IpAddr,
    sock: UdpSocket,
    rx: mpsc::Receiver<ControlPacket>,
    status: watch::Sender<BfdStatus>,
    timing: BfdConfig,
    metrics: Arc<Metrics>,
    sessions: Sessions,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl SessionTask {
    fn fast(&self) -> Timing {
        Timing {
            desired_min_tx: micros(self.timing.interval),
            required_min_rx: micros(self.timing.rx_interval()),
            detect_mult: self.timing.multiplier,
        }
    }

    async fn send(&self, s: &mut Session) {
        let p = s.next_packet();
        if let Ok(bytes) = p.to_bytes() {
            if let Err(e) = self.sock.send(&bytes).await {
                debug!(peer = %self.peer, error = %e, "BFD: send failed");
                if e.raw_os_error() == Some(libc::ENOTCONN)
                    || e.raw_os_error() == Some(libc::EDESTADDRREQ)
                {
                    let _ = self
                        .sock
                        .connect(SocketAddr::new(self.peer, SINGLE_HOP_PORT))
                        .await;
                }
            }
        }
    }

    async fn run(mut self, stop: CancellationToken) {
        let discr = self.discr;
        // At most one packet a second while not Up (§6.8.3, applied by the session); the configured rate once Up.
        let fast = self.fast();
        let mut s = Session::new(discr, fast);
        self.metrics.bfd_state(&self.name, State::Down);
        let mut next_tx = Instant::now();
        let mut detect: Option<Instant> = None;
        loop {
            let detect_at = detect.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = stop.cancelled() => break,
                p = self.rx.recv() => {
                    let Some(p) = p else { break };
                    let out = s.receive(&p);
                    if out.ignored {
                        continue;
                    }
                    detect = s.detection_time().map(|d| Instant::now() + d);
                    if let Some((old, new)) = out.state_change {
                        self.changed(&s, old, new);
                        self.send(&mut s).await;
                    } else if out.send_final {
                        self.send(&mut s).await;
                    }
                }
                () = tokio::time::sleep_until(next_tx) => {
                    self.send(&mut s).await;
                    let interval = s.transmit_interval().unwrap_or(Duration::from_secs(1));
                    next_tx = Instant::now() + jittered(interval, s.timing().detect_mult, rand::rng().random());
                }
                () = tokio::time::sleep_until(detect_at), if detect.is_some() => {
                    detect = None;
                    if let Some((old, new)) = s.detection_timeout() {
                        self.changed(&s, old, new);
                        self.send(&mut s).await;
                    }
                }
            }
        }
        s.admin_down(Diagnostic::AdministrativelyDown);
        self.send(&mut s).await;
        if let Ok(mut m) = self.sessions.lock() {
            if m.get(&self.peer).is_some_and(|(d, _)| *d == self.discr) {
                m.remove(&self.peer);
            }
        }
        self.metrics.bfd_state(&self.name, State::AdminDown);
    }

    fn changed(&self, s: &Session, old: State, new: State) {
        let now = SystemTime::now();
        if old == State::Up {
            warn!(peer = %self.peer, name = %self.name, diag = ?s.local_diag(), "BFD session down");
            self.metrics.bfd_down(&self.name);
        } else if new == State::Up {
            info!(peer = %self.peer, name = %self.name, "BFD session up");
        }
        self.metrics.bfd_state(&self.name, new);
        let detection_time = s.detection_time();
        self.status.send_modify(|st| {
            st.state = new;
            st.since = now;
            st.detection_time = detection_time;
            if old == State::Up {
                st.last_down = Some(now);
            }
        });
    }
}
