//! Pure BFD session logic (RFC 5880 §6.8): state transitions on reception,
//! detection time, transmit interval and the Poll/Final sequence used when
//! timing parameters change. Nothing here reads a clock or arms a timer;
//! durations are returned for the caller to schedule.

use std::time::Duration;

use crate::packet::{ControlPacket, Diagnostic, Flags, State};

/// Slowest transmit rate allowed while the session is not Up (§6.8.3).
pub const SLOW_TX_INTERVAL: u32 = 1_000_000;

/// The outcome of a state transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The new local session state.
    pub state: State,
    /// A new local diagnostic to record, if the transition sets one.
    pub diag: Option<Diagnostic>,
}

/// The RFC 5880 §6.8.6 state table: the new local state after receiving a
/// packet whose State field is `remote`, while the local state is `local`.
///
/// AdminDown locally ignores everything; a remote AdminDown or a remote Down
/// seen while Up takes the session Down with diagnostic 3 (Neighbor Signaled
/// Session Down).
pub fn next_state(local: State, remote: State) -> Transition {
    let stay = Transition {
        state: local,
        diag: None,
    };
    let down = Transition {
        state: State::Down,
        diag: Some(Diagnostic::NeighborSignaledSessionDown),
    };
    match (local, remote) {
        (State::AdminDown, _) => stay,
        (State::Down, State::AdminDown) => stay,
        (_, State::AdminDown) => down,
        (State::Down, State::Down) => Transition {
            state: State::Init,
            diag: None,
        },
        (State::Down, State::Init) => Transition {
            state: State::Up,
            diag: None,
        },
        (State::Down, State::Up) => stay,
        (State::Init, State::Init | State::Up) => Transition {
            state: State::Up,
            diag: None,
        },
        (State::Init, State::Down) => stay,
        (State::Up, State::Down) => down,
        (State::Up, State::Init | State::Up) => stay,
    }
}

/// Detection time in Asynchronous mode (§6.8.4): the remote Detect Mult
/// times the larger of the local Required Min RX Interval and the remote
/// Desired Min TX Interval (both µs).
pub fn detection_time(
    remote_detect_mult: u8,
    local_required_min_rx: u32,
    remote_desired_min_tx: u32,
) -> Duration {
    let interval = u64::from(local_required_min_rx.max(remote_desired_min_tx));
    Duration::from_micros(interval.saturating_mul(u64::from(remote_detect_mult)))
}

/// Transmit interval before jitter (§6.8.7): the larger of the local Desired
/// Min TX Interval and the remote Required Min RX Interval (µs). A remote
/// Required Min RX of zero means the peer wants no packets: `None`.
pub fn transmit_interval(local_desired_min_tx: u32, remote_min_rx: u32) -> Option<Duration> {
    (remote_min_rx != 0)
        .then(|| Duration::from_micros(u64::from(local_desired_min_tx.max(remote_min_rx))))
}

/// Applies the §6.8.7 jitter to `interval`: a reduction of 0-25 %, or
/// 10-25 % when `detect_mult` is 1. `random` is any uniformly distributed
/// value supplied by the caller.
pub fn jittered(interval: Duration, detect_mult: u8, random: u32) -> Duration {
    // Percent of the interval to keep: 75..=100, or 75..=90.
    let span = if detect_mult == 1 { 16 } else { 26 };
    let keep = 75 + (random % span);
    interval.saturating_mul(keep) / 100
}

/// Local Desired Min TX Interval to advertise: at least one second while
/// the session is not Up (§6.8.3).
pub fn effective_desired_min_tx(state: State, configured: u32) -> u32 {
    if state == State::Up {
        configured
    } else {
        configured.max(SLOW_TX_INTERVAL)
    }
}

/// Whether a received packet's authentication matches the session
/// (§6.8.6): the A bit must be set exactly when authentication is in use.
pub fn auth_consistent(packet: &ControlPacket, auth_in_use: bool) -> bool {
    packet.auth.is_some() == auth_in_use
}

/// Timing parameters of the local system (µs), as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timing {
    /// bfd.DesiredMinTxInterval.
    pub desired_min_tx: u32,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx: u32,
    /// bfd.DetectMult.
    pub detect_mult: u8,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            detect_mult: 3,
        }
    }
}

/// What the caller must do after [`Session::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReceiveOutcome {
    /// The session state changed from `.0` to `.1`.
    pub state_change: Option<(State, State)>,
    /// The peer sent a Poll: send a packet with Final set now (get it from
    /// [`Session::next_packet`]), without waiting for the transmit timer.
    pub send_final: bool,
    /// Our Poll Sequence finished: the new timing is now in force.
    pub poll_completed: bool,
    /// The packet was ignored (local AdminDown, or discriminator mismatch).
    pub ignored: bool,
}

/// BFD session variables (§6.8.1) and the logic acting on them, without
/// timers. The owner (the daemon) keeps one per peer and:
///
/// * calls [`Session::receive`] for each decoded packet addressed to it and
///   re-arms its detection timer with [`Session::detection_time`];
/// * sends [`Session::next_packet`] every [`Session::transmit_interval`]
///   (jittered with [`jittered`]) and immediately when asked to;
/// * calls [`Session::detection_timeout`] when the detection timer fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diagnostic,
    /// Timing in force (used for packets and timers).
    timing: Timing,
    /// Timing requested while a Poll Sequence is in progress.
    pending: Option<Timing>,
    remote_min_rx: u32,
    remote_desired_min_tx: u32,
    remote_detect_mult: u8,
    remote_demand: bool,
    send_final: bool,
}

