//! The BGP session state machine (RFC 4271 §8) as a pure function of `(state, event)`: no sockets, no clock.
//! Time arrives as [`Event::TimerExpired`], the network as [`Event::TcpConnected`] / [`Event::TcpFailed`] /
//! [`Event::Message`], BFD as [`Event::BfdDown`] / [`Event::BfdUp`]; the machine answers with [`Action`]s
//! (connect, send, close, arm a timer, session up/down) that the peer task carries out. Collision detection
//! (§6.8) is decided by the task, which owns both connections, and fed in as [`Event::CollisionLost`].

use std::net::Ipv4Addr;
use std::time::Duration;

use yagura_bgp::packet::{
    cease_subcode, code, open_subcode, AfiSafi, Capability, Context, Error as CodecError,
    GracefulRestart, GracefulRestartFamily, Message, Notification, Open, TreatAsWithdraw, Update,
};

use crate::config::Mode;

/// Cease subcode "BFD Down" (RFC 9384).
pub const CEASE_BFD_DOWN: u8 = 10;

/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const LARGE_HOLD: Duration = Duration::from_secs(240);

/// Session states (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not trying (stopped, backing off, or waiting for BFD).
    Idle,
    /// Connecting out.
    Connect,
    /// Waiting for the peer to connect (or for the retry timer).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up: routes flow.
    Established,
}

impl State {
    /// All states, for metrics.
    pub const ALL: [State; 6] = [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connect => "connect",
            State::Active => "active",
            State::OpenSent => "open_sent",
            State::OpenConfirm => "open_confirm",
            State::Established => "established",
        }
    }

    /// Whether a TCP connection belongs to the session in this state.
    pub fn connected(self) -> bool {
        matches!(
            self,
            State::OpenSent | State::OpenConfirm | State::Established
        )
    }
}

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Retry an outgoing connection.
    ConnectRetry,
    /// The peer has been silent too long.
    Hold,
    /// Time to send a KEEPALIVE.
    Keepalive,
    /// Back-off before leaving Idle after an error (RFC 4271 §8.1.1 IdleHoldTimer).
    IdleHold,
}

/// Settings of one session (from the peer's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's expected AS.
    pub peer_as: u32,
    /// Hold time we propose, seconds.
    pub hold_time: u16,
    /// Keepalive interval, if fixed (else a third of the negotiated hold time).
    pub keepalive: Option<Duration>,
    /// Active, passive or both.
    pub mode: Mode,
    /// First back-off delay.
    pub connect_retry: Duration,
    /// Longest back-off delay.
    pub connect_retry_max: Duration,
    /// Graceful restart: our restart time (seconds) when enabled.
    pub graceful_restart: Option<u16>,
    /// Set the Restart State bit in our OPEN (we restarted without a clean drain).
    pub restarting: bool,
    /// Families we offer.
    pub families: Vec<AfiSafi>,
}

/// What both OPENs agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The codec context (4-octet AS).
    pub context: Context,
    /// Hold time in force (zero: no keepalives, no hold timer).
    pub hold_time: Duration,
    /// Keepalive interval in force.
    pub keepalive: Duration,
    /// Families both sides support.
    pub families: Vec<AfiSafi>,
    /// The peer's AS.
    pub remote_as: u32,
    /// The peer's identifier.
    pub remote_id: Ipv4Addr,
    /// The peer supports ROUTE-REFRESH.
    pub route_refresh: bool,
    /// The peer's graceful restart capability, if advertised.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// Both sides advertised graceful restart.
    pub graceful_restart: bool,
}

/// Why a session stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// The peer sent a NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent a NOTIFICATION.
    NotificationSent(Notification),
    /// The connection closed or failed without a NOTIFICATION.
    ConnectionLost,
    /// BFD declared the path down.
    BfdDown,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::NotificationReceived(n) => {
                write!(f, "notification received ({}/{})", n.code, n.subcode)
            }
            DownReason::NotificationSent(n) => {
                write!(f, "notification sent ({}/{})", n.code, n.subcode)
            }
            DownReason::ConnectionLost => f.write_str("connection lost"),
            DownReason::BfdDown => f.write_str("BFD down"),
        }
    }
}

