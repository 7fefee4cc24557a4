#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Arbitrary bytes never panic the parser or the framer; framing is
//! independent of how the stream is chunked.

use proptest::prelude::*;
use yagura_syslog::{parse, FrameDecoder};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400), now in any::<i64>()) {
        let m = parse(&b, now);
        prop_assert_eq!(m.raw, b.clone());
        let mut v = b"<13>".to_vec();
        v.extend_from_slice(&b);
        let _ = parse(&v, now);
        let mut v = b"<13>1 ".to_vec();
        v.extend_from_slice(&b);
        let _ = parse(&v, now);
    }

    #[test]
    fn parse_structured_text_never_panics(s in "(<[0-9]{1,3}>)?[0-9 :*.A-Za-z\\[\\]=\"\\\\-]{0,80}", now in 0i64..4_000_000_000) {
        let _ = parse(s.as_bytes(), now);
    }

    #[test]
    fn framing_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400), chunk in 1usize..64, max in 1usize..64) {
        let mut d = FrameDecoder::new(max);
        for c in b.chunks(chunk) {
            d.push(c);
            while let Some(f) = d.next_frame() {
                if let Ok(f) = f {
                    prop_assert!(f.len() <= max);
                }
            }
        }
        let _ = d.finish();
    }

    #[test]
    fn octet_counting_roundtrip(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 0..10), chunk in 1usize..40) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(format!("{} ", m.len()).as_bytes());
            stream.extend_from_slice(m);
        }
        let mut d = FrameDecoder::new(100);
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            d.push(c);
            while let Some(f) = d.next_frame() {
                out.push(f.unwrap());
            }
        }
        prop_assert!(d.finish().is_none());
        prop_assert_eq!(out, msgs);
    }
}
