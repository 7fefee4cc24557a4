#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Hand-written byte vectors for every message type and for the error
//! handling rules of RFC 4271 §6 and RFC 7606.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use yagura_bgp::packet::*;

const TWO: Context = Context {
    four_octet_as: false,
};
const FOUR: Context = Context {
    four_octet_as: true,
};

fn msg(type_code: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    v.push(type_code);
    v.extend_from_slice(body);
    v
}

fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    v.extend_from_slice(withdrawn);
    v.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    v.extend_from_slice(attrs);
    v.extend_from_slice(nlri);
    v
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn decode_message(bytes: &[u8], ctx: &Context) -> (Message, Vec<UpdateError>) {
    match decode(bytes, ctx).unwrap() {
        Decoded::Message {
            message,
            consumed,
            discarded,
        } => {
            assert_eq!(consumed, bytes.len());
            (message, discarded)
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Decode, compare with `expected`, and check that encoding gives `bytes`.
fn round_trip(bytes: &[u8], expected: &Message, ctx: &Context) {
    let (message, discarded) = decode_message(bytes, ctx);
    assert!(discarded.is_empty(), "{discarded:?}");
    assert_eq!(&message, expected);
    assert_eq!(expected.to_bytes(ctx).unwrap(), bytes);
}

fn treat_as_withdraw(bytes: &[u8], ctx: &Context) -> TreatAsWithdraw {
    match decode(bytes, ctx).unwrap() {
        Decoded::TreatAsWithdraw { withdraw, consumed } => {
            assert_eq!(consumed, bytes.len());
            withdraw
        }
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

fn notification_of(bytes: &[u8], ctx: &Context) -> Notification {
    decode(bytes, ctx).unwrap_err().to_notification()
}

// ---------------------------------------------------------------- OPEN

/// OPEN from a 4-octet AS speaker (AS 4200000001, so My AS is AS_TRANS
/// 23456), hold time 90, with MP IPv4/IPv6 unicast, route refresh, 4-octet AS
/// and graceful restart (120 s, IPv4 unicast forwarding preserved).
#[test]
fn open_four_octet_as_with_as_trans() {
    #[rustfmt::skip]
    let body = [
        4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 1, 30,
        2, 28,
        1, 4, 0, 1, 0, 1,
        1, 4, 0, 2, 0, 1,
        2, 0,
        65, 4, 0xfa, 0x56, 0xea, 0x01,
        64, 6, 0x00, 0x78, 0, 1, 1, 0x80,
    ];
    let bytes = msg(1, &body);
    assert_eq!(bytes.len(), 59);
    let open = Open::new(4_200_000_001, 90, Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(AS_TRANS, 23456);
    let open = Open {
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_001),
            Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
        ],
        ..open
    };
    round_trip(&bytes, &Message::Open(open.clone()), &TWO);
    assert_eq!(open.asn(), 4_200_000_001);
    assert!(open.route_refresh());
    assert_eq!(
        open.multiprotocol().collect::<Vec<_>>(),
        [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    assert_eq!(open.graceful_restart().unwrap().restart_time, 120);
}

#[test]
fn open_without_capabilities() {
    let body = [4, 0xfd, 0xe9, 0, 180, 10, 0, 0, 1, 0];
    let open = Open {
        my_as: 65001,
        hold_time: 180,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![],
    };
    round_trip(&msg(1, &body), &Message::Open(open.clone()), &TWO);
    assert_eq!(open.asn(), 65001);
    assert_eq!(open.four_octet_as(), None);
}

#[test]
fn open_with_one_parameter_per_capability() {
    // Some implementations send each capability in its own parameter.
    #[rustfmt::skip]
    let body = [
        4, 0xfd, 0xe9, 0, 180, 10, 0, 0, 1, 16,
        2, 6, 1, 4, 0, 1, 0, 1,
        2, 2, 2, 0,
        2, 2, 0x80, 0,
    ];
    let (message, _) = decode_message(&msg(1, &body), &TWO);
    let Message::Open(open) = message else {
        panic!()
    };
    assert_eq!(
        open.capabilities,
        [
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::Unknown {
                code: 0x80,
                value: vec![]
            },
        ]
    );
}

#[test]
fn open_graceful_restart_flags() {
    #[rustfmt::skip]
    let body = [
        4, 0xfd, 0xe9, 0, 0, 10, 0, 0, 1, 14,
        2, 12, 64, 10, 0xcf, 0xff, 0, 2, 1, 0, 0, 1, 1, 0x80,
    ];
    let (message, _) = decode_message(&msg(1, &body), &TWO);
    let Message::Open(open) = message else {
        panic!()
    };
    let gr = open.graceful_restart().unwrap();
    assert!(gr.restarting && gr.notification);
    assert_eq!(gr.restart_time, 4095);
    assert_eq!(gr.families.len(), 2);
    assert!(!gr.families[0].forwarding_preserved);
    assert_eq!(gr.families[0].afi_safi, AfiSafi::IPV6_UNICAST);
    assert!(gr.families[1].forwarding_preserved);
    // Hold time 0 is acceptable.
    assert_eq!(open.hold_time, 0);
    assert_eq!(Message::Open(open).to_bytes(&TWO).unwrap(), msg(1, &body));
}

#[test]
fn open_extended_optional_parameters_rfc9072() {
    let mut open = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1));
    for code in 200..210u8 {
        open.capabilities.push(Capability::Unknown {
            code,
            value: vec![code; 40],
        });
    }
    let bytes = Message::Open(open.clone()).to_bytes(&TWO).unwrap();
    // Non-extended length octet 255, then parameter type 255.
    assert_eq!(&bytes[28..30], &[255, 255]);
    let (message, _) = decode_message(&bytes, &TWO);
    assert_eq!(message, Message::Open(open));
}

#[test]
fn open_errors_map_to_notifications() {
    let good = [4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 0];
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.to_vec();
        f(&mut b);
        msg(1, &b)
    };
    // Unsupported version: data is the largest supported version, 2 octets.
    assert_eq!(
        notification_of(&with(&|b| b[0] = 3), &TWO),
        Notification::new(2, 1, vec![0, 4])
    );
    // AS 0 is a bad peer AS (RFC 7607).
    assert_eq!(
        notification_of(&with(&|b| b[1..3].copy_from_slice(&[0, 0])), &TWO),
        Notification::new(2, 2, vec![])
    );
    // Zero BGP identifier.
    assert_eq!(
        notification_of(&with(&|b| b[5..9].fill(0)), &TWO),
        Notification::new(2, 3, vec![])
    );
    // Hold time 1 and 2.
    for hold in [1u8, 2] {
        assert_eq!(
            notification_of(&with(&|b| b[4] = hold), &TWO),
            Notification::new(2, 6, vec![])
        );
    }
    // Hold time 3 is fine.
    decode_message(&with(&|b| b[4] = 3), &TWO);
    // Unsupported optional parameter (type 1, authentication).
    let err = decode(
        &with(&|b| {
            b[9] = 2;
            b.extend_from_slice(&[1, 0]);
        }),
        &TWO,
    )
    .unwrap_err();
    assert_eq!(err, Error::UnsupportedOptionalParameter(1));
    assert_eq!(err.to_notification(), Notification::new(2, 4, vec![]));
    // Malformed capability (multiprotocol with length 3): unspecific.
    let bad_cap = with(&|b| {
        b[9] = 7;
        b.extend_from_slice(&[2, 5, 1, 3, 0, 1, 0]);
    });
    assert_eq!(
        notification_of(&bad_cap, &TWO),
        Notification::new(2, 0, vec![])
    );
    // Capability overrunning its parameter.
    let overrun = with(&|b| {
        b[9] = 4;
        b.extend_from_slice(&[2, 2, 65, 4]);
    });
    assert_eq!(
        notification_of(&overrun, &TWO),
        Notification::new(2, 0, vec![])
    );
    // Optional parameter length larger than the message.
    assert_eq!(
        notification_of(&with(&|b| b[9] = 1), &TWO),
        Notification::new(2, 0, vec![])
    );
    // 4-octet AS capability carrying AS 0.
    let as0 = with(&|b| {
        b[9] = 8;
        b.extend_from_slice(&[2, 6, 65, 4, 0, 0, 0, 0]);
    });
    assert_eq!(notification_of(&as0, &TWO), Notification::new(2, 2, vec![]));
    // Too short to be an OPEN at all: message header error.
    assert_eq!(
        notification_of(&msg(1, &good[..9]), &TWO),
        Notification::new(1, 2, vec![0, 28])
    );
}

#[test]
fn unsupported_capability_notification_lists_capabilities() {
    let err = Error::unsupported_capabilities(&[Capability::Multiprotocol(AfiSafi::IPV6_UNICAST)]);
    assert_eq!(
        err.to_notification(),
        Notification::new(2, 7, vec![1, 4, 0, 2, 0, 1])
    );
    let bad_as = Error::BadPeerAs(65002).to_notification();
    assert_eq!(bad_as, Notification::new(2, 2, vec![]));
}

#[test]
fn negotiated_context() {
    let a = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1));
    let b = Open::new(65002, 90, Ipv4Addr::new(10, 0, 0, 2));
    assert!(Context::negotiated(&a, &b).four_octet_as);
    let old = Open {
        capabilities: vec![],
        ..b
    };
    assert!(!Context::negotiated(&a, &old).four_octet_as);
}

// ---------------------------------------------------------------- UPDATE

#[rustfmt::skip]
const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
#[rustfmt::skip]
const NEXT_HOP_192_0_2_1: [u8; 7] = [0x40, 3, 4, 192, 0, 2, 1];

fn basic_attributes(as_path: AsPath) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(as_path),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    }
}

