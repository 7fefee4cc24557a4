#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: generated messages round-trip through encode/decode, and
//! no input, random or mutated, makes the decoder panic.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use yagura_bgp::packet::*;

fn ipv4_net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

fn ipv6_net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

fn unicast_v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>()
        .prop_map(Ipv4Addr::from)
        .prop_filter("unicast host", |a| {
            !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
        })
}

fn afi_safi() -> impl Strategy<Value = AfiSafi> {
    prop_oneof![
        Just(AfiSafi::IPV4_UNICAST),
        Just(AfiSafi::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AfiSafi::new(a, s)),
    ]
}

fn other_family() -> impl Strategy<Value = AfiSafi> {
    (any::<u16>(), any::<u8>())
        .prop_map(|(a, s)| AfiSafi::new(a, s))
        .prop_filter("not modelled", |f| {
            *f != AfiSafi::IPV4_UNICAST && *f != AfiSafi::IPV6_UNICAST
        })
}

fn capability() -> impl Strategy<Value = Capability> {
    let gr = (
        any::<bool>(),
        any::<bool>(),
        0u16..=4095,
        vec((afi_safi(), any::<bool>()), 0..4),
    )
        .prop_map(|(restarting, notification, restart_time, fams)| {
            Capability::GracefulRestart(GracefulRestart {
                restarting,
                notification,
                restart_time,
                families: fams
                    .into_iter()
                    .map(|(afi_safi, forwarding_preserved)| GracefulRestartFamily {
                        afi_safi,
                        forwarding_preserved,
                    })
                    .collect(),
            })
        });
    prop_oneof![
        afi_safi().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        gr,
        (1u32..).prop_map(Capability::FourOctetAs),
        (any::<u8>(), vec(any::<u8>(), 0..40))
            .prop_filter("unknown code", |(c, _)| ![1, 2, 64, 65].contains(c))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1u16..,
        any::<u16>().prop_filter("hold time", |h| *h != 1 && *h != 2),
        (1u32..).prop_map(Ipv4Addr::from),
        vec(capability(), 0..12),
    )
        .prop_map(|(my_as, hold_time, bgp_id, mut capabilities)| {
            // AS 0 in the 4-octet AS capability is rejected (RFC 7607);
            // the generator never produces it.
            capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(0)));
            Open {
                my_as,
                hold_time,
                bgp_id,
                capabilities,
            }
        })
}

fn asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    }
}

fn as_path(four: bool) -> impl Strategy<Value = AsPath> {
    let kind = prop_oneof![
        Just(AsSegmentType::Set),
        Just(AsSegmentType::Sequence),
        Just(AsSegmentType::ConfedSequence),
        Just(AsSegmentType::ConfedSet),
    ];
    vec((kind, vec(asn(four), 1..12)), 0..4).prop_map(|segs| AsPath {
        segments: segs
            .into_iter()
            .map(|(kind, asns)| AsSegment { kind, asns })
            .collect(),
    })
}

fn aggregator(four: bool) -> impl Strategy<Value = Aggregator> {
    (asn(four), any::<u32>()).prop_map(|(asn, a)| Aggregator {
        asn,
        address: Ipv4Addr::from(a),
    })
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    prop_oneof![
        (any::<u32>(), vec(ipv4_net(), 0..8)).prop_map(|(nh, nlri)| MpReach::Ipv4Unicast {
            next_hop: Ipv4Addr::from(nh),
            nlri
        }),
        (
            any::<u128>(),
            option::of(any::<u128>()),
            vec(ipv6_net(), 0..8)
        )
            .prop_map(|(g, ll, nlri)| {
                MpReach::Ipv6Unicast {
                    next_hop: Ipv6NextHop {
                        global: Ipv6Addr::from(g),
                        link_local: ll.map(Ipv6Addr::from),
                    },
                    nlri,
                }
            }),
        (
            other_family(),
            vec(any::<u8>(), 0..32),
            vec(any::<u8>(), 0..32)
        )
            .prop_map(|(afi_safi, next_hop, nlri)| MpReach::Other {
                afi_safi,
                next_hop,
                nlri
            }),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        vec(ipv4_net(), 0..8).prop_map(MpUnreach::Ipv4Unicast),
        vec(ipv6_net(), 0..8).prop_map(MpUnreach::Ipv6Unicast),
        (other_family(), vec(any::<u8>(), 0..32))
            .prop_map(|(afi_safi, nlri)| MpUnreach::Other { afi_safi, nlri }),
    ]
}

