//! One task per BGP peer: it owns the session's [`Fsm`], its TCP connection(s), timers, Adj-RIB-Out and what
//! the peer sent us, turns sockets, timers and BFD into FSM events and carries out the FSM's actions. It also
//! resolves connection collisions (RFC 4271 §6.8) because it sees both connections.
//!
//! ```text
//!  instance ──PeerCmd (inbound TCP, stop)──►┐
//!  routes (watch) ─────────────────────────►│ peer task ── fsm.handle(event) → actions ──► TCP writer
//!  BFD status (watch) ─────────────────────►│    ▲                                    └──► status (watch), metrics
//!  connect attempt ──(id, stream)──────────►│    │
//!  reader task ──(id, message | error)─────►┘    timers (deadlines)
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};
use yagura_bfd::packet::State as BfdState;
use yagura_bgp::packet::{
    cease_subcode, decode, Context, Decoded, Error as CodecError, Message, MpReach, MpUnreach,
    Notification, TreatAsWithdraw, Update,
};

use crate::bfd::{Bfd, BfdStatus};
use crate::config::{BfdConfig, Mode, PeerConfig};
use crate::fsm::{Action, DownReason, Event, Fsm, Negotiated, Settings, State, Timer};
use crate::metrics::Metrics;
use crate::network::{self, Transport};
use crate::rib::{AdjRibOut, Origination, RouteSet};

/// The routes every session should announce, with a version that grows with each change.
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// Grows by one per change.
    pub version: u64,
    /// The routes.
    pub routes: Arc<RouteSet>,
}

/// Commands from the instance.
#[derive(Debug)]
pub enum PeerCmd {
    /// An accepted connection from this peer's address.
    Inbound(TcpStream),
    /// Close the session with a Cease (subcode) and end the task; `done` fires when the NOTIFICATION is sent.
    Stop {
        /// Cease subcode.
        subcode: u8,
        /// Fired at the end.
        done: oneshot::Sender<()>,
    },
}

/// What the status API shows of a peer.
#[derive(Debug, Clone)]
pub struct PeerStatus {
    /// Session state.
    pub state: State,
    /// When the session reached Established.
    pub established_at: Option<SystemTime>,
    /// Times it left Established.
    pub flaps: u64,
    /// Prefixes the peer has from us.
    pub prefixes_sent: usize,
    /// Prefixes the peer sent us.
    pub prefixes_received: usize,
    /// Received prefixes kept as stale while the peer restarts (RFC 4724 helper), until this time.
    pub stale_until: Option<SystemTime>,
    /// The route version last synchronised to the peer (or that needs nothing sent: session down).
    pub synced_version: u64,
    /// The last reason the session went down.
    pub last_error: Option<String>,
    /// The session's local address.
    pub local_address: Option<SocketAddr>,
    /// What the OPENs negotiated.
    pub negotiated: Option<Negotiated>,
    /// BFD status when BFD runs.
    pub bfd: Option<BfdStatus>,
}

/// The instance's handle on a peer task.
#[derive(Debug)]
pub struct PeerHandle {
    /// The peer's config (to diff on reload).
    pub config: PeerConfig,
    /// The BFD timing in force.
    pub bfd_timing: Option<BfdConfig>,
    /// Commands.
    pub cmd: mpsc::Sender<PeerCmd>,
    /// Status.
    pub status: watch::Receiver<PeerStatus>,
    bfd_stop: CancellationToken,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// Stops the session with a Cease `subcode` and waits (up to `deadline`) until it is closed.
    pub async fn stop(self, subcode: u8, deadline: Duration) {
        let (tx, rx) = oneshot::channel();
        if self
            .cmd
            .send(PeerCmd::Stop { subcode, done: tx })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(deadline, rx).await;
        }
        self.bfd_stop.cancel();
        self.task.abort();
    }
}

/// Everything a peer task needs to start.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    /// The config entry.
    pub config: PeerConfig,
    /// FSM settings derived from the config.
    pub settings: Settings,
    /// MD5 / GTSM.
    pub transport: Transport,
    /// BFD timing, when BFD runs for this peer.
    pub bfd: Option<BfdConfig>,
}