#[test]
fn update_ipv4_two_octet_as() {
    #[rustfmt::skip]
    let attrs = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 6, 2, 2, 0xfd, 0xe9, 0xfd, 0xea],
        &NEXT_HOP_192_0_2_1,
        &[0x80, 4, 4, 0, 0, 0, 100],
        &[0x40, 5, 4, 0, 0, 0, 200],
        &[0xc0, 8, 8, 0xfd, 0xe9, 0, 100, 0xff, 0xff, 0xff, 0x01],
    ]
    .concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[24, 198, 51, 100]));
    let update = Update {
        withdrawn: vec![],
        attributes: PathAttributes {
            med: Some(100),
            local_pref: Some(200),
            communities: vec![Community::new(65001, 100), Community::NO_EXPORT],
            ..basic_attributes(AsPath::from_sequence([65001, 65002]))
        },
        nlri: vec![v4("198.51.100.0/24")],
    };
    round_trip(&bytes, &Message::Update(update.clone()), &TWO);
    let path = update.attributes.as_path.as_ref().unwrap();
    assert_eq!(path.first_as(), Some(65001));
    assert_eq!(path.path_len(), 2);
    assert!(path.contains(65002));
}

#[test]
fn update_ipv4_four_octet_as_and_withdrawals() {
    #[rustfmt::skip]
    let attrs = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 14, 2, 3, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0xfd, 0xea],
        &NEXT_HOP_192_0_2_1,
        &[0x40, 6, 0],
        &[0xc0, 7, 8, 0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 9],
        &[0xc0, 32, 12, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0, 1, 0, 0, 0, 2],
    ]
    .concat();
    let withdrawn = [32, 10, 1, 2, 3, 0];
    let bytes = msg(2, &update_body(&withdrawn, &attrs, &[22, 203, 0, 112]));
    let update = Update {
        withdrawn: vec![v4("10.1.2.3/32"), v4("0.0.0.0/0")],
        attributes: PathAttributes {
            atomic_aggregate: true,
            aggregator: Some(Aggregator {
                asn: 4_200_000_001,
                address: Ipv4Addr::new(10, 0, 0, 9),
            }),
            large_communities: vec![LargeCommunity {
                global_admin: 4_200_000_001,
                local_data1: 1,
                local_data2: 2,
            }],
            ..basic_attributes(AsPath::from_sequence([65001, 4_200_000_001, 65002]))
        },
        nlri: vec![v4("203.0.112.0/22")],
    };
    round_trip(&bytes, &Message::Update(update), &FOUR);
}

