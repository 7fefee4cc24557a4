#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Arbitrary bytes never panic any decoder.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use yagura_flow::netflow::{self, TemplateCache};
use yagura_flow::sflow;

const EXP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sflow_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = sflow::decode(&b);
        // Also with a valid version/address prefix, to get deeper.
        let mut v = vec![0, 0, 0, 5, 0, 0, 0, 1, 10, 0, 0, 1];
        v.extend_from_slice(&b);
        let _ = sflow::decode(&v);
        let _ = sflow::packet::decode_ethernet(&b);
        let _ = sflow::packet::decode_ipv6(&b);
    }

    #[test]
    fn netflow_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600), now in 0u64..10_000) {
        let mut cache = TemplateCache::default();
        let _ = netflow::decode(&b, EXP, now, &mut cache);
        for version in [5u8, 9, 10] {
            let mut v = vec![0, version];
            v.extend_from_slice(&b);
            let _ = netflow::decode(&v, EXP, now, &mut cache);
        }
    }

    #[test]
    fn ipfix_sets_never_panic(sets in proptest::collection::vec((prop_oneof![Just(2u16), Just(3u16), 256u16..260], proptest::collection::vec(any::<u8>(), 0..80)), 0..6)) {
        // Well-formed message and set headers around random set bodies so the
        // template and data paths are exercised.
        let mut cache = TemplateCache::default();
        let mut body = Vec::new();
        for (id, b) in &sets {
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&((b.len() + 4) as u16).to_be_bytes());
            body.extend_from_slice(b);
        }
        let mut m = vec![0, 10];
        m.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&body);
        for _ in 0..2 {
            let _ = netflow::decode(&m, EXP, 0, &mut cache);
        }
        let mut v9 = vec![0, 9, 0, 1];
        v9.extend_from_slice(&[0; 16]);
        for (id, b) in &sets {
            let id = if *id < 256 { id - 2 } else { *id };
            v9.extend_from_slice(&id.to_be_bytes());
            v9.extend_from_slice(&((b.len() + 4) as u16).to_be_bytes());
            v9.extend_from_slice(b);
        }
        for _ in 0..2 {
            let _ = netflow::decode(&v9, EXP, 0, &mut cache);
        }
    }
}