/// What happens to a session.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start (or restart) the session.
    Start,
    /// Stop it administratively with a Cease subcode (e.g. 2 Administrative Shutdown); it stays Idle.
    Stop(u8),
    /// A TCP connection for this session is ready (outgoing connected, or incoming accepted and bound).
    TcpConnected,
    /// The outgoing attempt failed, or the connection closed or reset.
    TcpFailed,
    /// A message arrived.
    Message(Message),
    /// An UPDATE to treat as withdraw (RFC 7606): the session stays up.
    TreatAsWithdraw(TreatAsWithdraw),
    /// The received bytes could not be decoded: send its NOTIFICATION and close.
    DecodeError(CodecError),
    /// A timer fired.
    TimerExpired(Timer),
    /// The task resolved a collision (§6.8) against the current connection: Cease it and wait for the other.
    CollisionLost,
    /// BFD went down: drop the session now and stay Idle until [`Event::BfdUp`].
    BfdDown,
    /// BFD is up (again).
    BfdUp,
}

/// What the task must do.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start an outgoing connection attempt (cancelling any previous one).
    Connect,
    /// Send a message on the current connection.
    Send(Message),
    /// Close the current connection (after flushing what was sent).
    Close,
    /// Arm (or re-arm) a timer.
    StartTimer(Timer, Duration),
    /// Disarm a timer.
    StopTimer(Timer),
    /// The session is Established: send the Adj-RIB-Out, then End-of-RIB.
    Established(Negotiated),
    /// The session left Established. `graceful`: the peer may be restarting (RFC 4724 helper): keep its routes
    /// as stale for its restart time.
    Down {
        /// Why.
        reason: DownReason,
        /// Whether the helper procedure applies.
        graceful: bool,
    },
    /// Routes received from the peer.
    Received(Update),
    /// Routes to withdraw as the result of a malformed UPDATE (RFC 7606).
    Withdrawn(TreatAsWithdraw),
    /// The peer asked for our routes again (RFC 2918).
    RouteRefresh(AfiSafi),
}

/// One session's state machine.
#[derive(Debug, Clone)]
pub struct Fsm {
    state: State,
    settings: Settings,
    /// Current back-off delay.
    retry: Duration,
    /// Stopped administratively: do not restart on timers.
    stopped: bool,
    /// BFD went down and has not come back: stay Idle.
    bfd_blocked: bool,
    negotiated: Option<Negotiated>,
}

impl Fsm {
    /// A session in Idle; feed [`Event::Start`] to begin.
    pub fn new(settings: Settings) -> Self {
        let retry = settings.connect_retry;
        Self {
            state: State::Idle,
            settings,
            retry,
            stopped: true,
            bfd_blocked: false,
            negotiated: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What was negotiated, once OPENs were exchanged.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether the session waits for BFD to come up.
    pub fn bfd_blocked(&self) -> bool {
        self.bfd_blocked
    }

    /// The codec context in force.
    pub fn context(&self) -> Context {
        self.negotiated
            .as_ref()
            .map(|n| n.context)
            .unwrap_or_default()
    }

    /// Our OPEN message.
    pub fn local_open(&self) -> Open {
        let s = &self.settings;
        let mut open = Open::new(s.local_as, s.hold_time, s.router_id);
        for f in &s.families {
            open = open.with_capability(Capability::Multiprotocol(*f));
        }
        open = open.with_capability(Capability::RouteRefresh);
        if let Some(restart_time) = s.graceful_restart {
            open = open.with_capability(Capability::GracefulRestart(GracefulRestart {
                restarting: s.restarting,
                notification: false,
                restart_time: restart_time.min(4095),
                families: s
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        afi_safi: *f,
                        // The VIPs stay on the interface and the node keeps forwarding while we restart.
                        forwarding_preserved: s.restarting,
                    })
                    .collect(),
            }));
        }
        open
    }