const KNOWN: [u8; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 17, 18, 32];

fn unknown_attrs() -> impl Strategy<Value = Vec<RawAttribute>> {
    proptest::collection::btree_map(
        any::<u8>().prop_filter("unknown type", |t| !KNOWN.contains(t)),
        vec(any::<u8>(), 0..300),
        0..3,
    )
    .prop_map(|m: BTreeMap<u8, Vec<u8>>| {
        m.into_iter()
            .map(|(type_code, value)| RawAttribute {
                flags: 0xe0,
                type_code,
                value,
            })
            .collect()
    })
}

fn update(four: bool) -> impl Strategy<Value = Update> {
    let attrs_a = (
        option::of(prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]),
        option::of(as_path(four)),
        option::of(unicast_v4()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        any::<bool>(),
        option::of(aggregator(four)),
    );
    let attrs_b = (
        vec(any::<u32>().prop_map(Community), 0..6),
        option::of(mp_reach()),
        option::of(mp_unreach()),
        option::of(as_path(true)),
        option::of(aggregator(true)),
        vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(g, a, b)| LargeCommunity {
                global_admin: g,
                local_data1: a,
                local_data2: b,
            }),
            0..4,
        ),
        unknown_attrs(),
    );
    (
        vec(ipv4_net(), 0..10),
        attrs_a,
        attrs_b,
        vec(ipv4_net(), 0..10),
    )
        .prop_map(move |(withdrawn, a, b, nlri)| {
            let (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator) = a;
            let (
                communities,
                mp_reach,
                mp_unreach,
                as4_path,
                as4_aggregator,
                large_communities,
                unknown,
            ) = b;
            let mut attributes = PathAttributes {
                origin,
                as_path,
                next_hop,
                med,
                local_pref,
                atomic_aggregate,
                aggregator,
                communities,
                mp_reach,
                mp_unreach,
                as4_path: if four { None } else { as4_path },
                as4_aggregator: if four { None } else { as4_aggregator },
                large_communities,
                unknown,
            };
            // Announcements need their mandatory attributes.
            if !nlri.is_empty() || attributes.mp_reach.is_some() {
                attributes.origin.get_or_insert(Origin::Igp);
                attributes.as_path.get_or_insert_with(AsPath::default);
            }
            if !nlri.is_empty() {
                attributes
                    .next_hop
                    .get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
            }
            Update {
                withdrawn,
                attributes,
                nlri,
            }
        })
}

fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64))
        .prop_map(|(c, s, d)| Notification::new(c, s, d))
}

fn message(four: bool) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(four).prop_map(Message::Update),
        notification().prop_map(Message::Notification),
        Just(Message::Keepalive),
        (afi_safi(), any::<u8>()).prop_map(|(afi_safi, subtype)| Message::RouteRefresh(
            RouteRefresh { afi_safi, subtype }
        )),
    ]
}

fn message_with_ctx() -> impl Strategy<Value = (Message, Context)> {
    any::<bool>().prop_flat_map(|four| {
        (
            message(four),
            Just(Context {
                four_octet_as: four,
            }),
        )
    })
}

