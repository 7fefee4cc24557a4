#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Session state machine, detection time and Poll/Final tests (RFC 5880 §6.8).

use std::time::Duration;

use proptest::prelude::*;
use yagura_bfd::fsm::*;
use yagura_bfd::packet::*;

#[test]
fn state_table() {
    use State::*;
    let nssd = Some(Diagnostic::NeighborSignaledSessionDown);
    let cases = [
        (AdminDown, Up, AdminDown, None),
        (AdminDown, Down, AdminDown, None),
        (Down, AdminDown, Down, None),
        (Down, Down, Init, None),
        (Down, Init, Up, None),
        (Down, Up, Down, None),
        (Init, AdminDown, Down, nssd),
        (Init, Down, Init, None),
        (Init, Init, Up, None),
        (Init, Up, Up, None),
        (Up, AdminDown, Down, nssd),
        (Up, Down, Down, nssd),
        (Up, Init, Up, None),
        (Up, Up, Up, None),
    ];
    for (local, remote, state, diag) in cases {
        assert_eq!(
            next_state(local, remote),
            Transition { state, diag },
            "{local} + {remote}"
        );
    }
}

#[test]
fn detection_and_transmit_intervals() {
    assert_eq!(
        detection_time(3, 300_000, 100_000),
        Duration::from_millis(900)
    );
    assert_eq!(detection_time(5, 50_000, 200_000), Duration::from_secs(1));
    assert_eq!(
        detection_time(255, u32::MAX, 0),
        Duration::from_micros(u64::from(u32::MAX) * 255)
    );
    assert_eq!(
        transmit_interval(100_000, 300_000),
        Some(Duration::from_millis(300))
    );
    assert_eq!(transmit_interval(100_000, 0), None);
    assert_eq!(effective_desired_min_tx(State::Down, 50_000), 1_000_000);
    assert_eq!(effective_desired_min_tx(State::Up, 50_000), 50_000);
    let base = Duration::from_millis(1000);
    assert_eq!(jittered(base, 3, 0), Duration::from_millis(750));
    assert_eq!(jittered(base, 3, 25), Duration::from_millis(1000));
    assert_eq!(jittered(base, 1, 15), Duration::from_millis(900));
}

proptest! {
    #[test]
    fn jitter_bounds(ms in 1u64..100_000, mult in any::<u8>(), r in any::<u32>()) {
        let base = Duration::from_millis(ms);
        let j = jittered(base, mult, r);
        prop_assert!(j >= base * 3 / 4);
        let upper = if mult == 1 { base * 9 / 10 } else { base };
        prop_assert!(j <= upper);
    }
}

fn peer_packet(state: State, my: u32, your: u32) -> ControlPacket {
    ControlPacket {
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        ..ControlPacket::new(state, my, your)
    }
}

#[test]
fn three_way_handshake_between_two_sessions() {
    let mut a = Session::new(1, Timing::default());
    let mut b = Session::new(2, Timing::default());
    // A sends Down; B goes Init.
    let pa = a.next_packet();
    assert_eq!(
        (pa.state, pa.your_discriminator, pa.desired_min_tx),
        (State::Down, 0, SLOW_TX_INTERVAL)
    );
    assert_eq!(
        b.receive(&pa).state_change,
        Some((State::Down, State::Init))
    );
    // B sends Init; A goes Up.
    let pb = b.next_packet();
    assert_eq!(pb.your_discriminator, 1);
    assert_eq!(a.receive(&pb).state_change, Some((State::Down, State::Up)));
    // A sends Up; B goes Up.
    assert_eq!(
        b.receive(&a.next_packet()).state_change,
        Some((State::Init, State::Up))
    );
    assert_eq!(a.state(), State::Up);
    assert_eq!(b.state(), State::Up);
    assert_eq!(a.next_packet().desired_min_tx, 300_000);
    // B was not Up when it last sent, so it advertised the 1 s slow rate.
    assert_eq!(a.detection_time(), Some(Duration::from_secs(3)));
    assert_eq!(a.receive(&b.next_packet()).state_change, None);
    assert_eq!(a.detection_time(), Some(Duration::from_millis(900)));
}