impl Session {
    /// A new session in the Down state with a non-zero local discriminator.
    pub fn new(local_discr: u32, timing: Timing) -> Self {
        Self {
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::None,
            timing,
            pending: None,
            remote_min_rx: 1,
            remote_desired_min_tx: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            send_final: false,
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.RemoteSessionState.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// bfd.LocalDiag.
    pub fn local_diag(&self) -> Diagnostic {
        self.local_diag
    }

    /// bfd.LocalDiscr.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// bfd.RemoteDiscr (zero until a packet was received).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    /// bfd.RemoteDemandMode.
    pub fn remote_demand(&self) -> bool {
        self.remote_demand
    }

    /// Whether a Poll Sequence is in progress.
    pub fn polling(&self) -> bool {
        self.pending.is_some()
    }

    /// The timing currently in force.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Process a received, decoded packet (§6.8.6 from "If the Your
    /// Discriminator field is nonzero" on; session lookup and
    /// authentication are the caller's).
    pub fn receive(&mut self, packet: &ControlPacket) -> ReceiveOutcome {
        let mut out = ReceiveOutcome::default();
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_discr {
            out.ignored = true;
            return out;
        }
        self.remote_discr = packet.my_discriminator;
        self.remote_state = packet.state;
        self.remote_demand = packet.flags.demand;
        self.remote_min_rx = packet.required_min_rx;
        self.remote_desired_min_tx = packet.desired_min_tx;
        self.remote_detect_mult = packet.detect_mult;

        if packet.flags.final_ {
            if let Some(new) = self.pending.take() {
                self.timing = new;
                out.poll_completed = true;
            }
        }
        if self.state == State::AdminDown {
            out.ignored = true;
            return out;
        }
        let t = next_state(self.state, packet.state);
        if let Some(diag) = t.diag {
            self.local_diag = diag;
        }
        if t.state != self.state {
            out.state_change = Some((self.state, t.state));
            self.state = t.state;
        }
        if packet.flags.poll {
            self.send_final = true;
            out.send_final = true;
        }
        out
    }

    /// The detection timer expired (§6.8.4): the session goes Down with
    /// diagnostic 1 if it was Init or Up. Returns the transition, if any.
    pub fn detection_timeout(&mut self) -> Option<(State, State)> {
        if matches!(self.state, State::Init | State::Up) {
            let old = self.state;
            self.state = State::Down;
            self.local_diag = Diagnostic::ControlDetectionTimeExpired;
            self.remote_discr = 0;
            Some((old, State::Down))
        } else {
            None
        }
    }

    /// Administratively disable the session (§6.8.16).
    pub fn admin_down(&mut self, diag: Diagnostic) {
        self.state = State::AdminDown;
        self.local_diag = diag;
    }

    /// Re-enable an administratively disabled session (it starts Down).
    pub fn admin_up(&mut self) {
        if self.state == State::AdminDown {
            self.state = State::Down;
            self.local_diag = Diagnostic::None;
        }
    }

    /// Change the local timing. While Up, the change is negotiated with a
    /// Poll Sequence (§6.8.3): packets carry the new values with Poll set,
    /// but the transmit interval and detection time keep using the old
    /// values until a packet with Final arrives. Otherwise it applies at
    /// once.
    pub fn set_timing(&mut self, timing: Timing) {
        if self.state == State::Up && timing != self.timing {
            self.pending = Some(timing);
        } else {
            self.timing = timing;
            self.pending = None;
        }
    }

    /// The packet to send next. Sets Poll while a Poll Sequence is in
    /// progress and Final once after a received Poll (a packet never has
    /// both, §6.5: Final takes precedence and Poll follows in the next one).
    pub fn next_packet(&mut self) -> ControlPacket {
        let advertised = self.pending.unwrap_or(self.timing);
        let final_ = std::mem::take(&mut self.send_final);
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            flags: Flags {
                poll: self.pending.is_some() && !final_,
                final_,
                ..Flags::default()
            },
            detect_mult: advertised.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: effective_desired_min_tx(self.state, advertised.desired_min_tx),
            required_min_rx: advertised.required_min_rx,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    /// Interval between periodic transmissions before jitter, or `None`
    /// when the peer asked for none (Required Min RX zero).
    pub fn transmit_interval(&self) -> Option<Duration> {
        // An increased Desired Min TX only applies once the poll completes;
        // a decrease may apply immediately but using the old value is
        // always safe.
        let tx = effective_desired_min_tx(self.state, self.timing.desired_min_tx);
        transmit_interval(tx, self.remote_min_rx)
    }

    /// Detection time for the remote system, or `None` before any packet was
    /// received. During a Poll Sequence that lowers Required Min RX, the old
    /// (larger) value is used (§6.8.3).
    pub fn detection_time(&self) -> Option<Duration> {
        if self.remote_detect_mult == 0 {
            return None;
        }
        let rx = match self.pending {
            Some(p) => p.required_min_rx.max(self.timing.required_min_rx),
            None => self.timing.required_min_rx,
        };
        Some(detection_time(
            self.remote_detect_mult,
            rx,
            self.remote_desired_min_tx,
        ))
    }
}