/// RFC 6793: towards a 2-octet peer a 4-octet AS appears as AS_TRANS in
/// AS_PATH/AGGREGATOR and in full in AS4_PATH/AS4_AGGREGATOR.
#[test]
fn update_as4_path_towards_old_speaker() {
    #[rustfmt::skip]
    let attrs = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 6, 2, 2, 0x5b, 0xa0, 0xfd, 0xe9],
        &NEXT_HOP_192_0_2_1,
        &[0xc0, 7, 6, 0x5b, 0xa0, 10, 0, 0, 9],
        &[0xc0, 17, 10, 2, 2, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0xfd, 0xe9],
        &[0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x01, 10, 0, 0, 9],
    ]
    .concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[24, 198, 51, 100]));
    let agg = Aggregator {
        asn: 4_200_000_001,
        address: Ipv4Addr::new(10, 0, 0, 9),
    };
    let sent = Update {
        attributes: PathAttributes {
            aggregator: Some(agg),
            as4_path: Some(AsPath::from_sequence([4_200_000_001, 65001])),
            as4_aggregator: Some(agg),
            ..basic_attributes(AsPath::from_sequence([4_200_000_001, 65001]))
        },
        nlri: vec![v4("198.51.100.0/24")],
        ..Default::default()
    };
    assert_eq!(Message::Update(sent.clone()).to_bytes(&TWO).unwrap(), bytes);
    let (received, _) = decode_message(&bytes, &TWO);
    let Message::Update(received) = received else {
        panic!()
    };
    assert_eq!(
        received.attributes.as_path,
        Some(AsPath::from_sequence([23456, 65001]))
    );
    assert_eq!(received.attributes.aggregator.unwrap().asn, 23456);
    assert_eq!(received.attributes.as4_path, sent.attributes.as4_path);
    assert_eq!(received.attributes.as4_aggregator, Some(agg));

    // Between two NEW speakers AS4_* are neither sent nor accepted.
    let four = Message::Update(sent).to_bytes(&FOUR).unwrap();
    let (m, discarded) = decode_message(&four, &FOUR);
    let Message::Update(u) = m else { panic!() };
    assert!(discarded.is_empty());
    assert_eq!(u.attributes.as4_path, None);
    // AS4_PATH received from a NEW peer is discarded (RFC 6793 §3).
    #[rustfmt::skip]
    let attrs4 = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9],
        &NEXT_HOP_192_0_2_1,
        &[0xc0, 17, 6, 2, 1, 0, 0, 0xfd, 0xe9],
    ]
    .concat();
    let (_, discarded) = decode_message(&msg(2, &update_body(&[], &attrs4, &[8, 10])), &FOUR);
    assert_eq!(discarded.len(), 1);
    assert_eq!(discarded[0].action, ErrorAction::AttributeDiscard);
    assert_eq!(discarded[0].attribute_type, Some(17));
}