#[test]
fn wrong_discriminator_is_ignored() {
    let mut s = Session::new(1, Timing::default());
    let out = s.receive(&peer_packet(State::Down, 9, 77));
    assert!(out.ignored);
    assert_eq!(s.remote_discriminator(), 0);
}

#[test]
fn neighbor_down_and_timeout() {
    let mut s = Session::new(1, Timing::default());
    s.receive(&peer_packet(State::Init, 9, 1));
    assert_eq!(s.state(), State::Up);
    let out = s.receive(&peer_packet(State::Down, 9, 1));
    assert_eq!(out.state_change, Some((State::Up, State::Down)));
    assert_eq!(s.local_diag(), Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(
        s.next_packet().diag,
        Diagnostic::NeighborSignaledSessionDown
    );

    s.receive(&peer_packet(State::Down, 9, 1));
    assert_eq!(s.state(), State::Init);
    assert_eq!(s.detection_timeout(), Some((State::Init, State::Down)));
    assert_eq!(s.local_diag(), Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(s.detection_timeout(), None);
}

#[test]
fn admin_down_ignores_packets() {
    let mut s = Session::new(1, Timing::default());
    s.admin_down(Diagnostic::AdministrativelyDown);
    let out = s.receive(&peer_packet(State::Down, 9, 0));
    assert!(out.ignored);
    assert_eq!(s.state(), State::AdminDown);
    assert_eq!(s.next_packet().state, State::AdminDown);
    s.admin_up();
    assert_eq!(s.state(), State::Down);
}

#[test]
fn poll_from_peer_gets_final() {
    let mut s = Session::new(1, Timing::default());
    let mut p = peer_packet(State::Down, 9, 0);
    p.flags.poll = true;
    let out = s.receive(&p);
    assert!(out.send_final);
    let reply = s.next_packet();
    assert!(reply.flags.final_ && !reply.flags.poll);
    assert!(!s.next_packet().flags.final_);
}

#[test]
fn poll_sequence_on_timing_change() {
    let mut s = Session::new(1, Timing::default());
    s.receive(&peer_packet(State::Init, 9, 1));
    assert_eq!(s.state(), State::Up);
    assert_eq!(s.detection_time(), Some(Duration::from_millis(900)));

    // Faster timing while Up: advertise with Poll, keep the old values.
    let fast = Timing {
        desired_min_tx: 50_000,
        required_min_rx: 50_000,
        detect_mult: 3,
    };
    s.set_timing(fast);
    assert!(s.polling());
    let p = s.next_packet();
    assert!(p.flags.poll);
    assert_eq!((p.desired_min_tx, p.required_min_rx), (50_000, 50_000));
    assert_eq!(s.transmit_interval(), Some(Duration::from_millis(300)));
    // Detection time still uses the old (larger) Required Min RX.
    assert_eq!(s.detection_time(), Some(Duration::from_millis(900)));

    // A peer Poll during our sequence: Final wins, Poll resumes afterwards.
    let mut poll = peer_packet(State::Up, 9, 1);
    poll.flags.poll = true;
    s.receive(&poll);
    let p = s.next_packet();
    assert!(p.flags.final_ && !p.flags.poll);
    assert!(s.next_packet().flags.poll);

    // The peer answers with Final: new timing in force.
    let mut fin = peer_packet(State::Up, 9, 1);
    fin.flags.final_ = true;
    fin.desired_min_tx = 50_000;
    fin.required_min_rx = 50_000;
    assert!(s.receive(&fin).poll_completed);
    assert!(!s.polling());
    assert!(!s.next_packet().flags.poll);
    assert_eq!(s.timing(), fast);
    assert_eq!(s.transmit_interval(), Some(Duration::from_millis(50)));
    assert_eq!(s.detection_time(), Some(Duration::from_millis(150)));

    // Not Up: changes apply immediately, no Poll.
    let mut down = Session::new(2, Timing::default());
    down.set_timing(fast);
    assert!(!down.polling());
    assert!(!down.next_packet().flags.poll);
}

#[test]
fn auth_consistency() {
    let mut p = ControlPacket::new(State::Down, 1, 0);
    assert!(auth_consistent(&p, false));
    assert!(!auth_consistent(&p, true));
    p.auth = Some(Authentication::SimplePassword {
        key_id: 1,
        password: b"x".to_vec(),
    });
    assert!(auth_consistent(&p, true));
}
