#![allow(clippy::unwrap_used, clippy::expect_used)]
//! BFD Control packet byte vectors, §6.8.6 rejection rules and property
//! tests.

use proptest::collection::vec;
use proptest::prelude::*;
use yagura_bfd::packet::*;

#[rustfmt::skip]
const UP: [u8; 24] = [
    0x20, 0xc0, 3, 24,
    0, 0, 0, 1,
    0, 0, 0, 2,
    0, 0x04, 0x93, 0xe0,
    0, 0x04, 0x93, 0xe0,
    0, 0, 0, 0,
];

#[test]
fn up_packet_vector() {
    let p = ControlPacket::decode(&UP).unwrap();
    let expected = ControlPacket {
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        ..ControlPacket::new(State::Up, 1, 2)
    };
    assert_eq!(p, expected);
    assert_eq!(expected.to_bytes().unwrap(), UP);
}

#[test]
fn down_packet_with_diag_and_flags() {
    #[rustfmt::skip]
    let bytes = [
        0x23, 0x40 | 0x20 | 0x08 | 0x02, 5, 24,
        0xde, 0xad, 0xbe, 0xef,
        0, 0, 0, 0,
        0, 0x0f, 0x42, 0x40,
        0, 0, 0, 0,
        0, 0, 0xc3, 0x50,
    ];
    let p = ControlPacket::decode(&bytes).unwrap();
    assert_eq!(p.diag, Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(p.state, State::Down);
    assert!(p.flags.poll && p.flags.control_plane_independent && p.flags.demand);
    assert!(!p.flags.final_ && !p.flags.multipoint);
    assert_eq!(p.detect_mult, 5);
    assert_eq!(p.my_discriminator, 0xdead_beef);
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(p.desired_min_tx, 1_000_000);
    assert_eq!(p.required_min_rx, 0);
    assert_eq!(p.required_min_echo_rx, 50_000);
    assert_eq!(p.to_bytes().unwrap(), bytes);
    // Trailing octets beyond the Length field are ignored.
    let mut padded = bytes.to_vec();
    padded.extend_from_slice(&[0; 8]);
    assert_eq!(ControlPacket::decode(&padded).unwrap(), p);
}

#[test]
fn authentication_sections() {
    // Simple password "secret", key id 7.
    let mut simple = UP.to_vec();
    simple[1] |= flag_bits::A;
    simple[3] = 24 + 9;
    simple.extend_from_slice(&[1, 9, 7]);
    simple.extend_from_slice(b"secret");
    let p = ControlPacket::decode(&simple).unwrap();
    assert_eq!(
        p.auth,
        Some(Authentication::SimplePassword {
            key_id: 7,
            password: b"secret".to_vec()
        })
    );
    assert_eq!(p.to_bytes().unwrap(), simple);

    // Meticulous keyed SHA1.
    let mut sha = UP.to_vec();
    sha[1] |= flag_bits::A;
    sha[3] = 24 + 28;
    sha.extend_from_slice(&[5, 28, 1, 0, 0, 0, 1, 0]);
    sha.extend_from_slice(&[0xaa; 20]);
    let p = ControlPacket::decode(&sha).unwrap();
    assert_eq!(
        p.auth,
        Some(Authentication::KeyedSha1 {
            meticulous: true,
            key_id: 1,
            sequence: 256,
            hash: [0xaa; 20]
        })
    );
    assert_eq!(p.auth.as_ref().unwrap().auth_type(), 5);
    assert_eq!(p.to_bytes().unwrap(), sha);

    // Keyed MD5.
    let mut md5 = UP.to_vec();
    md5[1] |= flag_bits::A;
    md5[3] = 24 + 24;
    md5.extend_from_slice(&[2, 24, 3, 0, 0, 0, 0, 9]);
    md5.extend_from_slice(&[0x55; 16]);
    let p = ControlPacket::decode(&md5).unwrap();
    assert_eq!(
        p.auth,
        Some(Authentication::KeyedMd5 {
            meticulous: false,
            key_id: 3,
            sequence: 9,
            digest: [0x55; 16]
        })
    );
    assert_eq!(p.to_bytes().unwrap(), md5);

    // MD5 with a wrong Auth Len.
    let mut bad = md5.clone();
    bad[25] = 23;
    assert_eq!(ControlPacket::decode(&bad), Err(Error::BadAuthentication));
    // Empty password.
    let mut empty = UP.to_vec();
    empty[1] |= flag_bits::A;
    empty[3] = 27;
    empty.extend_from_slice(&[1, 3, 7]);
    assert_eq!(ControlPacket::decode(&empty), Err(Error::BadAuthentication));
    // A bit set but Length 24.
    let mut no_section = UP;
    no_section[1] |= flag_bits::A;
    assert!(matches!(
        ControlPacket::decode(&no_section),
        Err(Error::BadLength { .. })
    ));
    // Encoding a 17-octet password fails.
    let long = ControlPacket {
        auth: Some(Authentication::SimplePassword {
            key_id: 1,
            password: vec![b'x'; 17],
        }),
        ..ControlPacket::new(State::Up, 1, 2)
    };
    assert_eq!(long.to_bytes(), Err(EncodeError::PasswordLength(17)));
}

#[test]
fn reception_checks() {
    let with = |f: &dyn Fn(&mut [u8; 24])| {
        let mut b = UP;
        f(&mut b);
        ControlPacket::decode(&b)
    };
    assert_eq!(ControlPacket::decode(&UP[..23]), Err(Error::TooShort(23)));
    assert_eq!(with(&|b| b[0] = 0x40), Err(Error::UnsupportedVersion(2)));
    assert_eq!(with(&|b| b[0] = 0x00), Err(Error::UnsupportedVersion(0)));
    assert!(matches!(
        with(&|b| b[3] = 23),
        Err(Error::BadLength { length: 23, .. })
    ));
    assert!(matches!(
        with(&|b| b[3] = 25),
        Err(Error::BadLength { length: 25, .. })
    ));
    assert_eq!(with(&|b| b[2] = 0), Err(Error::ZeroDetectMult));
    assert_eq!(with(&|b| b[1] |= flag_bits::M), Err(Error::Multipoint));
    assert_eq!(with(&|b| b[4..8].fill(0)), Err(Error::ZeroMyDiscriminator));
    assert_eq!(
        with(&|b| b[8..12].fill(0)),
        Err(Error::ZeroYourDiscriminator(State::Up))
    );
    assert_eq!(
        with(&|b| {
            b[8..12].fill(0);
            b[1] = 0x80;
        }),
        Err(Error::ZeroYourDiscriminator(State::Init))
    );
    // Zero Your Discriminator is fine in Down and AdminDown.
    for sta in [0x00, 0x40] {
        assert!(with(&|b| {
            b[8..12].fill(0);
            b[1] = sta;
        })
        .is_ok());
    }
}

#[test]
fn diagnostics_and_states() {
    for code in 0..32u8 {
        assert_eq!(Diagnostic::from_code(code).code(), code);
    }
    assert_eq!(Diagnostic::from_code(7), Diagnostic::AdministrativelyDown);
    assert_eq!(Diagnostic::from_code(9), Diagnostic::Reserved(9));
    assert_eq!(State::Up.to_string(), "Up");
}

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::AdminDown),
        Just(State::Down),
        Just(State::Init),
        Just(State::Up)
    ]
}