#[test]
fn as_path_sets_and_confederations() {
    #[rustfmt::skip]
    let attrs = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 18, 3, 1, 0xfd, 0xe8, 2, 1, 0xfd, 0xe9, 1, 2, 0, 1, 0, 2, 4, 1, 0xfd, 0xea],
        &NEXT_HOP_192_0_2_1,
    ]
    .concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[8, 10]));
    let path = AsPath {
        segments: vec![
            AsSegment {
                kind: AsSegmentType::ConfedSequence,
                asns: vec![65000],
            },
            AsSegment {
                kind: AsSegmentType::Sequence,
                asns: vec![65001],
            },
            AsSegment {
                kind: AsSegmentType::Set,
                asns: vec![1, 2],
            },
            AsSegment {
                kind: AsSegmentType::ConfedSet,
                asns: vec![65002],
            },
        ],
    };
    assert_eq!(path.path_len(), 2);
    assert_eq!(path.first_as(), None);
    let update = Update {
        attributes: basic_attributes(path),
        nlri: vec![v4("10.0.0.0/8")],
        ..Default::default()
    };
    round_trip(&bytes, &Message::Update(update), &TWO);
}

#[test]
fn as_path_prepend() {
    let mut path = AsPath::default();
    path.prepend(65001);
    path.prepend(65000);
    assert_eq!(path, AsPath::from_sequence([65000, 65001]));
    let mut long = AsPath::from_sequence(1..=255);
    long.prepend(7);
    assert_eq!(long.segments.len(), 2);
    assert_eq!(long.first_as(), Some(7));
    assert_eq!(AsPath::from_sequence(1..=300).segments.len(), 2);
}

#[test]
fn update_ipv6_mp_reach_with_link_local() {
    #[rustfmt::skip]
    let mp = [
        0x80, 14, 44, 0, 2, 1, 32,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0,
        48, 0x20, 0x01, 0x0d, 0xb8, 0, 1,
    ];
    let attrs = [&mp[..], &ORIGIN_IGP, &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]].concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[]));
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([65001])),
            mp_reach: Some(MpReach::Ipv6Unicast {
                next_hop: Ipv6NextHop {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: vec![v6("2001:db8:1::/48")],
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    round_trip(&bytes, &Message::Update(update.clone()), &FOUR);
    assert_eq!(update.announced_ipv6(), [v6("2001:db8:1::/48")]);
}

#[test]
fn update_ipv6_mp_reach_global_only_and_unreach() {
    #[rustfmt::skip]
    let mp = [
        0x80, 14, 30, 0, 2, 1, 16,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0,
        64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1,
    ];
    let unreach = [0x80, 15, 8, 0, 2, 1, 32, 0x20, 0x01, 0x0d, 0xb9];
    let attrs = [&unreach[..], &mp, &ORIGIN_IGP, &[0x40, 2, 0]].concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[]));
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            mp_reach: Some(MpReach::Ipv6Unicast {
                next_hop: Ipv6NextHop {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: None,
                },
                nlri: vec![v6("2001:db8:0:1::/64")],
            }),
            mp_unreach: Some(MpUnreach::Ipv6Unicast(vec![v6("2001:db9::/32")])),
            ..Default::default()
        },
        ..Default::default()
    };
    round_trip(&bytes, &Message::Update(update.clone()), &FOUR);
    assert_eq!(update.withdrawn_ipv6(), [v6("2001:db9::/32")]);
}

#[test]
fn update_ipv4_in_mp_attributes() {
    let mp = [0x80, 14, 13, 0, 1, 1, 4, 192, 0, 2, 1, 0, 24, 10, 1, 2];
    let unreach = [0x80, 15, 5, 0, 1, 1, 8, 11];
    let attrs = [&unreach[..], &mp, &ORIGIN_IGP, &[0x40, 2, 0]].concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[]));
    let (m, _) = decode_message(&bytes, &FOUR);
    let Message::Update(u) = m else { panic!() };
    assert_eq!(
        u.announced_ipv4().copied().collect::<Vec<_>>(),
        [v4("10.1.2.0/24")]
    );
    assert_eq!(
        u.withdrawn_ipv4().copied().collect::<Vec<_>>(),
        [v4("11.0.0.0/8")]
    );
    assert_eq!(Message::Update(u).to_bytes(&FOUR).unwrap(), bytes);
}

#[test]
fn update_other_family_is_kept_raw() {
    // AFI 1 SAFI 133 (flowspec) with an empty next hop.
    let mp = [0x80, 14, 9, 0, 1, 133, 0, 0, 3, 1, 2, 3];
    let attrs = [&mp[..], &ORIGIN_IGP, &[0x40, 2, 0]].concat();
    let bytes = msg(2, &update_body(&[], &attrs, &[]));
    let (m, _) = decode_message(&bytes, &FOUR);
    let Message::Update(u) = m else { panic!() };
    assert_eq!(
        u.attributes.mp_reach,
        Some(MpReach::Other {
            afi_safi: AfiSafi::new(1, 133),
            next_hop: vec![],
            nlri: vec![3, 1, 2, 3]
        })
    );
    assert_eq!(Message::Update(u).to_bytes(&FOUR).unwrap(), bytes);
}

