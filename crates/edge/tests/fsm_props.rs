//! Property tests of the pure session state machine: any sequence of events is handled without panicking, and
//! the machine keeps its invariants (a connection is only used in connected states, Established is reached only
//! through OpenConfirm, BFD down blocks the session until BFD is up).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use yagura_bgp::packet::{AfiSafi, Capability, Message, Notification, Open, Update};
use yagura_edge::config::Mode;
use yagura_edge::fsm::{Action, Event, Fsm, Settings, State, Timer};

fn settings(mode: Mode) -> Settings {
    Settings {
        local_as: 65001,
        router_id: Ipv4Addr::new(198, 18, 0, 11),
        peer_as: 65000,
        hold_time: 9,
        keepalive: None,
        mode,
        connect_retry: Duration::from_secs(1),
        connect_retry_max: Duration::from_secs(30),
        graceful_restart: Some(120),
        restarting: false,
        families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
    }
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Start),
        Just(Event::Stop(2)),
        Just(Event::TcpConnected),
        Just(Event::TcpFailed),
        Just(Event::CollisionLost),
        Just(Event::BfdDown),
        Just(Event::BfdUp),
        Just(Event::Message(Message::Keepalive)),
        Just(Event::Message(Message::Update(Update::default()))),
        Just(Event::Message(Message::Notification(Notification::cease(
            2
        )))),
        (any::<bool>(), 0u16..20).prop_map(|(right_as, hold)| {
            let asn = if right_as { 65000 } else { 65099 };
            Event::Message(Message::Open(
                Open::new(asn, hold, Ipv4Addr::new(198, 18, 0, 1))
                    .with_capability(Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)),
            ))
        }),
        prop_oneof![
            Just(Timer::ConnectRetry),
            Just(Timer::Hold),
            Just(Timer::Keepalive),
            Just(Timer::IdleHold)
        ]
        .prop_map(Event::TimerExpired),
    ]
}

proptest! {
    #[test]
    fn any_event_sequence_keeps_the_invariants(
        mode in prop_oneof![Just(Mode::Both), Just(Mode::Active), Just(Mode::Passive)],
        events in proptest::collection::vec(event(), 0..60),
    ) {
        let mut f = Fsm::new(settings(mode));
        let mut bfd_down = false;
        for ev in events {
            let before = f.state();
            match &ev {
                Event::BfdDown => bfd_down = true,
                Event::BfdUp => bfd_down = false,
                _ => {}
            }
            let actions = f.handle(ev);
            let after = f.state();
            for a in &actions {
                if let Action::Send(_) = a {
                    prop_assert!(before.connected() || after.connected() || matches!(before, State::Connect | State::Active),
                        "send outside a connection: {before:?} -> {after:?}");
                }
                if let Action::StartTimer(_, d) = a {
                    prop_assert!(*d > Duration::ZERO);
                }
                if let Action::Connect = a {
                    prop_assert!(mode != Mode::Passive);
                }
            }
            if after == State::Established {
                prop_assert!(matches!(before, State::OpenConfirm | State::Established));
                prop_assert!(f.negotiated().is_some());
            }
            if bfd_down {
                prop_assert!(!after.connected(), "session up while BFD is down");
            }
        }
    }
}