fn auth() -> impl Strategy<Value = Option<Authentication>> {
    prop_oneof![
        Just(None),
        (any::<u8>(), vec(any::<u8>(), 1..=16)).prop_map(|(key_id, password)| Some(
            Authentication::SimplePassword { key_id, password }
        )),
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<[u8; 16]>()).prop_map(
            |(meticulous, key_id, sequence, digest)| {
                Some(Authentication::KeyedMd5 {
                    meticulous,
                    key_id,
                    sequence,
                    digest,
                })
            }
        ),
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<[u8; 20]>()).prop_map(
            |(meticulous, key_id, sequence, hash)| {
                Some(Authentication::KeyedSha1 {
                    meticulous,
                    key_id,
                    sequence,
                    hash,
                })
            }
        ),
        (6u8.., vec(any::<u8>(), 0..100))
            .prop_map(|(auth_type, data)| Some(Authentication::Other { auth_type, data })),
    ]
}

prop_compose! {
    fn packet()(
        diag in 0u8..32,
        state in state(),
        (poll, final_, cpi, demand) in any::<(bool, bool, bool, bool)>(),
        detect_mult in 1u8..,
        my_discriminator in 1u32..,
        your in any::<u32>(),
        desired_min_tx in any::<u32>(),
        required_min_rx in any::<u32>(),
        required_min_echo_rx in any::<u32>(),
        auth in auth(),
    ) -> ControlPacket {
        let your_discriminator = if matches!(state, State::Down | State::AdminDown) { your } else { your.max(1) };
        ControlPacket {
            diag: Diagnostic::from_code(diag),
            state,
            flags: Flags { poll, final_, control_plane_independent: cpi, demand, multipoint: false },
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx,
            required_min_rx,
            required_min_echo_rx,
            auth,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn round_trip(p in packet()) {
        let bytes = p.to_bytes().unwrap();
        prop_assert_eq!(ControlPacket::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..120)) {
        if let Ok(p) = ControlPacket::decode(&bytes) {
            let again = p.to_bytes().unwrap();
            prop_assert_eq!(ControlPacket::decode(&again).unwrap(), p);
        }
    }

    #[test]
    fn mutated_packets_never_panic(p in packet(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = p.to_bytes().unwrap();
        for (i, v) in flips {
            let i = i.index(bytes.len());
            bytes[i] = v;
        }
        if let Ok(p) = ControlPacket::decode(&bytes) {
            let again = p.to_bytes().unwrap();
            prop_assert_eq!(ControlPacket::decode(&again).unwrap(), p);
        }
    }
}