    /// Handles one event; returns the actions in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match (self.state, event) {
            // --- administrative and BFD events, in any state ---
            (_, Event::Start) => {
                self.stopped = false;
                if self.state == State::Idle && !self.bfd_blocked {
                    self.leave_idle(&mut out);
                }
            }
            (state, Event::Stop(subcode)) => {
                self.stopped = true;
                if state.connected() {
                    let n = Notification::cease(subcode);
                    self.drop_session(&mut out, DownReason::NotificationSent(n.clone()), Some(n));
                } else {
                    self.go_idle(&mut out, None);
                }
                out.push(Action::StopTimer(Timer::IdleHold));
            }
            (state, Event::BfdDown) => {
                self.bfd_blocked = true;
                if state.connected() {
                    self.drop_session(
                        &mut out,
                        DownReason::BfdDown,
                        Some(Notification::cease(CEASE_BFD_DOWN)),
                    );
                } else if state != State::Idle {
                    self.go_idle(&mut out, None);
                }
                // Come back as soon as BFD does, without back-off.
                self.retry = self.settings.connect_retry;
                out.push(Action::StopTimer(Timer::IdleHold));
            }
            (state, Event::BfdUp) => {
                let was = std::mem::replace(&mut self.bfd_blocked, false);
                if was && state == State::Idle && !self.stopped {
                    self.leave_idle(&mut out);
                }
            }
            (State::Idle, Event::TimerExpired(Timer::IdleHold)) => {
                if !self.stopped && !self.bfd_blocked {
                    self.leave_idle(&mut out);
                }
            }
            // Stale events for a connection that is gone, or timers racing a state change.
            (State::Idle, _) => {}

            // --- Connect / Active ---
            (State::Connect | State::Active, Event::TcpConnected) => {
                out.push(Action::StopTimer(Timer::ConnectRetry));
                out.push(Action::Send(Message::Open(self.local_open())));
                out.push(Action::StartTimer(Timer::Hold, LARGE_HOLD));
                self.state = State::OpenSent;
            }
            (State::Connect, Event::TcpFailed) => {
                // Wait in Active (accepting) until the retry timer; the delay backs off.
                self.state = State::Active;
                out.push(Action::StartTimer(Timer::ConnectRetry, self.bump_retry()));
            }
            (State::Connect, Event::TimerExpired(Timer::ConnectRetry)) => {
                out.push(Action::Connect);
                out.push(Action::StartTimer(Timer::ConnectRetry, self.bump_retry()));
            }
            (State::Active, Event::TimerExpired(Timer::ConnectRetry)) => {
                if self.settings.mode != Mode::Passive {
                    self.state = State::Connect;
                    out.push(Action::Connect);
                    out.push(Action::StartTimer(
                        Timer::ConnectRetry,
                        self.retry.max(Duration::from_secs(2)),
                    ));
                }
            }
            (State::Connect | State::Active, _) => {}