#[test]
fn end_of_rib_markers() {
    let v4_eor = msg(2, &[0, 0, 0, 0]);
    assert_eq!(v4_eor.len(), 23);
    round_trip(
        &v4_eor,
        &Message::Update(Update::end_of_rib(AfiSafi::IPV4_UNICAST)),
        &FOUR,
    );
    assert_eq!(
        Update::end_of_rib(AfiSafi::IPV4_UNICAST).end_of_rib_family(),
        Some(AfiSafi::IPV4_UNICAST)
    );

    let v6_eor = msg(2, &update_body(&[], &[0x80, 15, 3, 0, 2, 1], &[]));
    round_trip(
        &v6_eor,
        &Message::Update(Update::end_of_rib(AfiSafi::IPV6_UNICAST)),
        &FOUR,
    );
    assert_eq!(
        Update::end_of_rib(AfiSafi::IPV6_UNICAST).end_of_rib_family(),
        Some(AfiSafi::IPV6_UNICAST)
    );

    let not_eor = Update {
        nlri: vec![v4("10.0.0.0/8")],
        ..Default::default()
    };
    assert_eq!(not_eor.end_of_rib_family(), None);
}

#[test]
fn extended_length_attributes() {
    // COMMUNITIES received with the extended-length bit and a short value.
    let attrs = [&[0xd0, 8, 0, 4, 0xff, 0xff, 0xff, 0x02][..]].concat();
    let (m, _) = decode_message(&msg(2, &update_body(&[], &attrs, &[])), &FOUR);
    let Message::Update(u) = m else { panic!() };
    assert_eq!(u.attributes.communities, [Community::NO_ADVERTISE]);
    // Re-encoded in the short form.
    assert_eq!(
        Message::Update(u).to_bytes(&FOUR).unwrap(),
        msg(
            2,
            &update_body(&[], &[0xc0, 8, 4, 0xff, 0xff, 0xff, 0x02], &[])
        )
    );

    // 22 large communities = 264 octets need the extended length.
    let lc: Vec<LargeCommunity> = (0..22)
        .map(|i| LargeCommunity {
            global_admin: 65001,
            local_data1: i,
            local_data2: 0,
        })
        .collect();
    let u = Update {
        attributes: PathAttributes {
            large_communities: lc,
            ..Default::default()
        },
        ..Default::default()
    };
    let bytes = Message::Update(u.clone()).to_bytes(&FOUR).unwrap();
    assert_eq!(&bytes[23..27], &[0xd0, 32, 1, 8]);
    round_trip(&bytes, &Message::Update(u), &FOUR);
}

#[test]
fn unknown_attributes() {
    #[rustfmt::skip]
    let attrs = [
        &[0xc0, 99, 2, 0xab, 0xcd][..],   // optional transitive: kept
        &[0x80, 98, 1, 0xef],             // optional non-transitive: ignored
    ]
    .concat();
    let (m, discarded) = decode_message(&msg(2, &update_body(&[], &attrs, &[])), &FOUR);
    assert!(discarded.is_empty());
    let Message::Update(u) = m else { panic!() };
    assert_eq!(
        u.attributes.unknown,
        [RawAttribute {
            flags: 0xe0,
            type_code: 99,
            value: vec![0xab, 0xcd]
        }]
    );
    // Propagated with the Partial bit set.
    assert_eq!(
        Message::Update(u).to_bytes(&FOUR).unwrap(),
        msg(2, &update_body(&[], &[0xe0, 99, 2, 0xab, 0xcd], &[]))
    );

    // Unrecognized well-known attribute: session reset, data is the attribute.
    let bad = msg(2, &update_body(&[], &[0x40, 97, 1, 7], &[]));
    assert_eq!(
        notification_of(&bad, &FOUR),
        Notification::new(3, 2, vec![0x40, 97, 1, 7])
    );
}

// ---------------------------------------------------------------- UPDATE errors

fn full_attrs_with(replace_type: u8, attr: &[u8]) -> Vec<u8> {
    let base: [(u8, &[u8]); 3] = [
        (1, &ORIGIN_IGP),
        (2, &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]),
        (3, &NEXT_HOP_192_0_2_1),
    ];
    let mut out = Vec::new();
    for (t, a) in base {
        out.extend_from_slice(if t == replace_type { attr } else { a });
    }
    if !(1..=3).contains(&replace_type) {
        out.extend_from_slice(attr);
    }
    out
}

fn update_with(replace_type: u8, attr: &[u8]) -> Vec<u8> {
    msg(
        2,
        &update_body(
            &[8, 11],
            &full_attrs_with(replace_type, attr),
            &[24, 10, 1, 2],
        ),
    )
}

fn assert_taw(bytes: &[u8], subcode: u8, data: &[u8]) {
    let w = treat_as_withdraw(bytes, &FOUR);
    assert_eq!(w.ipv4, [v4("11.0.0.0/8"), v4("10.1.2.0/24")]);
    let reason = w.reason().unwrap();
    assert_eq!(
        reason.to_notification(),
        Notification::new(3, subcode, data.to_vec()),
        "{w:?}"
    );
}

#[test]
fn well_formed_baseline() {
    let (m, _) = decode_message(&update_with(0, &[]), &FOUR);
    assert!(matches!(m, Message::Update(_)));
}