/// Fuzz-style check: whatever decodes must re-encode and decode to the same.
fn check_reencode(bytes: &[u8], ctx: &Context) {
    if let Ok(Decoded::Message {
        message, consumed, ..
    }) = decode(bytes, ctx)
    {
        assert!(consumed <= bytes.len());
        let again = message.to_bytes(ctx).expect("a decoded message re-encodes");
        match decode(&again, ctx) {
            Ok(Decoded::Message {
                message: m2,
                consumed: c2,
                discarded,
            }) => {
                assert_eq!(m2, message);
                assert_eq!(c2, again.len());
                assert!(discarded.is_empty());
            }
            other => panic!("re-decode failed: {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_messages_round_trip((message, ctx) in message_with_ctx()) {
        let bytes = match message.to_bytes(&ctx) {
            Ok(b) => b,
            Err(EncodeError::MessageTooLong(_)) => return Err(TestCaseError::reject("too long")),
            Err(e) => panic!("{e}"),
        };
        let decoded = decode(&bytes, &ctx).unwrap();
        prop_assert_eq!(decoded, Decoded::Message { message, consumed: bytes.len(), discarded: vec![] });
        // Every proper prefix is incomplete, never an error.
        for cut in [0, 1, 18, 19, bytes.len() / 2, bytes.len() - 1] {
            if cut < bytes.len() {
                let r = decode(&bytes[..cut], &ctx).unwrap();
                let is_incomplete = matches!(r, Decoded::Incomplete { .. });
                prop_assert!(is_incomplete);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..600), four in any::<bool>()) {
        let ctx = Context { four_octet_as: four };
        let _ = decode(&bytes, &ctx);
        check_reencode(&bytes, &ctx);
    }

    #[test]
    fn arbitrary_bodies_never_panic(type_code in 0u8..7, body in vec(any::<u8>(), 0..600), four in any::<bool>()) {
        let ctx = Context { four_octet_as: four };
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
        bytes.push(type_code);
        bytes.extend_from_slice(&body);
        if let Ok(Decoded::Message { consumed, .. } | Decoded::TreatAsWithdraw { consumed, .. }) = decode(&bytes, &ctx) {
            prop_assert_eq!(consumed, bytes.len());
        }
        check_reencode(&bytes, &ctx);
    }

    #[test]
    fn mutated_messages_never_panic(
        (message, ctx) in message_with_ctx(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let Ok(mut bytes) = message.to_bytes(&ctx) else { return Err(TestCaseError::reject("too long")) };
        for (idx, val) in flips {
            // Keep the marker intact so mutations reach the body decoders.
            let i = idx.index(bytes.len());
            if i >= 16 {
                bytes[i] = val;
            }
        }
        check_reencode(&bytes, &ctx);
    }

    #[test]
    fn update_attributes_in_any_order_decode_the_same(u in update(true)) {
        let ctx = Context { four_octet_as: true };
        let Ok(bytes) = Message::Update(u.clone()).to_bytes(&ctx) else { return Err(TestCaseError::reject("too long")) };
        // Reverse the attribute order on the wire: the decoded value is equal.
        let wl = usize::from(u16::from_be_bytes([bytes[19], bytes[20]]));
        let at = 21 + wl;
        let al = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        let attrs = &bytes[at + 2..at + 2 + al];
        let mut parts = Vec::new();
        let mut i = 0;
        while i < attrs.len() {
            let ext = attrs[i] & 0x10 != 0;
            let (hl, len) = if ext {
                (4, usize::from(u16::from_be_bytes([attrs[i + 2], attrs[i + 3]])))
            } else {
                (3, usize::from(attrs[i + 2]))
            };
            parts.push(&attrs[i..i + hl + len]);
            i += hl + len;
        }
        parts.reverse();
        let mut shuffled = bytes[..at + 2].to_vec();
        shuffled.extend(parts.concat());
        shuffled.extend_from_slice(&bytes[at + 2 + al..]);
        prop_assert_eq!(shuffled.len(), bytes.len());
        let decoded = decode(&shuffled, &ctx).unwrap();
        prop_assert_eq!(decoded, Decoded::Message { message: Message::Update(u), consumed: bytes.len(), discarded: vec![] });
    }
}