            // --- connected states ---
            (State::OpenSent, Event::Message(Message::Open(open))) => {
                match self.check_open(&open) {
                    Err(n) => {
                        self.drop_session(
                            &mut out,
                            DownReason::NotificationSent(n.clone()),
                            Some(n),
                        );
                    }
                    Ok(neg) => {
                        out.push(Action::Send(Message::Keepalive));
                        if neg.hold_time.is_zero() {
                            out.push(Action::StopTimer(Timer::Hold));
                        } else {
                            out.push(Action::StartTimer(Timer::Hold, neg.hold_time));
                            out.push(Action::StartTimer(Timer::Keepalive, neg.keepalive));
                        }
                        self.negotiated = Some(neg);
                        self.state = State::OpenConfirm;
                    }
                }
            }
            (State::OpenConfirm, Event::Message(Message::Keepalive)) => {
                self.state = State::Established;
                self.retry = self.settings.connect_retry;
                self.restart_hold(&mut out);
                if let Some(neg) = &self.negotiated {
                    out.push(Action::Established(neg.clone()));
                }
            }
            (State::Established, Event::Message(Message::Keepalive)) => self.restart_hold(&mut out),
            (State::Established, Event::Message(Message::Update(u))) => {
                self.restart_hold(&mut out);
                out.push(Action::Received(u));
            }
            (State::Established, Event::TreatAsWithdraw(w)) => {
                self.restart_hold(&mut out);
                out.push(Action::Withdrawn(w));
            }
            (State::Established, Event::Message(Message::RouteRefresh(rr))) => {
                self.restart_hold(&mut out);
                out.push(Action::RouteRefresh(rr.afi_safi));
            }
            (State::OpenConfirm, Event::Message(Message::RouteRefresh(_))) => {}
            (_, Event::Message(Message::Notification(n))) => {
                self.drop_session(&mut out, DownReason::NotificationReceived(n), None);
            }
            (_, Event::DecodeError(e)) => {
                let n = e.to_notification();
                self.drop_session(&mut out, DownReason::NotificationSent(n.clone()), Some(n));
            }
            (_, Event::TimerExpired(Timer::Hold)) => {
                let n = Notification::hold_timer_expired();
                self.drop_session(&mut out, DownReason::NotificationSent(n.clone()), Some(n));
            }
            (State::OpenConfirm | State::Established, Event::TimerExpired(Timer::Keepalive)) => {
                match &self.negotiated {
                    // Hold time 0: no keepalives at all (RFC 4271 4.4); a stale expiry is ignored.
                    Some(neg) if neg.keepalive.is_zero() => {}
                    Some(neg) => {
                        out.push(Action::Send(Message::Keepalive));
                        out.push(Action::StartTimer(Timer::Keepalive, neg.keepalive));
                    }
                    None => out.push(Action::Send(Message::Keepalive)),
                }
            }
            (_, Event::TcpFailed) => self.drop_session(&mut out, DownReason::ConnectionLost, None),
            (_, Event::CollisionLost) => {
                let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
                out.push(Action::Send(Message::Notification(n)));
                out.push(Action::Close);
                self.clear_session_timers(&mut out);
                self.negotiated = None;
                // The winning connection is handed over with TcpConnected next.
                self.state = State::Active;
            }
            (State::OpenSent | State::OpenConfirm | State::Established, Event::Message(_)) => {
                // An unexpected message type for the state (e.g. UPDATE in OpenSent, OPEN when Established).
                let sub = match self.state {
                    State::OpenSent => 1,
                    State::OpenConfirm => 2,
                    _ => 3,
                };
                let n = Notification::fsm_error(sub);
                self.drop_session(&mut out, DownReason::NotificationSent(n.clone()), Some(n));
            }
            (State::OpenSent | State::OpenConfirm | State::Established, Event::TcpConnected) => {
                // The task resolves collisions before binding a second connection; a stray one is ignored.
            }
            (State::OpenSent, Event::TimerExpired(_)) => {}
            (State::OpenConfirm | State::Established, Event::TimerExpired(_)) => {}
            (State::OpenSent | State::OpenConfirm, Event::TreatAsWithdraw(_)) => {
                let n = Notification::fsm_error(if self.state == State::OpenSent { 1 } else { 2 });
                self.drop_session(&mut out, DownReason::NotificationSent(n.clone()), Some(n));
            }
        }
        out
    }

    fn leave_idle(&mut self, out: &mut Vec<Action>) {
        out.push(Action::StopTimer(Timer::IdleHold));
        if self.settings.mode == Mode::Passive {
            self.state = State::Active;
        } else {
            self.state = State::Connect;
            out.push(Action::Connect);
            out.push(Action::StartTimer(
                Timer::ConnectRetry,
                self.retry.max(Duration::from_secs(2)),
            ));
        }
    }

    fn bump_retry(&mut self) -> Duration {
        let now = self.retry;
        self.retry = (self.retry * 2).min(self.settings.connect_retry_max);
        now
    }

    fn restart_hold(&self, out: &mut Vec<Action>) {
        if let Some(neg) = &self.negotiated {
            if !neg.hold_time.is_zero() {
                out.push(Action::StartTimer(Timer::Hold, neg.hold_time));
            }
        }
    }

    fn clear_session_timers(&self, out: &mut Vec<Action>) {
        out.push(Action::StopTimer(Timer::Hold));
        out.push(Action::StopTimer(Timer::Keepalive));
        out.push(Action::StopTimer(Timer::ConnectRetry));
    }

    /// Leaves any state for Idle, telling the peer why when `notify` is given, and arms the back-off.
    fn drop_session(
        &mut self,
        out: &mut Vec<Action>,
        reason: DownReason,
        notify: Option<Notification>,
    ) {
        let was = self.state;
        if let Some(n) = notify {
            if was.connected() {
                out.push(Action::Send(Message::Notification(n)));
            }
        }
        if was != State::Idle {
            out.push(Action::Close);
        }
        if was == State::Established {
            // RFC 4724 §4.2: the helper keeps routes when the session drops without a NOTIFICATION (or with
            // one other than Hard Reset when the N bit was negotiated; we do not negotiate N).
            let graceful = matches!(reason, DownReason::ConnectionLost | DownReason::BfdDown)
                && self.negotiated.as_ref().is_some_and(|n| n.graceful_restart);
            out.push(Action::Down { reason, graceful });
        }
        self.go_idle(out, Some(()));
    }

    fn go_idle(&mut self, out: &mut Vec<Action>, backoff: Option<()>) {
        self.clear_session_timers(out);
        self.negotiated = None;
        self.state = State::Idle;
        if backoff.is_some() && !self.stopped && !self.bfd_blocked {
            let d = self.bump_retry();
            out.push(Action::StartTimer(Timer::IdleHold, d));
        }
    }

    /// Checks the peer's OPEN (RFC 4271 §6.2) and computes what was negotiated.
    fn check_open(&self, open: &Open) -> Result<Negotiated, Notification> {
        let s = &self.settings;
        if open.asn() != s.peer_as {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                open_subcode::BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
            ));
        }
        if open.bgp_id.is_multicast()
            || open.bgp_id.is_broadcast()
            || (s.peer_as == s.local_as && open.bgp_id == s.router_id)
        {
            return Err(Notification::new(
                code::OPEN_MESSAGE,
                open_subcode::BAD_BGP_IDENTIFIER,
                open.bgp_id.octets().to_vec(),
            ));
        }
        let hold = s.hold_time.min(open.hold_time);
        let hold_time = Duration::from_secs(u64::from(hold));
        let keepalive = match s.keepalive {
            Some(k) => k.min(hold_time / 3),
            None => hold_time / 3,
        };
        let remote_families: Vec<AfiSafi> = open.multiprotocol().collect();
        let families = if remote_families.is_empty() {
            // No multiprotocol capability at all: IPv4 unicast only (RFC 4760 §8).
            s.families
                .iter()
                .copied()
                .filter(|f| *f == AfiSafi::IPV4_UNICAST)
                .collect()
        } else {
            s.families
                .iter()
                .copied()
                .filter(|f| remote_families.contains(f))
                .collect()
        };
        let local = self.local_open();
        Ok(Negotiated {
            context: Context::negotiated(&local, open),
            hold_time,
            keepalive,
            families,
            remote_as: open.asn(),
            remote_id: open.bgp_id,
            route_refresh: open.route_refresh(),
            peer_graceful_restart: open.graceful_restart().cloned(),
            graceful_restart: s.graceful_restart.is_some() && open.graceful_restart().is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings() -> Settings {
        Settings {
            local_as: 65001,
            router_id: Ipv4Addr::new(198, 18, 0, 11),
            peer_as: 65000,
            hold_time: 9,
            keepalive: None,
            mode: Mode::Both,
            connect_retry: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(8),
            graceful_restart: None,
            restarting: false,
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        }
    }

    fn peer_open() -> Open {
        Open::new(65000, 3, Ipv4Addr::new(198, 18, 0, 1))
            .with_capability(Capability::Multiprotocol(AfiSafi::IPV4_UNICAST))
    }

    fn established() -> Fsm {
        let mut f = Fsm::new(settings());
        f.handle(Event::Start);
        f.handle(Event::TcpConnected);
        f.handle(Event::Message(Message::Open(peer_open())));
        let a = f.handle(Event::Message(Message::Keepalive));
        assert!(matches!(a.last(), Some(Action::Established(_))));
        f
    }

    #[test]
    fn active_open_to_established() {
        let mut f = Fsm::new(settings());
        let a = f.handle(Event::Start);
        assert_eq!(f.state(), State::Connect);
        assert_eq!(a[1], Action::Connect);
        let a = f.handle(Event::TcpConnected);
        assert_eq!(f.state(), State::OpenSent);
        assert!(matches!(a[1], Action::Send(Message::Open(_))));
        let a = f.handle(Event::Message(Message::Open(peer_open())));
        assert_eq!(f.state(), State::OpenConfirm);
        assert_eq!(a[0], Action::Send(Message::Keepalive));
        // Hold is the smaller proposal (3 s), keepalive a third of it.
        assert!(a.contains(&Action::StartTimer(Timer::Hold, Duration::from_secs(3))));
        assert!(a.contains(&Action::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(1)
        )));
        let neg = f.negotiated().unwrap();
        assert_eq!(neg.families, vec![AfiSafi::IPV4_UNICAST]);
        assert!(neg.context.four_octet_as);
        f.handle(Event::Message(Message::Keepalive));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn passive_waits_in_active() {
        let mut f = Fsm::new(Settings {
            mode: Mode::Passive,
            ..settings()
        });
        assert!(f.handle(Event::Start).iter().all(|a| *a != Action::Connect));
        assert_eq!(f.state(), State::Active);
        assert!(f
            .handle(Event::TimerExpired(Timer::ConnectRetry))
            .is_empty());
        f.handle(Event::TcpConnected);
        assert_eq!(f.state(), State::OpenSent);
    }

    #[test]
    fn wrong_peer_as_is_refused_with_bad_peer_as() {
        let mut f = Fsm::new(settings());
        f.handle(Event::Start);
        f.handle(Event::TcpConnected);
        let a = f.handle(Event::Message(Message::Open(Open::new(
            65099,
            9,
            Ipv4Addr::new(198, 18, 0, 1),
        ))));
        let Action::Send(Message::Notification(n)) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!((n.code, n.subcode), (2, 2));
        assert_eq!(a[1], Action::Close);
        assert_eq!(f.state(), State::Idle);
        assert!(a.contains(&Action::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
    }

    #[test]
    fn connect_retry_backs_off_to_the_maximum() {
        let mut f = Fsm::new(settings());
        f.handle(Event::Start);
        let mut delays = Vec::new();
        for _ in 0..6 {
            for a in f.handle(Event::TcpFailed) {
                if let Action::StartTimer(Timer::ConnectRetry, d) = a {
                    delays.push(d.as_secs());
                }
            }
            assert_eq!(f.state(), State::Active);
            f.handle(Event::TimerExpired(Timer::ConnectRetry));
            assert_eq!(f.state(), State::Connect);
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn hold_timer_expiry_sends_notification_and_goes_down() {
        let mut f = established();
        let a = f.handle(Event::TimerExpired(Timer::Hold));
        assert_eq!(
            a[0],
            Action::Send(Message::Notification(Notification::hold_timer_expired()))
        );
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Down {
                graceful: false,
                ..
            }
        )));
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn bfd_down_drops_at_once_and_blocks_until_bfd_up() {
        let mut f = established();
        let a = f.handle(Event::BfdDown);
        assert_eq!(
            a[0],
            Action::Send(Message::Notification(Notification::cease(CEASE_BFD_DOWN)))
        );
        assert!(a.iter().any(|a| matches!(
            a,
            Action::Down {
                reason: DownReason::BfdDown,
                ..
            }
        )));
        assert_eq!(f.state(), State::Idle);
        assert!(!a
            .iter()
            .any(|a| matches!(a, Action::StartTimer(Timer::IdleHold, _))));
        // Timers and Start do nothing while BFD is down.
        assert!(f.handle(Event::TimerExpired(Timer::IdleHold)).is_empty());
        f.handle(Event::Start);
        assert_eq!(f.state(), State::Idle);
        let a = f.handle(Event::BfdUp);
        assert!(a.contains(&Action::Connect));
        assert_eq!(f.state(), State::Connect);
    }

    #[test]
    fn stop_sends_cease_and_stays_idle() {
        let mut f = established();
        let a = f.handle(Event::Stop(cease_subcode::ADMINISTRATIVE_SHUTDOWN));
        assert_eq!(
            a[0],
            Action::Send(Message::Notification(Notification::cease(2)))
        );
        assert!(!a.iter().any(|a| matches!(a, Action::StartTimer(..))));
        assert!(f.handle(Event::TimerExpired(Timer::IdleHold)).is_empty());
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn update_before_established_is_an_fsm_error() {
        let mut f = Fsm::new(settings());
        f.handle(Event::Start);
        f.handle(Event::TcpConnected);
        let a = f.handle(Event::Message(Message::Update(Update::default())));
        let Action::Send(Message::Notification(n)) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!((n.code, n.subcode), (5, 1));
    }

    #[test]
    fn graceful_restart_marks_connection_loss_graceful() {
        let mut f = Fsm::new(Settings {
            graceful_restart: Some(120),
            ..settings()
        });
        f.handle(Event::Start);
        f.handle(Event::TcpConnected);
        let open = peer_open().with_capability(Capability::GracefulRestart(GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 60,
            families: vec![],
        }));
        f.handle(Event::Message(Message::Open(open)));
        f.handle(Event::Message(Message::Keepalive));
        let a = f.handle(Event::TcpFailed);
        assert!(a
            .iter()
            .any(|a| matches!(a, Action::Down { graceful: true, .. })));
        let local = f.local_open();
        assert_eq!(local.graceful_restart().unwrap().restart_time, 120);
    }

    #[test]
    fn collision_lost_ceases_and_waits_for_the_other_connection() {
        let mut f = Fsm::new(settings());
        f.handle(Event::Start);
        f.handle(Event::TcpConnected);
        f.handle(Event::Message(Message::Open(peer_open())));
        let a = f.handle(Event::CollisionLost);
        assert_eq!(
            a[0],
            Action::Send(Message::Notification(Notification::cease(7)))
        );
        assert_eq!(f.state(), State::Active);
        f.handle(Event::TcpConnected);
        assert_eq!(f.state(), State::OpenSent);
    }

    #[test]
    fn decode_error_sends_its_notification() {
        let mut f = established();
        let a = f.handle(Event::DecodeError(CodecError::BadMessageType(9)));
        let Action::Send(Message::Notification(n)) = &a[0] else {
            panic!("{a:?}")
        };
        assert_eq!((n.code, n.subcode, n.data.clone()), (1, 3, vec![9]));
    }
}