#[test]
fn treat_as_withdraw_cases() {
    // Invalid ORIGIN value.
    assert_taw(&update_with(1, &[0x40, 1, 1, 3]), 6, &[0x40, 1, 1, 3]);
    // ORIGIN length error.
    assert_taw(&update_with(1, &[0x40, 1, 2, 0, 0]), 5, &[0x40, 1, 2, 0, 0]);
    // ORIGIN flags error (marked optional).
    assert_taw(&update_with(1, &[0xc0, 1, 1, 0]), 4, &[0xc0, 1, 1, 0]);
    // Malformed AS_PATH: unknown segment type; zero-length segment; overrun.
    assert_taw(
        &update_with(2, &[0x40, 2, 6, 9, 1, 0, 0, 0xfd, 0xe9]),
        11,
        &[],
    );
    assert_taw(&update_with(2, &[0x40, 2, 2, 2, 0]), 11, &[]);
    assert_taw(&update_with(2, &[0x40, 2, 4, 2, 1, 0, 0]), 11, &[]);
    // NEXT_HOP length error and semantic errors.
    assert_taw(
        &update_with(3, &[0x40, 3, 3, 1, 2, 3]),
        5,
        &[0x40, 3, 3, 1, 2, 3],
    );
    assert_taw(
        &update_with(3, &[0x40, 3, 4, 0, 0, 0, 0]),
        8,
        &[0x40, 3, 4, 0, 0, 0, 0],
    );
    assert_taw(
        &update_with(3, &[0x40, 3, 4, 224, 0, 0, 1]),
        8,
        &[0x40, 3, 4, 224, 0, 0, 1],
    );
    // MED and LOCAL_PREF length errors.
    assert_taw(&update_with(4, &[0x80, 4, 2, 0, 1]), 5, &[0x80, 4, 2, 0, 1]);
    assert_taw(
        &update_with(5, &[0x40, 5, 5, 0, 0, 0, 0, 1]),
        5,
        &[0x40, 5, 5, 0, 0, 0, 0, 1],
    );
    // COMMUNITIES not a non-zero multiple of 4 (RFC 7606 §7.8).
    assert_taw(
        &update_with(8, &[0xc0, 8, 3, 1, 2, 3]),
        5,
        &[0xc0, 8, 3, 1, 2, 3],
    );
    assert_taw(&update_with(8, &[0xc0, 8, 0]), 5, &[0xc0, 8, 0]);
    // LARGE_COMMUNITIES not a non-zero multiple of 12 (RFC 8092 §11).
    assert_taw(&update_with(32, &[0xc0, 32, 1, 0]), 5, &[0xc0, 32, 1, 0]);
    // Attribute overrunning the attribute list (RFC 7606 §4).
    assert_taw(
        &update_with(8, &[0xc0, 8, 8, 1, 2, 3, 4]),
        5,
        &[0xc0, 8, 8, 1, 2, 3, 4],
    );
    // Fewer than three octets left for an attribute header.
    assert_taw(&update_with(8, &[0xc0]), 1, &[]);
}

#[test]
fn missing_well_known_attributes() {
    let bytes = msg(2, &update_body(&[8, 11], &ORIGIN_IGP, &[24, 10, 1, 2]));
    let w = treat_as_withdraw(&bytes, &FOUR);
    assert_eq!(w.ipv4, [v4("11.0.0.0/8"), v4("10.1.2.0/24")]);
    let missing: Vec<Notification> = w.errors.iter().map(UpdateError::to_notification).collect();
    assert_eq!(
        missing,
        [
            Notification::new(3, 3, vec![2]),
            Notification::new(3, 3, vec![3])
        ]
    );

    // An MP_REACH-only update needs ORIGIN and AS_PATH but not NEXT_HOP.
    let mp = [0x80, 14, 11, 0, 1, 1, 4, 192, 0, 2, 1, 0, 8, 10];
    let w = treat_as_withdraw(&msg(2, &update_body(&[], &mp, &[])), &FOUR);
    assert_eq!(w.ipv4, [v4("10.0.0.0/8")]);
    assert_eq!(w.errors.len(), 2);

    // Withdrawals only: no attribute is required.
    let (m, _) = decode_message(&msg(2, &update_body(&[8, 11], &[], &[])), &FOUR);
    assert!(matches!(m, Message::Update(_)));
}

#[test]
fn treat_as_withdraw_lists_ipv6_routes() {
    #[rustfmt::skip]
    let mp = [
        0x80, 14, 26, 0, 2, 1, 16,
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        0, 32, 0x20, 0x01, 0x0d, 0xb8,
    ];
    let unreach = [0x80, 15, 4, 0, 2, 1, 0];
    let attrs = [&unreach[..], &mp, &[0x40, 1, 1, 7], &[0x40, 2, 0]].concat();
    let w = treat_as_withdraw(&msg(2, &update_body(&[], &attrs, &[])), &FOUR);
    assert_eq!(w.ipv6, [v6("2001:db8::/32"), v6("::/0")]);
    assert!(w.ipv4.is_empty());
}