/// Starts the peer task.
pub fn spawn(
    spec: PeerSpec,
    routes: watch::Receiver<Published>,
    bfd: Option<&Bfd>,
    metrics: Arc<Metrics>,
) -> io::Result<PeerHandle> {
    let bfd_stop = CancellationToken::new();
    let bfd_rx = match (bfd, spec.bfd) {
        (Some(b), Some(timing)) => Some(b.session(
            &spec.config.name,
            spec.config.address,
            spec.config.local_address,
            timing,
            bfd_stop.clone(),
        )?),
        _ => None,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (status_tx, status_rx) = watch::channel(PeerStatus {
        state: State::Idle,
        established_at: None,
        flaps: 0,
        prefixes_sent: 0,
        prefixes_received: 0,
        stale_until: None,
        synced_version: routes.borrow().version,
        last_error: None,
        local_address: None,
        negotiated: None,
        bfd: bfd_rx.as_ref().map(|r| r.borrow().clone()),
    });
    let (net_tx, net_rx) = mpsc::channel(64);
    let (conn_tx, conn_rx) = mpsc::channel(4);
    let span =
        tracing::info_span!("peer", name = %spec.config.name, address = %spec.config.address);
    let task = PeerTask {
        fsm: Fsm::new(spec.settings.clone()),
        spec: spec.clone(),
        cmd_rx,
        status: status_tx,
        routes,
        bfd: bfd_rx,
        bfd_was_up: false,
        metrics,
        conn: None,
        pending: None,
        connecting: None,
        next_id: 0,
        net_tx,
        net_rx,
        conn_tx,
        conn_rx,
        deadlines: HashMap::new(),
        rib: AdjRibOut::new(),
        received: BTreeMap::new(),
        origination: None,
    };
    let handle = tokio::spawn(task.run().instrument(span));
    Ok(PeerHandle {
        config: spec.config,
        bfd_timing: spec.bfd,
        cmd: cmd_tx,
        status: status_rx,
        bfd_stop,
        task: handle,
    })
}

#[allow(clippy::large_enum_variant)]
enum NetEvent {
    Message(Message),
    TreatAsWithdraw(TreatAsWithdraw),
    Error(CodecError),
    Closed(Option<io::Error>),
}

struct Conn {
    id: u64,
    inbound: bool,
    local: Option<SocketAddr>,
    writer: OwnedWriteHalf,
    four_octet: Arc<AtomicBool>,
    reader: JoinHandle<()>,
    /// The OPEN received on a pending (colliding) connection.
    open: Option<Message>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct PeerTask {
    spec: PeerSpec,
    fsm: Fsm,
    cmd_rx: mpsc::Receiver<PeerCmd>,
    status: watch::Sender<PeerStatus>,
    routes: watch::Receiver<Published>,
    bfd: Option<watch::Receiver<BfdStatus>>,
    bfd_was_up: bool,
    metrics: Arc<Metrics>,
    conn: Option<Conn>,
    pending: Option<Conn>,
    connecting: Option<JoinHandle<()>>,
    next_id: u64,
    net_tx: mpsc::Sender<(u64, NetEvent)>,
    net_rx: mpsc::Receiver<(u64, NetEvent)>,
    conn_tx: mpsc::Sender<(u64, io::Result<TcpStream>)>,
    conn_rx: mpsc::Receiver<(u64, io::Result<TcpStream>)>,
    deadlines: HashMap<Timer, Instant>,
    rib: AdjRibOut,
    /// Prefixes the peer announced; `true` marks stale ones kept through its restart.
    received: BTreeMap<IpNet, bool>,
    origination: Option<Origination>,
}

async fn read_loop(
    id: u64,
    mut rd: OwnedReadHalf,
    four_octet: Arc<AtomicBool>,
    tx: mpsc::Sender<(u64, NetEvent)>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 16384];
    loop {
        // Decode everything complete in the buffer (it never grows past one message plus one read).
        loop {
            let ctx = Context {
                four_octet_as: four_octet.load(Ordering::Acquire),
            };
            let ev = match decode(&buf, &ctx) {
                Ok(Decoded::Incomplete { .. }) => break,
                Ok(Decoded::Message {
                    message,
                    consumed,
                    discarded,
                }) => {
                    for d in discarded {
                        debug!(error = %d, "attribute discarded (RFC 7606)");
                    }
                    buf.drain(..consumed);
                    NetEvent::Message(message)
                }
                Ok(Decoded::TreatAsWithdraw { withdraw, consumed }) => {
                    buf.drain(..consumed);
                    NetEvent::TreatAsWithdraw(withdraw)
                }
                Err(e) => {
                    let _ = tx.send((id, NetEvent::Error(e))).await;
                    return;
                }
            };
            let is_open = matches!(ev, NetEvent::Message(Message::Open(_)));
            if tx.send((id, ev)).await.is_err() {
                return;
            }
            if is_open {
                // The context for what follows depends on the OPEN; the task sets it before it answers, and the
                // peer sends nothing that depends on it before our answer. Give the task a moment to do so.
                tokio::task::yield_now().await;
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) => {
                let _ = tx.send((id, NetEvent::Closed(None))).await;
                return;
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) => {
                let _ = tx.send((id, NetEvent::Closed(Some(e)))).await;
                return;
            }
        }
    }
}

impl PeerTask {
    fn new_conn(&mut self, stream: TcpStream, inbound: bool) -> Conn {
        self.next_id += 1;
        let id = self.next_id;
        let local = stream.local_addr().ok();
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        let four_octet = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn(read_loop(id, rd, four_octet.clone(), self.net_tx.clone()));
        Conn {
            id,
            inbound,
            local,
            writer: wr,
            four_octet,
            reader,
            open: None,
        }
    }

    async fn run(mut self) {
        self.metrics
            .session_state(&self.spec.config.name, State::Idle);
        self.apply(Event::Start).await;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next = self.deadlines.values().min().copied();
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    Some(PeerCmd::Inbound(s)) => self.inbound(s).await,
                    Some(PeerCmd::Stop { subcode, done }) => {
                        self.apply(Event::Stop(subcode)).await;
                        let _ = done.send(());
                        break;
                    }
                    None => break,
                },
                Some((id, res)) = self.conn_rx.recv() => self.connected(id, res).await,
                Some((id, ev)) = self.net_rx.recv() => self.net_event(id, ev).await,
                () = sleep_until_opt(next), if next.is_some() => {
                    let now = Instant::now();
                    let expired: Vec<Timer> = self.deadlines.iter().filter(|(_, d)| **d <= now).map(|(t, _)| *t).collect();
                    for t in expired {
                        self.deadlines.remove(&t);
                        if t == Timer::ConnectRetry && self.fsm.state() == State::Connect {
                            self.status.send_modify(|s| s.last_error = Some("connect: no answer before the retry timer".into()));
                        }
                        self.apply(Event::TimerExpired(t)).await;
                    }
                }
                r = changed_opt(&mut self.bfd) => {
                    if r.is_err() {
                        self.bfd = None;
                        continue;
                    }
                    self.bfd_changed().await;
                }
                r = self.routes.changed() => {
                    if r.is_err() {
                        break;
                    }
                    self.sync_routes().await;
                }
                _ = tick.tick() => self.tick(),
            }
        }
        self.metrics
            .session_state(&self.spec.config.name, State::Idle);
        self.metrics.session_uptime(&self.spec.config.name, 0.0);
    }

    fn tick(&mut self) {
        let uptime = self
            .status
            .borrow()
            .established_at
            .and_then(|t| t.elapsed().ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.metrics.session_uptime(&self.spec.config.name, uptime);
        // RFC 4724 helper: stale routes go when the restart time passes.
        let expired = self
            .status
            .borrow()
            .stale_until
            .is_some_and(|t| SystemTime::now() >= t);
        if expired {
            self.received.retain(|_, stale| !*stale);
            self.publish_counts();
            self.status.send_modify(|s| s.stale_until = None);
        }
    }

    async fn bfd_changed(&mut self) {
        let Some(rx) = &mut self.bfd else { return };
        let st = rx.borrow_and_update().clone();
        let up = st.state == BfdState::Up;
        self.status.send_modify(|s| s.bfd = Some(st));
        if self.bfd_was_up && !up {
            self.bfd_was_up = false;
            self.apply(Event::BfdDown).await;
        } else if up && !self.bfd_was_up {
            self.bfd_was_up = true;
            self.apply(Event::BfdUp).await;
        }
    }

    async fn connected(&mut self, id: u64, res: io::Result<TcpStream>) {
        if id != self.next_id || self.fsm.state() != State::Connect {
            // A stale attempt (an inbound connection won, or the attempt was replaced).
            return;
        }
        self.connecting = None;
        match res {
            Ok(stream) => {
                let conn = self.new_conn(stream, false);
                self.conn = Some(conn);
                self.apply(Event::TcpConnected).await;
            }
            Err(e) => {
                debug!(error = %e, "connect failed");
                self.status
                    .send_modify(|s| s.last_error = Some(format!("connect: {e}")));
                self.apply(Event::TcpFailed).await;
            }
        }
    }

    async fn net_event(&mut self, id: u64, ev: NetEvent) {
        if self.conn.as_ref().is_some_and(|c| c.id == id) {
            let event = match ev {
                NetEvent::Message(m) => Event::Message(m),
                NetEvent::TreatAsWithdraw(w) => Event::TreatAsWithdraw(w),
                NetEvent::Error(e) => {
                    warn!(error = %e, "malformed message from peer");
                    self.metrics.dropped("bgp_malformed");
                    Event::DecodeError(e)
                }
                NetEvent::Closed(e) => {
                    if let Some(e) = e {
                        debug!(error = %e, "connection error");
                    }
                    Event::TcpFailed
                }
            };
            self.apply(event).await;
        } else if self.pending.as_ref().is_some_and(|c| c.id == id) {
            match ev {
                NetEvent::Message(m @ Message::Open(_)) => {
                    let remote_id = match &m {
                        Message::Open(o) => o.bgp_id,
                        _ => return,
                    };
                    if let Some(p) = &mut self.pending {
                        p.open = Some(m);
                    }
                    self.resolve_collision(remote_id).await;
                }
                _ => self.pending = None,
            }
        }
    }

    /// RFC 4271 §6.8: keep the connection opened by the speaker with the higher BGP identifier.
    async fn resolve_collision(&mut self, remote_id: std::net::Ipv4Addr) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let existing_inbound = self.conn.as_ref().is_some_and(|c| c.inbound);
        let keep_new = if u32::from(self.spec.settings.router_id) < u32::from(remote_id) {
            // Keep the connection the peer opened: the new (inbound) one, unless the existing one is too.
            true
        } else {
            existing_inbound
        };
        if self.fsm.state() == State::Established {
            reject(pending, cease_subcode::CONNECTION_REJECTED).await;
            return;
        }
        debug!(keep_new, "connection collision");
        if keep_new {
            self.apply(Event::CollisionLost).await;
            let open = pending.open.clone();
            self.conn = Some(pending);
            self.apply(Event::TcpConnected).await;
            if let Some(m) = open {
                self.apply(Event::Message(m)).await;
            }
        } else {
            reject(pending, cease_subcode::CONNECTION_COLLISION_RESOLUTION).await;
        }
    }

    async fn inbound(&mut self, stream: TcpStream) {
        if self.spec.config.mode == Mode::Active {
            self.metrics.dropped("bgp_inbound_refused");
            return;
        }
        if self.spec.transport.ttl_security {
            let v6 = stream.local_addr().map(|a| a.is_ipv6()).unwrap_or(false);
            if let Err(e) = network::apply_gtsm(&stream, v6) {
                warn!(error = %e, "GTSM on accepted connection");
                return;
            }
        }
        match self.fsm.state() {
            State::Idle => {
                // Not accepting now (stopped, backing off, or waiting for BFD).
                let c = self.new_conn(stream, true);
                reject(c, cease_subcode::CONNECTION_REJECTED).await;
            }
            State::Connect | State::Active => {
                if let Some(h) = self.connecting.take() {
                    h.abort();
                }
                let c = self.new_conn(stream, true);
                self.conn = Some(c);
                self.apply(Event::TcpConnected).await;
            }
            State::OpenSent => {
                let c = self.new_conn(stream, true);
                self.pending = Some(c);
            }
            State::OpenConfirm => {
                let c = self.new_conn(stream, true);
                self.pending = Some(c);
                if let Some(id) = self.fsm.negotiated().map(|n| n.remote_id) {
                    self.resolve_collision(id).await;
                }
            }
            State::Established => {
                let graceful = self.fsm.negotiated().is_some_and(|n| n.graceful_restart);
                let c = self.new_conn(stream, true);
                if graceful {
                    // RFC 4724 §4.2: a new connection while Established means the peer restarted: drop the old
                    // one (keeping its routes as stale) and continue on the new one.
                    info!("peer reconnected while Established: treating as a graceful restart");
                    self.apply(Event::TcpFailed).await;
                    self.apply(Event::Start).await;
                    if let Some(h) = self.connecting.take() {
                        h.abort();
                    }
                    self.next_id += 1;
                    self.conn = Some(c);
                    self.apply(Event::TcpConnected).await;
                } else {
                    reject(c, cease_subcode::CONNECTION_REJECTED).await;
                }
            }
        }
    }

    async fn apply(&mut self, first: Event) {
        let mut queue = VecDeque::from([first]);
        while let Some(ev) = queue.pop_front() {
            let before = self.fsm.state();
            let actions = self.fsm.handle(ev);
            if let (Some(c), Some(n)) = (&self.conn, self.fsm.negotiated()) {
                c.four_octet
                    .store(n.context.four_octet_as, Ordering::Release);
            }
            for a in actions {
                if let Some(next) = self.execute(a).await {
                    queue.push_back(next);
                }
            }
            let after = self.fsm.state();
            if before != after {
                debug!(from = before.as_str(), to = after.as_str(), "state");
                self.metrics.session_state(&self.spec.config.name, after);
                let neg = self.fsm.negotiated().cloned();
                let local = self.conn.as_ref().and_then(|c| c.local);
                self.status.send_modify(|s| {
                    s.state = after;
                    s.negotiated = neg;
                    s.local_address = local;
                });
            }
        }
    }

    async fn send(&mut self, m: &Message) -> Option<Event> {
        let ctx = self.fsm.context();
        let bytes = match m.to_bytes(&ctx) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "could not encode a message");
                return None;
            }
        };
        let conn = self.conn.as_mut()?;
        match tokio::time::timeout(Duration::from_secs(10), conn.writer.write_all(&bytes)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                debug!(error = %e, "write failed");
                Some(Event::TcpFailed)
            }
            Err(_) => Some(Event::TcpFailed),
        }
    }

    async fn execute(&mut self, a: Action) -> Option<Event> {
        match a {
            Action::Connect => {
                if let Some(h) = self.connecting.take() {
                    h.abort();
                }
                self.next_id += 1;
                let id = self.next_id;
                let tx = self.conn_tx.clone();
                let peer = SocketAddr::new(self.spec.config.address, self.spec.config.port);
                let local = self.spec.config.local_address;
                let transport = self.spec.transport.clone();
                self.connecting = Some(tokio::spawn(async move {
                    let r = network::connect(peer, local, &transport, Duration::from_secs(5)).await;
                    let _ = tx.send((id, r)).await;
                }));
                None
            }
            Action::Send(m) => {
                if let Message::Notification(n) = &m {
                    warn!(code = n.code, subcode = n.subcode, "sending NOTIFICATION");
                }
                self.send(&m).await
            }
            Action::Close => {
                if let Some(mut c) = self.conn.take() {
                    let _ = tokio::time::timeout(Duration::from_secs(1), c.writer.shutdown()).await;
                }
                None
            }
            Action::StartTimer(t, d) => {
                self.deadlines.insert(t, Instant::now() + d);
                None
            }
            Action::StopTimer(t) => {
                self.deadlines.remove(&t);
                None
            }
            Action::Established(neg) => self.established(neg).await,
            Action::Down { reason, graceful } => {
                self.down(reason, graceful);
                None
            }
            Action::Received(u) => {
                self.received_update(&u);
                None
            }
            Action::Withdrawn(w) => {
                if let Some(r) = w.reason() {
                    warn!(error = %r, "malformed UPDATE treated as withdraw (RFC 7606)");
                }
                self.metrics.dropped("bgp_treat_as_withdraw");
                for p in w
                    .ipv4
                    .iter()
                    .map(|p| IpNet::V4(*p))
                    .chain(w.ipv6.iter().map(|p| IpNet::V6(*p)))
                {
                    self.received.remove(&p);
                }
                self.publish_counts();
                None
            }
            Action::RouteRefresh(_) => {
                self.rib.clear();
                self.sync_routes().await
            }
        }
    }

    async fn established(&mut self, neg: Negotiated) -> Option<Event> {
        let local = self.conn.as_ref().and_then(|c| c.local);
        let (nh4, nh6) = local
            .map(|l| network::local_next_hops(l.ip()))
            .unwrap_or((None, None));
        let o = Origination {
            local_as: self.spec.settings.local_as,
            peer_as: self.spec.settings.peer_as,
            context: neg.context,
            families: neg.families.clone(),
            next_hop_ipv4: self.spec.config.next_hop_ipv4.or(nh4),
            next_hop_ipv6: self.spec.config.next_hop_ipv6.or(nh6),
        };
        info!(
            remote_id = %neg.remote_id,
            hold = ?neg.hold_time,
            families = ?neg.families,
            graceful_restart = neg.graceful_restart,
            "session established"
        );
        self.origination = Some(o);
        self.rib.clear();
        self.status.send_modify(|s| {
            s.established_at = Some(SystemTime::now());
            s.last_error = None;
        });
        if let Some(ev) = self.sync_routes().await {
            return Some(ev);
        }
        // RFC 4724: End-of-RIB after the initial table (sent to every peer; harmless without the capability).
        for f in neg.families {
            if let Some(ev) = self.send(&Message::Update(Update::end_of_rib(f))).await {
                return Some(ev);
            }
        }
        None
    }

    fn down(&mut self, reason: DownReason, graceful: bool) {
        warn!(%reason, graceful, "session down");
        self.metrics.session_flap(&self.spec.config.name);
        self.rib.clear();
        self.origination = None;
        let stale_until = if graceful {
            for stale in self.received.values_mut() {
                *stale = true;
            }
            let restart = self
                .fsm
                .negotiated()
                .and_then(|n| n.peer_graceful_restart.as_ref().map(|g| g.restart_time))
                .unwrap_or(120);
            Some(SystemTime::now() + Duration::from_secs(u64::from(restart)))
        } else {
            self.received.clear();
            None
        };
        let version = self.routes.borrow().version;
        self.status.send_modify(|s| {
            s.established_at = None;
            s.flaps += 1;
            s.last_error = Some(reason.to_string());
            s.stale_until = stale_until;
            s.synced_version = version;
        });
        self.publish_counts();
    }

    fn received_update(&mut self, u: &Update) {
        if let Some(f) = u.end_of_rib_family() {
            // RFC 4724 §4.2: stale routes not refreshed by End-of-RIB are removed.
            self.received.retain(|p, stale| {
                !(*stale
                    && matches!(
                        (p, f),
                        (IpNet::V4(_), yagura_bgp::packet::AfiSafi::IPV4_UNICAST)
                            | (IpNet::V6(_), yagura_bgp::packet::AfiSafi::IPV6_UNICAST)
                    ))
            });
            if !self.received.values().any(|s| *s) {
                self.status.send_modify(|s| s.stale_until = None);
            }
            self.publish_counts();
            return;
        }
        for p in u.withdrawn_ipv4() {
            self.received.remove(&IpNet::V4(*p));
        }
        if let Some(MpUnreach::Ipv6Unicast(v)) = &u.attributes.mp_unreach {
            for p in v {
                self.received.remove(&IpNet::V6(*p));
            }
        }
        for p in u.announced_ipv4() {
            self.received.insert(IpNet::V4(*p), false);
        }
        if let Some(MpReach::Ipv6Unicast { nlri, .. }) = &u.attributes.mp_reach {
            for p in nlri {
                self.received.insert(IpNet::V6(*p), false);
            }
        }
        self.publish_counts();
    }

    fn publish_counts(&self) {
        let sent = self.rib.sent().len();
        let received = self.received.len();
        self.metrics
            .prefixes(&self.spec.config.name, sent, received);
        self.status.send_modify(|s| {
            s.prefixes_sent = sent;
            s.prefixes_received = received;
        });
    }

    async fn sync_routes(&mut self) -> Option<Event> {
        let published = self.routes.borrow_and_update().clone();
        if self.fsm.state() != State::Established {
            self.status
                .send_modify(|s| s.synced_version = published.version);
            return None;
        }
        let o = self.origination.clone()?;
        let updates = self.rib.sync(&published.routes, &o);
        let n = updates.len();
        for u in updates {
            if let Some(ev) = self.send(&Message::Update(u)).await {
                return Some(ev);
            }
        }
        if n > 0 {
            debug!(updates = n, "routes sent");
            self.metrics.updates_sent(&self.spec.config.name, n);
        }
        self.status
            .send_modify(|s| s.synced_version = published.version);
        self.publish_counts();
        None
    }
}

async fn reject(mut c: Conn, subcode: u8) {
    let n = Message::Notification(Notification::cease(subcode));
    if let Ok(bytes) = n.to_bytes(&Context::default()) {
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = c.writer.write_all(&bytes).await;
            let _ = c.writer.shutdown().await;
        })
        .await;
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn changed_opt(
    rx: &mut Option<watch::Receiver<BfdStatus>>,
) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

/// The peer a connection from `ip` belongs to.
pub fn match_peer(ip: IpAddr) -> IpAddr {
    network::canonical(ip)
}