#[test]
fn attribute_discard_cases() {
    // ATOMIC_AGGREGATE with a value.
    let (m, d) = decode_message(&update_with(6, &[0x40, 6, 1, 0]), &FOUR);
    let Message::Update(u) = m else { panic!() };
    assert!(!u.attributes.atomic_aggregate);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].action, ErrorAction::AttributeDiscard);
    assert_eq!(
        d[0].to_notification(),
        Notification::new(3, 5, vec![0x40, 6, 1, 0])
    );
    // AGGREGATOR of the 2-octet size on a 4-octet session.
    let (m, d) = decode_message(
        &update_with(7, &[0xc0, 7, 6, 0xfd, 0xe9, 10, 0, 0, 1]),
        &FOUR,
    );
    let Message::Update(u) = m else { panic!() };
    assert_eq!(u.attributes.aggregator, None);
    assert_eq!(d[0].attribute_type, Some(7));
    // AGGREGATOR flags error is also a discard.
    let (_, d) = decode_message(
        &update_with(7, &[0x40, 7, 8, 0, 0, 0xfd, 0xe9, 10, 0, 0, 1]),
        &FOUR,
    );
    assert_eq!(d[0].kind, UpdateErrorKind::AttributeFlagsError);
    // Repeated attribute: later copies are discarded (RFC 7606 §3 (g)).
    let twice = [&[0x80, 4, 4, 0, 0, 0, 1][..], &[0x80, 4, 4, 0, 0, 0, 2]].concat();
    let (m, d) = decode_message(&update_with(4, &twice), &FOUR);
    let Message::Update(u) = m else { panic!() };
    assert_eq!(u.attributes.med, Some(1));
    assert_eq!(d.len(), 1);
    // Discard combined with treat-as-withdraw: the stronger wins.
    let both = [&[0x40, 6, 1, 0][..], &[0xc0, 8, 3, 1, 2, 3]].concat();
    let w = treat_as_withdraw(&update_with(6, &both), &FOUR);
    assert_eq!(w.errors.len(), 2);
    assert_eq!(w.reason().unwrap().attribute_type, Some(8));
}

#[test]
fn session_reset_cases() {
    // Repeated MP_REACH_NLRI.
    let mp = [0x80, 14, 11, 0, 1, 1, 4, 192, 0, 2, 1, 0, 8, 10];
    let twice = [&mp[..], &mp].concat();
    assert_eq!(
        notification_of(&update_with(14, &twice), &FOUR),
        Notification::new(3, 1, vec![])
    );
    // IPv6 next hop of 24 octets.
    let mut bad_nh = vec![0x80, 14, 31, 0, 2, 1, 24];
    bad_nh.extend_from_slice(&[0x20; 24]);
    bad_nh.extend_from_slice(&[0, 8, 0x20]);
    let n = notification_of(&update_with(14, &bad_nh), &FOUR);
    assert_eq!((n.code, n.subcode), (3, 9));
    assert_eq!(n.data, bad_nh);
    // MP_REACH with an unparseable prefix.
    let bad_prefix = [0x80, 14, 11, 0, 1, 1, 4, 192, 0, 2, 1, 0, 33, 10];
    assert_eq!(
        notification_of(&update_with(14, &bad_prefix), &FOUR).subcode,
        9
    );
    // MP_UNREACH with a flags error.
    let n = notification_of(&update_with(15, &[0xc0, 15, 3, 0, 2, 1]), &FOUR);
    assert_eq!((n.code, n.subcode), (3, 4));
    // Withdrawn routes length beyond the message.
    assert_eq!(
        notification_of(&msg(2, &[0, 9, 0, 0]), &FOUR),
        Notification::new(3, 1, vec![])
    );
    // Total attribute length beyond the message.
    assert_eq!(
        notification_of(&msg(2, &[0, 0, 0, 9]), &FOUR),
        Notification::new(3, 1, vec![])
    );
    // Bad prefixes in the withdrawn routes and NLRI fields.
    assert_eq!(
        notification_of(&msg(2, &update_body(&[33, 1, 2, 3, 4, 5], &[], &[])), &FOUR).subcode,
        10
    );
    let trailing = msg(
        2,
        &update_body(&[8, 11], &full_attrs_with(0, &[]), &[24, 10, 1, 2, 24, 1]),
    );
    assert_eq!(
        notification_of(&trailing, &FOUR),
        Notification::new(3, 10, vec![])
    );
}

// ---------------------------------------------------------------- other messages

#[test]
fn notification_vectors() {
    round_trip(
        &msg(3, &[4, 0]),
        &Message::Notification(Notification::hold_timer_expired()),
        &TWO,
    );
    round_trip(
        &msg(3, &[6, 3]),
        &Message::Notification(Notification::cease(cease_subcode::PEER_DECONFIGURED)),
        &TWO,
    );
    let n = Notification::cease_with_message(cease_subcode::ADMINISTRATIVE_SHUTDOWN, "maintenance");
    let mut body = vec![6, 2, 11];
    body.extend_from_slice(b"maintenance");
    round_trip(&msg(3, &body), &Message::Notification(n.clone()), &TWO);
    assert_eq!(n.shutdown_message(), Some("maintenance"));
    assert!(n.to_string().contains("maintenance"));
    let long =
        Notification::cease_with_message(cease_subcode::ADMINISTRATIVE_RESET, &"é".repeat(200));
    assert_eq!(long.data.len(), 255);
    assert_eq!(long.shutdown_message().map(str::len), Some(254));
    // Too short for a NOTIFICATION.
    assert_eq!(
        notification_of(&msg(3, &[6]), &TWO),
        Notification::new(1, 2, vec![0, 20])
    );
}

#[test]
fn keepalive_and_route_refresh_vectors() {
    round_trip(&msg(4, &[]), &Message::Keepalive, &TWO);
    assert_eq!(
        notification_of(&msg(4, &[0]), &TWO),
        Notification::new(1, 2, vec![0, 20])
    );

    let rr = RouteRefresh::new(AfiSafi::IPV6_UNICAST);
    round_trip(&msg(5, &[0, 2, 0, 1]), &Message::RouteRefresh(rr), &TWO);
    let eorr = RouteRefresh {
        afi_safi: AfiSafi::IPV4_UNICAST,
        subtype: 2,
    };
    round_trip(&msg(5, &[0, 1, 2, 1]), &Message::RouteRefresh(eorr), &TWO);
    // RFC 7313: wrong length is a ROUTE-REFRESH error carrying the message.
    let bad = msg(5, &[0, 1, 0, 1, 0]);
    assert_eq!(
        notification_of(&bad, &TWO),
        Notification::new(7, 1, bad.clone())
    );
}

#[test]
fn header_errors() {
    let mut bad_marker = msg(4, &[]);
    bad_marker[3] = 0;
    assert_eq!(
        notification_of(&bad_marker, &TWO),
        Notification::new(1, 1, vec![])
    );
    // Detected before the whole header arrived.
    assert_eq!(
        decode(&bad_marker[..5], &TWO),
        Err(Error::ConnectionNotSynchronized)
    );

    let mut short = msg(4, &[]);
    short[17] = 18;
    assert_eq!(
        notification_of(&short, &TWO),
        Notification::new(1, 2, vec![0, 18])
    );
    let mut long = msg(4, &[]);
    long[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(
        notification_of(&long, &TWO),
        Notification::new(1, 2, vec![0x10, 0x01])
    );
    assert_eq!(
        notification_of(&msg(9, &[]), &TWO),
        Notification::new(1, 3, vec![9])
    );
    assert_eq!(
        notification_of(&msg(0, &[]), &TWO),
        Notification::new(1, 3, vec![0])
    );
    // UPDATE shorter than 23 octets.
    assert_eq!(
        notification_of(&msg(2, &[0, 0, 0]), &TWO),
        Notification::new(1, 2, vec![0, 22])
    );
}

#[test]
fn error_to_notification_message_bytes() {
    let err = decode(&msg(9, &[]), &TWO).unwrap_err();
    let bytes = Message::from(&err).to_bytes(&TWO).unwrap();
    assert_eq!(bytes, msg(3, &[1, 3, 9]));
    assert_eq!(err.to_string(), "message header error: bad message type 9");
}

#[test]
fn stream_decoding() {
    let mut stream = msg(4, &[]);
    let open = Message::Open(Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1)));
    let open_bytes = open.to_bytes(&TWO).unwrap();
    stream.extend_from_slice(&open_bytes);
    stream.extend_from_slice(&msg(4, &[]));

    let mut offset = 0;
    let mut got = Vec::new();
    // Feed the stream one byte at a time; decode whenever possible.
    for end in 1..=stream.len() {
        loop {
            match decode(&stream[offset..end], &TWO).unwrap() {
                Decoded::Incomplete { needed } => {
                    assert!(needed > end - offset);
                    break;
                }
                Decoded::Message {
                    message, consumed, ..
                } => {
                    got.push(message);
                    offset += consumed;
                }
                Decoded::TreatAsWithdraw { .. } => panic!(),
            }
        }
    }
    assert_eq!(offset, stream.len());
    assert_eq!(got, [Message::Keepalive, open, Message::Keepalive]);

    // Once the header is there, `needed` is the full message length.
    assert_eq!(
        decode(&open_bytes[..20], &TWO).unwrap(),
        Decoded::Incomplete {
            needed: open_bytes.len()
        }
    );
}

#[test]
fn encode_errors() {
    let too_long = Capability::Unknown {
        code: 200,
        value: vec![0; 256],
    };
    let open = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1)).with_capability(too_long);
    assert_eq!(
        Message::Open(open).to_bytes(&TWO),
        Err(EncodeError::CapabilityTooLong(200))
    );
    let empty_segment = AsPath {
        segments: vec![AsSegment {
            kind: AsSegmentType::Set,
            asns: vec![],
        }],
    };
    let update = Update {
        attributes: PathAttributes {
            as_path: Some(empty_segment),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        Message::Update(update).to_bytes(&TWO),
        Err(EncodeError::InvalidAsPathSegment(0))
    );
    let gr = Capability::GracefulRestart(GracefulRestart {
        restart_time: 4096,
        ..Default::default()
    });
    let open = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 1)).with_capability(gr);
    assert!(matches!(
        Message::Open(open).to_bytes(&TWO),
        Err(EncodeError::OutOfRange(_))
    ));
}

#[test]
fn ipv6_next_hop_type() {
    let nh = Ipv6NextHop {
        global: Ipv6Addr::LOCALHOST,
        link_local: None,
    };
    assert_eq!(nh.global, Ipv6Addr::LOCALHOST);
}
